/*
 * brk_stream: streamed responses on h2o's generator API; see brk_stream.h.
 *
 * The stream lives in the request's pool (h2o_mem_alloc_shared with a dispose callback that
 * frees the chunk buffer), so it goes exactly when the request does: after the last byte is
 * written, or when the client disconnects. h2o calls proceed once the previous chunk has
 * been handed over, which is the only point where the buffer may be reused; an abort asked
 * for while a chunk is in flight therefore waits for that proceed.
 */
#include "brk_stream.h"

#include <string.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_http_int.h" /* brk__http_reply_start */
#include "brk_log.h"
#include "banned.h"

#define STREAM_FIRST_CAP 16384

struct brk_stream {
    h2o_generator_t super; /* first: h2o hands it back to proceed and stop */
    brk_req_t *r;
    brk_stream_more more;
    void *arg;
    char *buf;
    size_t len, cap;
    int in_flight;     /* a non-final chunk is with h2o until proceed */
    int done;          /* final chunk sent, aborted, or stopped by h2o */
    int abort_pending; /* abort asked for while a chunk was in flight */
};

static void on_dispose(void *p)
{
    brk_stream_t *s = p;
    free(s->buf);
}

static void send_error(brk_stream_t *s)
{
    s->done = 1;
    if (s->r->h2o != NULL)
        h2o_send(s->r->h2o, NULL, 0, H2O_SEND_STATE_ERROR);
}

static void on_proceed(h2o_generator_t *g, h2o_req_t *q)
{
    brk_stream_t *s = (brk_stream_t *)g;
    (void)q;
    s->in_flight = 0;
    s->len = 0;
    if (s->abort_pending) {
        send_error(s);
        return;
    }
    if (!s->done && s->r->h2o != NULL)
        s->more(s->r, s);
}

static void on_stop(h2o_generator_t *g, h2o_req_t *q)
{
    (void)q;
    ((brk_stream_t *)g)->done = 1;
}

brk_stream_t *brk_stream_start(brk_req_t *r, int status, const char *content_type,
                               brk_stream_more more, void *arg)
{
    h2o_req_t *q = r->h2o;
    brk_stream_t *s;

    if (q == NULL || r->replied)
        return NULL;
    s = h2o_mem_alloc_shared(&q->pool, sizeof *s, on_dispose);
    memset(s, 0, sizeof *s);
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    s->r = r;
    s->more = more;
    s->arg = arg;
    /* The same headers and request log line as every other reply. */
    brk__http_reply_start(r, status, status == 200 ? "OK" : "Streamed", content_type, 1);
    h2o_start_response(q, &s->super);
    return s;
}

void *brk_stream_arg(const brk_stream_t *s)
{
    return s->arg;
}

int brk_stream_append(brk_stream_t *s, const void *p, size_t n)
{
    if (s->in_flight || s->done)
        return BRK_EINVAL;
    if (n > BRK_STREAM_CHUNK_MAX - s->len)
        return BRK_ETOOBIG;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : STREAM_FIRST_CAP;
        while (cap < s->len + n)
            cap *= 2;
        if (cap > BRK_STREAM_CHUNK_MAX)
            cap = BRK_STREAM_CHUNK_MAX;
        s->buf = brk_realloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

void brk_stream_flush(brk_stream_t *s, int final)
{
    h2o_iovec_t v = h2o_iovec_init(s->buf, s->len);
    if (s->done || s->in_flight || s->r->h2o == NULL)
        return;
    if (final)
        s->done = 1;
    else
        s->in_flight = 1;
    h2o_send(s->r->h2o, &v, s->len ? 1 : 0,
             final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

void brk_stream_abort(brk_stream_t *s, const char *msg)
{
    if (s->done)
        return;
    brk_log_kv("warn", "stream aborted", "request_id", s->r->request_id, "error", msg,
               (const char *)NULL);
    if (s->in_flight)
        s->abort_pending = 1;
    else
        send_error(s);
}
