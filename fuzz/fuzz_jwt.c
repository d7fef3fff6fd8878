/*
 * fuzz_jwt: libFuzzer target for the jwt driver's parsers of untrusted input: brk_jwt_decode
 * and brk_jwt_verify (every bearer that looks like a JWS reaches them) and brk_jwks_parse (a
 * JWKS fetched from a URL a tenant names).
 *
 * The first byte picks the parser: even, the rest is a token checked against a fixed JWKS
 * (tests/data/jwt/jwks.json, made with npm jose) at a fixed time; odd, the rest is a JWKS.
 * Properties checked on every input:
 *   - decode returns 0 or BRK_EINVAL with one of the BRK_JWT_E_* codes; on failure the
 *     output struct is all zero; on success alg is RS256, ES256 or EdDSA and the signing
 *     input ends exactly before the last '.';
 *   - verify returns 0 or BRK_EAUTH with a code; it accepts only a token of at most
 *     BRK_JWT_MAX_TOKEN bytes whose iss and aud are the expected ones;
 *   - parse returns 0, BRK_EINVAL or BRK_ETOOBIG, never more than BRK_JWKS_MAX_KEYS keys,
 *     and nothing for an input over BRK_JWKS_MAX_BYTES.
 * Any violation abort()s so libFuzzer records the input. Seeds: fuzz/corpus/jwt/.
 */
#include "brk_jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"lqtnjvmpAdn-vl6ek0ZHkvmOsO2dQhCsfX0cX5-wBV0"
    "MEFkNEFrE8Ei0nqsfWEZe1eq1glZQRinIczpb_BnKwTTmAdY0-W-xtfwHscC7EFuzIY22M"
    "tbKQLpQwk2bNBR_gIvDomQPdEXe7jVSjvEs9AMcfjb1V0UFlunL1KAxyhomJlUnFBYP3YK"
    "jIGAhGWvWe71x-RapS_b9QrtpRYHd7NeSXZR4N2mpbkvzEjw_0P80KGEQIIxshjsy5vzcy"
    "ZFZjmT3sIHsvKoMlz9KRTb0MWVFfDJ6ZP8tAZLlHmZs5g5K9dt2thxHLeeLIy9Glxh79-5"
    "eQbMMvlgNOb7ItUwl0Q\",\"e\":\"AQAB\",\"kid\":\"rsa1\",\"use\":\"sig\"},{\"kty\":\"EC\","
    "\"x\":\"bmLjOGGtxDXMyELqPCzdlJhsrwluxTZizNliPOqWbCg\",\"y\":\"cBPegmgvOMaJJME"
    "H8ASgGXSpEIxH2hL4ghO6SJLchKU\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"use\":\"sig\"},{"
    "\"crv\":\"Ed25519\",\"x\":\"QhFRWavgFfl2ILuEcreNfo7w1mMzytzJUPAUk00PYqg\",\"kty"
    "\":\"OKP\",\"kid\":\"ed1\",\"use\":\"sig\"}]}";

static brk_jwks_t *g_keys;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_jwt: %s\n", what);
    abort();
}

static int known_code(const char *c)
{
    static const char *const codes[] = {
        BRK_JWT_E_MALFORMED, BRK_JWT_E_TOO_LARGE, BRK_JWT_E_ALG, BRK_JWT_E_KID,
        BRK_JWT_E_KEY_ALG,   BRK_JWT_E_SIG,       BRK_JWT_E_ISS, BRK_JWT_E_AUD,
        BRK_JWT_E_EXP,       BRK_JWT_E_NBF,       NULL};
    for (size_t i = 0; c != NULL && codes[i]; i++)
        if (strcmp(c, codes[i]) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[256];
    const char *code = NULL;

    if (g_keys == NULL && brk_jwks_parse(k_jwks, strlen(k_jwks), &g_keys, msg, sizeof msg) != 0)
        fail("the fixed JWKS does not parse");
    if (size == 0)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if ((data[0] & 1) == 0) {
        brk_jwt_t t;
        static const brk_jwt_t zero;
        memset(&t, 0x5a, sizeof t);
        int rc = brk_jwt_decode(p, n, &t, &code, msg, sizeof msg);
        if (rc != 0) {
            if (rc != BRK_EINVAL || !known_code(code))
                fail("decode: unexpected error");
            if (memcmp(&t, &zero, sizeof t) != 0)
                fail("decode: output not cleared after a refusal");
            return 0;
        }
        if (t.alg == NULL || (strcmp(t.alg, "RS256") != 0 && strcmp(t.alg, "ES256") != 0 &&
                              strcmp(t.alg, "EdDSA") != 0))
            fail("decode: accepted another alg");
        if (t.signing_len >= n || p[t.signing_len] != '.' ||
            memchr(p + t.signing_len + 1, '.', n - t.signing_len - 1) != NULL)
            fail("decode: signing input is not everything before the last dot");
        code = NULL;
        rc = brk_jwt_verify(&t, g_keys, "https://idp.test", "gsap", 1950000000LL, &code, msg,
                            sizeof msg);
        if (rc != 0 && (rc != BRK_EAUTH || !known_code(code)))
            fail("verify: unexpected error");
        if (rc == 0 &&
            (n > BRK_JWT_MAX_TOKEN || t.iss == NULL || strcmp(t.iss, "https://idp.test") != 0))
            fail("verify: accepted a token it should not");
        brk_jwt_clear(&t);
    } else {
        brk_jwks_t *ks = NULL;
        int rc = brk_jwks_parse(p, n, &ks, msg, sizeof msg);
        if (rc != 0 && rc != BRK_EINVAL && rc != BRK_ETOOBIG)
            fail("parse: unexpected error");
        if (rc != 0 && ks != NULL)
            fail("parse: keys returned with an error");
        if (rc == 0 && (n > BRK_JWKS_MAX_BYTES || brk_jwks_count(ks) > BRK_JWKS_MAX_KEYS))
            fail("parse: accepted past a limit");
        brk_jwks_unref(ks);
    }
    return 0;
}
