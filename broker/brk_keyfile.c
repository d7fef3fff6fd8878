/*
 * brk_keyfile: the key ring's on-disk format, for brk_keyring.c only (brk_keyring_int.h).
 *
 * Owns: the key directory (dir, normally GSAP_DATA_DIR/keys):
 *   - dir itself is created 0700;
 *   - "<key_id>.pem" is an unencrypted PKCS#8 private key, created with
 *     open(O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and only then wrapped in a FILE, so the secret is
 *     never in a file anyone else can read, not even between creation and a chmod;
 *   - "current" holds the active key id and a newline. It is replaced by writing a temporary
 *     file and rename()ing it over, so a crash leaves either the old or the new id, never half.
 * Invariants: loading refuses any key file that group or others may access (mode & 077), as
 * ssh does, because a key that others could read must be assumed leaked; a key file whose
 * contents hash to another id than its name is refused; failures clear OpenSSL's per-thread
 * error queue. Stateless, safe from any thread.
 */
#include "brk_keyring_int.h"

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

#include <openssl/err.h>
#include <openssl/pem.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_io.h"
#include "brk_log.h"
#include "banned.h"

#define KEY_FILE_SUFFIX ".pem"
#define CURRENT_FILE "current"
#define CURRENT_MAX 64 /* bytes read from "current": an id, a newline, some slack */

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

int brk__key_path(char *buf, size_t cap, const char *dir, const char *id)
{
    char name[BRK_KEY_ID_LEN + sizeof KEY_FILE_SUFFIX];

    snprintf(name, sizeof name, "%s%s", id, KEY_FILE_SUFFIX);
    return path_join(buf, cap, dir, name);
}

int brk__keydir_ensure(const char *dir)
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
int brk__pkey_public(EVP_PKEY *pkey, uint8_t pub[BRK_ED25519_PUB_LEN])
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
int brk__key_load(const char *dir, const char *id, EVP_PKEY **out, uint8_t pub[BRK_ED25519_PUB_LEN])
{
    char path[PATH_MAX], got[BRK_KEY_ID_LEN + 1];
    EVP_PKEY *pkey = NULL;
    FILE *fp = NULL;
    struct stat st;
    int fd = -1, rc;

    rc = brk__key_path(path, sizeof path, dir, id);
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
    rc = brk__pkey_public(pkey, pub);
    if (rc != 0)
        goto out;
    brk_key_id_of(pub, got);
    if (strcmp(got, id) != 0) {
        brk_log_error("key file holds another key than its name says", "path", path, "key_id", got);
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
int brk__key_write(const char *dir, const char *id, EVP_PKEY *pkey)
{
    char path[PATH_MAX];
    FILE *fp = NULL;
    int fd = -1, rc, created = 0;

    rc = brk__key_path(path, sizeof path, dir, id);
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
int brk__current_write(const char *dir, const char *id)
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
    if (brk_write_all(fd, line, len) != 0 || fsync(fd) != 0) {
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
        brk_log_error("cannot rename the current key pointer into place", "file", tmp, "path", path,
                      "error", strerror(errno));
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

/* Reads the id in "<dir>/current" into id. Returns 0, BRK_ENOTFOUND (no such file), BRK_EIO. */
int brk__current_read(const char *dir, char id[BRK_KEY_ID_LEN + 1])
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
int brk__key_list_others(const char *dir, const char *skip, char (**ids)[BRK_KEY_ID_LEN + 1],
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
