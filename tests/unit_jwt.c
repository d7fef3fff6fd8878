/*
 * unit_jwt: JWT and JWKS parsing and verification (brk_jwt), the jwt driver's settings and
 * principal mapping, and the peer classification of the TLS-only bearer rule (brk_peer),
 * without network or database.
 *
 * The tokens and the JWKS under $GSAP_TESTDATA/jwt were made with npm `jose`
 * (tests/npm/jwt_oracle.mjs, an independent JOSE implementation): iss https://idp.test,
 * aud gsap, exp 2000000000 (nbf 1900000000 on rs256). Time is passed in, so exp and nbf are
 * tested exactly at their boundaries.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jwt.h"
#include "brk_keys.h"
#include "brk_peer.h"

#define ISS "https://idp.test"
#define AUD "gsap"
#define EXP 2000000000LL
#define NOW 1950000000LL

static char *slurp(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/jwt/%s", getenv("GSAP_TESTDATA"), name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(128 * 1024);
    size_t n = fread(buf, 1, 128 * 1024 - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

static brk_jwks_t *acme_keys(void)
{
    char *j = slurp("jwks.json"), msg[200];
    brk_jwks_t *ks = NULL;
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), 0);
    ck_assert_uint_eq(brk_jwks_count(ks), 3);
    free(j);
    return ks;
}

/* The code brk_jwt_decode + brk_jwt_verify give the fixture file at time now, or "ok". */
static const char *check_file(const char *file, brk_jwks_t *ks, long long now)
{
    static char codebuf[64];
    char *tok = slurp(file), msg[200];
    const char *code = NULL;
    brk_jwt_t t;
    int rc = brk_jwt_decode(tok, strlen(tok), &t, &code, msg, sizeof msg);
    if (rc == 0)
        rc = brk_jwt_verify(&t, ks, ISS, AUD, now, &code, msg, sizeof msg);
    snprintf(codebuf, sizeof codebuf, "%s", rc == 0 ? "ok" : code);
    brk_jwt_clear(&t);
    free(tok);
    return codebuf;
}

START_TEST(valid_tokens_of_three_algorithms)
{
    brk_jwks_t *ks = acme_keys();
    ck_assert_str_eq(check_file("rs256.jwt", ks, NOW), "ok");
    ck_assert_str_eq(check_file("es256.jwt", ks, NOW), "ok"); /* aud as an array */
    ck_assert_str_eq(check_file("eddsa.jwt", ks, NOW), "ok");
    brk_jwks_unref(ks);
}
END_TEST

START_TEST(refusals)
{
    brk_jwks_t *ks = acme_keys();
    ck_assert_str_eq(check_file("none.jwt", ks, NOW), BRK_JWT_E_ALG);
    ck_assert_str_eq(check_file("hs256.jwt", ks, NOW), BRK_JWT_E_ALG);
    ck_assert_str_eq(check_file("badsig.jwt", ks, NOW), BRK_JWT_E_SIG);
    /* header ES256 with the kid of the RSA key, signed by the EC key: the RSA key never
     * verifies ES256, even though the signature itself is a valid ES256 one */
    ck_assert_str_eq(check_file("confused.jwt", ks, NOW), BRK_JWT_E_KEY_ALG);
    ck_assert_str_eq(check_file("unknown_kid.jwt", ks, NOW), BRK_JWT_E_KID);
    ck_assert_str_eq(check_file("noexp.jwt", ks, NOW), BRK_JWT_E_EXP);
    brk_jwks_unref(ks);
}
END_TEST

START_TEST(exp_and_nbf_at_the_skew_boundary)
{
    brk_jwks_t *ks = acme_keys();
    ck_assert_str_eq(check_file("eddsa.jwt", ks, EXP + BRK_JWT_CLOCK_SKEW_S - 1), "ok");
    ck_assert_str_eq(check_file("eddsa.jwt", ks, EXP + BRK_JWT_CLOCK_SKEW_S), BRK_JWT_E_EXP);
    ck_assert_str_eq(check_file("rs256.jwt", ks, 1900000000LL - BRK_JWT_CLOCK_SKEW_S), "ok");
    ck_assert_str_eq(check_file("rs256.jwt", ks, 1900000000LL - BRK_JWT_CLOCK_SKEW_S - 1),
                     BRK_JWT_E_NBF);
    brk_jwks_unref(ks);
}
END_TEST

START_TEST(issuer_and_audience)
{
    brk_jwks_t *ks = acme_keys();
    char *tok = slurp("eddsa.jwt"), msg[200];
    const char *code = NULL;
    brk_jwt_t t;
    ck_assert_int_eq(brk_jwt_decode(tok, strlen(tok), &t, &code, msg, sizeof msg), 0);
    ck_assert_str_eq(t.iss, ISS);
    ck_assert_int_eq(brk_jwt_verify(&t, ks, "https://idp.other", AUD, NOW, &code, msg, sizeof msg),
                     BRK_EAUTH);
    ck_assert_str_eq(code, BRK_JWT_E_ISS);
    ck_assert_int_eq(brk_jwt_verify(&t, ks, ISS, "other", NOW, &code, msg, sizeof msg), BRK_EAUTH);
    ck_assert_str_eq(code, BRK_JWT_E_AUD);
    /* a tampered payload: the signature no longer verifies */
    brk_jwt_clear(&t);
    char *dot = strchr(tok, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    if (brk_jwt_decode(tok, strlen(tok), &t, &code, msg, sizeof msg) == 0)
        ck_assert_int_eq(brk_jwt_verify(&t, ks, ISS, AUD, NOW, &code, msg, sizeof msg), BRK_EAUTH);
    brk_jwt_clear(&t);
    free(tok);
    brk_jwks_unref(ks);
}
END_TEST

/* An unsigned compact token "<b64 header>.<b64 claims>.c2ln" from JSON texts. */
static char *unsigned_token(const char *header, const char *claims)
{
    size_t hl = strlen(header), cl = strlen(claims);
    char *out = malloc(brk_b64url_len(hl) + brk_b64url_len(cl) + 8);
    size_t n = brk_b64url_encode((const uint8_t *)header, hl, out);
    out[n++] = '.';
    n += brk_b64url_encode((const uint8_t *)claims, cl, out + n);
    memcpy(out + n, ".c2ln", 6);
    return out;
}

/* A JSON object text of exactly n bytes: {"p":"xxx..."} (n >= 8). */
static char *object_of(size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, "{\"p\":\"", 6);
    memset(s + 6, 'x', n - 8);
    memcpy(s + n - 2, "\"}", 3);
    return s;
}

static const char *decode_code(const char *header, const char *claims)
{
    char *tok = unsigned_token(header, claims), msg[200];
    const char *code = "ok";
    brk_jwt_t t;
    if (brk_jwt_decode(tok, strlen(tok), &t, &code, msg, sizeof msg) == 0)
        code = "ok";
    brk_jwt_clear(&t);
    free(tok);
    return code;
}

START_TEST(size_and_depth_limits)
{
    const char *h = "{\"alg\":\"EdDSA\",\"kid\":\"k\"}";
    /* claims: at the limit, and one byte past it */
    char *c = object_of(BRK_JWT_MAX_CLAIMS_JSON);
    ck_assert_str_eq(decode_code(h, c), "ok");
    free(c);
    c = object_of(BRK_JWT_MAX_CLAIMS_JSON + 1);
    ck_assert_str_eq(decode_code(h, c), BRK_JWT_E_TOO_LARGE);
    free(c);
    /* header: the same */
    char *hh = object_of(BRK_JWT_MAX_HEADER_JSON);
    memcpy(hh + 1, "\"alg\":\"EdDSA\",", 14); /* {"alg":"EdDSA","p":"x..."} is still n bytes */
    memmove(hh + 15, "\"p\":\"", 5);
    ck_assert_str_eq(decode_code(hh, "{}"), "ok");
    free(hh);
    hh = object_of(BRK_JWT_MAX_HEADER_JSON + 1);
    memcpy(hh + 1, "\"alg\":\"EdDSA\",", 14);
    memmove(hh + 15, "\"p\":\"", 5);
    ck_assert_str_eq(decode_code(hh, "{}"), BRK_JWT_E_TOO_LARGE);
    free(hh);
    /* depth: the top object is level 1 */
    char deep[64] = "{\"a\":", deeper[64] = "{\"a\":";
    for (int i = 1; i < BRK_JWT_MAX_DEPTH; i++)
        strcat(deep, "[");
    for (int i = 1; i < BRK_JWT_MAX_DEPTH; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    for (int i = 0; i < BRK_JWT_MAX_DEPTH; i++)
        strcat(deeper, "[");
    for (int i = 0; i < BRK_JWT_MAX_DEPTH; i++)
        strcat(deeper, "]");
    strcat(deeper, "}");
    ck_assert_str_eq(decode_code(h, deep), "ok");
    ck_assert_str_eq(decode_code(h, deeper), BRK_JWT_E_MALFORMED);
    /* the whole token */
    char *big = malloc(BRK_JWT_MAX_TOKEN + 2), msg[100];
    const char *code = NULL;
    brk_jwt_t t;
    memset(big, 'A', BRK_JWT_MAX_TOKEN + 1);
    big[10] = '.';
    big[20] = '.';
    big[BRK_JWT_MAX_TOKEN + 1] = '\0';
    ck_assert_int_ne(brk_jwt_decode(big, BRK_JWT_MAX_TOKEN + 1, &t, &code, msg, sizeof msg), 0);
    ck_assert_str_eq(code, BRK_JWT_E_TOO_LARGE);
    ck_assert_int_ne(brk_jwt_decode(big, BRK_JWT_MAX_TOKEN, &t, &code, msg, sizeof msg), 0);
    ck_assert_str_ne(code, BRK_JWT_E_TOO_LARGE); /* at the limit: refused for its content only */
    free(big);
    /* duplicate members, crit, alg confusion by name */
    ck_assert_str_eq(decode_code("{\"alg\":\"EdDSA\",\"alg\":\"none\"}", "{}"),
                     BRK_JWT_E_MALFORMED);
    ck_assert_str_eq(decode_code("{\"alg\":\"EdDSA\",\"crit\":[\"b64\"]}", "{}"),
                     BRK_JWT_E_MALFORMED);
    ck_assert_str_eq(decode_code("{\"alg\":\"HS256\"}", "{}"), BRK_JWT_E_ALG);
    ck_assert_str_eq(decode_code("{\"alg\":\"RS384\"}", "{}"), BRK_JWT_E_ALG);
    ck_assert_str_eq(decode_code("{\"alg\":\"none\"}", "{}"), BRK_JWT_E_ALG);
    ck_assert_str_eq(decode_code("{}", "{}"), BRK_JWT_E_ALG);
    ck_assert_str_eq(decode_code("[]", "{}"), BRK_JWT_E_MALFORMED);
}
END_TEST

/* A JWKS of n copies of the acme Ed25519 key under kids k0..k(n-1), padded with spaces to
 * exactly bytes bytes when bytes is not 0. */
static char *jwks_of(size_t n, size_t bytes)
{
    char *acme = slurp("jwks.json");
    json_t *doc = json_loads(acme, 0, NULL), *keys = json_array(), *ed = NULL, *k;
    size_t i;
    json_array_foreach(json_object_get(doc, "keys"), i,
                       k) if (strcmp(json_string_value(json_object_get(k, "kty")), "OKP") == 0) ed =
        k;
    for (i = 0; i < n; i++) {
        json_t *c = json_deep_copy(ed);
        char kid[16];
        snprintf(kid, sizeof kid, "k%zu", i);
        json_object_set_new(c, "kid", json_string(kid));
        json_array_append_new(keys, c);
    }
    json_t *out = json_pack("{s:o}", "keys", keys);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(doc);
    free(acme);
    if (bytes) {
        size_t l = strlen(s);
        ck_assert_uint_le(l, bytes);
        s = realloc(s, bytes + 1);
        memset(s + l, ' ', bytes - l);
        s[bytes] = '\0';
    }
    return s;
}

START_TEST(jwks_limits_and_kinds)
{
    char msg[200], *j;
    brk_jwks_t *ks = NULL;
    j = jwks_of(BRK_JWKS_MAX_KEYS, 0);
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), 0);
    ck_assert_uint_eq(brk_jwks_count(ks), BRK_JWKS_MAX_KEYS);
    brk_jwks_unref(ks);
    free(j);
    j = jwks_of(BRK_JWKS_MAX_KEYS + 1, 0);
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), BRK_ETOOBIG);
    ck_assert_ptr_null(ks);
    free(j);
    j = jwks_of(1, BRK_JWKS_MAX_BYTES);
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), 0);
    brk_jwks_unref(ks);
    free(j);
    j = jwks_of(1, BRK_JWKS_MAX_BYTES + 1);
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), BRK_ETOOBIG);
    free(j);
    /* an HMAC secret is never a verification key; an RSA-1024 key is skipped */
    const char *oct = "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}";
    ck_assert_int_eq(brk_jwks_parse(oct, strlen(oct), &ks, msg, sizeof msg), 0);
    ck_assert_uint_eq(brk_jwks_count(ks), 0);
    brk_jwks_unref(ks);
    j = slurp("jwks_small.json");
    ck_assert_int_eq(brk_jwks_parse(j, strlen(j), &ks, msg, sizeof msg), 0);
    ck_assert_uint_eq(brk_jwks_count(ks), 0);
    brk_jwks_unref(ks);
    free(j);
    /* a key that names another algorithm is not used for its kty's */
    const char *ps =
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e\",\"alg\":\"ES256\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
    ck_assert_int_eq(brk_jwks_parse(ps, strlen(ps), &ks, msg, sizeof msg), 0);
    ck_assert_uint_eq(brk_jwks_count(ks), 0);
    brk_jwks_unref(ks);
    /* malformed: duplicate kid, missing kid, bad point, not JSON */
    const char *bad[] = {
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"e\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"p\",\"x\":"
        "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
        "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
        "{\"keys\":",
        "{\"nokeys\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(brk_jwks_parse(bad[i], strlen(bad[i]), &ks, msg, sizeof msg), BRK_EINVAL);
        ck_assert_ptr_null(ks);
    }
}
END_TEST

START_TEST(did_namespace)
{
    ck_assert_int_eq(brk_jwt_did_allowed("did:web:idp.test:users:alice", "gsap-broker", "acme"), 1);
    ck_assert_int_eq(
        brk_jwt_did_allowed("did:web:gsap-broker:tenants:acme:users:alice", "gsap-broker", "acme"),
        1);
    ck_assert_int_eq(
        brk_jwt_did_allowed("did:web:gsap-broker:tenants:beta:users:alice", "gsap-broker", "acme"),
        0);
    ck_assert_int_eq(
        brk_jwt_did_allowed("did:web:gsap-broker:tenants:acmex:users:a", "gsap-broker", "acme"), 0);
    ck_assert_int_eq(brk_jwt_did_allowed("did:web:gsap-broker:tenants:acme:keys:0123456789abcdef",
                                         "gsap-broker", "acme"),
                     0);
    /* the broker id is sanitized the way gov_principal_did does */
    ck_assert_int_eq(brk_jwt_did_allowed("did:web:my-broker:tenants:beta:x", "my_broker", "acme"),
                     0);
    ck_assert_int_eq(brk_jwt_did_allowed("notadid", "gsap-broker", "acme"), 0);
    ck_assert_int_eq(brk_jwt_did_allowed("did:web:", "gsap-broker", "acme"), 0);
    ck_assert_int_eq(brk_jwt_did_allowed("did:web:a b", "gsap-broker", "acme"), 0);
}
END_TEST

static int config_rc(const char *json, const char *tenant, int allow_http)
{
    json_t *j = json_loads(json, 0, NULL);
    brk_jwt_config_t c;
    char msg[200];
    ck_assert_ptr_nonnull(j);
    int rc = brk_jwt_config_parse(j, "gsap-broker", tenant, allow_http, &c, msg, sizeof msg);
    json_decref(j);
    return rc;
}

START_TEST(settings)
{
    char *jwks = slurp("jwks.json");
    char *ok = malloc(strlen(jwks) + 512);
    sprintf(ok, "{\"issuer\":\"https://idp.test\",\"audience\":\"gsap\",\"jwks\":%s}", jwks);
    ck_assert_int_eq(config_rc(ok, "acme", 0), 0);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\"}", "acme",
                  0),
        0);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"http://idp/k\"}", "acme", 1),
        BRK_EINVAL);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"http://127.0.0.1:9/k\"}",
                  "acme", 0),
        BRK_EINVAL);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"http://127.0.0.1:9/k\"}",
                  "acme", 1),
        0);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://u:p@idp/k\"}",
                  "acme", 0),
        BRK_EINVAL);
    ck_assert_int_eq(config_rc("{\"audience\":\"a\",\"jwks_url\":\"https://idp/k\"}", "acme", 0),
                     BRK_EINVAL);
    ck_assert_int_eq(config_rc("{\"issuer\":\"i\",\"audience\":\"a\"}", "acme", 0), BRK_EINVAL);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\",\"x\":1}",
                  "acme", 0),
        BRK_EINVAL);
    /* templates: one {subject}, never in another tenant's namespace */
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"did_template\":\"did:web:idp:users:{subject}\"}",
                  "acme", 0),
        0);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"did_template\":\"did:web:idp:users\"}",
                  "acme", 0),
        BRK_EINVAL);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"did_template\":\"did:web:gsap-broker:tenants:beta:users:{subject}\"}",
                  "acme", 0),
        BRK_EINVAL);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"did_template\":\"did:web:gsap-broker:tenants:acme:keys:{subject}\"}",
                  "acme", 0),
        BRK_EINVAL);
    /* role maps */
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"roles_claim\":\"groups\",\"role_map\":{\"g\":[\"issuer\",\"auditor\"],\"h\":"
                  "\"admin\"}}",
                  "acme", 0),
        0);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"roles_claim\":\"groups\",\"role_map\":{\"g\":[\"root\"]}}",
                  "acme", 0),
        BRK_ERANGE);
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                  "\"role_map\":{\"g\":[\"issuer\"]}}",
                  "acme", 0),
        BRK_EINVAL);
    /* an inline JWKS without a usable key */
    ck_assert_int_eq(
        config_rc("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks\":{\"keys\":[]}}", "acme", 0),
        BRK_EINVAL);
    /* stored settings come back without their inline JWKS */
    json_t *st = json_loads("{\"issuer\":\"i\",\"audience\":\"a\"}", 0, NULL);
    brk_jwt_config_t c;
    char msg[200];
    ck_assert_int_eq(
        brk_jwt_config_parse_stored(st, 1, "gsap-broker", "acme", 0, &c, msg, sizeof msg), 0);
    ck_assert_ptr_null(c.jwks);
    ck_assert_ptr_null(c.jwks_url);
    ck_assert_int_eq(
        brk_jwt_config_parse_stored(st, 0, "gsap-broker", "acme", 0, &c, msg, sizeof msg),
        BRK_EINVAL);
    json_decref(st);
    st =
        json_loads("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\"}", 0, NULL);
    ck_assert_int_eq(
        brk_jwt_config_parse_stored(st, 0, "gsap-broker", "acme", 0, &c, msg, sizeof msg), 0);
    ck_assert_int_eq(
        brk_jwt_config_parse_stored(st, 1, "gsap-broker", "acme", 0, &c, msg, sizeof msg),
        BRK_EINVAL);
    json_decref(st);
    free(ok);
    free(jwks);
}
END_TEST

START_TEST(principal_mapping)
{
    json_t *cfg = json_loads("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\","
                             "\"did_template\":\"did:web:idp.test:users:{subject}\","
                             "\"roles_claim\":\"groups\",\"role_map\":{\"g1\":[\"issuer\"],"
                             "\"g2\":\"auditor\",\"g3\":[\"admin\"]}}",
                             0, NULL);
    brk_jwt_config_t c;
    char msg[200], did[BRK_JWT_DID_MAX + 1], name[129];
    const char *code;
    unsigned roles;
    ck_assert_int_eq(brk_jwt_config_parse(cfg, "gsap-broker", "acme", 0, &c, msg, sizeof msg), 0);
    json_t *cl = json_loads("{\"sub\":\"alice\",\"groups\":[\"g1\",\"g2\",\"zz\"]}", 0, NULL);
    ck_assert_int_eq(brk_jwt_principal(&c, cl, "gsap-broker", "acme", did, name, sizeof name,
                                       &roles, &code, msg, sizeof msg),
                     0);
    ck_assert_str_eq(did, "did:web:idp.test:users:alice");
    ck_assert_str_eq(name, "alice");
    ck_assert_uint_eq(roles, BRK_ROLE_ISSUER | BRK_ROLE_AUDITOR);
    json_decref(cl);
    /* a subject that would break out of the template */
    cl = json_loads("{\"sub\":\"x:tenants:beta\"}", 0, NULL);
    ck_assert_int_eq(brk_jwt_principal(&c, cl, "gsap-broker", "acme", did, name, sizeof name,
                                       &roles, &code, msg, sizeof msg),
                     BRK_EAUTH);
    ck_assert_str_eq(code, BRK_JWT_E_PRINCIPAL);
    json_decref(cl);
    json_decref(cfg);
    /* the subject is the DID: another tenant's is refused */
    cfg =
        json_loads("{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_url\":\"https://idp/k\"}", 0, NULL);
    ck_assert_int_eq(brk_jwt_config_parse(cfg, "gsap-broker", "acme", 0, &c, msg, sizeof msg), 0);
    cl =
        json_loads("{\"sub\":\"did:web:gsap-broker:tenants:beta:keys:0123456789abcdef\"}", 0, NULL);
    ck_assert_int_eq(brk_jwt_principal(&c, cl, "gsap-broker", "acme", did, name, sizeof name,
                                       &roles, &code, msg, sizeof msg),
                     BRK_EAUTH);
    ck_assert_str_eq(code, BRK_JWT_E_FOREIGN);
    json_decref(cl);
    cl = json_loads("{\"sub\":\"did:key:z6Mkabc\"}", 0, NULL);
    ck_assert_int_eq(brk_jwt_principal(&c, cl, "gsap-broker", "acme", did, name, sizeof name,
                                       &roles, &code, msg, sizeof msg),
                     0);
    ck_assert_str_eq(did, "did:key:z6Mkabc");
    ck_assert_uint_eq(roles, 0);
    json_decref(cl);
    json_decref(cfg);
}
END_TEST

START_TEST(jws_shape)
{
    ck_assert_int_eq(brk_jwt_looks_like("eyJ.eyJ.sig", 11), 1);
    ck_assert_int_eq(brk_jwt_looks_like("eyJ.eyJ.", 8), 1); /* alg none: empty signature */
    ck_assert_int_eq(brk_jwt_looks_like("gsap.acme.0123456789abcdef.secret", 33), 0);
    ck_assert_int_eq(brk_jwt_looks_like(".eyJ.sig", 8), 0);
    ck_assert_int_eq(brk_jwt_looks_like("eyJ..sig", 8), 0);
    ck_assert_int_eq(brk_jwt_looks_like("eyJ.e+J.sig", 11), 0);
}
END_TEST

START_TEST(peer_classification)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    const struct sockaddr *s4 = (const void *)&v4, *s6 = (const void *)&v6;

    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s4, sizeof v4), 1);
    inet_pton(AF_INET, "127.255.3.4", &v4.sin_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s4, sizeof v4), 1);
    inet_pton(AF_INET, "10.0.0.1", &v4.sin_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s4, sizeof v4), 0);
    inet_pton(AF_INET, "128.0.0.1", &v4.sin_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s4, sizeof v4), 0);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s4, 0), 0); /* unknown peer */
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s6, sizeof v6), 1);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s6, sizeof v6), 1);
    inet_pton(AF_INET6, "::ffff:192.168.1.1", &v6.sin6_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s6, sizeof v6), 0);
    inet_pton(AF_INET6, "::2", &v6.sin6_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s6, sizeof v6), 0);
    inet_pton(AF_INET6, "fe80::1", &v6.sin6_addr);
    ck_assert_int_eq(brk_sockaddr_is_loopback(s6, sizeof v6), 0);
    ck_assert_int_eq(brk_sockaddr_is_loopback((const void *)&un, sizeof un), 1);

    ck_assert_int_eq(brk_plaintext_bearers_parse(NULL), BRK_PLAINTEXT_LOOPBACK);
    ck_assert_int_eq(brk_plaintext_bearers_parse("loopback"), BRK_PLAINTEXT_LOOPBACK);
    ck_assert_int_eq(brk_plaintext_bearers_parse("never"), BRK_PLAINTEXT_NEVER);
    ck_assert_int_eq(brk_plaintext_bearers_parse("any"), BRK_PLAINTEXT_ANY);
    ck_assert_int_eq(brk_plaintext_bearers_parse("yes"), -1);
    /* policy x tls x loopback */
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_LOOPBACK, 0, 1), 1);
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_LOOPBACK, 0, 0), 0);
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_LOOPBACK, 1, 0), 1);
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_NEVER, 0, 1), 0);
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_NEVER, 1, 1), 1);
    ck_assert_int_eq(brk_bearer_transport_ok(BRK_PLAINTEXT_ANY, 0, 0), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_jwt");
    TCase *tc = tcase_create("jwt");
    tcase_add_test(tc, valid_tokens_of_three_algorithms);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, exp_and_nbf_at_the_skew_boundary);
    tcase_add_test(tc, issuer_and_audience);
    tcase_add_test(tc, size_and_depth_limits);
    tcase_add_test(tc, jwks_limits_and_kinds);
    tcase_add_test(tc, did_namespace);
    tcase_add_test(tc, settings);
    tcase_add_test(tc, principal_mapping);
    tcase_add_test(tc, jws_shape);
    tcase_add_test(tc, peer_classification);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
