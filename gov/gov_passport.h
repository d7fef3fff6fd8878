/*
 * gov_passport: agent passports as the Agent Passport System (APS, npm agent-passport-system
 * 6.x) makes them, and the Ed25519 signature an agent puts on a Completion Receipt.
 *
 * An APS signed passport is
 *   {"passport": {... "publicKey": <64 hex>, "expiresAt", "notBefore"?, ...},
 *    "signature": <128 hex>,   the agent's Ed25519 over canon(passport)
 *    "signedAt": <time>,
 *    "issuerSignature": {"issuerId", "issuerPublicKey": <64 hex>, "signature": <128 hex>,
 *                        "signedAt"}}
 * where issuerSignature.signature is the issuer's Ed25519 over
 * canon({"passport", "signature", "signedAt"}) (countersignPassport in the SDK). The SDK's
 * canon sorts keys, drops null members and writes strings and numbers as JSON.stringify does:
 * for a document without null members that is RFC 8785 byte for byte (brk_jcs), so a null
 * member anywhere is refused rather than guessed at. issuerId and issuerSignature.signedAt are
 * signed by nobody: they are not kept (the tenant's own name for the issuer is what is shown).
 *
 * The agent's DID is the SDK's createDID: "did:aps:z" + base58btc(0xed 0x01 || public key).
 *
 * A receipt's agent_signature is "ed25519:" + base64url (no padding) of the agent's Ed25519
 * signature over the RFC 8785 bytes of the CR as stored (secret-looking metadata masked, see
 * gov_cr.h) without its agent_signature member.
 *
 * Pure functions; any thread.
 */
#ifndef GOV_PASSPORT_H
#define GOV_PASSPORT_H

#include <jansson.h>
#include <stdint.h>

#include "brk_crypto.h"
#include "brk_jcs.h"
#include "gov.h"

/* Bytes of the canonical "passport" member (what the agent signs): an SDK passport with its
 * reputation, capabilities and a few delegations is 1-3 KiB. */
#define GOV_PASSPORT_MAX 8192
/* "did:aps:z" + base58 of 34 bytes (at most 47 characters). */
#define GOV_AGENT_DID_MAX 64
#define GOV_AGENT_DID_PREFIX "did:aps:z"
/* "ed25519:" + 86 base64url characters of a 64-byte signature. */
#define GOV_AGENT_SIG_PREFIX "ed25519:"
#define GOV_AGENT_SIG_MAX 128
/* An issuer's name in the tenant's list of trusted issuers. */
#define GOV_ISSUER_NAME_MAX 64
#define GOV_ED25519_HEX_LEN (2 * BRK_ED25519_PUB_LEN)

/* A passport that passed gov_passport_check. stored is owned (gov_passport_clear). */
typedef struct gov_passport {
    uint8_t agent_pub[BRK_ED25519_PUB_LEN];
    uint8_t issuer_pub[BRK_ED25519_PUB_LEN];
    char agent_pub_hex[GOV_ED25519_HEX_LEN + 1];
    char issuer_pub_hex[GOV_ED25519_HEX_LEN + 1];
    char agent_did[GOV_AGENT_DID_MAX + 1];
    int has_not_before;    /* the passport has a notBefore (the SDK's persistent passports) */
    int64_t not_before_us; /* notBefore; none: no lower bound, as the SDK's isPassportValid */
    int64_t expires_us;    /* expiresAt */
    json_t *stored;        /* the signed members only: what the broker keeps and bundles */
    char passport_cid[BRK_CID_LEN + 1]; /* over stored */
} gov_passport_t;

/* Flags of gov_passport_check. */
enum {
    GOV_PASSPORT_CHECK_TIME = 1 << 0, /* refuse outside [notBefore, expiresAt] at now_us */
};

/*
 * gov_passport_check: validates an APS signed passport sp (not changed): its shape (400), the
 * agent's self-signature and the issuer's countersignature (422 bad_passport_signature /
 * bad_issuer_signature), and with GOV_PASSPORT_CHECK_TIME its validity window at now_us
 * (422 passport_expired / passport_not_yet_valid). Whether the issuer is trusted is the
 * caller's to decide from p->issuer_pub. Returns 0 with p filled (caller owns p->stored:
 * gov_passport_clear), or e->rc with p cleared.
 */
int gov_passport_check(const json_t *sp, int flags, int64_t now_us, gov_passport_t *p,
                       gov_err_t *e);
void gov_passport_clear(gov_passport_t *p);

/* gov_agent_did_of: the did:aps DID of a raw Ed25519 public key into out. */
void gov_agent_did_of(const uint8_t pub[BRK_ED25519_PUB_LEN], char out[GOV_AGENT_DID_MAX + 1]);

/* gov_agent_did_valid: 1 when s has the did:aps multibase form (prefix, base58 alphabet,
 * at most GOV_AGENT_DID_MAX bytes). */
int gov_agent_did_valid(const char *s);

/* gov_issuer_name_valid: 1 when (s, n) is 1 to GOV_ISSUER_NAME_MAX of letters, digits, '.',
 * '_' and '-', starting with a letter or digit (the trusted_issuers check, 0013). */
int gov_issuer_name_valid(const char *s, size_t n);

/* gov_ed25519_hex: parses exactly 64 hex digits (either case) into pub. Returns 0 or
 * BRK_EINVAL. */
int gov_ed25519_hex(const char *s, uint8_t pub[BRK_ED25519_PUB_LEN]);

/*
 * gov_agent_sig_verify: 1 when cr's "agent_signature" is GOV_AGENT_SIG_PREFIX + base64url of
 * an Ed25519 signature by pub over the RFC 8785 bytes of cr without that member; 0 otherwise
 * (missing, malformed, or not verifying). cr is not changed.
 */
int gov_agent_sig_verify(const json_t *cr, const uint8_t pub[BRK_ED25519_PUB_LEN]);

#endif
