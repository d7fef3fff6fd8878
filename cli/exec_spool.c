/*
 * exec_spool: spooled receipts (see exec_spool.h).
 *
 * Every file operation is relative to the checked directory descriptor and uses O_NOFOLLOW, so
 * a symbolic link planted in the spool (or swapped for the directory after the check) cannot
 * make exec write or post a file elsewhere.
 *
 * Caveat: the governed command runs as the same user, so it could write files into the spool
 * itself. A spooled receipt is a claim of this host, not proof: the broker stores it flagged
 * self_authorized, which is what an auditor sees.
 */
#include "exec_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_io.h"
#include "brk_time.h"
#include "banned.h"

#define SPOOL_TMP_PREFIX ".tmp-"
#define SPOOL_RAND_BYTES 8

int cli_spool_open(const char *dir, int create, int *dirfd, char *err, size_t errlen)
{
    struct stat sb;
    int fd;

    *dirfd = -1;
    if (create && mkdir(dir, CLI_SPOOL_DIR_MODE) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the spool directory \"%s\": %s", dir, strerror(errno));
        return BRK_EIO;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the spool directory \"%s\": %s", dir, strerror(errno));
        return BRK_EIO;
    }
    if (fstat(fd, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "the spool \"%s\" is not a directory", dir);
        close(fd);
        return BRK_EIO;
    }
    if (sb.st_uid != geteuid() || (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(err, errlen,
                 "refusing the spool directory \"%s\": it must be owned by uid %u and not "
                 "writable by group or others (owner %u, mode %04o)",
                 dir, (unsigned)geteuid(), (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
        close(fd);
        return BRK_EFORBIDDEN;
    }
    *dirfd = fd;
    return 0;
}

/* 1 for a spool file name: "cr-...json" or "cr-...json.rejected". */
static int spool_name(const char *name, int *rejected)
{
    size_t n = strlen(name), ls = strlen(CLI_SPOOL_SUFFIX), lr = strlen(CLI_SPOOL_REJECTED);
    *rejected = 0;
    if (strncmp(name, CLI_SPOOL_PREFIX, strlen(CLI_SPOOL_PREFIX)) != 0)
        return 0;
    if (n > lr && strcmp(name + n - lr, CLI_SPOOL_REJECTED) == 0) {
        *rejected = 1;
        n -= lr;
    }
    return n > ls && strncmp(name + n - ls, CLI_SPOOL_SUFFIX, ls) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The spool's file names (pending ones only unless all), sorted, into *names (caller frees
 * each and the array). At most CLI_SPOOL_MAX_FILES + 1 are listed: enough to tell "full". */
static int spool_list(int dirfd, int all, char ***names, int *count)
{
    int fd = dup(dirfd), n = 0, rejected;
    DIR *d = NULL;
    struct dirent *e;
    char **v;

    *names = NULL;
    *count = 0;
    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            close(fd);
        return BRK_EIO;
    }
    rewinddir(d);
    v = brk_calloc(CLI_SPOOL_MAX_FILES + 1, sizeof *v);
    while (n <= CLI_SPOOL_MAX_FILES && (e = readdir(d)) != NULL)
        if (spool_name(e->d_name, &rejected) && (all || !rejected))
            v[n++] = brk_strdup(e->d_name);
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, by_name);
    *names = v;
    *count = n;
    return 0;
}

int cli_spool_count(int dirfd)
{
    char **names;
    int n, rc = spool_list(dirfd, 1, &names, &n);
    if (rc != 0)
        return rc;
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return n;
}

/* The UTC time now in RFC 3339's basic form ("20261123T100000Z"): sorts as it reads, and
 * has no ':' for file systems that refuse one in a name. */
static void spool_stamp(char out[BRK_TIME_LEN + 1])
{
    char t[BRK_TIME_LEN + 1];
    size_t n = 0;

    brk_time_fmt(time(NULL), t);
    for (const char *p = t; *p; p++)
        if (*p != '-' && *p != ':')
            out[n++] = *p;
    out[n] = '\0';
}

int cli_spool_write(int dirfd, const char *body, char name[CLI_SPOOL_NAME_MAX], char *err,
                    size_t errlen)
{
    size_t len = strlen(body);
    uint8_t rnd[SPOOL_RAND_BYTES];
    char hex[2 * SPOOL_RAND_BYTES + 1], stamp[BRK_TIME_LEN + 1], tmp[CLI_SPOOL_NAME_MAX];
    int n, fd = -1, rc = BRK_EIO;

    name[0] = '\0';
    if (len > CLI_SPOOL_MAX_BYTES) {
        snprintf(err, errlen, "the receipt is larger than %d bytes", CLI_SPOOL_MAX_BYTES);
        return BRK_ETOOBIG;
    }
    if ((n = cli_spool_count(dirfd)) < 0) {
        snprintf(err, errlen, "cannot list the spool directory");
        return BRK_EIO;
    }
    if (n >= CLI_SPOOL_MAX_FILES) {
        snprintf(err, errlen,
                 "the spool already holds %d receipts (flush it with "
                 "`gsap-broker exec --flush-spool`)",
                 CLI_SPOOL_MAX_FILES);
        return BRK_ELIMIT;
    }
    if (brk_random(rnd, sizeof rnd) != 0) {
        snprintf(err, errlen, "cannot make a spool file name");
        return BRK_EIO;
    }
    brk_hex(rnd, sizeof rnd, hex);
    spool_stamp(stamp);
    snprintf(name, CLI_SPOOL_NAME_MAX, "%s%s-%s%s", CLI_SPOOL_PREFIX, stamp, hex, CLI_SPOOL_SUFFIX);
    snprintf(tmp, sizeof tmp, "%s%s", SPOOL_TMP_PREFIX, hex);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                CLI_SPOOL_FILE_MODE);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a spool file: %s", strerror(errno));
        goto out;
    }
    /* The mode given to openat is masked by the umask; 0600 is the ceiling, so set it. */
    if (fchmod(fd, CLI_SPOOL_FILE_MODE) < 0 || brk_write_all(fd, body, len) != 0 ||
        brk_write_all(fd, "\n", 1) != 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "cannot write the spool file: %s", strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        snprintf(err, errlen, "cannot rename the spool file: %s", strerror(errno));
        goto out;
    }
    fsync(dirfd);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        unlinkat(dirfd, tmp, 0);
        name[0] = '\0';
    }
    return rc;
}

/* The contents of one spool file into *body (caller frees), checked: a regular file of ours,
 * at most CLI_SPOOL_MAX_BYTES. */
static int spool_read(int dirfd, const char *name, char **body, char *why, size_t cap)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    char *buf = NULL;
    size_t n = 0;
    int rc = BRK_EIO;

    *body = NULL;
    if (fd < 0) {
        snprintf(why, cap, "cannot open: %s", strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
        snprintf(why, cap, "not a regular file of uid %u", (unsigned)geteuid());
        goto out;
    }
    buf = brk_malloc(CLI_SPOOL_MAX_BYTES + 2);
    for (;;) {
        ssize_t r = read(fd, buf + n, CLI_SPOOL_MAX_BYTES + 2 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(why, cap, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        /* what cli_spool_write wrote: the body and a newline */
        if (n > CLI_SPOOL_MAX_BYTES + 1) {
            snprintf(why, cap, "larger than %d bytes", CLI_SPOOL_MAX_BYTES);
            rc = BRK_ETOOBIG;
            goto out;
        }
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n > CLI_SPOOL_MAX_BYTES) {
        snprintf(why, cap, "larger than %d bytes", CLI_SPOOL_MAX_BYTES);
        rc = BRK_ETOOBIG;
        goto out;
    }
    *body = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* 4xx answers that may succeed later: credentials, rate, a broker that does not (yet) know
 * self-authorized contexts. */
static int retryable_4xx(const cli_http_resp_t *r)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    if (r->status == 401 || r->status == 403 || r->status == 408 || r->status == 429)
        return 1;
    return r->status == 404 && code && strcmp(code, "context_not_found") == 0;
}

static void answer_text(const cli_http_resp_t *r, char *buf, size_t cap)
{
    const json_t *e = json_object_get(r->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    snprintf(buf, cap, "broker answered %d %s%s%s", r->status, code ? code : "", msg ? ": " : "",
             msg ? msg : "");
}

void cli_spool_flush(int dirfd, cli_http_t *h, FILE *log, cli_spool_report_t *rep)
{
    char **names = NULL, why[CLI_HTTP_ERR_MAX + 64];
    int n = 0, i;

    memset(rep, 0, sizeof *rep);
    if (spool_list(dirfd, 0, &names, &n) != 0) {
        fprintf(log, "gsap-broker exec: cannot list the spool directory\n");
        rep->stop_rc = BRK_EIO;
        return;
    }
    for (i = 0; i < n; i++) {
        cli_http_resp_t r = {0};
        char *body = NULL;
        int rc;

        if (spool_read(dirfd, names[i], &body, why, sizeof why) != 0) {
            fprintf(log, "gsap-broker exec: %s: %s (kept)\n", names[i], why);
            rep->kept++;
            continue;
        }
        /* The same bytes on every try: the broker answers an identical retry of an accepted
         * CR with the same receipt, so a 200 lost on the way is repaired by the next flush. */
        rc = cli_http_retry(h, EVHTTP_REQ_POST, "/governance/complete/", body, NULL, &r);
        free(body);
        if (rc != 0) {
            fprintf(log, "gsap-broker exec: %s: %s (kept)\n", names[i],
                    rc == BRK_ECRYPTO && h->tls_error[0] ? h->tls_error : brk_strerror(rc));
            rep->kept++;
            rep->stop_rc = rc;
            break;
        }
        if (r.status == 200) {
            if (unlinkat(dirfd, names[i], 0) == 0) {
                rep->posted++;
            } else {
                fprintf(log, "gsap-broker exec: %s: posted, but cannot remove it: %s\n", names[i],
                        strerror(errno));
                rep->kept++;
            }
        } else if (r.status >= 500 || (r.status >= 400 && retryable_4xx(&r))) {
            answer_text(&r, why, sizeof why);
            fprintf(log, "gsap-broker exec: %s: %s (kept)\n", names[i], why);
            rep->kept++;
            if (r.status != 404) {
                rep->stop_status = r.status;
                cli_http_resp_clear(&r);
                break;
            }
        } else {
            char to[CLI_SPOOL_NAME_MAX + sizeof CLI_SPOOL_REJECTED];
            answer_text(&r, why, sizeof why);
            snprintf(to, sizeof to, "%s%s", names[i], CLI_SPOOL_REJECTED);
            if (renameat(dirfd, names[i], dirfd, to) == 0) {
                fprintf(log, "gsap-broker exec: %s: %s (rejected, kept as %s)\n", names[i], why,
                        to);
                rep->rejected++;
            } else {
                fprintf(log, "gsap-broker exec: %s: %s (kept: %s)\n", names[i], why,
                        strerror(errno));
                rep->kept++;
            }
        }
        cli_http_resp_clear(&r);
    }
    /* Files after the stop are still spooled. */
    if (i < n)
        rep->kept += n - i - 1;
    for (int j = 0; j < n; j++)
        free(names[j]);
    free(names);
}
