/*
 * gov_elev: one approver's decision on a pending elevation. Every decision is an entry of
 * the AC's elevation record: {"required", "approvals_required", "approvals": [{"key_id",
 * "principal", "decision", "decided_at", "reason"}], "status", ...}. The AC becomes
 * authorized (and is re-signed, its TTL starting then) only with the approvals_required-th
 * distinct approval; one refusal revokes it. The key that requested the AC, and the
 * principal it was requested for (or by, when delegated), never decide on it.
 *
 * The decision is built here from the AC as read; gsap_approve re-checks everything under
 * the AC's row lock. Pure functions; any thread.
 */
#ifndef GOV_ELEV_H
#define GOV_ELEV_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_time.h"
#include "gov.h"

/* The decision asked for. */
typedef struct gov_elev_decision {
    const char *key_id; /* the approver's key */
    const char *did;    /* the approver's principal */
    int approve;        /* 1 approve, 0 refuse */
    const char *reason; /* NULL: none */
    time_t now;
    long ttl;           /* the AC's TTL, from now when this approval authorizes it */
} gov_elev_decision_t;

/* What the decision did. */
typedef struct gov_elev_result {
    size_t seen; /* decisions recorded before this one */
    int signed_; /* the AC was re-signed as authorized (the last approval) */
    char decided_at[BRK_TIME_LEN + 1], expires_at[BRK_TIME_LEN + 1];
} gov_elev_result_t;

/*
 * gov_elev_decide: applies d to ac (the stored signed AC, issued by issuer_key) and el (its
 * elevation record, an object), both changed in place: el gets the decision, and when it is
 * the final approval ac is re-signed with kr. Returns 0, or e->rc: 403
 * self_approval_forbidden, 409 approval_duplicate, or an internal error when signing fails.
 */
int gov_elev_decide(const brk_keyring_t *kr, json_t *ac, json_t *el, const char *issuer_key,
                    const gov_elev_decision_t *d, gov_elev_result_t *out, gov_err_t *e);

#endif
