/*
 * it_migrate: the migration runner and key creation against the shared throwaway cluster
 * (tests/tst_pg.h). Each test makes its own database. Tests that need a migrations directory
 * copy $GSAP_SOURCE_DIR/migrations into a temporary directory and edit the copy.
 */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_err.h"
#include "brk_keys.h"
#include "brk_migrate.h"
#include "tst_pg.h"
#include "banned.h"

#define LOCK_KEY "5139523412909705042" /* brk_migrate.c's advisory lock */

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0, i;

    ck_assert_int_eq(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    for (i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void write_file(const char *dir, const char *name, const char *text, const char *mode)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, mode);
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* copy_migrations: a temporary copy of the source tree's migrations/ (caller rm_tree()s). */
static char *copy_migrations(void)
{
    const char *src = getenv("GSAP_SOURCE_DIR");
    char from[512], path[1024], buf[8192], *dir;
    DIR *d;
    struct dirent *e;

    ck_assert_msg(src != NULL && *src, "GSAP_SOURCE_DIR is not set");
    dir = strdup("/tmp/it_migrate.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(from, sizeof from, "%s/migrations", src);
    d = opendir(from);
    ck_assert_msg(d != NULL, "cannot open %s", from);
    while ((e = readdir(d)) != NULL) {
        FILE *in, *out;
        size_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", from, e->d_name);
        in = fopen(path, "rb");
        ck_assert_ptr_nonnull(in);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        out = fopen(path, "wb");
        ck_assert_ptr_nonnull(out);
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
        fclose(in);
        ck_assert_int_eq(fclose(out), 0);
    }
    closedir(d);
    return dir;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void rm_tree(char *dir)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* fresh: a new database with every embedded migration applied. */
static PGconn *fresh(const char *db, int migrate)
{
    char err[512] = "";
    PGconn *c;

    tst_pg_createdb(db);
    c = tst_pg_connect(db);
    if (migrate)
        ck_assert_msg(brk_migrate_run(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    return c;
}

START_TEST(fresh_db_gets_everything)
{
    PGconn *c = fresh("it_migrate_fresh", 0);
    char err[512] = "", sql[256], want[65], *got;
    unsigned i;

    ck_assert_uint_gt(brk_migrations_count, 0);
    ck_assert_int_eq(brk_migrate_expected(NULL), (int)brk_migrations_count);
    ck_assert_msg(brk_migrate_run(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    for (i = 0; i < brk_migrations_count; i++) {
        snprintf(sql, sizeof sql, "SELECT sha256 FROM schema_migrations WHERE name = '%s'",
                 brk_migrations[i].name);
        got = tst_pg_scalar(c, sql);
        ck_assert_msg(got != NULL, "%s not recorded", brk_migrations[i].name);
        sha256_hex(brk_migrations[i].sql, brk_migrations[i].len, want);
        ck_assert_str_eq(got, want);
        free(got);
    }
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations "
                                    "WHERE applied_at IS NULL OR applied_at > now()"),
                     0);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM pg_tables WHERE tablename IN "
                                    "('tenants', 'api_keys')"),
                     2);
    PQfinish(c);
}
END_TEST

START_TEST(second_run_is_a_noop)
{
    PGconn *c = fresh("it_migrate_rerun", 1);
    char err[512] = "", *before, *after;

    before = tst_pg_scalar(c, "SELECT string_agg(name || applied_at::text, ',' ORDER BY name) "
                              "FROM schema_migrations");
    ck_assert_msg(brk_migrate_run(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    ck_assert_msg(brk_migrate_run(c, NULL, err, sizeof err) == 0, "migrate: %s", err);
    after = tst_pg_scalar(c, "SELECT string_agg(name || applied_at::text, ',' ORDER BY name) "
                             "FROM schema_migrations");
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    /* the session lock was released */
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                    "database = (SELECT oid FROM pg_database "
                                    "WHERE datname = current_database())"),
                     0);
    free(before);
    free(after);
    PQfinish(c);
}
END_TEST

START_TEST(identical_dir_matches_embedded)
{
    PGconn *c = fresh("it_migrate_samedir", 1);
    char *dir = copy_migrations();
    char err[512] = "";

    ck_assert_int_eq(brk_migrate_expected(dir), (int)brk_migrations_count);
    ck_assert_msg(brk_migrate_run(c, dir, err, sizeof err) == 0, "migrate: %s", err);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(changed_file_is_a_conflict)
{
    PGconn *c = fresh("it_migrate_changed", 1);
    char *dir = copy_migrations();
    char err[512] = "";

    write_file(dir, "0001_core.sql", "\n-- edited after shipping\n", "a");
    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_ECONFLICT);
    ck_assert_msg(strstr(err, "migration 0001_core.sql changed after it was applied "
                              "(recorded sha256 ") != NULL,
                  "message: %s", err);
    ck_assert_msg(strstr(err, ", file sha256 ") != NULL, "message: %s", err);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(failing_file_leaves_no_trace)
{
    PGconn *c = fresh("it_migrate_fail", 0);
    PGconn *other;
    char *dir = copy_migrations(), *got;
    char err[512] = "";

    write_file(dir, "9999_it_fail.sql",
               "CREATE TABLE it_should_vanish (x int);\n"
               "INSERT INTO it_should_vanish VALUES (1);\n"
               "SELECT 1 / 0;\n",
               "w");
    /* names outside ^[0-9]{4}_[a-z0-9_]+\.sql$ are ignored, whatever they hold */
    write_file(dir, "README.md", "not sql", "w");
    write_file(dir, "0003_Bad.sql", "SELECT syntax error", "w");
    write_file(dir, "12345_x.sql", "SELECT syntax error", "w");
    write_file(dir, "0004_x.sql~", "SELECT syntax error", "w");
    write_file(dir, "abc.sql", "SELECT syntax error", "w");
    ck_assert_int_eq(brk_migrate_expected(dir), (int)brk_migrations_count + 1);

    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_EDB);
    ck_assert_msg(strstr(err, "migration 9999_it_fail.sql failed: division by zero") != NULL,
                  "message: %s", err);
    ck_assert_ptr_null(tst_pg_scalar(c, "SELECT to_regclass('it_should_vanish')::text"));
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations "
                                    "WHERE name = '9999_it_fail.sql'"),
                     0);
    /* the files before it did apply, each in its own transaction */
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    /* the connection is idle and the lock is free for another broker */
    ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
    other = tst_pg_connect("it_migrate_fail");
    got = tst_pg_scalar(other, "SELECT pg_try_advisory_lock(" LOCK_KEY ")::text");
    ck_assert_str_eq(got, "true");
    free(got);
    PQfinish(other);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(syntax_error_names_the_line)
{
    PGconn *c = fresh("it_migrate_syntax", 1);
    char *dir = copy_migrations();
    char err[512] = "";

    write_file(dir, "9997_it_syntax.sql",
               "-- caf\xc3\xa9: multi-byte characters before the error count as one each\n"
               "CREATE TABLE it_syntax (x int);\n"
               "\n"
               "SELECT FROM WHERE;\n",
               "w");
    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_EDB);
    ck_assert_msg(strstr(err, "migration 9997_it_syntax.sql failed at line 4: syntax error") !=
                      NULL,
                  "message: %s", err);
    ck_assert_ptr_null(tst_pg_scalar(c, "SELECT to_regclass('it_syntax')::text"));
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(file_with_own_commit_is_refused)
{
    PGconn *c = fresh("it_migrate_commit", 1);
    char *dir = copy_migrations();
    char err[512] = "";

    write_file(dir, "9998_it_commit.sql", "COMMIT;\nCREATE TABLE it_x (x int);\n", "w");
    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_EDB);
    ck_assert_msg(strstr(err, "9998_it_commit.sql") != NULL, "message: %s", err);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations "
                                    "WHERE name = '9998_it_commit.sql'"),
                     0);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(missing_dir_is_eio)
{
    PGconn *c = fresh("it_migrate_nodir", 0);
    char err[512] = "";

    ck_assert_int_eq(brk_migrate_run(c, "/nonexistent/migrations", err, sizeof err), BRK_EIO);
    ck_assert_msg(strstr(err, "'/nonexistent/migrations'") != NULL, "message: %s", err);
    ck_assert_int_eq(brk_migrate_expected("/nonexistent/migrations"), BRK_EIO);
    PQfinish(c);
}
END_TEST

START_TEST(keys_create)
{
    PGconn *c = fresh("it_migrate_keys", 1);
    char token[BRK_TOKEN_MAX], token2[BRK_TOKEN_MAX], sql[512], name[BRK_KEY_NAME_MAX + 2];
    char want[65], *got;
    const char *secret;
    brk_token_t t;

    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ISSUER | BRK_ROLE_AUDITOR, "ci", 1, token,
                                     sizeof token),
                     0);
    ck_assert_int_eq(brk_token_parse(token, strlen(token), &t), 0);
    ck_assert_str_eq(t.tenant, "acme");
    secret = token + strlen(token) - BRK_SECRET_B64_LEN;
    sha256_hex(secret, BRK_SECRET_B64_LEN, want);
    ck_assert_str_eq(t.secret_hash, want);

    /* the database's own sha256 of the secret text matches the stored hash */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM api_keys WHERE tenant_id = 'acme' AND key_id = '%s' AND "
             "secret_hash = encode(sha256(convert_to('%s', 'UTF8')), 'hex') AND "
             "roles = '{issuer,auditor}' AND can_delegate AND name = 'ci' AND revoked_at IS NULL",
             t.key_id, secret);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM tenants WHERE tenant_id = 'acme'"), 1);

    /* a second key: same tenant row, another key id, no name */
    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ADMIN, NULL, 0, token2, sizeof token2), 0);
    ck_assert_str_ne(token, token2);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM tenants"), 1);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM api_keys WHERE tenant_id = 'acme' "
                                    "AND (name IS NOT NULL OR roles = '{admin}')"),
                     2);
    got = tst_pg_scalar(c, "SELECT count(DISTINCT key_id)::text FROM api_keys");
    ck_assert_str_eq(got, "2");
    free(got);

    /* refusals write nothing */
    ck_assert_int_eq(brk_keys_create(c, "Acme", BRK_ROLE_ADMIN, NULL, 0, token2, sizeof token2),
                     BRK_EINVAL);
    ck_assert_int_eq(brk_keys_create(c, "acme", 0, NULL, 0, token2, sizeof token2), BRK_EINVAL);
    ck_assert_int_eq(brk_keys_create(c, "acme", 1u << 6, NULL, 0, token2, sizeof token2),
                     BRK_EINVAL);
    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ADMIN, NULL, 0, token2, 10), BRK_EINVAL);
    memset(name, 'n', BRK_KEY_NAME_MAX + 1);
    name[BRK_KEY_NAME_MAX + 1] = '\0';
    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ADMIN, name, 0, token2, sizeof token2),
                     BRK_EINVAL);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM api_keys"), 2);
    name[BRK_KEY_NAME_MAX] = '\0';
    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ADMIN, name, 0, token2, sizeof token2), 0);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM api_keys"), 3);
    PQfinish(c);
}
END_TEST

START_TEST(keys_create_without_schema_is_edb)
{
    PGconn *c = fresh("it_migrate_keys_noschema", 0);
    char token[BRK_TOKEN_MAX];

    ck_assert_int_eq(brk_keys_create(c, "acme", BRK_ROLE_ADMIN, NULL, 0, token, sizeof token),
                     BRK_EDB);
    ck_assert_str_eq(token, "");
    ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
    PQfinish(c);
}
END_TEST

struct runner {
    PGconn *conn;
    pthread_barrier_t *start;
    int rc;
    char err[512];
};

static void *run_migrate(void *arg)
{
    struct runner *r = arg;

    pthread_barrier_wait(r->start);
    r->rc = brk_migrate_run(r->conn, NULL, r->err, sizeof r->err);
    return NULL;
}

START_TEST(concurrent_runners)
{
    pthread_barrier_t start;
    pthread_t th[2];
    struct runner r[2];
    PGconn *c;
    int i;

    tst_pg_createdb("it_migrate_race");
    pthread_barrier_init(&start, NULL, 2);
    for (i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].conn = tst_pg_connect("it_migrate_race");
        r[i].start = &start;
    }
    for (i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, run_migrate, &r[i]), 0);
    for (i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < 2; i++) {
        ck_assert_msg(r[i].rc == 0, "runner %d: %s", i, r[i].err);
        PQfinish(r[i].conn);
    }
    pthread_barrier_destroy(&start);

    c = tst_pg_connect("it_migrate_race");
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_migrations"),
                     (long)brk_migrations_count);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(DISTINCT name) FROM schema_migrations"),
                     (long)brk_migrations_count);
    PQfinish(c);
}
END_TEST

static Suite *migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("migrate");

    tcase_add_test(tc, fresh_db_gets_everything);
    tcase_add_test(tc, second_run_is_a_noop);
    tcase_add_test(tc, identical_dir_matches_embedded);
    tcase_add_test(tc, changed_file_is_a_conflict);
    tcase_add_test(tc, failing_file_leaves_no_trace);
    tcase_add_test(tc, syntax_error_names_the_line);
    tcase_add_test(tc, file_with_own_commit_is_refused);
    tcase_add_test(tc, missing_dir_is_eio);
    tcase_add_test(tc, concurrent_runners);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, keys_create);
    tcase_add_test(tc, keys_create_without_schema_is_edb);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(migrate_suite());
}
