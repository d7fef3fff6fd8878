/*
 * brk_http_int: what the parts of brk_http share, for broker/brk_http*.c only.
 *
 * brk_http.c owns intake, request state and routing; brk_http_auth.c bearer authentication
 * and the rate limits; brk_http_mtls.c client-certificate authentication; brk_http_reply.c replies and the one error table; brk_http_errfilter.c
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

/* brk__http_db_primary: brk_req_db on the loop's primary pool whatever r's route flags say
 * (replica, ops): the identity drivers' lookups, which must never read a lagging replica. */
int brk__http_db_primary(brk_req_t *r, const brk_db_op_t *ops, size_t n, brk_db_cont cont);

/* brk__http_authenticate: the bearer token of r, checked against the database
 * asynchronously, with the per-address failure limit and the per-key rate; then
 * brk__http_run_route, or an error reply. */
void brk__http_authenticate(brk_req_t *r);

/* ---- identity drivers (brk_http_auth.c; the mtls driver in brk_http_mtls.c) ---- */

/* brk__http_unauthenticated: a request with no credential at all: runs a LOCAL_OK route for
 * a loopback caller or a VIEW_OK route (its handler checks the view link), else 401
 * missing_token. */
void brk__http_unauthenticated(brk_req_t *r);

/* brk__http_auth_blocked: 1 (after answering 429) when r's address is over its
 * failed-authentication limit; drivers call it before looking at a credential. */
int brk__http_auth_blocked(brk_req_t *r);

/* brk__http_auth_fail: counts a failed authentication against r's address and answers 401
 * with code and message (a plain string, not a format). */
void brk__http_auth_fail(brk_req_t *r, const char *code, const char *message);

/* brk__http_auth_admit: r->principal is filled in by a driver (tenant, key_id, name, roles,
 * did when not derived from the key): marks it authenticated, applies the per-principal
 * rate (rate_s / burst_s: the tenant's overrides, NULL for the broker's settings) and the
 * X-GSAP-Tenant check, then runs the route. */
void brk__http_auth_admit(brk_req_t *r, const char *rate_s, const char *burst_s);

/* brk__http_mtls_start: the mtls driver. Returns BRK_ENOTFOUND, having done nothing, when
 * r's connection carries no client certificate; otherwise 0: r is then authenticated from
 * the certificate (asynchronously) or answered with an error. */
int brk__http_mtls_start(brk_req_t *r);

/* brk__http_mtls_register_stmts: the mtls driver's statement (at startup). */
int brk__http_mtls_register_stmts(void);

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
