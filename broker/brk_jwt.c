/*
 * brk_jwt: compact JWS bearer tokens against a JWKS, and the jwt driver's settings; see
 * brk_jwt.h. Keys become EVP_PKEYs once, when the JWKS is parsed; verification is one
 * EVP_DigestVerify. Every size is checked before the bytes are decoded or parsed.
 */
#include "brk_jwt.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_keys.h"
#include "banned.h"

enum jwt_alg { ALG_NONE = 0, ALG_RS256, ALG_ES256, ALG_EDDSA };

typedef struct jwk {
    char kid[BRK_JWT_KID_MAX + 1];
    enum jwt_alg alg; /* the only algorithm this key verifies */
    EVP_PKEY *pkey;
} jwk_t;

struct brk_jwks {
    atomic_int refs;
    size_t n;
    jwk_t keys[BRK_JWKS_MAX_KEYS];
};

static int fail(const char **code, const char *c, char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(const char **code, const char *c, char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    if (code)
        *code = c;
    if (msglen) {
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return BRK_EINVAL;
}

static enum jwt_alg alg_parse(const char *s)
{
    if (s == NULL)
        return ALG_NONE;
    if (strcmp(s, "RS256") == 0)
        return ALG_RS256;
    if (strcmp(s, "ES256") == 0)
        return ALG_ES256;
    if (strcmp(s, "EdDSA") == 0)
        return ALG_EDDSA;
    return ALG_NONE;
}

/* The raw nesting of JSON text, strings skipped, so jansson never recurses deeper than max. */
static int raw_depth_ok(const char *p, size_t n, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return 0;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 1;
}

/* b64 segment → JSON object, within cap decoded bytes and BRK_JWT_MAX_DEPTH. */
static json_t *segment_object(const char *s, size_t n, size_t cap, int *too_big)
{
    uint8_t *buf;
    json_t *v = NULL;
    *too_big = 0;
    if (n > brk_b64url_len(cap)) {
        *too_big = 1;
        return NULL;
    }
    buf = brk_malloc(cap + 1);
    int len = brk_b64url_decode(s, n, buf, cap);
    if (len < 0)
        goto out;
    if (memchr(buf, 0, (size_t)len) != NULL ||
        !raw_depth_ok((char *)buf, (size_t)len, BRK_JWT_MAX_DEPTH))
        goto out;
    v = json_loadb((char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
out:
    free(buf);
    return v;
}

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int brk_jwt_looks_like(const char *tok, size_t len)
{
    size_t dots = 0, seg = 0;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '.') {
            if (seg == 0 && dots < 2)
                return 0;
            dots++;
            seg = 0;
        } else if (b64url_char(tok[i])) {
            seg++;
        } else {
            return 0;
        }
    }
    /* "gsap.<tenant>.<key>.<secret>" has three dots; a JWS has two, and a non-empty header */
    return dots == 2 && len > 2 && tok[0] != '.';
}

void brk_jwt_clear(brk_jwt_t *t)
{
    json_decref(t->header);
    json_decref(t->claims);
    memset(t, 0, sizeof *t);
}

int brk_jwt_decode(const char *token, size_t len, brk_jwt_t *out, const char **code, char *msg,
                   size_t msglen)
{
    const char *d1, *d2;
    int big = 0;

    memset(out, 0, sizeof *out);
    if (len > BRK_JWT_MAX_TOKEN)
        return fail(code, BRK_JWT_E_TOO_LARGE, msg, msglen, "the token is longer than %d bytes",
                    BRK_JWT_MAX_TOKEN);
    if (!brk_jwt_looks_like(token, len))
        return fail(code, BRK_JWT_E_MALFORMED, msg, msglen, "the token is not a compact JWS");
    d1 = memchr(token, '.', len);
    d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    out->token = token;
    out->header = segment_object(token, (size_t)(d1 - token), BRK_JWT_MAX_HEADER_JSON, &big);
    if (out->header == NULL) {
        brk_jwt_clear(out);
        return big ? fail(code, BRK_JWT_E_TOO_LARGE, msg, msglen,
                          "the token header is larger than %d bytes", BRK_JWT_MAX_HEADER_JSON)
                   : fail(code, BRK_JWT_E_MALFORMED, msg, msglen,
                          "the token header is not a JSON object within %d levels",
                          BRK_JWT_MAX_DEPTH);
    }
    out->claims = segment_object(d1 + 1, (size_t)(d2 - d1 - 1), BRK_JWT_MAX_CLAIMS_JSON, &big);
    if (out->claims == NULL) {
        brk_jwt_clear(out);
        return big ? fail(code, BRK_JWT_E_TOO_LARGE, msg, msglen,
                          "the token claims are larger than %d bytes", BRK_JWT_MAX_CLAIMS_JSON)
                   : fail(code, BRK_JWT_E_MALFORMED, msg, msglen,
                          "the token claims are not a JSON object within %d levels",
                          BRK_JWT_MAX_DEPTH);
    }
    out->alg = json_string_value(json_object_get(out->header, "alg"));
    if (alg_parse(out->alg) == ALG_NONE) {
        char a[24];
        snprintf(a, sizeof a, "%s", out->alg ? out->alg : "");
        for (char *p = a; *p; p++)
            if (!isprint((unsigned char)*p) || *p == '"')
                *p = '?';
        brk_jwt_clear(out);
        return fail(code, BRK_JWT_E_ALG, msg, msglen,
                    "alg \"%s\" is not accepted: RS256, ES256 or EdDSA", a);
    }
    /* RFC 7515 4.1.11: an extension this verifier does not understand must fail it. */
    if (json_object_get(out->header, "crit") != NULL) {
        brk_jwt_clear(out);
        return fail(code, BRK_JWT_E_MALFORMED, msg, msglen,
                    "critical header extensions are not supported");
    }
    json_t *kid = json_object_get(out->header, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        brk_jwt_clear(out);
        return fail(code, BRK_JWT_E_MALFORMED, msg, msglen, "kid must be a string");
    }
    out->kid = json_string_value(kid);
    out->iss = json_string_value(json_object_get(out->claims, "iss"));
    out->signing_len = (size_t)(d2 - token);
    out->sig_b64 = d2 + 1;
    out->sig_b64_len = len - out->signing_len - 1;
    return 0;
}

/* ---- JWKS ---- */

static int b64_member(const json_t *o, const char *k, uint8_t *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(o, k));
    if (s == NULL)
        return BRK_EINVAL;
    return brk_b64url_decode(s, strlen(s), out, cap);
}

static EVP_PKEY *rsa_key(const json_t *k)
{
    uint8_t n[1024], e[16];
    int nl = b64_member(k, "n", n, sizeof n), el = b64_member(k, "e", e, sizeof e);
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *bn = NULL, *be = NULL;

    if (nl <= 0 || el <= 0)
        return NULL;
    bn = BN_bin2bn(n, nl, NULL);
    be = BN_bin2bn(e, el, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn == NULL || be == NULL || bld == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

static EVP_PKEY *ec_key(const json_t *k)
{
    uint8_t pt[65];
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM params[3];

    pt[0] = 0x04; /* uncompressed point */
    if (b64_member(k, "x", pt + 1, 32) != 32 || b64_member(k, "y", pt + 33, 32) != 32)
        return NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    /* fromdata checks that the point is on the curve */
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *ed_key(const json_t *k)
{
    uint8_t x[32];
    if (b64_member(k, "x", x, sizeof x) != 32)
        return NULL;
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, sizeof x);
}

static void jwks_free(brk_jwks_t *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    free(ks);
}

brk_jwks_t *brk_jwks_ref(brk_jwks_t *ks)
{
    if (ks)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

void brk_jwks_unref(brk_jwks_t *ks)
{
    if (ks && atomic_fetch_sub(&ks->refs, 1) == 1)
        jwks_free(ks);
}

size_t brk_jwks_count(const brk_jwks_t *ks)
{
    return ks ? ks->n : 0;
}

int brk_jwks_parse(const char *p, size_t n, brk_jwks_t **out, char *msg, size_t msglen)
{
    brk_jwks_t *ks = NULL;
    json_t *doc = NULL, *keys, *k;
    size_t i;
    int rc = BRK_EINVAL;

    *out = NULL;
    if (n > BRK_JWKS_MAX_BYTES) {
        fail(NULL, NULL, msg, msglen, "the JWKS is larger than %d bytes", BRK_JWKS_MAX_BYTES);
        return BRK_ETOOBIG;
    }
    if (memchr(p, 0, n) != NULL || !raw_depth_ok(p, n, BRK_JWT_MAX_DEPTH) ||
        (doc = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
        fail(NULL, NULL, msg, msglen, "the JWKS is not JSON within %d levels", BRK_JWT_MAX_DEPTH);
        goto out;
    }
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        fail(NULL, NULL, msg, msglen, "the JWKS has no \"keys\" array");
        goto out;
    }
    if (json_array_size(keys) > BRK_JWKS_MAX_KEYS) {
        fail(NULL, NULL, msg, msglen, "the JWKS has more than %d keys", BRK_JWKS_MAX_KEYS);
        rc = BRK_ETOOBIG;
        goto out;
    }
    ks = brk_calloc(1, sizeof *ks);
    atomic_init(&ks->refs, 1);
    json_array_foreach(keys, i, k)
    {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *crv = json_string_value(json_object_get(k, "crv"));
        json_t *ja = json_object_get(k, "alg");
        enum jwt_alg kalg = ALG_NONE;
        EVP_PKEY *pk = NULL;

        if (!json_is_object(k) || kty == NULL) {
            fail(NULL, NULL, msg, msglen, "key %zu is not an object with a kty", i);
            goto out;
        }
        if (use != NULL && strcmp(use, "sig") != 0)
            continue;
        if (strcmp(kty, "RSA") == 0)
            kalg = ALG_RS256;
        else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0)
            kalg = ALG_ES256;
        else if (strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0)
            kalg = ALG_EDDSA;
        else
            continue; /* oct (HMAC secrets), other curves: never a verification key here */
        /* A key that names its algorithm verifies only that one; one we do not accept
         * (RS384, PS256, ...) makes the key unusable rather than usable for RS256. */
        if (ja != NULL && (!json_is_string(ja) || alg_parse(json_string_value(ja)) != kalg))
            continue;
        if (kid == NULL || strlen(kid) == 0 || strlen(kid) > BRK_JWT_KID_MAX) {
            fail(NULL, NULL, msg, msglen, "key %zu has no kid of 1 to %d bytes", i,
                 BRK_JWT_KID_MAX);
            goto out;
        }
        for (size_t j = 0; j < ks->n; j++)
            if (strcmp(ks->keys[j].kid, kid) == 0) {
                fail(NULL, NULL, msg, msglen, "kid \"%.64s\" appears twice", kid);
                goto out;
            }
        pk = kalg == ALG_RS256 ? rsa_key(k) : kalg == ALG_ES256 ? ec_key(k) : ed_key(k);
        if (pk == NULL) {
            fail(NULL, NULL, msg, msglen, "key \"%.64s\" is not a valid %s key", kid, kty);
            goto out;
        }
        if (kalg == ALG_RS256 && EVP_PKEY_get_bits(pk) < BRK_JWT_RSA_MIN_BITS) {
            EVP_PKEY_free(pk);
            continue;
        }
        snprintf(ks->keys[ks->n].kid, sizeof ks->keys[ks->n].kid, "%s", kid);
        ks->keys[ks->n].alg = kalg;
        ks->keys[ks->n].pkey = pk;
        ks->n++;
    }
    *out = ks;
    ks = NULL;
    rc = 0;
out:
    if (ks)
        jwks_free(ks);
    json_decref(doc);
    return rc;
}

/* ---- verification ---- */

/* JOSE ES256 signatures are r||s, 32 bytes each; OpenSSL wants DER. */
static int es256_der(const uint8_t *raw, size_t n, uint8_t **der, int *derlen)
{
    ECDSA_SIG *s;
    BIGNUM *r, *sv;
    if (n != 64)
        return BRK_EINVAL;
    s = ECDSA_SIG_new();
    r = BN_bin2bn(raw, 32, NULL);
    sv = BN_bin2bn(raw + 32, 32, NULL);
    if (s == NULL || r == NULL || sv == NULL || !ECDSA_SIG_set0(s, r, sv)) {
        BN_free(r);
        BN_free(sv);
        ECDSA_SIG_free(s);
        return BRK_ENOMEM;
    }
    *der = NULL;
    *derlen = i2d_ECDSA_SIG(s, der);
    ECDSA_SIG_free(s);
    return *derlen > 0 ? 0 : BRK_ENOMEM;
}

static int sig_ok(const jwk_t *k, const brk_jwt_t *t)
{
    uint8_t sig[600], *der = NULL;
    int sl, ok = 0, dl = 0;
    EVP_MD_CTX *md = NULL;

    if (t->sig_b64_len > brk_b64url_len(sizeof sig))
        return 0;
    sl = brk_b64url_decode(t->sig_b64, t->sig_b64_len, sig, sizeof sig);
    if (sl <= 0)
        return 0;
    md = EVP_MD_CTX_new();
    if (md == NULL)
        return 0;
    const EVP_MD *dg = k->alg == ALG_EDDSA ? NULL : EVP_sha256();
    if (EVP_DigestVerifyInit(md, NULL, dg, NULL, k->pkey) != 1)
        goto out;
    if (k->alg == ALG_ES256) {
        if (es256_der(sig, (size_t)sl, &der, &dl) != 0)
            goto out;
        ok = EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)t->token, t->signing_len) == 1;
    } else {
        ok = EVP_DigestVerify(md, sig, (size_t)sl, (const uint8_t *)t->token, t->signing_len) == 1;
    }
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

/* A NumericDate claim: a JSON number (integer or real). */
static int num_claim(const json_t *claims, const char *k, int64_t *out)
{
    json_t *v = json_object_get(claims, k);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9.0e15 && d < 9.0e15))
            return -1;
        *out = (int64_t)d;
        return 1;
    }
    return v == NULL ? 0 : -1;
}

static int auth_fail(const char **code, const char *c, char *msg, size_t msglen, const char *m)
{
    fail(code, c, msg, msglen, "%s", m);
    return BRK_EAUTH;
}

int brk_jwt_verify(const brk_jwt_t *t, const brk_jwks_t *ks, const char *issuer,
                   const char *audience, int64_t now, const char **code, char *msg, size_t msglen)
{
    const jwk_t *k = NULL;
    enum jwt_alg a = alg_parse(t->alg);
    int64_t exp = 0, nbf = 0;
    int r;

    if (a == ALG_NONE)
        return auth_fail(code, BRK_JWT_E_ALG, msg, msglen, "the token's alg is not accepted");
    for (size_t i = 0; t->kid != NULL && ks != NULL && i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, t->kid) == 0)
            k = &ks->keys[i];
    if (k == NULL)
        return auth_fail(code, BRK_JWT_E_KID, msg, msglen,
                         "no key of the issuer's JWKS has the token's kid");
    if (k->alg != a)
        return auth_fail(code, BRK_JWT_E_KEY_ALG, msg, msglen,
                         "the key named by kid is not a key for the token's alg");
    if (!sig_ok(k, t))
        return auth_fail(code, BRK_JWT_E_SIG, msg, msglen, "the token's signature does not verify");
    if (t->iss == NULL || strcmp(t->iss, issuer) != 0)
        return auth_fail(code, BRK_JWT_E_ISS, msg, msglen,
                         "the token's iss is not the configured issuer");
    json_t *aud = json_object_get(t->claims, "aud");
    int aud_ok = 0;
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), audience) == 0;
    } else if (json_is_array(aud) && json_array_size(aud) <= BRK_JWT_MAX_AUD) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                          strcmp(json_string_value(v), audience) == 0) aud_ok = 1;
    }
    if (!aud_ok)
        return auth_fail(code, BRK_JWT_E_AUD, msg, msglen,
                         "the token's aud does not name this broker's configured audience");
    r = num_claim(t->claims, "exp", &exp);
    if (r != 1)
        return auth_fail(code, BRK_JWT_E_EXP, msg, msglen, "the token has no numeric exp");
    if (now >= exp + BRK_JWT_CLOCK_SKEW_S)
        return auth_fail(code, BRK_JWT_E_EXP, msg, msglen, "the token has expired");
    r = num_claim(t->claims, "nbf", &nbf);
    if (r < 0)
        return auth_fail(code, BRK_JWT_E_NBF, msg, msglen, "the token's nbf is not a number");
    if (r == 1 && now + BRK_JWT_CLOCK_SKEW_S < nbf)
        return auth_fail(code, BRK_JWT_E_NBF, msg, msglen, "the token is not valid yet");
    return 0;
}

/* ---- settings and principal mapping ---- */

#define SUBJECT_SLOT "{subject}"

/* The broker id as it appears in DIDs (gov_principal_did's sanitization). */
static void broker_did_id(const char *broker_id, char *out, size_t cap)
{
    size_t i;
    for (i = 0; broker_id[i] && i < cap - 1; i++) {
        char c = broker_id[i];
        out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                         c == '.' || c == '-'
                     ? c
                     : '-';
    }
    out[i] = '\0';
}

static int did_syntax_ok(const char *did)
{
    size_t n = strlen(did), i = 4;
    if (n > BRK_JWT_DID_MAX || strncmp(did, "did:", 4) != 0)
        return 0;
    while (i < n && ((did[i] >= 'a' && did[i] <= 'z') || (did[i] >= '0' && did[i] <= '9')))
        i++;
    if (i == 4 || i >= n - 1 || did[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        char c = did[i];
        if (!(isalnum((unsigned char)c) || strchr(".-_:%", c) != NULL))
            return 0;
    }
    return did[n - 1] != ':';
}

int brk_jwt_did_allowed(const char *did, const char *broker_id, const char *tenant)
{
    char id[129], prefix[200];
    size_t pl, tl = strlen(tenant);

    if (!did_syntax_ok(did))
        return 0;
    broker_did_id(broker_id, id, sizeof id);
    pl = (size_t)snprintf(prefix, sizeof prefix, "did:web:%s:tenants:", id);
    if (strncmp(did, prefix, pl) != 0)
        return 1; /* outside the broker's namespace: the tenant's IdP vouches for it */
    if (strncmp(did + pl, tenant, tl) != 0 || did[pl + tl] != ':')
        return 0;                                    /* another tenant's namespace */
    return strncmp(did + pl + tl, ":keys:", 6) != 0; /* an API key's DID */
}

static int str_member(const json_t *cfg, const char *k, size_t max, int required, const char **out,
                      char *msg, size_t msglen)
{
    json_t *v = json_object_get(cfg, k);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return fail(NULL, NULL, msg, msglen, "\"%s\" is required", k);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail(NULL, NULL, msg, msglen, "\"%s\" must be a string of 1 to %zu bytes", k, max);
    *out = json_string_value(v);
    return 0;
}

static int claim_name_ok(const char *s)
{
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("_-.:/", *s) != NULL))
            return 0;
    return 1;
}

/* stored_inline < 0: settings from a client (the inline JWKS is in cfg and is checked);
 * else settings as stored, without their "jwks" member, which exists when stored_inline. */
static int config_parse(const json_t *cfg, const char *broker_id, const char *tenant,
                        int allow_http, int stored_inline, brk_jwt_config_t *out, char *msg,
                        size_t msglen)
{
    static const char *const known[] = {"issuer",      "audience",      "jwks",
                                        "jwks_url",    "subject_claim", "did_template",
                                        "roles_claim", "role_map",      NULL};
    const char *k;
    json_t *v;

    memset(out, 0, sizeof *out);
    if (!json_is_object(cfg))
        return fail(NULL, NULL, msg, msglen, "the jwt settings must be an object");
    json_object_foreach((json_t *)cfg, k, v)
    {
        size_t i;
        for (i = 0; known[i] && strcmp(known[i], k) != 0; i++)
            ;
        if (known[i] == NULL)
            return fail(NULL, NULL, msg, msglen, "unknown jwt setting \"%.64s\"", k);
    }
    if (str_member(cfg, "issuer", BRK_JWT_ISSUER_MAX, 1, &out->issuer, msg, msglen) != 0 ||
        str_member(cfg, "audience", BRK_JWT_AUDIENCE_MAX, 1, &out->audience, msg, msglen) != 0 ||
        str_member(cfg, "jwks_url", BRK_JWT_URL_MAX, 0, &out->jwks_url, msg, msglen) != 0 ||
        str_member(cfg, "subject_claim", BRK_JWT_CLAIM_NAME_MAX, 0, &out->subject_claim, msg,
                   msglen) != 0 ||
        str_member(cfg, "did_template", BRK_JWT_DID_MAX, 0, &out->did_template, msg, msglen) != 0 ||
        str_member(cfg, "roles_claim", BRK_JWT_CLAIM_NAME_MAX, 0, &out->roles_claim, msg, msglen) !=
            0)
        return BRK_EINVAL;
    if (out->subject_claim == NULL)
        out->subject_claim = "sub";
    if (!claim_name_ok(out->subject_claim) ||
        (out->roles_claim && !claim_name_ok(out->roles_claim)))
        return fail(NULL, NULL, msg, msglen, "a claim name may hold letters, digits and _-.:/");
    out->jwks = json_object_get(cfg, "jwks");
    if (stored_inline >= 0) {
        if (out->jwks != NULL || (stored_inline != 0) == (out->jwks_url != NULL))
            return fail(NULL, NULL, msg, msglen, "stored settings name no JWKS");
    } else if ((out->jwks == NULL) == (out->jwks_url == NULL))
        return fail(NULL, NULL, msg, msglen,
                    "exactly one of \"jwks\" and \"jwks_url\" is required");
    if (out->jwks == NULL && out->jwks_url == NULL) {
        /* stored inline JWKS: checked when it was stored, parsed once by the cache */
    } else if (out->jwks != NULL) {
        char *text = json_dumps(out->jwks, JSON_COMPACT);
        brk_jwks_t *ks = NULL;
        int rc = text ? brk_jwks_parse(text, strlen(text), &ks, msg, msglen) : BRK_ENOMEM;
        free(text);
        if (rc != 0)
            return BRK_EINVAL;
        size_t n = brk_jwks_count(ks);
        brk_jwks_unref(ks);
        if (n == 0)
            return fail(NULL, NULL, msg, msglen,
                        "the JWKS has no usable RS256, ES256 or EdDSA key");
    } else {
        const char *u = out->jwks_url, *host, *end;
        char h[256];
        int https = strncmp(u, "https://", 8) == 0;
        if (!https && strncmp(u, "http://", 7) != 0)
            return fail(NULL, NULL, msg, msglen, "\"jwks_url\" must be an https URL");
        host = u + (https ? 8 : 7);
        end = host + strcspn(host, "/?#");
        if (memchr(host, '@', (size_t)(end - host)) != NULL || end == host)
            return fail(NULL, NULL, msg, msglen,
                        "\"jwks_url\" must name a host without credentials");
        for (const char *p = u; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return fail(NULL, NULL, msg, msglen, "\"jwks_url\" must be printable ASCII");
        if (!https) {
            const char *colon = memchr(host, ':', (size_t)(end - host));
            size_t hl = (size_t)((colon ? colon : end) - host);
            snprintf(h, sizeof h, "%.*s", (int)(hl < sizeof h ? hl : sizeof h - 1), host);
            if (!allow_http || !(strcmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0))
                return fail(NULL, NULL, msg, msglen,
                            "\"jwks_url\" must be https (plain http only to a loopback host, "
                            "when the operator allows it)");
        }
    }
    if (out->did_template != NULL) {
        const char *slot = strstr(out->did_template, SUBJECT_SLOT);
        char probe[BRK_JWT_DID_MAX + 16];
        if (slot == NULL || strstr(slot + 1, SUBJECT_SLOT) != NULL)
            return fail(NULL, NULL, msg, msglen,
                        "\"did_template\" must contain \"" SUBJECT_SLOT "\" once");
        snprintf(probe, sizeof probe, "%.*sx%s", (int)(slot - out->did_template), out->did_template,
                 slot + strlen(SUBJECT_SLOT));
        if (!brk_jwt_did_allowed(probe, broker_id, tenant))
            return fail(NULL, NULL, msg, msglen,
                        "\"did_template\" must make DIDs (did:<method>:<id>) outside other "
                        "tenants' and API keys' namespaces");
    }
    v = json_object_get(cfg, "role_map");
    if (v != NULL && !json_is_null(v)) {
        json_t *roles;
        if (!json_is_object(v) || json_object_size(v) > BRK_JWT_ROLE_MAP_MAX)
            return fail(NULL, NULL, msg, msglen,
                        "\"role_map\" must be an object of at most %d entries",
                        BRK_JWT_ROLE_MAP_MAX);
        if (out->roles_claim == NULL)
            return fail(NULL, NULL, msg, msglen, "\"role_map\" needs \"roles_claim\"");
        json_object_foreach(v, k, roles)
        {
            brk_jwt_role_map_t *m = &out->role_map[out->nrole_map];
            size_t i;
            json_t *r;
            if (strlen(k) == 0 || strlen(k) > BRK_JWT_CLAIM_NAME_MAX)
                return fail(NULL, NULL, msg, msglen, "a role_map key must be 1 to %d bytes",
                            BRK_JWT_CLAIM_NAME_MAX);
            snprintf(m->value, sizeof m->value, "%s", k);
            m->roles = 0;
            if (json_is_string(roles)) {
                unsigned bit = brk_role_parse(json_string_value(roles), json_string_length(roles));
                if (bit == 0) {
                    fail(NULL, NULL, msg, msglen, "unknown role \"%.32s\"",
                         json_string_value(roles));
                    return BRK_ERANGE;
                }
                m->roles = bit;
            } else if (json_is_array(roles) && json_array_size(roles) > 0) {
                json_array_foreach(roles, i, r)
                {
                    const char *s = json_string_value(r);
                    unsigned bit = s ? brk_role_parse(s, strlen(s)) : 0;
                    if (bit == 0) {
                        fail(NULL, NULL, msg, msglen, "unknown role \"%.32s\"", s ? s : "");
                        return BRK_ERANGE;
                    }
                    m->roles |= bit;
                }
            } else {
                return fail(NULL, NULL, msg, msglen,
                            "role_map \"%.64s\" must be a role or a non-empty array of roles", k);
            }
            out->nrole_map++;
        }
    }
    return 0;
}

int brk_jwt_config_parse(const json_t *cfg, const char *broker_id, const char *tenant,
                         int allow_http, brk_jwt_config_t *out, char *msg, size_t msglen)
{
    return config_parse(cfg, broker_id, tenant, allow_http, -1, out, msg, msglen);
}

int brk_jwt_config_parse_stored(const json_t *cfg, int has_inline_jwks, const char *broker_id,
                                const char *tenant, int allow_http, brk_jwt_config_t *out,
                                char *msg, size_t msglen)
{
    return config_parse(cfg, broker_id, tenant, allow_http, has_inline_jwks != 0, out, msg, msglen);
}

static int subject_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BRK_JWT_SUBJECT_MAX)
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("._~@+=-", *s) != NULL))
            return 0;
    return 1;
}

int brk_jwt_principal(const brk_jwt_config_t *c, const json_t *claims, const char *broker_id,
                      const char *tenant, char *did, char *name, size_t namecap, unsigned *roles,
                      const char **code, char *msg, size_t msglen)
{
    const char *sub = json_string_value(json_object_get(claims, c->subject_claim));

    *roles = 0;
    if (sub == NULL)
        return auth_fail(code, BRK_JWT_E_PRINCIPAL, msg, msglen,
                         "the token has no string claim that names its subject");
    if (c->did_template != NULL) {
        const char *slot = strstr(c->did_template, SUBJECT_SLOT);
        if (!subject_ok(sub))
            return auth_fail(code, BRK_JWT_E_PRINCIPAL, msg, msglen,
                             "the token's subject holds characters a DID cannot");
        int n = snprintf(did, BRK_JWT_DID_MAX + 1, "%.*s%s%s", (int)(slot - c->did_template),
                         c->did_template, sub, slot + strlen(SUBJECT_SLOT));
        if (n < 0 || n > BRK_JWT_DID_MAX)
            return auth_fail(code, BRK_JWT_E_PRINCIPAL, msg, msglen, "the mapped DID is too long");
    } else {
        if (strlen(sub) > BRK_JWT_DID_MAX || !did_syntax_ok(sub))
            return auth_fail(code, BRK_JWT_E_PRINCIPAL, msg, msglen,
                             "the token's subject claim is not a DID");
        snprintf(did, BRK_JWT_DID_MAX + 1, "%s", sub);
    }
    if (!brk_jwt_did_allowed(did, broker_id, tenant))
        return auth_fail(code, BRK_JWT_E_FOREIGN, msg, msglen,
                         "the token names a DID of another tenant or of an API key");
    snprintf(name, namecap, "%s", sub);
    if (c->roles_claim != NULL) {
        json_t *v = json_object_get(claims, c->roles_claim), *e;
        size_t i;
        if (json_is_string(v)) {
            for (size_t m = 0; m < c->nrole_map; m++)
                if (strcmp(c->role_map[m].value, json_string_value(v)) == 0)
                    *roles |= c->role_map[m].roles;
        } else if (json_is_array(v)) {
            json_array_foreach(v, i, e)
            {
                if (i >= BRK_JWT_ROLE_VALUES_MAX)
                    break;
                for (size_t m = 0; json_is_string(e) && m < c->nrole_map; m++)
                    if (strcmp(c->role_map[m].value, json_string_value(e)) == 0)
                        *roles |= c->role_map[m].roles;
            }
        }
    }
    return 0;
}
