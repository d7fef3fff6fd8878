/*
 * hnd_util: validation helpers every route group shares. Each checks one field of a JSON
 * body and, when it is wrong, answers the request (400 for a wrong type or shape, 422 for a
 * value outside its enum or range) and returns -1; 0 means the value is good. Request loop only.
 */
#ifndef HND_UTIL_H
#define HND_UTIL_H

#include <jansson.h>
#include <stddef.h>

#include "brk_http.h"

#define HND_CID_FIELD_MAX 71
#define HND_ENUM_STR_MAX 64 /* longest string compared against an enum */
#define HND_JSON_INT_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */

/* Members a newer client adds (gsh, SK plugins, Logic Apps) are kept rather than refused, up
 * to these bounds; past any of them the request is 400 unrecognized_fields_over_limit. */
#define HND_UNKNOWN_MAX 16         /* unknown top-level members of one body */
#define HND_UNKNOWN_KEY_MAX 64     /* bytes of one unknown member's name */
#define HND_UNKNOWN_BYTES_MAX 8192 /* names + compact JSON values of them all, together */
#define HND_UNKNOWN_DEPTH_MAX 8    /* nesting of one unknown value (a scalar is 0, [] is 1) */

/* hnd_reject_unknown: -1 (400 unknown_field) when obj has a key not in the NULL-terminated list. */
int hnd_reject_unknown(brk_req_t *r, json_t *obj, const char *const *fields);

/*
 * hnd_unknown_names: the names of obj's members that are not in the NULL-terminated list,
 * sorted (bytewise), into *names as a new JSON array owned by the caller (empty when there
 * are none). Returns 0, or BRK_EINVAL with a message in msg (and *names NULL) when they
 * exceed the HND_UNKNOWN_* bounds. Pure; any thread. obj stays the caller's.
 */
int hnd_unknown_names(const json_t *obj, const char *const *fields, json_t **names, char *msg,
                      size_t mlen);

/* hnd_collect_unknown: hnd_unknown_names for a request: NULL after answering 400
 * unrecognized_fields_over_limit. */
json_t *hnd_collect_unknown(brk_req_t *r, json_t *obj, const char *const *fields);

/* hnd_looks_secret: 1 when a member name looks like it names a secret (token, password, key,
 * authorization, ...): its value is stored masked. */
int hnd_looks_secret(const char *name);

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

#endif
