/*
 * brk_crypto: SHA-256, hex and base64url, random tokens, constant-time comparison and the
 * broker's Ed25519 signing keys, all on OpenSSL 3.
 *
 * Keys: the key ring lives in a directory (GSAP_DATA_DIR/keys). Each key is a file
 * "<key_id>.pem" (PKCS#8 PEM private key, mode 0600); the file "current" names the active key
 * id. A key id is the first 16 lowercase hex digits of SHA-256 over the raw 32-byte public
 * key. Rotation adds a key and moves "current"; old keys stay so old signatures still verify
 * and their public halves stay published.
 *
 * Everything here is safe from any thread; a brk_keyring_t is immutable after load and may
 * be shared read-only by every thread.
 *
 * Implemented in brk_crypto.c (primitives), brk_keyring.c (the ring) and brk_keyfile.c (its
 * files, behind brk_keyring_int.h); this stays the one public header for all three.
 */
#ifndef BRK_CRYPTO_H
#define BRK_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define BRK_SHA256_LEN 32
#define BRK_KEY_ID_LEN 16           /* hex digits */
#define BRK_ED25519_PUB_LEN 32
#define BRK_ED25519_SIG_LEN 64
#define BRK_KEYRING_MAX 32          /* keys kept (and published) at most */

/* brk_sha256: digest of (p, n) into out. */
void brk_sha256(const void *p, size_t n, uint8_t out[BRK_SHA256_LEN]);

/* A SHA-256 over data that arrives in pieces (a command's output as it is read). Opaque; one
 * owner and one thread at a time. */
typedef struct brk_sha256_ctx brk_sha256_ctx_t;

/* brk_sha256_new: a digest in progress, owned by the caller (brk_sha256_free), or NULL when
 * OpenSSL cannot make one. */
brk_sha256_ctx_t *brk_sha256_new(void);

/* brk_sha256_update: adds (p, n). Returns 0 or BRK_ECRYPTO. */
int brk_sha256_update(brk_sha256_ctx_t *c, const void *p, size_t n);

/* brk_sha256_final: the digest of everything added, into out; c may only be freed
 * afterwards. Returns 0 or BRK_ECRYPTO. */
int brk_sha256_final(brk_sha256_ctx_t *c, uint8_t out[BRK_SHA256_LEN]);

/* brk_sha256_free: releases c (NULL is fine). */
void brk_sha256_free(brk_sha256_ctx_t *c);

/* brk_hex: lowercase hex of (p, n) into out (2n + 1 bytes, NUL-terminated). */
void brk_hex(const uint8_t *p, size_t n, char *out);

/* brk_hex_digit: the value (0..15) of one hex digit, either case; -1 when c is not one. */
int brk_hex_digit(char c);

/* brk_unhex: parses exactly 2n lowercase or uppercase hex digits from s into out (n bytes).
 * Returns 0 or BRK_EINVAL. */
int brk_unhex(const char *s, size_t slen, uint8_t *out, size_t n);

/* brk_b64url_encode: base64url without padding of (p, n) into out, which must hold
 * brk_b64url_len(n) + 1 bytes; NUL-terminated. Returns the length written. */
size_t brk_b64url_len(size_t n);
size_t brk_b64url_encode(const uint8_t *p, size_t n, char *out);

/* brk_b64url_decode: decodes unpadded base64url (s, slen) into out (capacity cap).
 * Returns the decoded length (>= 0) or BRK_EINVAL (bad character, bad length, over cap). */
int brk_b64url_decode(const char *s, size_t slen, uint8_t *out, size_t cap);

/* brk_b64_decode_lenient: decodes base64 as people paste it (an AC in a variable or a file):
 * the standard (RFC 4648 section 4) or the url-safe (section 5) alphabet, even mixed, with
 * '=' padding and ASCII white space (space, tab, CR, LF) dropped wherever they stand, into out
 * (capacity cap). Never for tokens compared as text: those have one spelling, see above.
 * Returns the decoded length (>= 0) or BRK_EINVAL as brk_b64url_decode. */
int brk_b64_decode_lenient(const char *s, size_t slen, uint8_t *out, size_t cap);

/* brk_random: n cryptographically strong random bytes. Returns 0 or BRK_ECRYPTO. */
int brk_random(void *out, size_t n);

/* brk_ct_equal: 1 when (a, b) of n bytes are equal, in time independent of the content. */
int brk_ct_equal(const void *a, const void *b, size_t n);

typedef struct brk_keyring brk_keyring_t;

/*
 * brk_keyring_load: loads the key ring in dir, creating dir (0700) and a first key (0600)
 * when none exists. On success *out is owned by the caller (brk_keyring_free).
 * Returns 0, BRK_EIO (unreadable, bad permissions), BRK_ECRYPTO (bad key file).
 */
int brk_keyring_load(const char *dir, brk_keyring_t **out);

/* brk_keyring_rotate: creates a new key in dir and makes it current. The loaded ring in
 * memory is not changed (reload it). Writes the new key id into new_key_id. Returns 0 or an error. */
int brk_keyring_rotate(const char *dir, char new_key_id[BRK_KEY_ID_LEN + 1]);

void brk_keyring_free(brk_keyring_t *kr);

/* brk_keyring_count / brk_keyring_key_id / brk_keyring_public: enumerate keys (index 0 is the
 * current signing key). Returned strings belong to the ring. public_key is raw 32 bytes. */
size_t brk_keyring_count(const brk_keyring_t *kr);
const char *brk_keyring_key_id(const brk_keyring_t *kr, size_t i);
const uint8_t *brk_keyring_public(const brk_keyring_t *kr, size_t i);
const char *brk_keyring_current_id(const brk_keyring_t *kr);

/*
 * brk_keyring_sign: Ed25519 signature with the current key over (msg, n).
 * sig receives 64 bytes. Returns 0 or BRK_ECRYPTO.
 */
int brk_keyring_sign(const brk_keyring_t *kr, const void *msg, size_t n,
                     uint8_t sig[BRK_ED25519_SIG_LEN]);

/* brk_keyring_sign_str: "ed25519:" + base64url(signature) into out (>= 96 bytes). */
#define BRK_SIG_STR_MAX 96
int brk_keyring_sign_str(const brk_keyring_t *kr, const void *msg, size_t n, char *out, size_t cap);

/* brk_ed25519_verify: 1 when sig verifies over (msg, n) with the raw public key pub, 0 if
 * not (including malformed input). */
int brk_ed25519_verify(const uint8_t pub[BRK_ED25519_PUB_LEN], const void *msg, size_t n,
                       const uint8_t sig[BRK_ED25519_SIG_LEN]);

/* brk_key_id_of: key id (16 hex + NUL) of a raw public key. */
void brk_key_id_of(const uint8_t pub[BRK_ED25519_PUB_LEN], char out[BRK_KEY_ID_LEN + 1]);

#endif
