/*
 * gov_doc: the protocol's documents: the Authorization Context (AC) as issued, the denial
 * receipt, the context a self-authorized receipt creates, and the view of a stored AC.
 * Signed documents are signed with brk_doc_sign (broker/brk_sign.h) under the keyring's
 * current key; the keyring is only read. Pure functions; any thread.
 */
#ifndef GOV_DOC_H
#define GOV_DOC_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "brk_crypto.h"
#include "gov.h"
#include "gov_accord.h"

/* Who asks: the authenticated key and its principal. */
typedef struct gov_principal {
    const char *did;    /* the principal the document names (on_behalf_of when delegated) */
    const char *own_did; /* the key's own principal (delegated_by when did is another one) */
    const char *name;   /* the key's display name */
    const char *key_id;
    const char *tenant;
    const char *driver; /* the identity driver that authenticated it (identity_proof.driver);
                         * NULL: "api-key" */
} gov_principal_t;

/* The request an AC or a denial answers. */
typedef struct gov_ac_req {
    const char *command_hash, *corpus_entry_cid, *parameters_cid;
    const char *environment_commitment; /* NULL: none */
    const char *billing_account;
    int session_mode;
    uint32_t caps;
    int delegated;              /* on_behalf_of was given: identity_proof says delegated_by */
    const json_t *unknown;      /* unrecognized members' names, or NULL */
    const json_t *delegation;   /* the delegation the AC is issued under, or NULL: signed into
                                 * the AC as "delegation" ({"delegation_id", "chain",
                                 * "delegation_cid", "delegator_did", "agent_did"}) */
} gov_ac_req_t;

/*
 * gov_ac_issue: the AC for req under accord a and decision d (not denied), context id ctx,
 * issued at now, session URL url: status "pending" with an elevation record when d->pending,
 * else "authorized"; signed (ac_cid). *ac gets the signed document, *elev the elevation
 * record (NULL when not pending); both new references the caller owns. Returns 0 or a
 * negative enum brk_err (nothing returned then).
 */
int gov_ac_issue(const brk_keyring_t *kr, const gov_principal_t *p, const gov_ac_req_t *req,
                 const gov_accord_t *a, const gov_decision_t *d, const char *ctx, time_t now,
                 const char *url, json_t **ac, json_t **elev);

/*
 * gov_denial_issue: the signed denial receipt (denial_cid) for req refused by accord a with
 * decision d, id denial_id, issued at now. New reference, or NULL on failure.
 */
json_t *gov_denial_issue(const brk_keyring_t *kr, const gov_principal_t *p,
                         const gov_ac_req_t *req, const gov_accord_t *a,
                         const gov_decision_t *d, const char *denial_id, time_t now);

/* gov_denial_body: the 403 body that carries a denial: {"error": {"code": "policy_denied",
 * "message", "request_id"}, "denial", "unrecognized_fields" when unknown is not NULL}. New
 * reference or NULL. */
json_t *gov_denial_body(const json_t *denial, const char *reason, const char *request_id,
                        const json_t *unknown);

/*
 * gov_self_context_doc: the document stored for a context a self-authorized receipt creates:
 * the AC's shape as far as the receipt tells it, "self_authorized": true, and "signature":
 * null, since the broker issued nothing. ac_cid is computed as for a signed AC (over the
 * document without ac_cid and signature), so the lineage hashes it the same way. New
 * reference or NULL.
 */
json_t *gov_self_context_doc(const gov_principal_t *p, const char *ctx, const char *accord,
                             const char *command, const char *corpus, const char *params,
                             const char *url);

/* A receipt as gsap_complete recorded it (all text as the database answers it). */
typedef struct gov_receipt {
    const char *cr_id, *context_id, *sequence, *cr_cid, *chronicle_cid, *lineage_cid;
    const char *prev_lineage_cid; /* NULL for the first receipt of a context */
    const char *ac_cid, *ac_status, *outcome, *effective_outcome;
    const char *flags;   /* a JSON array */
    const char *unknown; /* the unrecognized members' names, a JSON array */
    const char *session_url;
} gov_receipt_t;

/* gov_receipt_doc: the answer to an accepted receipt (docs/protocol.md): ids, CIDs, the
 * lineage link, statuses, flags and the unrecognized members. New reference or NULL. */
json_t *gov_receipt_doc(const gov_receipt_t *x);

/* gov_accord_doc: a stored accord (its normalized body, JSON text) as answered: the body
 * with its "accord_hash". New reference, NULL when it does not parse or canonicalize. */
json_t *gov_accord_doc(const char *body_text);

/* gov_ac_view: the stored AC (signed JSON text) with the current status ("expired" when
 * expired) and the elevation record over it. New reference, NULL when it does not parse. */
json_t *gov_ac_view(const char *ac_text, const char *status, int expired, const char *elevation);

#endif
