/*
 * brk_http_reply: replies to HTTP requests, the one error table and the error shape.
 *
 * Owns: brk_err_status (enum brk_err -> status + stable code), the reason phrases, the access
 * log line and metrics of each reply, and the {"error":{"code","message","request_id"}} body.
 * Invariants: a request is answered at most once (r->replied), never after the client left
 * (r->h2o == NULL); every reply carries x-request-id and Cache-Control: no-store; an error
 * message is cut at a character boundary and scrubbed, so it is always valid UTF-8 JSON; the
 * logged path never includes the query string. Runs on the request's loop thread.
 */
#include "brk_http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "brk_uri.h"
#include "banned.h"

/* ---- the one error table ---- */

int brk_err_status(int err, const char **code)
{
    static const struct {
        int err, status;
        const char *code;
    } table[] = {
        {BRK_EINVAL, 400, "invalid_request"},  {BRK_EAUTH, 401, "unauthorized"},
        {BRK_EFORBIDDEN, 403, "forbidden"},    {BRK_ENOTFOUND, 404, "not_found"},
        {BRK_EMETHOD, 405, "method_not_allowed"}, {BRK_ECONFLICT, 409, "conflict"},
        {BRK_ETOOBIG, 413, "payload_too_large"}, {BRK_EMEDIA, 415, "unsupported_media_type"},
        {BRK_ERANGE, 422, "invalid_value"},    {BRK_ELIMIT, 429, "rate_limited"},
        {BRK_EDB, 503, "database_unavailable"}, {BRK_EAGAIN, 503, "overloaded"},
        {BRK_ETIMEDOUT, 503, "database_timeout"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].err == err) {
            if (code)
                *code = table[i].code;
            return table[i].status;
        }
    }
    if (code)
        *code = "internal";
    return 500;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
    }
}

/* ---- replies ---- */

/* The access log line and metrics of one reply; streamed replies say so (and are timed at
 * their start). The query string is never logged. */
static void log_request(brk_req_t *r, int status, int streamed)
{
    char st[8], dur[32];
    uint64_t ns = brk__http_mono_ns() - r->started_ns;
    snprintf(st, sizeof st, "%d", status);
    snprintf(dur, sizeof dur, "%.3f", (double)ns / 1e6);
    char method[16], path[256];
    h2o_req_t *q = r->h2o;
    snprintf(method, sizeof method, "%.*s", (int)(q->method.len < 15 ? q->method.len : 15),
             q->method.base);
    size_t pl = q->path.len;
    for (size_t i = 0; i < q->path.len; i++)
        if (q->path.base[i] == '?') {
            pl = i; /* a query string may carry what the log must not */
            break;
        }
    snprintf(path, sizeof path, "%.*s", (int)brk_utf8_cut(q->path.base, pl, 255), q->path.base);
    brk_utf8_scrub(path); /* a refused path's raw bytes must not make the log line ill-formed */
    brk_log_kv("info", "request", "method", method, "path", path, "status", st, "duration_ms", dur,
               "request_id", r->request_id, "tenant",
               r->principal.authenticated ? r->principal.tenant : NULL,
               /* a NULL key ends the list: "streamed" is there only for streams */
               streamed ? "streamed" : NULL, "true", (const char *)NULL);
    brk_metrics_observe(r->route_index, status, ns);
}

void brk__http_reply_start(brk_req_t *r, int status, const char *reason,
                           const char *content_type, int streamed)
{
    h2o_req_t *q = r->h2o;
    r->replied = 1;
    q->res.status = status;
    q->res.reason = reason;
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header_by_str(&q->pool, &q->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          r->request_id, strlen(r->request_id));
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    log_request(r, status, streamed);
}

void brk_reply_add_header(brk_req_t *r, const char *name, const char *value)
{
    if (r->h2o == NULL || r->replied)
        return;
    h2o_req_t *q = r->h2o;
    h2o_iovec_t n = h2o_strdup(&q->pool, name, SIZE_MAX);
    h2o_iovec_t v = h2o_strdup(&q->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&q->pool, &q->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

void brk_reply_raw(brk_req_t *r, int status, const char *content_type, const char *body,
                   size_t len)
{
    if (r->h2o == NULL || r->replied)
        return;
    h2o_req_t *q = r->h2o;
    q->res.content_length = len;
    brk__http_reply_start(r, status, reason_of(status), content_type, 0);
    h2o_iovec_t copy = h2o_strdup(&q->pool, body, len);
    h2o_send_inline(q, copy.base, copy.len);
}

void brk_reply_json(brk_req_t *r, int status, json_t *body)
{
    if (r->h2o == NULL || r->replied)
        return;
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot serialize the response");
        return;
    }
    brk_reply_raw(r, status, "application/json", s, strlen(s));
    free(s);
}

static void reply_error_v(brk_req_t *r, int status, const char *code, const char *fmt, va_list ap)
{
    char msg[BRK_HTTP_ERR_MESSAGE_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    /* A message may quote what the client sent ("%.64s" of a field name, a path): cut to
     * the buffer or to a precision, that can end inside a character, and json_pack would
     * then refuse the whole reply. Cut at a character boundary, and neutralize anything
     * ill-formed or a control character, so an error reply is always the error asked for. */
    if (n >= (int)sizeof msg)
        msg[brk_utf8_cut(msg, sizeof msg - 1, sizeof msg - 1 - 3)] = '\0';
    brk_utf8_scrub(msg);
    json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg,
                             "request_id", r->request_id);
    if (status == 503)
        brk_reply_add_header(r, "retry-after", BRK_RETRY_AFTER_S);
    brk_reply_json(r, status, body);
    json_decref(body);
}

void brk_reply_error(brk_req_t *r, int err, const char *code, const char *fmt, ...)
{
    const char *def;
    int status = brk_err_status(err, &def);
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code ? code : def, fmt, ap);
    va_end(ap);
}

void brk_reply_error_status(brk_req_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code, fmt, ap);
    va_end(ap);
}

void brk_reply_db_error(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err == BRK_EINVAL) {
        brk_log_error("statement failed", "request_id", r->request_id, "sqlstate", res->sqlstate,
                      "error", res->message);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the database refused the request");
        return;
    }
    brk_reply_error(r, res->err, NULL, "%s", brk_strerror(res->err));
}
