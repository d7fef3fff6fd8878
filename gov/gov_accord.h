/*
 * gov_accord: an accord (a tenant's policy) as parsed and normalized, and its verdict on a
 * request for an AC. The same parser serves PUT /admin/accords/{name}, `gsap-broker accords
 * put` and the issuing of an AC, so an accord means one thing whichever way it was stored.
 * Pure functions; any thread.
 */
#ifndef GOV_ACCORD_H
#define GOV_ACCORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "brk_jcs.h"
#include "gov.h"

/* The defaults of an accord's settings (SPEC.md: the default accord). */
#define GOV_ACCORD_TTL_DEFAULT 900
#define GOV_ACCORD_MASK_DEFAULT 0x0000ffffu
#define GOV_ACCORD_POSTURE_DEFAULT 3
#define GOV_ACCORD_SHELL_DEFAULT "Application"


typedef struct gov_accord {
    char name[GOV_ACCORD_NAME_MAX + 1];
    long ttl_max;
    int session_allowed;
    uint32_t cap_mask, elevation_required;
    const json_t *corpus_allow; /* array of CIDs, borrowed from body */
    const char *env_commitment; /* NULL when none; borrowed from body */
    int posture;
    const char *shell_class;    /* borrowed from body */
    int signed_receipts;
    int approvals_required;     /* GOV_APPROVALS_MIN..GOV_APPROVALS_MAX */
    int self_authorized_allowed; /* gsh's self-authorized receipts count (else: violated) */
    json_t *body;               /* the normalized JSON form (owned: gov_accord_clear) */
    char accord_hash[BRK_CID_LEN + 1];
} gov_accord_t;

/*
 * gov_accord_parse: validates an accord's JSON form and fills a with it, defaults applied
 * (SPEC.md: TTL cap 900, sessions allowed, mask 0x0000ffff, no elevation, any corpus,
 * posture 3, shell class Application, one approval). approvals_required appears in the
 * normalized form only when it is not 1, so the accord_hash of an accord that does not use
 * it is the one it had before the setting existed. name_hint, when not NULL, is the name the caller
 * addresses (a body "name" must equal it). On error returns BRK_EINVAL (wrong type or shape)
 * or BRK_ERANGE (value out of range) with a stable code and a message.
 */
int gov_accord_parse(const json_t *in, const char *name_hint, gov_accord_t *a, const char **code,
                     char *msg, size_t mlen);
void gov_accord_clear(gov_accord_t *a);

typedef struct gov_decision {
    const char *deny_code; /* NULL: not denied */
    char reason[200];
    int pending;           /* elevation needed */
    long ttl;              /* granted TTL (clamped) */
} gov_decision_t;

/* gov_policy_decide: the accord's verdict on a request. corpus / env may be NULL. */
void gov_policy_decide(const gov_accord_t *a, int session, uint32_t caps, const char *corpus,
                       const char *env, long ttl, gov_decision_t *d);

#endif
