/*
 * brk_http_int: what the parts of brk_http share, for broker/brk_http*.c only.
 *
 * brk_http.c owns intake, request state and routing; brk_http_auth.c bearer authentication
 * and the rate limits; brk_http_reply.c replies and the one error table; brk_http_errfilter.c
 * the reshaping of the errors h2o answers by itself; brk_stream.c starts streamed replies
 * through brk__http_reply_start. Everything here runs on the request's
 * loop thread.
 */
#ifndef BRK_HTTP_INT_H
#define BRK_HTTP_INT_H

#include <stdint.h>

#include <h2o.h>

#include "brk_http.h"

/* Bytes of an error message, after formatting and before UTF-8 cutting. */
#define BRK_HTTP_ERR_MESSAGE_MAX 512

/* brk__http_mono_ns: CLOCK_MONOTONIC in nanoseconds (durations, rate buckets). */
uint64_t brk__http_mono_ns(void);

/* brk__http_run_route: runs r's route once the caller may: checks the key's roles, parses a
 * JSON body when the route takes one, then calls the handler. Answers errors itself. */
void brk__http_run_route(brk_req_t *r);

/* brk__http_authenticate: the bearer token of r, checked against the database
 * asynchronously, with the per-address failure limit and the per-key rate; then
 * brk__http_run_route, or an error reply. */
void brk__http_authenticate(brk_req_t *r);

/* brk__http_reply_start: marks r answered and sets what every reply carries: status,
 * reason, Content-Type, x-request-id, Cache-Control: no-store; then logs the reply (with
 * "streamed": "true" when streamed is set). The caller sends the body. Shared by brk_reply_raw
 * and brk_stream_start; r must still have its client and not be answered yet. */
void brk__http_reply_start(brk_req_t *r, int status, const char *reason,
                           const char *content_type, int streamed);

/* brk__http_errfilter_add: installs the filter that rewrites h2o's own error replies (413,
 * 400) into the broker's JSON error shape on pc. Main thread, at server setup. */
void brk__http_errfilter_add(h2o_pathconf_t *pc);

#endif
