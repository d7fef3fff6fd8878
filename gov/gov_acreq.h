/*
 * gov_acreq: a request for an Authorization Context (POST /governance/authorize/) as the
 * protocol takes it: its members, their bounds and defaults, the members a newer client adds
 * (kept, bounded by GOV_UNKNOWN_*, their secret-looking values masked), the Idempotency-Key's
 * form and the request's fingerprint. Whether the key may delegate is the caller's (it knows
 * the key). Pure functions; any thread.
 */
#ifndef GOV_ACREQ_H
#define GOV_ACREQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "brk_crypto.h"
#include "gov.h"

#define GOV_REQUEST_HASH_LEN (2 * BRK_SHA256_LEN) /* hex digits of a request fingerprint */

/* A request that passed gov_ac_request_parse. Strings are borrowed from the body; the JSON
 * values are owned (gov_ac_request_clear). */
typedef struct gov_ac_request {
    const char *accord, *command, *corpus, *params;
    const char *description, *env, *obo; /* NULL when absent */
    const char *delegation;              /* delegation_id (dlg_...), NULL when absent */
    const char *account;                 /* GOV_DEFAULT_ACCOUNT when absent */
    int session;
    long long ttl; /* GOV_TTL_DEFAULT when absent */
    uint32_t caps;
    json_t *unknown;        /* the unrecognized members' names, NULL when there are none */
    json_t *unknown_values; /* their values, secret-looking ones masked; NULL when none */
} gov_ac_request_t;

/* gov_ac_request_parse: validates body and fills q. Returns 0, or e->rc with q cleared. */
int gov_ac_request_parse(const json_t *body, gov_ac_request_t *q, gov_err_t *e);
void gov_ac_request_clear(gov_ac_request_t *q);

/* gov_idempotency_key_valid: 1 when (k, len) is 1..GOV_IDEMPOTENCY_KEY_MAX printable ASCII
 * characters without space, else 0. */
int gov_idempotency_key_valid(const char *k, size_t len);

/* gov_request_hash: the hex SHA-256 of body's canonical form into out: the same key with
 * another body is a conflict. Returns 0 or 400 invalid_json in e. */
int gov_request_hash(const json_t *body, char out[GOV_REQUEST_HASH_LEN + 1], gov_err_t *e);

#endif
