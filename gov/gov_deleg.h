/*
 * gov_deleg: delegation as the protocol takes it (docs/protocol.md "Delegation"): the request
 * for one (POST /delegations/), the scope it resolves to against its parent, the monotonic
 * narrowing rule (a sub-delegation can only narrow, checked field by field), what an AC issued
 * under a delegation may ask for, the signed delegation document, and the check of a
 * delegation the Agent Passport System SDK made (npm agent-passport-system: Ed25519 over its
 * canonical JSON, which for the objects it signs is RFC 8785 with null members dropped).
 *
 * Who may create, read or revoke a delegation, and the counters that change under a row lock
 * (ACs issued, amount billed, revocation) are the handler's and the database's
 * (handlers/hnd_deleg.c, migrations/functions/20_gsap_deleg*.sql). Pure functions; any thread.
 */
#ifndef GOV_DELEG_H
#define GOV_DELEG_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "brk_crypto.h"
#include "gov.h"

#define GOV_DELEG_ID_LEN 36            /* "dlg_" + 32 hex digits (the table's CHECK) */
#define GOV_DELEG_DEPTH_MAX 16         /* the largest max_delegation_depth */
#define GOV_DELEG_LIST_MAX 64          /* entries of accords, corpus_cids, prohibited hashes */
#define GOV_DELEG_TTL_DEFAULT 3600     /* a root delegation's lifetime when none is asked */
#define GOV_DELEG_TTL_MAX 2592000      /* 30 days: the longest a delegation may live */
#define GOV_DELEG_COMMANDS_DEFAULT 100 /* a root's max_commands when none is asked */
#define GOV_DELEG_COMMANDS_MAX 1000000 /* the largest max_commands */
#define GOV_DELEG_CAPS_ALL 0xffffffffu /* a root's capability_set when none is asked */
#define GOV_DELEG_DEPTH_DEFAULT 1     /* a root's max_delegation_depth when none is asked (APS's) */
#define GOV_DELEG_PUBHEX_LEN 64       /* an Ed25519 public key in hex */
#define GOV_DELEG_SIGHEX_LEN 128      /* an Ed25519 signature in hex */
#define GOV_DELEG_APS_STR_MAX 256     /* any string member of an SDK delegation */
#define GOV_DELEG_APS_SCOPE_MAX 200   /* entries of an SDK delegation's scope */
#define GOV_DELEG_APS_BYTES_MAX 16384 /* the canonical form of an SDK delegation */
#define GOV_DELEG_DID_KEY_MAX 64      /* "did:key:z" + base58 of 34 bytes (at most 47 digits) */
/* The message a key signs to register its delegation signing key: this prefix + its DID. */
#define GOV_DELEG_KEY_PROOF_PREFIX "gsap-delegation-signing-key:"

/* A delegation's scope. The arrays are owned (gov_deleg_scope_clear); NULL accords / corpus
 * mean any accord / any corpus entry; prohibited is never NULL once resolved. */
typedef struct gov_deleg_scope {
    uint32_t caps;
    json_t *accords, *corpus, *prohibited;
    int64_t expires; /* unix seconds */
    long long max_commands;
    long long spend_limit; /* minor units; -1: no limit */
    int max_depth;
} gov_deleg_scope_t;

/* The state of a parent delegation as stored (what narrowing compares against). */
typedef struct gov_deleg_parent {
    gov_deleg_scope_t s;
    int depth;
    long long
        acs_issued; /* counts against max_commands: the parent's remaining is the difference */
} gov_deleg_parent_t;

/* A request as parsed: which fields were given; strings borrowed from the body. */
typedef struct gov_deleg_request {
    const char *agent_did;
    const char *parent_id; /* NULL: a root delegation */
    const json_t *aps;     /* the SDK delegation, when the request carries one */
    gov_deleg_scope_t s;   /* the given fields; the rest is resolved by gov_deleg_resolve */
    long long ttl;         /* 0: not given */
    int has_caps, has_commands, has_spend, has_depth, has_prohibited, has_expires;
    int any_accords, any_corpus; /* given as null: any (only a root or an unlisted parent) */
    int aps_depth;               /* the SDK's currentDepth (-1 without an SDK delegation) */
    char agent_buf[GOV_DELEG_DID_KEY_MAX]; /* agent_did when the SDK named a bare key */
} gov_deleg_request_t;

void gov_deleg_scope_clear(gov_deleg_scope_t *s);
void gov_deleg_request_clear(gov_deleg_request_t *q);

/* gov_deleg_id_valid: 1 when s is "dlg_" + 32 lowercase hex digits. */
int gov_deleg_id_valid(const char *s);

/* gov_deleg_request_parse: validates a POST /delegations/ body (without "aps_delegation":
 * gov_deleg_aps_parse) into q. Returns 0 or e->rc (q cleared). */
int gov_deleg_request_parse(const json_t *body, gov_deleg_request_t *q, gov_err_t *e);

/*
 * gov_deleg_aps_parse: checks an SDK delegation: its form, its Ed25519 signature over its
 * canonical form without "signature" against signer_hex (the key the tenant knows for its
 * delegator; the SDK's "delegatedBy" must be that key), notBefore <= now < expiresAt, and maps
 * it into q: delegatedTo -> agent_did (a did: as is; a bare key -> did:key:z...), scope
 * entries "gsap:cap:N" (capability bit N, 0..31: one entry per bit, so the
 * SDK's narrowing, which keeps a subset of entries, drops bits), "gsap:accord:NAME",
 * "gsap:corpus:CID", "gsap:prohibit:CID", "gsap:commands:N" (any other entry is refused),
 * spendLimit -> spend limit in minor units (spendLimitUnit absent or "currency"), maxDepth,
 * currentDepth, expiresAt. parent_id stays the caller's. Returns 0 or e->rc (403
 * aps_signature_invalid, 422 for what does not map).
 */
int gov_deleg_aps_parse(const json_t *aps, const char *signer_hex, time_t now,
                        gov_deleg_request_t *q, gov_err_t *e);

/* gov_deleg_resolve: the scope of q under parent (NULL for a root) at now: fields not given
 * are inherited from the parent (max_commands: the parent's remaining) or take the root
 * defaults. out is owned by the caller (gov_deleg_scope_clear). Returns 0 or BRK_ENOMEM. */
int gov_deleg_resolve(const gov_deleg_request_t *q, const gov_deleg_parent_t *parent, time_t now,
                      gov_deleg_scope_t *out);

/*
 * gov_deleg_narrow: 0 when child (at depth parent->depth + 1) only narrows parent, field by
 * field: capability mask a subset, accords and corpus subsets (a listed parent cannot become
 * "any"), prohibited hashes a superset, expiry no later, max_commands no more than the parent's
 * remaining, spend limit no more (none under a limited parent is more), max depth no more.
 * Else 403 delegation_depth_exceeded (the child's depth is past the parent's max) or 403
 * narrowing_violation naming the field, in e.
 */
int gov_deleg_narrow(const gov_deleg_scope_t *child, const gov_deleg_parent_t *parent,
                     gov_err_t *e);

/* gov_deleg_parent_from_row: a stored delegation as the database answers it (a JSON object
 * with "capability_set", "accords", "corpus", "prohibited", "expires_epoch", "max_commands",
 * "acs_issued", "spend_limit_minor", "max_depth", "depth"; handlers/hnd_deleg.h) into *p
 * (owned: gov_deleg_scope_clear(&p->s)). Returns 0 or BRK_EINVAL when a member is missing. */
int gov_deleg_parent_from_row(const json_t *row, gov_deleg_parent_t *p);

/* gov_deleg_root_check: the bounds of a root scope at now (expiry in the future and within
 * GOV_DELEG_TTL_MAX). 0 or 422 in e. */
int gov_deleg_root_check(const gov_deleg_scope_t *s, time_t now, gov_err_t *e);

/* An AC request as the delegation sees it. */
typedef struct gov_deleg_use {
    const char *accord, *command_hash, *corpus;
    uint32_t caps;
    int64_t expires; /* when the AC would expire */
} gov_deleg_use_t;

/* gov_deleg_allows: 0 when an AC for u stays inside s (caps, accord, corpus entry, command
 * not prohibited, expiry no later than the delegation's), else 403 delegation_scope_exceeded
 * naming the field. The counters (max commands, spend, revocation) are checked under the row
 * lock by gsap_issue. */
int gov_deleg_allows(const gov_deleg_scope_t *s, const gov_deleg_use_t *u, gov_err_t *e);

/* What the signed delegation document says besides its scope. */
typedef struct gov_deleg_doc_args {
    const char *id, *parent_id, *tenant, *delegator_did, *delegator_key_id, *agent_did;
    const json_t *chain; /* array of ids, root first, this one last */
    int depth;
    time_t issued;
    const json_t *aps; /* the SDK delegation (its id and signature are recorded), or NULL */
} gov_deleg_doc_args_t;

/* gov_deleg_doc: the delegation document, signed with kr (delegation_cid). New reference or
 * NULL. */
json_t *gov_deleg_doc(const brk_keyring_t *kr, const gov_deleg_doc_args_t *a,
                      const gov_deleg_scope_t *s);

/* gov_deleg_key_proof_ok: 1 when sig_hex is pub_hex's Ed25519 signature over
 * GOV_DELEG_KEY_PROOF_PREFIX + did, else 0. */
int gov_deleg_key_proof_ok(const char *pub_hex, const char *sig_hex, const char *did);

/* gov_deleg_did_key: the did:key (z + base58btc of 0xed 0x01 + key) of a 32-byte key. */
void gov_deleg_did_key(const uint8_t pub[BRK_ED25519_PUB_LEN], char *out, size_t cap);

#endif
