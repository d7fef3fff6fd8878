/*
 * it_pgembed: the embedded cluster (broker/brk_pgembed.h) for real: initdb with sync, start,
 * reuse of a running server, stop, restart with the data kept. Needs the PostgreSQL 15
 * server binaries (GSAP_PG_BIN or the Debian default), not the shared test cluster.
 *
 * Runs as root (the cluster then belongs to "postgres") or as any other user. The data
 * directory is a fresh short path under /tmp; the runner-side teardown stops whatever a
 * failed test left running and removes it.
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_config.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_pgembed.h"
#include "banned.h"

static char base[64]; /* GSAP_DATA_DIR of the whole case, made in the runner process */

/* moved_root_of: where brk_pgembed puts the cluster of data directory dir when the cluster's
 * user cannot reach it (computed here independently: SHA-256 of the real path). */
static void moved_root_of(const char *dir, char *out, size_t cap)
{
    char hex[2 * BRK_SHA256_LEN + 1], *real = realpath(dir, NULL);
    uint8_t digest[BRK_SHA256_LEN];

    out[0] = '\0';
    if (real == NULL)
        return;
    brk_sha256(real, strlen(real), digest);
    free(real);
    brk_hex(digest, BRK_PGEMBED_KEY_BYTES, hex);
    snprintf(out, cap, "%s/pg-%s", BRK_PGEMBED_SYSTEM_DIR, hex);
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(base, sizeof base, "/tmp/gpe.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char pid[300], err[256], moved_root[256];

    /* Stops a server a failed test left behind, then removes everything. */
    snprintf(pid, sizeof pid, "%s/pg/data/postmaster.pid", base);
    setenv("GSAP_DATA_DIR", base, 1);
    if (access(pid, F_OK) == 0 && brk_config_load(&cfg, err, sizeof err) == 0) {
        memset(&pe, 0, sizeof pe);
        snprintf(pe.datadir, sizeof pe.datadir, "%s/pg/data", base);
        snprintf(pe.logfile, sizeof pe.logfile, "%s/pg/server.log", base);
        pe.started = 1;
        brk_pgembed_stop(&pe, &cfg);
        brk_config_clear(&cfg);
    }
    /* the test that makes base/home/var 0700 moves its cluster out of base */
    snprintf(pid, sizeof pid, "%s/home/var", base);
    moved_root_of(pid, moved_root, sizeof moved_root);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (moved_root[0] != '\0') {
        snprintf(pid, sizeof pid, "%s/data/postmaster.pid", moved_root);
        if (access(pid, F_OK) == 0 && brk_config_load(&cfg, err, sizeof err) == 0) {
            memset(&pe, 0, sizeof pe);
            snprintf(pe.datadir, sizeof pe.datadir, "%s/data", moved_root);
            snprintf(pe.logfile, sizeof pe.logfile, "%s/server.log", moved_root);
            pe.started = 1;
            brk_pgembed_stop(&pe, &cfg);
            brk_config_clear(&cfg);
        }
        nftw(moved_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static void load(brk_config_t *cfg, const char *data_dir)
{
    char err[256] = "";

    unsetenv("GSAP_DATABASE_URL");
    setenv("GSAP_DATA_DIR", data_dir, 1);
    ck_assert_msg(brk_config_load(cfg, err, sizeof err) == 0, "config: %s", err);
}

static char *show(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v;

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    ck_assert_int_eq(PQntuples(r), 1);
    v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* sql_error: runs sql, which must fail; returns its SQLSTATE (static buffer). */
static const char *sql_error(PGconn *c, const char *sql)
{
    static char state[8];
    PGresult *r = PQexec(c, sql);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: did not fail", sql);
    snprintf(state, sizeof state, "%s", s ? s : "");
    PQclear(r);
    return state;
}

static unsigned mode_of(const char *path);

/*
 * assert_locked_down: the cluster of data directory dir (socket in sock, data in data) asks
 * every local connection for a password, has listen_addresses = '' in its configuration
 * file (not only on the command line), and keeps its passwords in a 0600 file in dir.
 */
static void assert_locked_down(const char *dir, const char *sock, const char *data)
{
    char path[600], info[700], buf[4096];
    const char *const users[] = {"postgres", "gsap_owner", "gsap_app", NULL};
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/pgpass", dir);
    ck_assert_uint_eq(mode_of(path), 0600);
    for (int i = 0; users[i] != NULL; i++) {
        PGconn *c;
        snprintf(info, sizeof info, "host=%s port=5432 user=%s dbname=gsap passfile=/dev/null",
                 sock, users[i]);
        c = PQconnectdb(info);
        ck_assert_msg(PQstatus(c) == CONNECTION_BAD, "%s connected without a password",
                      users[i]);
        ck_assert_msg(strstr(PQerrorMessage(c), "password") != NULL, "%s: %s", users[i],
                      PQerrorMessage(c));
        PQfinish(c);
    }
    snprintf(path, sizeof path, "%s/postgresql.auto.conf", data);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_msg(strstr(buf, "listen_addresses = ''") != NULL, "%s: %s", path, buf);
}

static unsigned mode_of(const char *path)
{
    struct stat st;

    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    return (unsigned)(st.st_mode & 07777);
}

START_TEST(create_reuse_restart)
{
    brk_config_t cfg;
    brk_pgembed_t pe, pe2;
    PGconn *c;
    char want[600], *v, *real;
    struct stat st;

    /* an existing GSAP_DATA_DIR with wider permissions is narrowed */
    ck_assert_int_eq(chmod(base, 0755), 0);
    load(&cfg, base);

    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), 0);
    ck_assert_int_eq(pe.created, 1);
    ck_assert_int_eq(pe.started, 1);
    ck_assert_uint_eq(mode_of(base), geteuid() == 0 ? 0710 : 0700);
    ck_assert_uint_eq(mode_of(pe.datadir), 0700);
    ck_assert_uint_eq(mode_of(pe.sockdir), 0700);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        ck_assert_ptr_nonnull(pw);
        ck_assert_int_eq(stat(pe.datadir, &st), 0);
        ck_assert_uint_eq(st.st_uid, pw->pw_uid);
        ck_assert_int_eq(stat(base, &st), 0);
        ck_assert_uint_eq(st.st_uid, 0);
        ck_assert_uint_eq(st.st_gid, pw->pw_gid);
    }
    real = realpath(base, NULL);
    snprintf(want, sizeof want,
             "host=%s/pg/run port=5432 user=gsap_app dbname=gsap passfile=%s/pgpass", real, real);
    ck_assert_str_eq(cfg.conninfo, want);
    snprintf(want, sizeof want,
             "host=%s/pg/run port=5432 user=gsap_owner dbname=gsap passfile=%s/pgpass", real,
             real);
    ck_assert_str_eq(cfg.owner_conninfo, want);
    free(real);
    assert_locked_down(base, pe.sockdir, pe.datadir);

    c = PQconnectdb(cfg.conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    v = show(c, "SHOW fsync");
    ck_assert_str_eq(v, "on");
    free(v);
    v = show(c, "SHOW listen_addresses");
    ck_assert_str_eq(v, "");
    free(v);
    v = show(c, "SELECT current_database()");
    ck_assert_str_eq(v, "gsap");
    free(v);
    /* the runtime role creates nothing; the owner does */
    ck_assert_str_eq(sql_error(c, "CREATE TABLE kept (x int)"), "42501");
    PQfinish(c);
    c = PQconnectdb(cfg.owner_conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    exec(c, "CREATE TABLE kept (x int)");
    exec(c, "INSERT INTO kept VALUES (42)");
    exec(c, "GRANT SELECT ON kept TO gsap_app");
    PQfinish(c);

    /* a second start finds the server running: reused, and not ours to stop */
    ck_assert_int_eq(brk_pgembed_start(&pe2, &cfg), 0);
    ck_assert_int_eq(pe2.created, 0);
    ck_assert_int_eq(pe2.started, 0);
    ck_assert_str_eq(cfg.owner_conninfo, want);
    brk_pgembed_stop(&pe2, &cfg);
    ck_assert_int_eq(PQping(cfg.conninfo), PQPING_OK);

    brk_pgembed_stop(&pe, &cfg);
    ck_assert_int_eq(pe.started, 0);
    ck_assert_int_eq(PQping(cfg.conninfo), PQPING_NO_RESPONSE);

    /* restart: no initdb, the data survived */
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), 0);
    ck_assert_int_eq(pe.created, 0);
    ck_assert_int_eq(pe.started, 1);
    c = PQconnectdb(cfg.conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    v = show(c, "SELECT x FROM kept");
    ck_assert_str_eq(v, "42");
    free(v);
    PQfinish(c);
    brk_pgembed_stop(&pe, &cfg);
    ck_assert_int_eq(PQping(cfg.conninfo), PQPING_NO_RESPONSE);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(socket_path_limit)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[256], pg[300];
    size_t used, room;

    /* base + "/" + name + "/pg/run/.s.PGSQL.5432" is 107 bytes: accepted up to the check;
     * one byte more is refused before anything is created under it. */
    ck_assert_int_eq(chmod(base, 0711), 0); /* as root, postgres must pass through base */
    used = strlen(base) + 1 + strlen("/pg/run/.s.PGSQL.5432");
    room = 107 - used;
    snprintf(dir, sizeof dir, "%s/", base);
    memset(dir + strlen(dir), 'x', room + 1);
    dir[strlen(base) + 1 + room + 1] = '\0';
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    ck_assert_ptr_null(cfg.conninfo);
    snprintf(pg, sizeof pg, "%s/pg", dir);
    ck_assert_int_eq(access(pg, F_OK), -1);
    brk_config_clear(&cfg);

    /* exactly at the limit it gets past the check (and fails later on the missing binary,
     * which keeps this test fast) */
    dir[strlen(dir) - 1] = '\0';
    setenv("GSAP_PG_BIN", "/nonexistent/bin", 1);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    snprintf(pg, sizeof pg, "%s/pg/run", dir);
    ck_assert_int_eq(access(pg, F_OK), 0);
    ck_assert_int_eq(pe.created, 0);
    ck_assert_int_eq(pe.started, 0);
    unsetenv("GSAP_PG_BIN");
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(unusable_path_characters)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[128];

    snprintf(dir, sizeof dir, "%s/a b", base);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    brk_config_clear(&cfg);
    snprintf(dir, sizeof dir, "%s/a'b", base);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    ck_assert_ptr_null(cfg.conninfo);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(missing_parent_is_eio)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[128];

    snprintf(dir, sizeof dir, "%s/no/such/parent", base);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(symlink_under_pg_is_refused)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[128], path[160], target[128];

    /* pg/run pointing elsewhere must not make the broker chmod (or chown) the target */
    ck_assert_int_eq(chmod(base, 0711), 0);
    snprintf(dir, sizeof dir, "%s/link", base);
    snprintf(target, sizeof target, "%s/target", base);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(mkdir(target, 0755), 0);
    snprintf(path, sizeof path, "%s/pg", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/pg/run", dir);
    ck_assert_int_eq(symlink(target, path), 0);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    ck_assert_uint_eq(mode_of(target), 0755);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(hard_link_under_pg_is_not_chowned)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[128], a[160], b[160];
    struct stat st;

    if (geteuid() != 0)
        return; /* only root changes owners */
    ck_assert_int_eq(chmod(base, 0711), 0);
    snprintf(dir, sizeof dir, "%s/hard", base);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(a, sizeof a, "%s/pg", dir);
    ck_assert_int_eq(mkdir(a, 0700), 0);
    snprintf(a, sizeof a, "%s/outside", dir);
    snprintf(b, sizeof b, "%s/pg/linked", dir);
    ck_assert_int_eq(close(open(a, O_CREAT | O_WRONLY, 0600)), 0);
    ck_assert_int_eq(link(a, b), 0);
    load(&cfg, dir);
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), BRK_EIO);
    ck_assert_int_eq(stat(a, &st), 0);
    ck_assert_uint_eq(st.st_uid, 0);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(unreachable_data_dir_moves_the_cluster)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char home[100], dir[128], want[600], pg[160], moved_root[256], *real;
    struct stat st;
    struct passwd *pw;
    PGconn *c;
    char *v;

    if (geteuid() != 0)
        return; /* as any other user the cluster runs as that user and reaches its own dirs */
    /* home is 0700 root, like /root: postgres cannot pass through it */
    snprintf(home, sizeof home, "%s/home", base);
    ck_assert_int_eq(mkdir(home, 0700), 0);
    snprintf(dir, sizeof dir, "%s/var", home);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    moved_root_of(dir, moved_root, sizeof moved_root);
    load(&cfg, dir);

    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), 0);
    ck_assert_str_eq(pe.root, moved_root);
    ck_assert_int_eq(pe.created, 1);
    /* the user's directories keep their modes; nothing of the cluster is under them */
    ck_assert_uint_eq(mode_of(home), 0700);
    ck_assert_uint_eq(mode_of(dir), 0700);
    snprintf(pg, sizeof pg, "%s/pg", dir);
    ck_assert_int_eq(access(pg, F_OK), -1);
    /* the system directory belongs to root and nobody else may write it */
    ck_assert_int_eq(lstat(BRK_PGEMBED_SYSTEM_DIR, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_uid, 0);
    ck_assert_uint_eq(st.st_mode & 022, 0);
    pw = getpwnam("postgres");
    ck_assert_ptr_nonnull(pw);
    ck_assert_int_eq(stat(moved_root, &st), 0);
    ck_assert_uint_eq(st.st_uid, pw->pw_uid);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);

    real = realpath(dir, NULL);
    snprintf(want, sizeof want, "host=%s/run port=5432 user=gsap_app dbname=gsap passfile=%s/pgpass",
             moved_root, real);
    free(real);
    ck_assert_str_eq(cfg.conninfo, want);
    assert_locked_down(dir, pe.sockdir, pe.datadir);
    c = PQconnectdb(cfg.conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    v = show(c, "SHOW fsync");
    ck_assert_str_eq(v, "on");
    free(v);
    PQfinish(c);
    brk_pgembed_stop(&pe, &cfg);
    ck_assert_int_eq(PQping(cfg.conninfo), PQPING_NO_RESPONSE);

    /* the same data directory finds the same cluster again */
    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), 0);
    ck_assert_int_eq(pe.created, 0);
    ck_assert_str_eq(pe.root, moved_root);
    brk_pgembed_stop(&pe, &cfg);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(trust_cluster_of_an_earlier_version_is_locked_down)
{
    brk_config_t cfg;
    brk_pgembed_t pe;
    char dir[128], cmd[2048], *v;
    const char *as_pg = geteuid() == 0 ? "runuser -u postgres --" : "";
    const char *bin = getenv("GSAP_PG_BIN") ? getenv("GSAP_PG_BIN") : "/usr/lib/postgresql/15/bin";
    PGconn *c;

    /* what earlier versions left: a trust cluster, objects owned by the superuser */
    ck_assert_int_eq(chmod(base, 0711), 0);
    snprintf(dir, sizeof dir, "%s/old", base);
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p %s/pg/run; %s%s; "
             "%s %s/initdb -D %s/pg/data -U postgres -A trust -E UTF8 --locale=C.UTF-8 "
             "--no-sync >/dev/null; "
             "%s %s/pg_ctl -D %s/pg/data -l %s/pg/server.log -w -o \"-k %s/pg/run -p 5432 "
             "-c listen_addresses=''\" start >/dev/null; "
             "%s psql -qX -h %s/pg/run -U postgres -d postgres -c 'CREATE DATABASE gsap'; "
             "%s psql -qX -h %s/pg/run -U postgres -d gsap -c 'CREATE TABLE legacy (x int)'; "
             "%s %s/pg_ctl -D %s/pg/data -m fast -w stop >/dev/null",
             dir, geteuid() == 0 ? "chown -R postgres:postgres " : "true ",
             geteuid() == 0 ? dir : "", as_pg, bin, dir, as_pg, bin, dir, dir, dir, as_pg, dir,
             as_pg, dir, as_pg, bin, dir);
    ck_assert_msg(system(cmd) == 0, "%s", cmd);
    load(&cfg, dir);

    ck_assert_int_eq(brk_pgembed_start(&pe, &cfg), 0);
    ck_assert_int_eq(pe.created, 0);
    assert_locked_down(dir, pe.sockdir, pe.datadir);
    c = PQconnectdb(cfg.owner_conninfo);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    v = show(c, "SELECT tableowner FROM pg_tables WHERE tablename = 'legacy'");
    ck_assert_str_eq(v, "gsap_owner");
    free(v);
    v = show(c, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'gsap'");
    ck_assert_str_eq(v, "gsap_owner");
    free(v);
    PQfinish(c);
    brk_pgembed_stop(&pe, &cfg);
    brk_config_clear(&cfg);
}
END_TEST

static Suite *pgembed_suite(void)
{
    Suite *s = suite_create("pgembed");
    TCase *tc = tcase_create("cluster");

    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, socket_path_limit);
    tcase_add_test(tc, unusable_path_characters);
    tcase_add_test(tc, missing_parent_is_eio);
    tcase_add_test(tc, symlink_under_pg_is_refused);
    tcase_add_test(tc, hard_link_under_pg_is_not_chowned);
    tcase_add_test(tc, create_reuse_restart);
    tcase_add_test(tc, unreachable_data_dir_moves_the_cluster);
    tcase_add_test(tc, trust_cluster_of_an_earlier_version_is_locked_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(pgembed_suite());
}
