/*
 * brk_keyring: the broker's Ed25519 key ring (public API in brk_crypto.h): load, rotate,
 * enumerate, sign. The files it reads and writes are brk_keyfile.c's business.
 *
 * Owns: struct brk_keyring. Only the current key's private half stays in memory; older keys
 * keep their public half, which is all verification and publication need. At most
 * BRK_KEYRING_MAX keys are loaded: the current one, then the others in key id order.
 * Invariants: a new key's .pem is written and fsync'd before "current" names it; when
 * "current" does not exist (first start, or a crash between writing the first key and naming
 * it), a fresh key is made current and stray keys stay loaded as old keys. The ring is
 * immutable after load; EVP_PKEY objects are safe to share between threads for signing when
 * each call uses its own EVP_MD_CTX, which is what brk_keyring_sign does. Failures clear
 * OpenSSL's per-thread error queue.
 */
#include "brk_keyring_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

struct brk_key {
    char id[BRK_KEY_ID_LEN + 1];
    uint8_t pub[BRK_ED25519_PUB_LEN];
};

struct brk_keyring {
    size_t n;
    struct brk_key keys[BRK_KEYRING_MAX]; /* keys[0] is current */
    EVP_PKEY *signer;                     /* private half of keys[0] */
};

int brk_keyring_rotate(const char *dir, char new_key_id[BRK_KEY_ID_LEN + 1])
{
    uint8_t pub[BRK_ED25519_PUB_LEN];
    char id[BRK_KEY_ID_LEN + 1], path[PATH_MAX];
    EVP_PKEY *pkey = NULL;
    int rc, key_written = 0;

    rc = brk__keydir_ensure(dir);
    if (rc != 0)
        goto out;
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pkey == NULL) {
        brk_log_error("cannot generate an ed25519 key", (const char *)NULL);
        rc = BRK_ECRYPTO;
        goto out;
    }
    rc = brk__pkey_public(pkey, pub);
    if (rc != 0)
        goto out;
    brk_key_id_of(pub, id);
    rc = brk__key_write(dir, id, pkey);
    if (rc != 0)
        goto out;
    key_written = 1;
    rc = brk__current_write(dir, id);
    if (rc != 0)
        goto out;
    memcpy(new_key_id, id, sizeof id);
out:
    /* A key that never became current was never used: do not leave it behind. */
    if (rc != 0 && key_written && brk__key_path(path, sizeof path, dir, id) == 0)
        unlink(path);
    EVP_PKEY_free(pkey);
    return rc;
}

int brk_keyring_load(const char *dir, brk_keyring_t **out)
{
    char(*others)[BRK_KEY_ID_LEN + 1] = NULL;
    char cur[BRK_KEY_ID_LEN + 1];
    brk_keyring_t *kr = NULL;
    size_t nothers = 0, i;
    int rc;

    *out = NULL;
    rc = brk__keydir_ensure(dir);
    if (rc != 0)
        goto out;
    rc = brk__current_read(dir, cur);
    if (rc == BRK_ENOTFOUND)
        rc = brk_keyring_rotate(dir, cur);
    if (rc != 0)
        goto out;

    kr = brk_calloc(1, sizeof *kr);
    memcpy(kr->keys[0].id, cur, sizeof cur);
    rc = brk__key_load(dir, cur, &kr->signer, kr->keys[0].pub);
    if (rc != 0)
        goto out;
    kr->n = 1;

    rc = brk__key_list_others(dir, cur, &others, &nothers);
    if (rc != 0)
        goto out;
    for (i = 0; i < nothers && kr->n < BRK_KEYRING_MAX; i++) {
        struct brk_key *k = &kr->keys[kr->n];
        memcpy(k->id, others[i], sizeof k->id);
        rc = brk__key_load(dir, k->id, NULL, k->pub);
        if (rc != 0)
            goto out;
        kr->n++;
    }
    *out = kr;
    kr = NULL;
out:
    free(others);
    brk_keyring_free(kr);
    return rc;
}

void brk_keyring_free(brk_keyring_t *kr)
{
    if (kr == NULL)
        return;
    EVP_PKEY_free(kr->signer);
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

size_t brk_keyring_count(const brk_keyring_t *kr)
{
    return kr->n;
}

const char *brk_keyring_key_id(const brk_keyring_t *kr, size_t i)
{
    return i < kr->n ? kr->keys[i].id : NULL;
}

const uint8_t *brk_keyring_public(const brk_keyring_t *kr, size_t i)
{
    return i < kr->n ? kr->keys[i].pub : NULL;
}

const char *brk_keyring_current_id(const brk_keyring_t *kr)
{
    return kr->keys[0].id;
}

int brk_keyring_sign(const brk_keyring_t *kr, const void *msg, size_t n,
                     uint8_t sig[BRK_ED25519_SIG_LEN])
{
    EVP_MD_CTX *ctx = NULL;
    size_t siglen = BRK_ED25519_SIG_LEN;
    int rc = BRK_ECRYPTO;

    if (msg == NULL)
        msg = "";
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto out;
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, kr->signer) != 1)
        goto out;
    if (EVP_DigestSign(ctx, sig, &siglen, msg, n) != 1 || siglen != BRK_ED25519_SIG_LEN)
        goto out;
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}

int brk_keyring_sign_str(const brk_keyring_t *kr, const void *msg, size_t n, char *out, size_t cap)
{
    static const char prefix[] = "ed25519:";
    uint8_t sig[BRK_ED25519_SIG_LEN];
    int rc;

    if (cap < sizeof prefix - 1 + brk_b64url_len(BRK_ED25519_SIG_LEN) + 1)
        return BRK_EINVAL;
    rc = brk_keyring_sign(kr, msg, n, sig);
    if (rc != 0)
        return rc;
    memcpy(out, prefix, sizeof prefix - 1);
    brk_b64url_encode(sig, sizeof sig, out + sizeof prefix - 1);
    return 0;
}
