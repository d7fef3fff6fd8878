/*
 * gov_field: the checks of one field of a JSON body that every request of the protocol
 * shares, and the rule for members a newer client adds. Each check returns 0 when the value
 * is good, else fills e (BRK_EINVAL, 400, for a wrong type or shape; BRK_ERANGE, 422, for a
 * value outside its enum or range) and returns e->rc. Strings that come back point into obj.
 * Pure functions; any thread. handlers/hnd_util.h answers a request with them.
 */
#ifndef GOV_FIELD_H
#define GOV_FIELD_H

#include <jansson.h>
#include <stddef.h>

#include "brk_jcs.h"
#include "gov.h"

#define GOV_CID_FIELD_MAX BRK_CID_LEN
#define GOV_ENUM_STR_MAX 64 /* longest string compared against an enum */
#define GOV_JSON_INT_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

/* Members a newer client adds (gsh, SK plugins, Logic Apps) are kept rather than refused, up
 * to these bounds; past any of them the request is 400 unrecognized_fields_over_limit. */
#define GOV_UNKNOWN_MAX 16         /* unknown top-level members of one body */
#define GOV_UNKNOWN_KEY_MAX 64     /* bytes of one unknown member's name */
#define GOV_UNKNOWN_BYTES_MAX 8192 /* names + compact JSON values of them all, together */
#define GOV_UNKNOWN_DEPTH_MAX 8    /* nesting of one unknown value (a scalar is 0, [] is 1) */

/* gov_reject_unknown: 400 unknown_field when obj has a key not in the NULL-terminated list. */
int gov_reject_unknown(const json_t *obj, const char *const *fields, gov_err_t *e);

/*
 * gov_unknown_names: the names of obj's members that are not in the NULL-terminated list,
 * sorted (bytewise), into *names as a new JSON array owned by the caller (empty when there
 * are none). Returns 0, or BRK_EINVAL with a message in msg (and *names NULL) when they
 * exceed the GOV_UNKNOWN_* bounds. obj stays the caller's.
 */
int gov_unknown_names(const json_t *obj, const char *const *fields, json_t **names, char *msg,
                      size_t mlen);

/* gov_collect_unknown: gov_unknown_names with the error as 400
 * unrecognized_fields_over_limit in e. */
int gov_collect_unknown(const json_t *obj, const char *const *fields, json_t **names,
                        gov_err_t *e);

/* gov_looks_secret: 1 when a member name looks like it names a secret (token, password, key,
 * authorization, ...): its value is stored masked (GOV_REDACTED). */
int gov_looks_secret(const char *name);

/* gov_opt_string / gov_req_string: a string field of at most max bytes without NUL; *out
 * NULL when absent (or null) and optional. */
int gov_opt_string(const json_t *obj, const char *key, size_t max, const char **out,
                   gov_err_t *e);
int gov_req_string(const json_t *obj, const char *key, size_t max, const char **out,
                   gov_err_t *e);

/* gov_opt_bool: a boolean field; *out unchanged when absent. */
int gov_opt_bool(const json_t *obj, const char *key, int *out, gov_err_t *e);

/* gov_opt_int: an integer field within [lo, hi] (422 outside); *out unchanged when absent. */
int gov_opt_int(const json_t *obj, const char *key, long long lo, long long hi, long long *out,
                gov_err_t *e);

/* gov_req_cid / gov_opt_cid: a "sha256:<64 hex>" field. */
int gov_req_cid(const json_t *obj, const char *key, const char **out, gov_err_t *e);
int gov_opt_cid(const json_t *obj, const char *key, const char **out, gov_err_t *e);

/* gov_req_enum: a string field that must be one of the NULL-terminated values (422 if not);
 * *idx gets its index. */
int gov_req_enum(const json_t *obj, const char *key, const char *const *values, int *idx,
                 gov_err_t *e);

/* gov_req_object: a member that must be an object (400 missing_field when absent,
 * invalid_field otherwise); *out borrowed from obj. */
int gov_req_object(const json_t *obj, const char *key, json_t **out, gov_err_t *e);

#endif
