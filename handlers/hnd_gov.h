/*
 * hnd_gov: what the governance route groups share: ids, the principal's DID, capability
 * masks and the accord policy. Documents are signed with brk_doc_sign (broker/brk_sign.h).
 * Pure functions; any thread.
 */
#ifndef HND_GOV_H
#define HND_GOV_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_http.h"
#include "brk_jcs.h"
#include "brk_sign.h"
#include "brk_time.h"

#define HND_ID_LEN 36            /* "ctx_" / "den_" + 32 hex; "cr_" + 32 hex is shorter */
/* A context id as clients may send it: the broker's "ctx_" + 32 hex, or a self-authorized
 * one that gsh made up offline, "self-" + 1..59 of [A-Za-z0-9._-] (a UUID fits). */
#define HND_CONTEXT_ID_MAX 64
#define HND_SELF_CONTEXT_PREFIX "self-"
#define HND_TTL_MAX 86400
#define HND_TTL_DEFAULT 300
#define HND_DESCRIPTION_MAX 256
#define HND_DID_MAX 256
#define HND_ACCORD_NAME_MAX 64
#define HND_ACCOUNT_MAX 64
#define HND_IDEMPOTENCY_KEY_MAX 128
#define HND_CORPUS_ALLOW_MAX 1024 /* entries of an accord's corpus_allow */
#define HND_SHELL_CLASS_MAX 32
#define HND_CAPS_STR_MAX 10       /* "0x" + 8 hex digits */
#define HND_TIME_STR_MAX 40       /* an RFC 3339 time with fractions and an offset */
#define HND_POSTURE_MIN 1
#define HND_POSTURE_MAX 5
/* Distinct approvers an accord may require before a pending AC becomes authorized (the
 * two-person rule and beyond); 1 is the default and the behaviour before the setting. */
#define HND_APPROVALS_MIN 1
#define HND_APPROVALS_MAX 5

/* hnd_new_id: prefix + 32 random hex digits into out (HND_ID_LEN + 1). */
void hnd_new_id(const char *prefix, char out[HND_ID_LEN + 1]);

/* hnd_principal_did: "did:web:<broker id>:tenants:<tenant>:keys:<key_id>". */
void hnd_principal_did(const brk_req_t *r, char *out, size_t cap);

/* hnd_self_context_valid: 1 when s has the self-authorized context id form above (the same
 * form the acs check constraint enforces, migrations/0007). */
int hnd_self_context_valid(const char *s);

/* hnd_caps_parse: "0x" + 1..8 hex digits to a 32-bit mask. Returns 0 or BRK_EINVAL. */
int hnd_caps_parse(const char *s, uint32_t *out);

/* hnd_caps_fmt: "0x%08x". */
void hnd_caps_fmt(uint32_t v, char out[11]);

/* hnd_json_dump: compact serialization into request memory (for statement parameters). */
const char *hnd_json_dump(brk_req_t *r, const json_t *v);

/* ---- accords ---- */

typedef struct hnd_accord {
    char name[HND_ACCORD_NAME_MAX + 1];
    long ttl_max;
    int session_allowed;
    uint32_t cap_mask, elevation_required;
    const json_t *corpus_allow; /* array of CIDs, borrowed from body */
    const char *env_commitment; /* NULL when none; borrowed from body */
    int posture;
    const char *shell_class;    /* borrowed from body */
    int signed_receipts;
    int approvals_required;     /* HND_APPROVALS_MIN..HND_APPROVALS_MAX */
    int self_authorized_allowed; /* gsh's self-authorized receipts count (else: violated) */
    json_t *body;               /* the normalized JSON form (owned: hnd_accord_clear) */
    char accord_hash[BRK_CID_LEN + 1];
} hnd_accord_t;

/*
 * hnd_accord_parse: validates an accord's JSON form and fills a with it, defaults applied
 * (SPEC.md: TTL cap 900, sessions allowed, mask 0x0000ffff, no elevation, any corpus,
 * posture 3, shell class Application, one approval). approvals_required appears in the
 * normalized form only when it is not 1, so the accord_hash of an accord that does not use
 * it is the one it had before the setting existed. name_hint, when not NULL, is the name the caller
 * addresses (a body "name" must equal it). On error returns BRK_EINVAL (wrong type or shape)
 * or BRK_ERANGE (value out of range) with a stable code and a message.
 */
int hnd_accord_parse(const json_t *in, const char *name_hint, hnd_accord_t *a, const char **code,
                     char *msg, size_t mlen);
void hnd_accord_clear(hnd_accord_t *a);

typedef struct hnd_decision {
    const char *deny_code; /* NULL: not denied */
    char reason[200];
    int pending;           /* elevation needed */
    long ttl;              /* granted TTL (clamped) */
} hnd_decision_t;

/* hnd_policy_decide: the accord's verdict on a request. corpus / env may be NULL. */
void hnd_policy_decide(const hnd_accord_t *a, int session, uint32_t caps, const char *corpus,
                       const char *env, long ttl, hnd_decision_t *d);

/* hnd_ac_view: the stored AC (signed JSON text) with the current status ("expired" when
 * expired) and the elevation record over it. New reference, NULL when it does not parse. */
json_t *hnd_ac_view(const char *ac_text, const char *status, int expired, const char *elevation);

/* hnd_context_param: the {context_id} path parameter into out; answers 404 and returns -1
 * when it cannot be one. */
int hnd_context_param(brk_req_t *r, char out[HND_CONTEXT_ID_MAX + 1]);

#endif
