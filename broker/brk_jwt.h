/*
 * brk_jwt: bearer JWTs (compact JWS) verified against a JWKS, and the per-tenant settings of
 * the `jwt` identity driver: which issuer and audience a tenant accepts, where its keys come
 * from, and how a token's claims map to a principal DID and broker roles.
 *
 * Accepted algorithms: RS256 (RSA keys of at least BRK_JWT_RSA_MIN_BITS), ES256 (P-256; the
 * JOSE signature is raw r||s and is converted to DER for OpenSSL) and EdDSA (Ed25519). A token
 * whose header names `none`, any HS* or anything else is refused before a key is looked at,
 * and the key chosen by `kid` must be of the kind the header's alg names (kty, crv, and the
 * key's own `alg` when it has one): an RSA key never verifies ES256, an HMAC "key" never
 * exists (kty "oct" is skipped when a JWKS is parsed). Header and claims are JSON objects
 * without duplicate members, within the size and depth limits below.
 *
 * Everything here is pure (no network, no database, no clock of its own: the caller passes
 * the time), so it is unit-tested and fuzzed on its own. Any thread; a brk_jwks_t is
 * immutable after parsing and may be shared between threads (reference counted).
 */
#ifndef BRK_JWT_H
#define BRK_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BRK_JWT_MAX_TOKEN 8192         /* bytes of a compact token (401 token_too_large above) */
#define BRK_JWT_MAX_HEADER_JSON 1024   /* decoded bytes of the JOSE header */
#define BRK_JWT_MAX_CLAIMS_JSON 4096   /* decoded bytes of the claims (fits in a token) */
#define BRK_JWT_MAX_DEPTH 6            /* nesting of header and claims (the top object is 1) */
#define BRK_JWT_MAX_AUD 16             /* entries of an "aud" array */
#define BRK_JWT_CLOCK_SKEW_S 60        /* exp and nbf tolerate clocks this far apart */
#define BRK_JWT_RSA_MIN_BITS 2048      /* smaller RSA keys are skipped when a JWKS is parsed */
#define BRK_JWKS_MAX_BYTES (64 * 1024) /* a JWKS document (inline or fetched) */
#define BRK_JWKS_MAX_KEYS 16           /* entries of its "keys" array */
#define BRK_JWT_KID_MAX 128            /* bytes of a kid */
#define BRK_JWT_CLAIM_NAME_MAX 64      /* bytes of a configured claim name */
#define BRK_JWT_ISSUER_MAX 512         /* bytes of the configured issuer (and of "iss") */
#define BRK_JWT_AUDIENCE_MAX 256       /* bytes of the configured audience */
#define BRK_JWT_URL_MAX 1024           /* bytes of jwks_url */
#define BRK_JWT_ROLE_MAP_MAX 32        /* entries of role_map */
#define BRK_JWT_ROLE_VALUES_MAX 32     /* values of the roles claim looked at */
#define BRK_JWT_SUBJECT_MAX 128        /* bytes of the claim a DID template substitutes */
#define BRK_JWT_DID_MAX 256            /* bytes of a mapped principal DID (GOV_DID_MAX) */

/* The stable error codes a refusal carries (the JSON error "code" of the 401). */
#define BRK_JWT_E_MALFORMED "invalid_token"
#define BRK_JWT_E_TOO_LARGE "token_too_large"
#define BRK_JWT_E_ALG "alg_not_allowed"
#define BRK_JWT_E_KID "unknown_kid"
#define BRK_JWT_E_KEY_ALG "key_alg_mismatch"
#define BRK_JWT_E_SIG "bad_signature"
#define BRK_JWT_E_ISS "wrong_issuer"
#define BRK_JWT_E_AUD "wrong_audience"
#define BRK_JWT_E_EXP "token_expired"
#define BRK_JWT_E_NBF "token_not_yet_valid"
#define BRK_JWT_E_PRINCIPAL "invalid_principal"
#define BRK_JWT_E_FOREIGN "principal_forbidden"

typedef struct brk_jwks brk_jwks_t;

/*
 * brk_jwks_parse: a JWKS document (n bytes at p, at most BRK_JWKS_MAX_BYTES, at most
 * BRK_JWKS_MAX_KEYS entries). Entries of a kind this module cannot use (kty "oct", other
 * curves, "use" other than "sig", RSA under BRK_JWT_RSA_MIN_BITS) are skipped; an entry
 * without a string kid, a duplicate kid, or a malformed usable key refuses the whole document.
 * On 0 *out is a new keyset with one reference, owned by the caller (brk_jwks_unref).
 * Returns BRK_EINVAL or BRK_ETOOBIG with msg (lowercase, NUL-terminated) saying why.
 */
int brk_jwks_parse(const char *p, size_t n, brk_jwks_t **out, char *msg, size_t msglen);

/* brk_jwks_count: the usable keys of ks. */
size_t brk_jwks_count(const brk_jwks_t *ks);

/* brk_jwks_ref / brk_jwks_unref: another reference / drop one (the last frees). Thread-safe;
 * NULL is fine for unref. */
brk_jwks_t *brk_jwks_ref(brk_jwks_t *ks);
void brk_jwks_unref(brk_jwks_t *ks);

/* A token split and decoded, before its signature is checked. Owned by the caller; release
 * with brk_jwt_clear. claims and header are jansson objects owned by the struct. */
typedef struct brk_jwt {
    json_t *header;
    json_t *claims;
    const char *alg;    /* into header */
    const char *kid;    /* into header, NULL when absent */
    const char *iss;    /* into claims, NULL when absent or not a string */
    const char *token;  /* the caller's token text (not copied) */
    size_t signing_len; /* bytes of "header.payload" at the start of token */
    const char *sig_b64;
    size_t sig_b64_len;
} brk_jwt_t;

/*
 * brk_jwt_decode: splits token (len bytes) into header, claims and signature, decodes and
 * parses header and claims within the limits above, and refuses every algorithm but RS256,
 * ES256 and EdDSA, and any "crit" header. Does not verify anything else. On 0 *out is filled
 * (brk_jwt_clear it); on failure *out is cleared, *code is one of the BRK_JWT_E_* codes and
 * msg says why. token must outlive *out.
 */
int brk_jwt_decode(const char *token, size_t len, brk_jwt_t *out, const char **code, char *msg,
                   size_t msglen);

/* brk_jwt_clear: releases what t holds; safe on a cleared struct. */
void brk_jwt_clear(brk_jwt_t *t);

/*
 * brk_jwt_verify: checks t's signature with the key named by its kid in ks (unknown_kid
 * when none, key_alg_mismatch when the key is not of the header's algorithm), then iss ==
 * issuer, audience in aud (a string or an array), exp (required) and nbf (optional) against
 * now (Unix seconds) with BRK_JWT_CLOCK_SKEW_S. Returns 0 or BRK_EAUTH with *code/msg.
 */
int brk_jwt_verify(const brk_jwt_t *t, const brk_jwks_t *ks, const char *issuer,
                   const char *audience, int64_t now, const char **code, char *msg, size_t msglen);

/* ---- the jwt driver's settings of one tenant ---- */

typedef struct brk_jwt_role_map {
    char value[BRK_JWT_CLAIM_NAME_MAX + 1];
    unsigned roles; /* BRK_ROLE_* bits */
} brk_jwt_role_map_t;

/* Plain value struct; the strings point into the json_t it was parsed from (keep it alive). */
typedef struct brk_jwt_config {
    const char *issuer;
    const char *audience;
    const char *jwks_url;      /* NULL when the JWKS is inline */
    const json_t *jwks;        /* the inline JWKS object, NULL when jwks_url is set */
    const char *subject_claim; /* default "sub" */
    const char *did_template;  /* NULL: the subject claim is itself the DID */
    const char *roles_claim;   /* NULL: no roles from the token */
    brk_jwt_role_map_t role_map[BRK_JWT_ROLE_MAP_MAX];
    size_t nrole_map;
} brk_jwt_config_t;

/*
 * brk_jwt_config_parse: validates the jwt settings object cfg (members issuer, audience,
 * jwks or jwks_url, subject_claim, did_template, roles_claim, role_map; nothing else) for
 * tenant on a broker whose DIDs start with did:web:<broker_id>. A did_template must contain
 * "{subject}" once, and must not name another tenant's DIDs (see brk_jwt_did_allowed).
 * jwks_url must be https, or http to a loopback host when allow_http is set. On 0 *out is
 * filled (pointing into cfg). Returns BRK_EINVAL with msg, or BRK_ERANGE (an unknown role).
 */
int brk_jwt_config_parse(const json_t *cfg, const char *broker_id, const char *tenant,
                         int allow_http, brk_jwt_config_t *out, char *msg, size_t msglen);

/*
 * brk_jwt_config_parse_stored: the same for settings read back from the database on the
 * request path, without their "jwks" member (has_inline_jwks says whether they have one; the
 * caller hands its text to the JWKS cache, so the keys are not rebuilt on every request).
 * The inline JWKS is not re-checked: it was when it was stored. out->jwks is NULL.
 */
int brk_jwt_config_parse_stored(const json_t *cfg, int has_inline_jwks, const char *broker_id,
                                const char *tenant, int allow_http, brk_jwt_config_t *out,
                                char *msg, size_t msglen);

/*
 * brk_jwt_principal: the principal DID (into did, BRK_JWT_DID_MAX + 1 bytes), display name
 * (the subject, into name, namecap bytes) and roles (BRK_ROLE_* bits) of verified claims under
 * c. The subject must be a string of [A-Za-z0-9._~@+=-] (at most BRK_JWT_SUBJECT_MAX bytes)
 * when a template substitutes it, else a DID. Returns 0 or BRK_EAUTH with code
 * invalid_principal, or principal_forbidden when the DID would be another tenant's.
 */
int brk_jwt_principal(const brk_jwt_config_t *c, const json_t *claims, const char *broker_id,
                      const char *tenant, char *did, char *name, size_t namecap, unsigned *roles,
                      const char **code, char *msg, size_t msglen);

/*
 * brk_jwt_did_allowed: 1 when did may be the principal of a token of tenant: a DID
 * (did:<method>:<id>) that is not in the broker's namespace of another tenant
 * (did:web:<broker>:tenants:<other>:...) nor an API key's DID of this one (...:keys:...),
 * else 0. broker_id is sanitized the way gov_principal_did does.
 */
int brk_jwt_did_allowed(const char *did, const char *broker_id, const char *tenant);

/*
 * brk_jwt_looks_like: 1 when the bearer (len bytes) has the shape of a compact JWS (three
 * base64url segments), so it is sent to the jwt driver rather than the API-key parser.
 */
int brk_jwt_looks_like(const char *tok, size_t len);

#endif
