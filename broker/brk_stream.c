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

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "brk_uri.h"
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

/* The same request log line brk_http writes for its own replies. */
static void log_start(brk_req_t *r, int status)
{
    struct timespec ts;
    char st[8], dur[32], method[16], path[256];
    h2o_req_t *q = r->h2o;
    size_t pl = q->path.len;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - r->started_ns;
    for (size_t i = 0; i < q->path.len; i++)
        if (q->path.base[i] == '?') {
            pl = i; /* a query string may carry what the log must not */
            break;
        }
    snprintf(st, sizeof st, "%d", status);
    snprintf(dur, sizeof dur, "%.3f", (double)ns / 1e6);
    snprintf(method, sizeof method, "%.*s", (int)(q->method.len < 15 ? q->method.len : 15),
             q->method.base);
    snprintf(path, sizeof path, "%.*s", (int)brk_utf8_cut(q->path.base, pl, 255), q->path.base);
    brk_utf8_scrub(path); /* a refused path's raw bytes must not make the log line ill-formed */
    brk_log_kv("info", "request", "method", method, "path", path, "status", st, "duration_ms", dur,
               "request_id", r->request_id, "tenant",
               r->principal.authenticated ? r->principal.tenant : NULL, "streamed", "true",
               (const char *)NULL);
    brk_metrics_observe(r->route_index, status, ns);
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
    r->replied = 1;
    q->res.status = status;
    q->res.reason = status == 200 ? "OK" : "Streamed";
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header_by_str(&q->pool, &q->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          r->request_id, strlen(r->request_id));
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    log_start(r, status);
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
