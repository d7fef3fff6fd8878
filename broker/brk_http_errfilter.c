/*
 * brk_http_errfilter: h2o's own error replies, reshaped.
 *
 * Owns: an h2o output filter on every path. Errors h2o produces itself (413 for an oversized
 * body, 400 for broken chunked encoding) never reach our handler; this filter rewrites them
 * into the same JSON error shape as ours, with a fresh random request id.
 * Invariant: a reply that carries x-request-id is ours and passes untouched; anything else
 * with a status >= 400 is h2o's and is replaced. Runs on the request's loop thread.
 */
#include "brk_http_int.h"

#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_metrics.h"
#include "banned.h"

/* ---- h2o's own errors, reshaped ---- */

typedef struct err_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
} err_ostream_t;

static void err_do_send(h2o_ostream_t *self, h2o_req_t *q, h2o_iovec_t *bufs, size_t n,
                        h2o_send_state_t state)
{
    err_ostream_t *o = (void *)self;
    h2o_iovec_t out = o->body;
    if (o->sent)
        out.len = 0;
    o->sent = 1;
    h2o_ostream_send_next(&o->super, q, &out, out.len ? 1 : 0, state);
}

static void err_setup_ostream(h2o_filter_t *self, h2o_req_t *q, h2o_ostream_t **slot)
{
    /* Our own replies carry x-request-id; anything else >= 400 was produced by h2o. */
    if (q->res.status >= 400 &&
        h2o_find_header_by_str(&q->res.headers, H2O_STRLIT("x-request-id"), -1) == -1) {
        char buf[300], rid[17];
        uint8_t rnd[8];
        const char *code = q->res.status == 413 ? "payload_too_large" : "invalid_request";
        brk_random(rnd, sizeof rnd);
        brk_hex(rnd, sizeof rnd, rid);
        int n = q->res.status == 413
                    ? snprintf(buf, sizeof buf,
                               "{\"error\":{\"code\":\"%s\",\"message\":\"the body is larger "
                               "than %d bytes\",\"request_id\":\"%s\"}}",
                               code, BRK_MAX_BODY, rid)
                    : snprintf(buf, sizeof buf,
                               "{\"error\":{\"code\":\"%s\",\"message\":\"the request could "
                               "not be read\",\"request_id\":\"%s\"}}",
                               code, rid);
        err_ostream_t *o = (void *)h2o_add_ostream(q, sizeof(*o), slot);
        o->super.do_send = err_do_send;
        o->body = h2o_strdup(&q->pool, buf, (size_t)n);
        o->sent = 0;
        memset(&q->res.headers, 0, sizeof(q->res.headers));
        h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        h2o_iovec_t ridv = h2o_strdup(&q->pool, rid, SIZE_MAX);
        h2o_add_header_by_str(&q->pool, &q->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                              ridv.base, ridv.len);
        q->res.content_length = (size_t)n;
        brk_metrics_observe(-1, q->res.status, 0);
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(q, slot);
}

void brk__http_errfilter_add(h2o_pathconf_t *pc)
{
    h2o_filter_t *f = h2o_create_filter(pc, sizeof(*f));
    f->on_setup_ostream = err_setup_ostream;
}
