/*
 * brk_crypto: SHA-256, hex, base64url, randomness, constant-time comparison, Ed25519
 * verification and key ids, on OpenSSL 3's EVP interface only (no deprecated low-level calls).
 * The key ring that signs lives in brk_keyring.c (on-disk format in brk_keyfile.c); all three
 * share the one public header brk_crypto.h.
 *
 * Owns: pure functions over caller buffers, no state, safe from any thread.
 * Invariant: failures clear OpenSSL's per-thread error queue: a stale entry there would make
 * a later SSL_get_error on the same (HTTP) thread report a TLS error that never happened.
 */
#include "brk_crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

/* ---- digests, encodings, randomness ---- */

void brk_sha256(const void *p, size_t n, uint8_t out[BRK_SHA256_LEN])
{
    unsigned int len = 0;

    if (p == NULL)
        p = "";
    /* SHA-256 over memory cannot fail short of a broken OpenSSL: treat that as fatal. */
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != BRK_SHA256_LEN) {
        brk_log_error("sha-256 digest failed in OpenSSL", (const char *)NULL);
        abort();
    }
}

struct brk_sha256_ctx {
    EVP_MD_CTX *md;
};

brk_sha256_ctx_t *brk_sha256_new(void)
{
    brk_sha256_ctx_t *c = brk_calloc(1, sizeof *c);

    if ((c->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        brk_sha256_free(c);
        return NULL;
    }
    return c;
}

int brk_sha256_update(brk_sha256_ctx_t *c, const void *p, size_t n)
{
    return EVP_DigestUpdate(c->md, p, n) == 1 ? 0 : BRK_ECRYPTO;
}

int brk_sha256_final(brk_sha256_ctx_t *c, uint8_t out[BRK_SHA256_LEN])
{
    unsigned int len = 0;

    return EVP_DigestFinal_ex(c->md, out, &len) == 1 && len == BRK_SHA256_LEN ? 0 : BRK_ECRYPTO;
}

void brk_sha256_free(brk_sha256_ctx_t *c)
{
    if (c == NULL)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void brk_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int brk_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int brk_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
    size_t i;

    if (n > SIZE_MAX / 2 || slen != 2 * n)
        return BRK_EINVAL;
    for (i = 0; i < n; i++) {
        int hi = brk_hex_digit(s[2 * i]), lo = brk_hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return BRK_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t brk_b64url_len(size_t n)
{
    static const size_t tail[3] = {0, 2, 3};
    return n / 3 * 4 + tail[n % 3];
}

size_t brk_b64url_encode(const uint8_t *p, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decoding is strict: no padding, no whitespace, no standard-alphabet '+' '/', and the unused
 * low bits of the last character must be zero. So every byte string has exactly one accepted
 * encoding, and tokens compared as text cannot be smuggled in a second spelling.
 */
int brk_b64url_decode(const char *s, size_t slen, uint8_t *out, size_t cap)
{
    size_t outlen, i, o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (slen % 4 == 1)
        return BRK_EINVAL;
    outlen = slen / 4 * 3 + (slen % 4 ? slen % 4 - 1 : 0);
    if (outlen > cap || outlen > INT_MAX)
        return BRK_EINVAL;
    for (i = 0; i < slen; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0)
            return BRK_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero (canonical encoding) */
        return BRK_EINVAL;
    return (int)o;
}

int brk_b64_decode_lenient(const char *s, size_t slen, uint8_t *out, size_t cap)
{
    char *url = brk_malloc(slen + 1);
    size_t n = 0;
    int rc;

    /* one alphabet, nothing but its characters: then the strict decoder judges the rest */
    for (size_t i = 0; i < slen; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '=')
            continue;
        url[n++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    rc = brk_b64url_decode(url, n, out, cap);
    free(url);
    return rc;
}

int brk_random(void *out, size_t n)
{
    unsigned char *p = out;

    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            return BRK_ECRYPTO;
        p += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

int brk_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void brk_key_id_of(const uint8_t pub[BRK_ED25519_PUB_LEN], char out[BRK_KEY_ID_LEN + 1])
{
    uint8_t d[BRK_SHA256_LEN];

    brk_sha256(pub, BRK_ED25519_PUB_LEN, d);
    brk_hex(d, BRK_KEY_ID_LEN / 2, out);
}

int brk_ed25519_verify(const uint8_t pub[BRK_ED25519_PUB_LEN], const void *msg, size_t n,
                       const uint8_t sig[BRK_ED25519_SIG_LEN])
{
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *ctx = NULL;
    int ok = 0;

    if (pub == NULL || sig == NULL)
        goto out;
    if (msg == NULL)
        msg = "";
    pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, BRK_ED25519_PUB_LEN);
    if (pkey == NULL)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1)
        goto out;
    ok = EVP_DigestVerify(ctx, sig, BRK_ED25519_SIG_LEN, msg, n) == 1;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    if (!ok)
        ERR_clear_error();
    return ok;
}
