/*
 * fuzz_token: libFuzzer target for brk_token_parse, which reads the bearer token of every
 * authenticated request before anything else looks at it.
 *
 * Properties checked on every input:
 *   - the result is 0 or BRK_EAUTH, nothing else;
 *   - on success the tenant passes brk_tenant_valid, the key id is exactly BRK_KEY_ID_HEX
 *     lowercase hex digits, the secret is BRK_SECRET_B64_LEN base64url characters, the secret
 *     hash is 64 lowercase hex digits and equals SHA-256 of the secret, and
 *     "gsap.<tenant>.<key_id>.<secret>" rebuilt from the parts gives back the input byte for
 *     byte (so nothing was skipped, trimmed or invented);
 *   - on failure the output struct is left all zero, so a caller that ignores the result
 *     cannot act on a half-parsed token.
 * Any violation abort()s so libFuzzer records the input.
 */
#include "brk_keys.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_token: %s\n  input: %.*s\n", what, (int)(size < 512 ? size : 512),
            (const char *)data);
    abort();
}

static int lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    brk_token_t tok;
    char rebuilt[BRK_TOKEN_MAX + 64], hash[65];
    uint8_t md[BRK_SHA256_LEN];
    int rc, len;

    memset(&tok, 0x5a, sizeof tok); /* poison: a refusal must clear all of it */
    rc = brk_token_parse(p, size, &tok);
    if (rc != 0) {
        static const brk_token_t zero;
        if (rc != BRK_EAUTH)
            fail("unexpected error code", data, size);
        if (memcmp(&tok, &zero, sizeof tok) != 0)
            fail("output not cleared after a refusal", data, size);
        return 0;
    }
    if (size > BRK_TOKEN_MAX)
        fail("accepted a token longer than BRK_TOKEN_MAX", data, size);
    if (memchr(tok.tenant, '\0', sizeof tok.tenant) == NULL ||
        !brk_tenant_valid(tok.tenant, strlen(tok.tenant)))
        fail("accepted an invalid tenant", data, size);
    if (memchr(tok.key_id, '\0', sizeof tok.key_id) == NULL ||
        strlen(tok.key_id) != BRK_KEY_ID_HEX || !lower_hex(tok.key_id, BRK_KEY_ID_HEX))
        fail("key id is not 16 lowercase hex digits", data, size);
    if (memchr(tok.secret_hash, '\0', sizeof tok.secret_hash) == NULL ||
        strlen(tok.secret_hash) != 64 || !lower_hex(tok.secret_hash, 64))
        fail("secret hash is not 64 lowercase hex digits", data, size);

    /* The secret is what follows the key id; its hash must be the one reported. */
    size_t head = strlen("gsap.") + strlen(tok.tenant) + 1 + BRK_KEY_ID_HEX + 1;
    if (size < head || size - head != BRK_SECRET_B64_LEN)
        fail("secret is not BRK_SECRET_B64_LEN characters", data, size);
    for (size_t i = head; i < size; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '-' || p[i] == '_'))
            fail("secret is not base64url", data, size);
    brk_sha256(p + head, size - head, md);
    brk_hex(md, sizeof md, hash);
    if (memcmp(hash, tok.secret_hash, sizeof hash) != 0)
        fail("secret hash is not SHA-256 of the secret", data, size);

    len = snprintf(rebuilt, sizeof rebuilt, "gsap.%s.%s.%.*s", tok.tenant, tok.key_id,
                   (int)(size - head), p + head);
    if (len < 0 || (size_t)len != size || memcmp(rebuilt, p, size) != 0)
        fail("rebuilt token differs from the input", data, size);
    return 0;
}
