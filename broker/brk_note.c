/*
 * brk_note: C2SP signed-note checkpoints (see brk_note.h for the exact bytes).
 */
#include "brk_note.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "brk_err.h"
#include "banned.h"

/* "\u2014 " in UTF-8: every signature line of a note starts with it. */
#define NOTE_SIG_PREFIX "\xe2\x80\x94 "

void brk_b64_std(const uint8_t *p, size_t n, char *out)
{
    /* EVP_EncodeBlock writes standard padded base64 and a NUL. */
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

int brk_note_key_name(const char *broker_id, char *out)
{
    size_t n = strlen(broker_id);

    if (n == 0 || n > BRK_NOTE_NAME_MAX)
        return BRK_EINVAL;
    for (size_t i = 0; i <= n; i++)
        out[i] = broker_id[i] == '+' ? '-' : broker_id[i];
    return 0;
}

uint32_t brk_note_key_hash(const char *name, const uint8_t pub[BRK_ED25519_PUB_LEN])
{
    uint8_t buf[BRK_NOTE_NAME_MAX + 2 + BRK_ED25519_PUB_LEN], h[BRK_SHA256_LEN];
    size_t n = strlen(name);

    if (n > BRK_NOTE_NAME_MAX)
        n = BRK_NOTE_NAME_MAX;
    memcpy(buf, name, n);
    buf[n] = '\n';
    buf[n + 1] = BRK_NOTE_ED25519;
    memcpy(buf + n + 2, pub, BRK_ED25519_PUB_LEN);
    brk_sha256(buf, n + 2 + BRK_ED25519_PUB_LEN, h);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int brk_note_verifier_key(const char *name, const uint8_t pub[BRK_ED25519_PUB_LEN], char *out)
{
    uint8_t k[1 + BRK_ED25519_PUB_LEN];
    char b64[4 * ((sizeof k + 2) / 3) + 1];
    int n;

    k[0] = BRK_NOTE_ED25519;
    memcpy(k + 1, pub, BRK_ED25519_PUB_LEN);
    brk_b64_std(k, sizeof k, b64);
    n = snprintf(out, BRK_NOTE_VKEY_MAX, "%s+%08" PRIx32 "+%s", name,
                 brk_note_key_hash(name, pub), b64);
    return n > 0 && n < BRK_NOTE_VKEY_MAX ? 0 : BRK_EINVAL;
}

/* A note's origin and key name are one line of text without spaces ('+' too for a name). */
static int token_ok(const char *s, size_t max, int is_name)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || (is_name && c == '+'))
            return 0;
    }
    return 1;
}

int brk_note_checkpoint(const brk_keyring_t *kr, const char *name, const char *origin,
                        uint64_t size, const brk_mhash_t root, char *out)
{
    char root64[4 * ((BRK_MERKLE_HASH_LEN + 2) / 3) + 1];
    uint8_t sig[4 + BRK_ED25519_SIG_LEN];
    char sig64[4 * ((sizeof sig + 2) / 3) + 1];
    uint32_t kh;
    int body, n;

    if (!token_ok(name, BRK_NOTE_NAME_MAX, 1) || !token_ok(origin, BRK_NOTE_ORIGIN_MAX, 0))
        return BRK_EINVAL;
    brk_b64_std(root, BRK_MERKLE_HASH_LEN, root64);
    body = snprintf(out, BRK_NOTE_MAX, "%s\n%" PRIu64 "\n%s\n", origin, size, root64);
    if (body <= 0 || body >= BRK_NOTE_MAX)
        return BRK_EINVAL;
    if (brk_keyring_sign(kr, out, (size_t)body, sig + 4) != 0)
        return BRK_ECRYPTO;
    kh = brk_note_key_hash(name, brk_keyring_public(kr, 0));
    sig[0] = (uint8_t)(kh >> 24), sig[1] = (uint8_t)(kh >> 16);
    sig[2] = (uint8_t)(kh >> 8), sig[3] = (uint8_t)kh;
    brk_b64_std(sig, sizeof sig, sig64);
    n = snprintf(out + body, BRK_NOTE_MAX - (size_t)body, "\n" NOTE_SIG_PREFIX "%s %s\n", name,
                 sig64);
    return n > 0 && (size_t)n < BRK_NOTE_MAX - (size_t)body ? 0 : BRK_EINVAL;
}
