/*
 * brk_crypto: SHA-256, hex, base64url, randomness, constant-time comparison and the Ed25519
 * key ring, on OpenSSL 3's EVP interface only (no deprecated low-level calls).
 *
 * Key ring on disk (dir, normally GSAP_DATA_DIR/keys):
 *   - dir itself is created 0700;
 *   - "<key_id>.pem" is an unencrypted PKCS#8 private key, created with
 *     open(O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and only then wrapped in a FILE, so the secret is
 *     never in a file anyone else can read, not even between creation and a chmod;
 *   - "current" holds the active key id and a newline. It is replaced by writing a temporary
 *     file and rename()ing it over, so a crash leaves either the old or the new id, never half.
 *     A new key's .pem is written and fsync'd before "current" names it.
 * Loading refuses any key file that group or others may access (mode & 077), as ssh does,
 * because a key that others could read must be assumed leaked. When "current" does not exist
 * (first start, or a crash between writing the first key and naming it), a fresh key is made
 * current; stray keys stay loaded as old keys.
 *
 * Only the current key's private half stays in memory; older keys keep their public half,
 * which is all verification and publication need. At most BRK_KEYRING_MAX keys are loaded:
 * the current one, then the others in key id order.
 *
 * EVP_PKEY objects are safe to share between threads for signing when each call uses its own
 * EVP_MD_CTX, which is what brk_keyring_sign does; the ring is immutable after load.
 * Failures clear OpenSSL's per-thread error queue: a stale entry there would make a later
 * SSL_get_error on the same (HTTP) thread report a TLS error that never happened.
 */
#include "brk_crypto.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

#define KEY_FILE_SUFFIX ".pem"
#define CURRENT_FILE "current"
#define CURRENT_MAX 64 /* bytes read from "current": an id, a newline, some slack */

struct brk_key {
    char id[BRK_KEY_ID_LEN + 1];
    uint8_t pub[BRK_ED25519_PUB_LEN];
};

struct brk_keyring {
    size_t n;
    struct brk_key keys[BRK_KEYRING_MAX]; /* keys[0] is current */
    EVP_PKEY *signer;                     /* private half of keys[0] */
};

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

static int hex_val(char c)
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
        int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
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

/* ---- key ring ---- */

/* 1 when s is exactly BRK_KEY_ID_LEN lowercase hex digits. */
static int key_id_valid(const char *s, size_t n)
{
    size_t i;

    if (n != BRK_KEY_ID_LEN)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    int r = snprintf(buf, cap, "%s/%s", dir, name);
    if (r < 0 || (size_t)r >= cap) {
        brk_log_error("key ring path too long", "dir", dir);
        return BRK_EIO;
    }
    return 0;
}

static int key_path(char *buf, size_t cap, const char *dir, const char *id)
{
    char name[BRK_KEY_ID_LEN + sizeof KEY_FILE_SUFFIX];

    snprintf(name, sizeof name, "%s%s", id, KEY_FILE_SUFFIX);
    return path_join(buf, cap, dir, name);
}

static int ensure_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        brk_log_error("cannot create key directory", "dir", dir, "error", strerror(errno));
        return BRK_EIO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        brk_log_error("key directory is not a directory", "dir", dir);
        return BRK_EIO;
    }
    return 0;
}

/* fsync a directory so a rename or a new entry in it survives a crash. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0 || fsync(fd) != 0) {
        brk_log_error("cannot sync key directory", "dir", dir, "error", strerror(errno));
        rc = BRK_EIO;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Extracts the raw public key of an Ed25519 EVP_PKEY. */
static int pkey_public(EVP_PKEY *pkey, uint8_t pub[BRK_ED25519_PUB_LEN])
{
    size_t len = BRK_ED25519_PUB_LEN;

    if (EVP_PKEY_get_raw_public_key(pkey, pub, &len) != 1 || len != BRK_ED25519_PUB_LEN)
        return BRK_ECRYPTO;
    return 0;
}

/* A passphrase callback that refuses: an encrypted key file must fail, never prompt. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/*
 * Reads "<dir>/<id>.pem". On success *out (if out is not NULL) owns the private key and pub
 * holds its public half. Refuses files that group or others can access and keys whose id
 * does not match their file name.
 */
static int load_key(const char *dir, const char *id, EVP_PKEY **out,
                    uint8_t pub[BRK_ED25519_PUB_LEN])
{
    char path[PATH_MAX], got[BRK_KEY_ID_LEN + 1];
    EVP_PKEY *pkey = NULL;
    FILE *fp = NULL;
    struct stat st;
    int fd = -1, rc;

    rc = key_path(path, sizeof path, dir, id);
    if (rc != 0)
        goto out;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        brk_log_error("cannot open key file", "path", path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        brk_log_error("key file is not a regular file", "path", path);
        rc = BRK_EIO;
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        snprintf(mode, sizeof mode, "%03o", (unsigned)(st.st_mode & 0777));
        brk_log_error("key file is accessible by group or others: refused; chmod 600 it and "
                      "consider the key leaked",
                      "path", path, "mode", mode);
        rc = BRK_EIO;
        goto out;
    }
    fp = fdopen(fd, "r");
    if (fp == NULL) {
        brk_log_error("cannot read key file", "path", path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    fd = -1; /* owned by fp now */
    pkey = PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL);
    if (pkey == NULL || EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        brk_log_error("key file does not hold an ed25519 private key", "path", path);
        rc = BRK_ECRYPTO;
        goto out;
    }
    rc = pkey_public(pkey, pub);
    if (rc != 0)
        goto out;
    brk_key_id_of(pub, got);
    if (strcmp(got, id) != 0) {
        brk_log_error("key file holds another key than its name says", "path", path,
                      "key_id", got);
        rc = BRK_ECRYPTO;
        goto out;
    }
    if (out != NULL) {
        *out = pkey;
        pkey = NULL;
    }
    rc = 0;
out:
    EVP_PKEY_free(pkey);
    if (fp != NULL)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}

/* Writes pkey to a new "<dir>/<id>.pem", mode 0600 from the first instant, fsync'd. */
static int write_key(const char *dir, const char *id, EVP_PKEY *pkey)
{
    char path[PATH_MAX];
    FILE *fp = NULL;
    int fd = -1, rc, created = 0;

    rc = key_path(path, sizeof path, dir, id);
    if (rc != 0)
        goto out;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        brk_log_error("cannot create key file", "path", path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    created = 1;
    fp = fdopen(fd, "w");
    if (fp == NULL) {
        brk_log_error("cannot write key file", "path", path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    fd = -1;
    if (PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        brk_log_error("cannot encode key file", "path", path);
        rc = BRK_ECRYPTO;
        goto out;
    }
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        brk_log_error("cannot write key file", "path", path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    rc = fclose(fp) == 0 ? 0 : BRK_EIO;
    fp = NULL;
    if (rc != 0)
        brk_log_error("cannot write key file", "path", path, "error", strerror(errno));
out:
    if (fp != NULL)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    if (rc != 0 && created)
        unlink(path);
    return rc;
}

/* Atomically points "<dir>/current" at id: write a private temporary file, fsync, rename. */
static int write_current(const char *dir, const char *id)
{
    char tmp[PATH_MAX], path[PATH_MAX], name[64], line[BRK_KEY_ID_LEN + 2];
    int fd = -1, rc, created = 0;
    size_t len;

    snprintf(name, sizeof name, CURRENT_FILE ".%s.tmp", id);
    rc = path_join(tmp, sizeof tmp, dir, name);
    if (rc == 0)
        rc = path_join(path, sizeof path, dir, CURRENT_FILE);
    if (rc != 0)
        goto out;
    len = (size_t)snprintf(line, sizeof line, "%s\n", id);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        brk_log_error("cannot create the current key pointer", "file", tmp, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    created = 1;
    if (write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
        brk_log_error("cannot write the current key pointer", "file", tmp, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        brk_log_error("cannot write the current key pointer", "file", tmp, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        brk_log_error("cannot rename the current key pointer into place", "file", tmp, "path",
                      path, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    created = 0;
    rc = sync_dir(dir);
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    return rc;
}

int brk_keyring_rotate(const char *dir, char new_key_id[BRK_KEY_ID_LEN + 1])
{
    uint8_t pub[BRK_ED25519_PUB_LEN];
    char id[BRK_KEY_ID_LEN + 1], path[PATH_MAX];
    EVP_PKEY *pkey = NULL;
    int rc, key_written = 0;

    rc = ensure_dir(dir);
    if (rc != 0)
        goto out;
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pkey == NULL) {
        brk_log_error("cannot generate an ed25519 key", (const char *)NULL);
        rc = BRK_ECRYPTO;
        goto out;
    }
    rc = pkey_public(pkey, pub);
    if (rc != 0)
        goto out;
    brk_key_id_of(pub, id);
    rc = write_key(dir, id, pkey);
    if (rc != 0)
        goto out;
    key_written = 1;
    rc = write_current(dir, id);
    if (rc != 0)
        goto out;
    memcpy(new_key_id, id, sizeof id);
out:
    /* A key that never became current was never used: do not leave it behind. */
    if (rc != 0 && key_written && key_path(path, sizeof path, dir, id) == 0)
        unlink(path);
    EVP_PKEY_free(pkey);
    return rc;
}

/* Reads the id in "<dir>/current" into id. Returns 0, BRK_ENOTFOUND (no such file), BRK_EIO. */
static int read_current(const char *dir, char id[BRK_KEY_ID_LEN + 1])
{
    char path[PATH_MAX], buf[CURRENT_MAX + 1];
    ssize_t r;
    size_t len;
    int fd = -1, rc;

    rc = path_join(path, sizeof path, dir, CURRENT_FILE);
    if (rc != 0)
        goto out;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) {
            rc = BRK_ENOTFOUND;
            goto out;
        }
        brk_log_error("cannot open the current key pointer", "path", path, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    r = read(fd, buf, CURRENT_MAX);
    if (r < 0) {
        brk_log_error("cannot read the current key pointer", "path", path, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    len = (size_t)r;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    if (!key_id_valid(buf, len)) {
        brk_log_error("the current key pointer does not hold a key id", "path", path);
        rc = BRK_EIO;
        goto out;
    }
    memcpy(id, buf, BRK_KEY_ID_LEN);
    id[BRK_KEY_ID_LEN] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, BRK_KEY_ID_LEN + 1);
}

/*
 * Lists the key ids in dir other than skip, sorted. *ids is a malloc'd array of *n ids
 * (BRK_KEY_ID_LEN + 1 bytes each), owned by the caller.
 */
static int list_other_ids(const char *dir, const char *skip, char (**ids)[BRK_KEY_ID_LEN + 1],
                          size_t *n)
{
    char(*arr)[BRK_KEY_ID_LEN + 1] = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    DIR *d = NULL;
    int rc = 0;

    d = opendir(dir);
    if (d == NULL) {
        brk_log_error("cannot list key directory", "dir", dir, "error", strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl != BRK_KEY_ID_LEN + strlen(KEY_FILE_SUFFIX) ||
            strcmp(de->d_name + BRK_KEY_ID_LEN, KEY_FILE_SUFFIX) != 0 ||
            !key_id_valid(de->d_name, BRK_KEY_ID_LEN) ||
            memcmp(de->d_name, skip, BRK_KEY_ID_LEN) == 0)
            continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            arr = brk_realloc(arr, cap * sizeof *arr);
        }
        memcpy(arr[len], de->d_name, BRK_KEY_ID_LEN);
        arr[len][BRK_KEY_ID_LEN] = '\0';
        len++;
    }
    if (len > 1)
        qsort(arr, len, sizeof *arr, cmp_ids);
    *ids = arr;
    arr = NULL;
    *n = len;
out:
    free(arr);
    if (d != NULL)
        closedir(d);
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
    rc = ensure_dir(dir);
    if (rc != 0)
        goto out;
    rc = read_current(dir, cur);
    if (rc == BRK_ENOTFOUND)
        rc = brk_keyring_rotate(dir, cur);
    if (rc != 0)
        goto out;

    kr = brk_calloc(1, sizeof *kr);
    memcpy(kr->keys[0].id, cur, sizeof cur);
    rc = load_key(dir, cur, &kr->signer, kr->keys[0].pub);
    if (rc != 0)
        goto out;
    kr->n = 1;

    rc = list_other_ids(dir, cur, &others, &nothers);
    if (rc != 0)
        goto out;
    for (i = 0; i < nothers && kr->n < BRK_KEYRING_MAX; i++) {
        struct brk_key *k = &kr->keys[kr->n];
        memcpy(k->id, others[i], sizeof k->id);
        rc = load_key(dir, k->id, NULL, k->pub);
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
