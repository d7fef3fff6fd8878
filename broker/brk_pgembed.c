/*
 * brk_pgembed: the embedded PostgreSQL 15 cluster under GSAP_DATA_DIR/pg.
 *
 * Layout (all paths absolute, from realpath of GSAP_DATA_DIR):
 *   GSAP_DATA_DIR/          0700 (0710, group postgres, when the broker runs as root)
 *     pg/                   0700, owned by the cluster's user
 *       data/               the cluster (initdb makes it 0700)
 *       run/                0700, the unix socket; nothing listens on TCP
 *       server.log          the server's log (pg_ctl -l)
 *
 * initdb and pg_ctl run with fork/execv, never through a shell of ours. As root they run as
 * the "postgres" user (PostgreSQL refuses root): the pg/ tree is chowned to it, and the
 * child drops its groups, gid and uid before exec. GSAP_DATA_DIR then has to let that user
 * pass through (0710 with group postgres: search, no listing), while the broker's own files
 * there (keys/) stay 0700 root. Root reaches the 0700 socket directory because root bypasses
 * file permissions.
 *
 * When postgres cannot search every directory above GSAP_DATA_DIR (a checkout in /root, mode
 * 0700 on Debian), the broker does not loosen the user's directories: the cluster moves to
 * BRK_PGEMBED_SYSTEM_DIR/pg-<16 hex of SHA-256 of GSAP_DATA_DIR's real path>, laid out like
 * pg/ above, and GSAP_DATA_DIR stays 0700. BRK_PGEMBED_SYSTEM_DIR must be a root-owned
 * directory that nobody else may write (it is created 0711); the key is the real path, so
 * the same data directory always finds its cluster again, and one log line says where it is.
 *
 * pg_ctl hands -o to /bin/sh and PostgreSQL splits unix_socket_directories on commas, so a
 * data directory path holding quotes, $, `, \, commas, or whitespace is refused.
 *
 * Main thread only, blocking. The child processes close every inherited descriptor above 2
 * and reset signal dispositions, so the postmaster never holds a broker socket open or
 * starts with the broker's blocked signals.
 *
 * This file owns the cluster's life: where it lives, initdb, pg_ctl start/stop, readiness,
 * bootstrap. The directories, their ownership and the child that runs as the cluster's user
 * are brk_pgembed_fs.c's, behind brk_pgembed_int.h.
 */
#include "brk_pgembed_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_pgroles.h"
#include "banned.h"

#define PGE_DBNAME "gsap"
#define PGE_SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 on Linux */
#define PGE_READY_POLL_MS 100
#define PGE_STOP_TIMEOUT_S 60

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_cluster(const char *datadir)
{
    char p[600];
    struct stat st;

    if (brk__pge_join(p, sizeof p, datadir, "/PG_VERSION") < 0)
        return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* wait_ready: polls the socket until the server accepts connections or the timeout passes. */
static int wait_ready(const brk_pgembed_t *pe, const char *port, double deadline)
{
    const char *const keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *const vals[] = {pe->sockdir, port, "postgres", "postgres", "5", NULL};
    struct timespec pause = {0, PGE_READY_POLL_MS * 1000000L};

    for (;;) {
        PGPing p = PQpingParams(keys, vals, 0);
        if (p == PQPING_OK)
            return 0;
        if (p == PQPING_NO_ATTEMPT) {
            brk__pge_err("cannot connect to the embedded cluster at '%s': bad parameters",
                         pe->sockdir);
            return BRK_EIO;
        }
        if (now_s() >= deadline) {
            brk__pge_err("the embedded cluster at '%s' did not accept connections within %d s",
                         pe->sockdir, BRK_PGEMBED_START_TIMEOUT_S);
            return BRK_ETIMEDOUT;
        }
        nanosleep(&pause, NULL);
    }
}

/* conninfo_of: libpq conninfo for user on database db of the cluster, with the password
 * file (paths are free of spaces and quotes: path_chars_ok). BRK_EIO when cut. */
static int conninfo_of(char *out, size_t cap, const brk_pgembed_t *pe, const char *port,
                       const char *user, const char *db, const char *passfile)
{
    int n = snprintf(out, cap, "host=%s port=%s user=%s dbname=%s passfile=%s", pe->sockdir,
                     port, user, db, passfile);
    return n < 0 || (size_t)n >= cap ? BRK_EIO : 0;
}

/*
 * write_pwfile: the superuser's password for initdb, in a file of the cluster's user inside
 * the cluster's 0700 root (initdb runs as that user and reads it; removed right after).
 */
static int write_pwfile(const pge_ident_t *id, const char *path, const char *password)
{
    char line[BRK_PGROLES_PW_LEN + 2];
    int n = snprintf(line, sizeof line, "%s\n", password);

    if (n < 0 || (size_t)n >= sizeof line) {
        brk__pge_err("cannot write '%s': the password is too long", path);
        return BRK_EIO;
    }
    unlink(path); /* left by a start that died during initdb */
    return brk__pge_write_private(path, line, (size_t)n, id, 0);
}

/*
 * bootstrap: connects as the superuser with the password file and lets brk_pgroles set up
 * roles, database, configuration and pg_hba.conf. A password file made just now for a
 * cluster that already demands passwords cannot work: it is removed again, so the original
 * can be put back, and the message says so.
 */
static int bootstrap(const brk_pgembed_t *pe, const char *port, const char *passfile,
                     const brk_pgroles_secrets_t *sec, int fresh_secrets)
{
    char info[2048], hba[600];
    PGconn *c = NULL;
    int rc = BRK_EIO;

    if (conninfo_of(info, sizeof info, pe, port, BRK_PGROLES_SUPER, "postgres", passfile) < 0)
        goto out;
    c = PQconnectdb(info);
    if (PQstatus(c) != CONNECTION_OK) {
        brk__pge_err("cannot connect to the embedded cluster at '%s': %s", pe->sockdir,
                     PQerrorMessage(c));
        if (fresh_secrets) {
            brk__pge_err("its passwords were in '%s', which was missing; restore that file",
                         passfile);
            unlink(passfile);
        }
        goto out;
    }
    if (conninfo_of(info, sizeof info, pe, port, BRK_PGROLES_SUPER, PGE_DBNAME, passfile) < 0 ||
        brk__pge_join(hba, sizeof hba, pe->datadir, "/pg_hba.conf") < 0)
        goto out;
    rc = brk_pgroles_bootstrap(c, info, PGE_DBNAME, hba, sec) < 0 ? BRK_EIO : 0;
out:
    PQfinish(c);
    return rc;
}

/*
 * cluster_root: where the cluster of GSAP_DATA_DIR base lives (see the top of the file):
 * base/pg when the cluster's user can search the directory above base (base itself it is
 * let through by its group), else a directory of its own under BRK_PGEMBED_SYSTEM_DIR.
 * Sets *moved to 1 in the second case.
 */
static int cluster_root(const pge_ident_t *id, const char *base, char *out, size_t cap,
                        int *moved)
{
    char parent[PATH_MAX], hex[2 * BRK_SHA256_LEN + 1];
    uint8_t digest[BRK_SHA256_LEN];
    struct stat st;
    char *slash;
    int rc;

    *moved = 0;
    snprintf(parent, sizeof parent, "%s", base);
    slash = strrchr(parent, '/');
    if (slash != NULL)
        slash[slash == parent] = '\0'; /* "/x" -> "/", "/a/x" -> "/a" */
    if (!id->drop || brk__pge_run(id, NULL, parent) == 0)
        return brk__pge_join(out, cap, base, "/pg");

    rc = brk__pge_ensure_dir(BRK_PGEMBED_SYSTEM_DIR, 0711, 0, 1);
    if (rc < 0)
        return rc;
    if (lstat(BRK_PGEMBED_SYSTEM_DIR, &st) < 0 || st.st_uid != 0) {
        brk__pge_err("'%s' is not owned by root: refusing to keep a cluster there",
                     BRK_PGEMBED_SYSTEM_DIR);
        return BRK_EIO;
    }
    brk_sha256(base, strlen(base), digest);
    brk_hex(digest, BRK_PGEMBED_KEY_BYTES, hex);
    if (snprintf(out, cap, "%s/pg-%s", BRK_PGEMBED_SYSTEM_DIR, hex) >= (int)cap)
        return BRK_EIO;
    *moved = 1;
    return 0;
}

int brk_pgembed_start(brk_pgembed_t *pe, brk_config_t *cfg)
{
    pge_ident_t id;
    char *base = NULL;
    char prog[PATH_MAX], timeout[16], opts[700], port[8], info[2048];
    char passfile[600], pwfile[600];
    brk_pgroles_secrets_t sec;
    int fresh_secrets = 0;
    const char *root = pe->root;
    size_t sock_len;
    double t0;
    int rc, st, moved = 0, own_only;

    memset(pe, 0, sizeof *pe);
    snprintf(port, sizeof port, "%d", BRK_PGEMBED_PORT);
    snprintf(timeout, sizeof timeout, "%d", BRK_PGEMBED_START_TIMEOUT_S);

    rc = brk__pge_ident_init(&id);
    if (rc < 0)
        goto out;

    if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST) {
        brk__pge_err("cannot create directory '%s': %s", cfg->data_dir, strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    base = realpath(cfg->data_dir, NULL);
    if (base == NULL) {
        brk__pge_err("cannot resolve '%s': %s", cfg->data_dir, strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    if (!brk__pge_path_chars_ok(base)) {
        brk__pge_err("GSAP_DATA_DIR '%s' holds a character the embedded cluster cannot use "
                     "(whitespace, quotes, $, `, \\, ! or a comma)",
                     base);
        rc = BRK_EIO;
        goto out;
    }
    rc = cluster_root(&id, base, pe->root, sizeof pe->root, &moved);
    if (rc < 0)
        goto out;
    /* GSAP_DATA_DIR: 0700, or 0710 with group postgres when the cluster inside it runs as
     * postgres, so that user may pass through (search, no listing). */
    own_only = moved || !id.drop;
    rc = brk__pge_ensure_dir(cfg->data_dir, own_only ? 0700 : 0710, own_only ? (gid_t)-1 : id.gid,
                             0);
    if (rc < 0)
        goto out;
    sock_len = strlen(root) + strlen("/run/.s.PGSQL.") + strlen(port);
    if (sock_len > PGE_SUN_PATH_MAX) {
        brk__pge_err("GSAP_DATA_DIR '%s' is too long: its socket path '%s/run/.s.PGSQL.%s' "
                     "would be %zu bytes, over the %d-byte limit of unix sockets",
                     base, root, port, sock_len, PGE_SUN_PATH_MAX);
        rc = BRK_EIO;
        goto out;
    }
    if (brk__pge_join(pe->datadir, sizeof pe->datadir, root, "/data") < 0 ||
        brk__pge_join(pe->sockdir, sizeof pe->sockdir, root, "/run") < 0 ||
        brk__pge_join(pe->logfile, sizeof pe->logfile, root, "/server.log") < 0) {
        brk__pge_err("GSAP_DATA_DIR '%s' is too long", base);
        rc = BRK_EIO;
        goto out;
    }
    brk_log_info("embedded cluster", "cluster_dir", root, "data_dir", base);
    if (brk__pge_join(passfile, sizeof passfile, base, "/" BRK_PGROLES_PASSFILE) < 0 ||
        brk__pge_join(pwfile, sizeof pwfile, root, "/initdb.pw") < 0) {
        rc = BRK_EIO;
        goto out;
    }
    rc = brk_pgroles_secrets_load(passfile, &sec, &fresh_secrets);
    if (rc < 0)
        goto out;

    rc = brk__pge_ensure_dir(root, 0700, (gid_t)-1, 1);
    if (rc == 0)
        rc = brk__pge_ensure_dir(pe->sockdir, 0700, (gid_t)-1, 1);
    if (rc == 0 && id.drop)
        rc = brk__pge_chown_tree(root, id.uid, id.gid);
    if (rc < 0)
        goto out;

    if (!is_cluster(pe->datadir)) {
        char pwarg[700];
        char *argv[] = {prog, "-D",  pe->datadir, "-U",   BRK_PGROLES_SUPER, "-A", "scram-sha-256",
                        pwarg, "-E", "UTF8",      "--locale=C.UTF-8", NULL};
        if (brk__pge_join(prog, sizeof prog, cfg->pg_bin, "/initdb") < 0 ||
            brk__pge_join(pwarg, sizeof pwarg, "--pwfile=", pwfile) < 0 ||
            write_pwfile(&id, pwfile, sec.super) < 0) {
            rc = BRK_EIO;
            goto out;
        }
        st = brk__pge_run(&id, argv, root);
        unlink(pwfile);
        if (st != 0) {
            brk__pge_err("initdb of '%s' failed", pe->datadir);
            rc = BRK_EIO;
            goto out;
        }
        pe->created = 1;
    }

    if (brk__pge_join(prog, sizeof prog, cfg->pg_bin, "/pg_ctl") < 0) {
        rc = BRK_EIO;
        goto out;
    }
    {
        char *argv[] = {prog, "status", "-D", pe->datadir, NULL};
        st = brk__pge_run(&id, argv, NULL);
    }
    t0 = now_s();
    if (st != 0) {
        /* 3: not running (a stale postmaster.pid is handled by the server itself). */
        char *argv[] = {prog,    "start", "-D",        pe->datadir, "-w", "-t",
                        timeout, "-l",    pe->logfile, "-o",        opts, NULL};
        snprintf(opts, sizeof opts, "-k '%s' -p %s -c listen_addresses=''", pe->sockdir, port);
        st = brk__pge_run(&id, argv, NULL);
        if (st != 0) {
            int late = now_s() - t0 >= BRK_PGEMBED_START_TIMEOUT_S;
            brk__pge_err("%s the embedded cluster; see '%s'",
                         late ? "timed out starting" : "cannot start", pe->logfile);
            rc = late ? BRK_ETIMEDOUT : BRK_EIO;
            goto out;
        }
        pe->started = 1;
    }

    rc = wait_ready(pe, port, t0 + BRK_PGEMBED_START_TIMEOUT_S);
    if (rc < 0)
        goto out;
    rc = bootstrap(pe, port, passfile, &sec, fresh_secrets);
    if (rc < 0)
        goto out;

    rc = conninfo_of(info, sizeof info, pe, port, BRK_PGROLES_APP, PGE_DBNAME, passfile);
    if (rc < 0)
        goto out;
    free(cfg->conninfo);
    cfg->conninfo = brk_strdup(info);
    rc = conninfo_of(info, sizeof info, pe, port, BRK_PGROLES_OWNER, PGE_DBNAME, passfile);
    if (rc < 0)
        goto out;
    free(cfg->owner_conninfo);
    cfg->owner_conninfo = brk_strdup(info);
out:
    memset(&sec, 0, sizeof sec);
    if (rc < 0 && pe->started)
        brk_pgembed_stop(pe, cfg);
    free(base);
    return rc;
}

void brk_pgembed_stop(brk_pgembed_t *pe, const brk_config_t *cfg)
{
    pge_ident_t id;
    char prog[PATH_MAX], timeout[16];
    char *argv[] = {prog, "stop", "-D", pe->datadir, "-m", "fast", "-w", "-t", timeout, NULL};

    if (!pe->started)
        return;
    pe->started = 0;
    if (brk__pge_ident_init(&id) < 0 ||
        brk__pge_join(prog, sizeof prog, cfg->pg_bin, "/pg_ctl") < 0)
        return;
    snprintf(timeout, sizeof timeout, "%d", PGE_STOP_TIMEOUT_S);
    if (brk__pge_run(&id, argv, NULL) != 0)
        brk__pge_err("cannot stop the embedded cluster in '%s'; see '%s'", pe->datadir,
                     pe->logfile);
}
