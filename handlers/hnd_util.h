/*
 * hnd_util: the gov_field checks (gov/gov_field.h) for a request. Each checks one field of a
 * JSON body and, when it is wrong, answers the request with gov's verdict (400 for a wrong
 * type or shape, 422 for a value outside its enum or range) and returns -1; 0 means the value
 * is good. Request loop only.
 */
#ifndef HND_UTIL_H
#define HND_UTIL_H

#include <jansson.h>
#include <stddef.h>

#include "brk_http.h"
#include "gov.h"

/* hnd_reply_gov: answers r with a gov_ rule's refusal; returns -1. */
int hnd_reply_gov(brk_req_t *r, const gov_err_t *e);

/* hnd_reply_result: answers r with the client error of a SQL result code (gov_result.h)
 * and returns -1; 0 without answering when sql_code is not a refusal ("ok", "retry"). */
int hnd_reply_result(brk_req_t *r, const char *sql_code);

/* hnd_reject_unknown: -1 (400 unknown_field) when obj has a key not in the NULL-terminated list. */
int hnd_reject_unknown(brk_req_t *r, json_t *obj, const char *const *fields);

/* hnd_collect_unknown: gov_unknown_names for a request: NULL after answering 400
 * unrecognized_fields_over_limit, else a new array the caller owns. */
json_t *hnd_collect_unknown(brk_req_t *r, json_t *obj, const char *const *fields);

/* hnd_opt_string / hnd_req_string: a string field of at most max bytes; *out points into obj
 * (NULL when absent and optional). */
int hnd_opt_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out);
int hnd_req_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out);

/* hnd_opt_bool: a boolean field; *out unchanged when absent. */
int hnd_opt_bool(brk_req_t *r, json_t *obj, const char *key, int *out);

/* hnd_opt_int: an integer field within [lo, hi] (422 outside); *out unchanged when absent. */
int hnd_opt_int(brk_req_t *r, json_t *obj, const char *key, long long lo, long long hi,
                long long *out);

/* hnd_req_cid / hnd_opt_cid: a "sha256:<64 hex>" field. */
int hnd_req_cid(brk_req_t *r, json_t *obj, const char *key, const char **out);
int hnd_opt_cid(brk_req_t *r, json_t *obj, const char *key, const char **out);

/* hnd_req_enum: a string field that must be one of the NULL-terminated values (422 if not);
 * *idx gets its index. */
int hnd_req_enum(brk_req_t *r, json_t *obj, const char *key, const char *const *values, int *idx);

/*
 * Waking the function runtimes. Every HTTP connection runs with gsap.notify = 'deferred'
 * (brk_db_set_session), so gsap_emit (migrations/functions/10_gsap_emit.sql) writes its event
 * without NOTIFY; a statement that may write events names hnd_q_wake as its "then"
 * (brk_db.h), and brk_db sends NOTIFY gsap_events right behind its batch or group, as a
 * transaction of its own. A NOTIFY inside the write holds PostgreSQL's notification lock from
 * before its commit until after the WAL flush, so every notifying commit waited for the one
 * before it to reach the disk (bench/latency.sh: pg_stat_activity showed acceptance waiting
 * on it in a quarter of samples). If the NOTIFY is lost (a crash between the two), the
 * runtimes' poll timer (GSAP_FN_POLL_MS) finds the events.
 */
extern brk_db_stmt_t hnd_q_wake;

/* hnd_wake_register: registers hnd_q_wake and the session statement. Main thread. */
int hnd_wake_register(void);

#endif
