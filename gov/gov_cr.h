/*
 * gov_cr: a Completion Receipt as the broker takes it: its validation, its redaction and its
 * content ids. What depends on the AC's state (single use, flags, the time check against the
 * AC, lineage) is gsap_complete's, under the context's row lock.
 *
 * Compatibility with newer clients: top-level members this broker does not know are kept in
 * the stored CR (so cr_cid covers them), bounded (GOV_UNKNOWN_*), and listed back as
 * unrecognized_fields. Missing required members are still refused, exit_code included for
 * the outcomes that have one.
 *
 * Pure functions; any thread.
 */
#ifndef GOV_CR_H
#define GOV_CR_H

#include <jansson.h>

#include "brk_jcs.h"
#include "gov.h"
#include "gov_passport.h"

#define GOV_CR_METADATA_MAX_KEYS 32
#define GOV_CR_METADATA_VALUE_MAX 256
#define GOV_CR_METADATA_KEY_MAX 64
#define GOV_CR_SESSION_ID_MAX 128
/* How far back a self-authorized command may have started and still be taken at its word:
 * a spooled receipt posted later than this is flagged time_implausible and billed from this
 * far back at most. A week covers a client offline over a long weekend. */
#define GOV_CR_SELF_AUTH_WINDOW_S (7 * 86400)

enum gov_outcome {
    GOV_OUTCOME_COMPLETED,
    GOV_OUTCOME_FAILED,
    GOV_OUTCOME_VIOLATED,
    GOV_OUTCOME_TIMED_OUT,
    GOV_OUTCOME_SESSION_END,
};
enum gov_behavior { GOV_BEHAVIOR_VERIFIED, GOV_BEHAVIOR_VIOLATED, GOV_BEHAVIOR_UNAVAILABLE };

/* The names of enum gov_outcome and enum gov_behavior, NULL-terminated (as on the wire). */
extern const char *const gov_outcome_names[];
extern const char *const gov_behavior_names[];

/* A receipt that passed gov_cr_check. Strings are borrowed from the body checked; the JSON
 * values are owned (gov_cr_clear). */
typedef struct gov_cr {
    const char *context_id, *started_at, *completed_at;
    const char *command_hash, *corpus_entry_cid, *parameters_cid;
    const char *environment_commitment; /* NULL when absent */
    const char *merkle_root;            /* chronicle.merkle_root, NULL when absent */
    const char *accord_template;        /* NULL when absent */
    const char *agent_did;              /* the agent that signed it, NULL when absent */
    const char *agent_signature;        /* with agent_did: GOV_AGENT_SIG_PREFIX + base64url */
    enum gov_outcome outcome;
    enum gov_behavior behavior;
    int has_exit_code;
    long long exit_code;
    int self_authorized;
    int creates_context; /* self-authorized on a "self-" id: may create its context */
    json_t *unknown;     /* the unrecognized members' names, sorted */
    json_t *stored;      /* the CR as stored: secret-looking values masked */
    char cr_cid[BRK_CID_LEN + 1];        /* over stored */
    char chronicle_cid[BRK_CID_LEN + 1]; /* over the chronicle object */
} gov_cr_t;

/*
 * gov_cr_check: validates a POST /governance/complete body and fills cr (the order of the
 * checks decides which error a body with several faults gets). Returns 0, or e->rc with cr
 * cleared. On success the caller owns cr's JSON values: gov_cr_clear.
 */
int gov_cr_check(const json_t *body, gov_cr_t *cr, gov_err_t *e);
void gov_cr_clear(gov_cr_t *cr);

/* gov_cr_redact: a deep copy of body with the values of secret-looking metadata keys, and of
 * the secret-looking members named in unknown (an array of names, may be NULL), masked. New
 * reference. */
json_t *gov_cr_redact(const json_t *body, const json_t *unknown);

#endif
