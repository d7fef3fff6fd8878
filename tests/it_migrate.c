/*
 * it_migrate: the migration runner and key creation against the shared throwaway cluster
 * (tests/tst_pg.h). Each test makes its own database. Tests that need a migrations directory
 * copy $GSAP_SOURCE_DIR/migrations into a temporary directory and edit the copy.
 *
 * The repeatable files (migrations/functions/): a database upgraded from the previous
 * release (0001..0006, whose functions lived in the numbered files) ends with exactly the
 * function and trigger
 * definitions of a fresh one; a changed file is applied again, an unchanged one is not. And
 * the lineage bytes SQL hashes (gsap_lineage_cid) are the ones brk_jcs canonicalizes.
 */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_keys.h"
#include "brk_migrate.h"
#include "brk_pq.h"
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

/*
 * copy_files: the regular files of from whose names start with a prefix of the
 * NULL-terminated list (every file when prefixes is NULL) into to, except those ending in
 * .md. Subdirectories are skipped.
 */
static void copy_files(const char *from, const char *to, const char *const *prefixes)
{
    char path[1024], buf[8192];
    DIR *d;
    struct dirent *e;
    struct stat st;

    d = opendir(from);
    ck_assert_msg(d != NULL, "cannot open %s", from);
    while ((e = readdir(d)) != NULL) {
        FILE *in, *out;
        size_t n, i;
        int keep = prefixes == NULL;
        if (e->d_name[0] == '.')
            continue;
        for (i = 0; prefixes != NULL && prefixes[i] != NULL; i++)
            keep |= strncmp(e->d_name, prefixes[i], strlen(prefixes[i])) == 0;
        snprintf(path, sizeof path, "%s/%s", from, e->d_name);
        ck_assert_int_eq(stat(path, &st), 0);
        if (!keep || !S_ISREG(st.st_mode))
            continue;
        in = fopen(path, "rb");
        ck_assert_ptr_nonnull(in);
        snprintf(path, sizeof path, "%s/%s", to, e->d_name);
        out = fopen(path, "wb");
        ck_assert_ptr_nonnull(out);
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
        fclose(in);
        ck_assert_int_eq(fclose(out), 0);
    }
    closedir(d);
}

static const char *source_dir(void)
{
    const char *src = getenv("GSAP_SOURCE_DIR");

    ck_assert_msg(src != NULL && *src, "GSAP_SOURCE_DIR is not set");
    return src;
}

/* temp_dir: a new empty directory with an empty functions/ inside (caller rm_tree()s). */
static char *temp_dir(void)
{
    char path[512], *dir = strdup("/tmp/it_migrate.XXXXXX");

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/functions", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    return dir;
}

/* copy_migrations: a temporary copy of the source tree's migrations/ and migrations/functions/
 * (caller rm_tree()s). */
static char *copy_migrations(void)
{
    char from[512], to[512], *dir = temp_dir();

    snprintf(from, sizeof from, "%s/migrations", source_dir());
    copy_files(from, dir, NULL);
    snprintf(from, sizeof from, "%s/migrations/functions", source_dir());
    snprintf(to, sizeof to, "%s/functions", dir);
    copy_files(from, to, NULL);
    return dir;
}

/* prev_release: the numbered migrations of the previous release (0001..0006), whose
 * functions were defined in the numbered files themselves. */
static char *prev_release(void)
{
    static const char *const shipped[] = {"0001_", "0002_", "0003_", "0004_", "0005_",
                                          "0006_", NULL};
    char from[512], *dir = temp_dir();

    snprintf(from, sizeof from, "%s/migrations", source_dir());
    copy_files(from, dir, shipped);
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

/*
 * definitions: every function (pg_get_functiondef: body, arguments, volatility, SET
 * clauses), trigger and view of the public schema, as one text (caller frees).
 */
static char *definitions(PGconn *c)
{
    char *s = tst_pg_scalar(
        c, "SELECT coalesce((SELECT string_agg(pg_get_functiondef(p.oid), E'\\n' "
           "  ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)) "
           "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
           "  WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')), '') || E'\\n--\\n' || "
           "coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), E'\\n' ORDER BY t.tgname) "
           "  FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid "
           "  JOIN pg_namespace n ON n.oid = r.relnamespace "
           "  WHERE n.nspname = 'public' AND NOT t.tgisinternal), '') || E'\\n--\\n' || "
           "coalesce((SELECT string_agg(v.viewname || ': ' || "
           "  pg_get_viewdef(v.viewname::regclass), E'\\n' ORDER BY v.viewname) "
           "  FROM pg_views v WHERE v.schemaname = 'public'), '')");

    ck_assert_ptr_nonnull(s);
    return s;
}

/* upgraded: a database with the previous release applied, then this binary's migrations. */
static PGconn *upgraded(const char *db)
{
    char err[512] = "", *dir = prev_release();
    PGconn *c = fresh(db, 0);

    ck_assert_msg(brk_migrate_run(c, dir, err, sizeof err) == 0, "previous release: %s", err);
    rm_tree(dir);
    /* the previous release's state: no repeatable recorded, 0002's gsap_complete signature,
     * and the functions the numbered files defined */
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM schema_repeatables"), 0);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM pg_proc WHERE proname = 'gsap_complete'"
                                    " AND pronargs = 18"),
                     1);
    ck_assert_msg(brk_migrate_run(c, NULL, err, sizeof err) == 0, "upgrade: %s", err);
    return c;
}

static void assert_same_definitions(PGconn *a, PGconn *b)
{
    char *da = definitions(a), *db = definitions(b);

    ck_assert_uint_gt(strlen(da), 1000);
    ck_assert_msg(strcmp(da, db) == 0, "definitions differ:\n--- fresh\n%s\n--- upgraded\n%s",
                  da, db);
    free(da);
    free(db);
}

START_TEST(upgrade_from_shipped_matches_fresh)
{
    PGconn *f = fresh("it_migrate_up_fresh", 1);
    PGconn *u = upgraded("it_migrate_up_0006");
    char *names, *fresh_names;

    assert_same_definitions(f, u);
    /* the old signature was dropped by the repeatable file: one gsap_complete */
    ck_assert_int_eq(tst_pg_long(u, "SELECT count(*) FROM pg_proc WHERE proname = 'gsap_complete'"),
                     1);
    ck_assert_int_eq(tst_pg_long(u, "SELECT count(*) FROM pg_proc WHERE proname = 'gsap_elevate'"),
                     0);
    ck_assert_int_eq(tst_pg_long(u, "SELECT count(*) FROM schema_repeatables"),
                     (long)brk_repeatables_count);
    names = tst_pg_scalar(u, "SELECT string_agg(name || sha256, ',' ORDER BY name) "
                             "FROM schema_migrations");
    fresh_names = tst_pg_scalar(f, "SELECT string_agg(name || sha256, ',' ORDER BY name) "
                                   "FROM schema_migrations");
    ck_assert_str_eq(names, fresh_names);
    free(names);
    free(fresh_names);
    PQfinish(f);
    PQfinish(u);
}
END_TEST

#define APPLIED_AT "SELECT string_agg(name || applied_at::text, ',' ORDER BY name) " \
                   "FROM schema_repeatables"
#define APPLIED_AT_OTHERS "SELECT string_agg(name || applied_at::text, ',' ORDER BY name) " \
                          "FROM schema_repeatables WHERE name <> '20_gsap_deny.sql'"

/* A changed function file is applied again (and only that one); an unchanged set is not. */
START_TEST(changed_repeatable_is_reapplied)
{
    PGconn *c = fresh("it_migrate_rep", 1);
    char *dir = copy_migrations();
    char err[512] = "", path[600], *before, *after, *others, *one;

    before = tst_pg_scalar(c, APPLIED_AT);
    others = tst_pg_scalar(c, APPLIED_AT_OTHERS);
    ck_assert_msg(brk_migrate_run(c, dir, err, sizeof err) == 0, "same files: %s", err);
    after = tst_pg_scalar(c, APPLIED_AT);
    ck_assert_str_eq(before, after);
    free(after);

    snprintf(path, sizeof path, "%s/functions", dir);
    write_file(path, "20_gsap_deny.sql",
               "COMMENT ON FUNCTION gsap_emit(text, text, text, jsonb) IS 'reapplied';\n", "a");
    ck_assert_msg(brk_migrate_run(c, dir, err, sizeof err) == 0, "changed file: %s", err);
    one = tst_pg_scalar(c, "SELECT obj_description('gsap_emit(text, text, text, jsonb)'"
                           "::regprocedure, 'pg_proc')");
    ck_assert_str_eq(one, "reapplied");
    free(one);
    after = tst_pg_scalar(c, APPLIED_AT);
    ck_assert_str_ne(before, after);
    free(after);
    after = tst_pg_scalar(c, APPLIED_AT_OTHERS);
    ck_assert_str_eq(others, after);
    free(after);
    free(before);
    free(others);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

/* A failing function file leaves its function and its record as they were. */
START_TEST(failing_repeatable_leaves_no_trace)
{
    PGconn *c = fresh("it_migrate_repfail", 1);
    char *dir = copy_migrations();
    char err[512] = "", path[600], *before, *after;

    before = tst_pg_scalar(c, "SELECT sha256 FROM schema_repeatables "
                              "WHERE name = '20_gsap_deny.sql'");
    snprintf(path, sizeof path, "%s/functions", dir);
    write_file(path, "20_gsap_deny.sql",
               "DROP FUNCTION gsap_emit(text, text, text, jsonb);\nSELEC 1;\n", "a");
    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_EDB);
    ck_assert_msg(strstr(err, "migration functions/20_gsap_deny.sql failed at line") != NULL,
                  "message: %s", err);
    after = tst_pg_scalar(c, "SELECT sha256 FROM schema_repeatables "
                             "WHERE name = '20_gsap_deny.sql'");
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM pg_proc WHERE proname = 'gsap_emit'"), 1);
    free(before);
    free(after);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

START_TEST(dir_without_functions_is_eio)
{
    PGconn *c = fresh("it_migrate_nofn", 0);
    char *dir = copy_migrations();
    char err[512] = "", path[600], cmd[700];

    snprintf(path, sizeof path, "%s/functions", dir);
    snprintf(cmd, sizeof cmd, "rm -r '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(brk_migrate_run(c, dir, err, sizeof err), BRK_EIO);
    ck_assert_msg(strstr(err, "/functions'") != NULL, "message: %s", err);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM pg_tables "
                                    "WHERE tablename = 'schema_migrations'"),
                     0);
    rm_tree(dir);
    PQfinish(c);
}
END_TEST

/*
 * The lineage object: SQL hashes format()'s bytes (10_gsap_lineage_cid.sql), the broker
 * canonicalizes a JSON object (brk_jcs). Same inputs, same CID, for a first CR (prev null),
 * a later one, and the largest sequence. ac_cid, chronicle_cid and cr_cid are NOT NULL
 * gsap_cid columns wherever the function is called, so only prev is ever null.
 */
START_TEST(lineage_sql_matches_jcs)
{
    static const struct {
        const char *prev;
        int seq;
    } cases[] = {
        {NULL, 1},
        {"sha256:0000000000000000000000000000000000000000000000000000000000000000", 2},
        {"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", 2147483647},
    };
    const char *ac = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const char *chron = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const char *cr = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    PGconn *c = fresh("it_migrate_lineage", 1);
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char seq[16], want[BRK_CID_LEN + 1], bytes_cid[BRK_CID_LEN + 1];
        const char *params[5] = {ac, chron, cr, cases[i].prev, seq};
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:I}", "ac_cid", ac, "chronicle_cid", chron,
                              "cr_cid", cr, "prev_lineage_cid",
                              cases[i].prev ? json_string(cases[i].prev) : json_null(),
                              "sequence", (json_int_t)cases[i].seq);
        char *canon = NULL;
        size_t len = 0;
        PGresult *r;

        ck_assert_ptr_nonnull(o);
        snprintf(seq, sizeof seq, "%d", cases[i].seq);
        ck_assert_int_eq(brk_jcs_cid(o, want), 0);
        ck_assert_int_eq(brk_jcs_canonicalize(o, &canon, &len), 0);
        brk_cid_of_bytes(canon, len, bytes_cid);
        ck_assert_str_eq(bytes_cid, want);
        r = PQexecParams(c, "SELECT gsap_lineage_cid($1, $2, $3, $4, $5::integer)", 5, NULL,
                         params, NULL, NULL, 0);
        ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        ck_assert_msg(strcmp(PQgetvalue(r, 0, 0), want) == 0,
                      "case %zu: sql %s, jcs %s over %s", i, PQgetvalue(r, 0, 0), want, canon);
        PQclear(r);
        free(canon);
        json_decref(o);
    }
    PQfinish(c);
}
END_TEST

/*
 * 0022 rewrote the format checks every receipt runs (the gsap_cid domain, crs.cr_id,
 * acs.context_id) without bounded repetition. Each must accept exactly what the pattern it
 * replaced accepted: the installed constraint against that pattern, on edge cases (lengths
 * one off, case, a trailing newline, a multibyte character, the self- bounds).
 */
static int check_passes(PGconn *c, const char *table, const char *con, const char *cols,
                        const char *v, const char *self)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT format('SELECT (%%s) IS NOT FALSE FROM (SELECT %s) x', "
             "pg_get_expr(conbin, conrelid)) FROM pg_constraint "
             "WHERE conrelid = '%s'::regclass AND conname = '%s'", cols, table, con);
    char *q = tst_pg_scalar(c, sql);
    ck_assert_ptr_nonnull(q);
    const char *params[2] = {v, self};
    PGresult *r = PQexecParams(c, q, self ? 2 : 1, NULL, params, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", q, PQerrorMessage(c));
    int ok = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    free(q);
    return ok;
}

static int matches(PGconn *c, const char *pattern, const char *v)
{
    const char *params[2] = {v, pattern};
    PGresult *r = PQexecParams(c, "SELECT $1 ~ $2", 2, NULL, params, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    int ok = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return ok;
}

START_TEST(format_checks_match_their_patterns)
{
    PGconn *c = fresh("it_migrate_checks", 1);
    char hex64[65], v[160];
    memset(hex64, 'a', 64);
    hex64[64] = '\0';
    const char *cids[] = {"sha256:", "SHA256:", "sha256;", "sha256:g", "", "sha256:\n", NULL};
    /* the domain: a cast succeeds exactly when the old pattern matched */
    for (int n = 62; n <= 66; n++) {
        for (int k = 0; cids[k] != NULL; k++) {
            for (int variant = 0; variant < 5; variant++) {
                snprintf(v, sizeof v, "%s%.*s", cids[k], n > 64 ? 64 : n, hex64);
                size_t len = strlen(v);
                if (n > 64)
                    snprintf(v + len, sizeof v - len, "%.*s", n - 64, "00");
                len = strlen(v);
                if (variant == 1 && len > 8)
                    v[8] = 'A'; /* upper case */
                if (variant == 2 && len + 1 < sizeof v)
                    memcpy(v + len, "\n", 2); /* a trailing newline */
                if (variant == 3 && len > 10)
                    memcpy(v + len - 2, "\xc3\xa9", 2); /* two bytes, one character: é */
                if (variant == 4 && len > 8)
                    v[8] = '0';
                const char *params[1] = {v};
                PGresult *r =
                    PQexecParams(c, "SELECT $1::gsap_cid", 1, NULL, params, NULL, NULL, 0);
                int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
                if (!ok)
                    ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23514");
                PQclear(r);
                ck_assert_msg(ok == matches(c, "^sha256:[0-9a-f]{64}$", v), "gsap_cid '%s'", v);
            }
        }
    }
    ck_assert_int_eq(check_passes(c, "crs", "crs_cr_id_check", "$1::text AS cr_id",
                                  "cr_0123456789abcdef0123456789abcdef", NULL), 1);
    /* crs.cr_id and acs.context_id: the expression against the old pattern */
    static const char *const ids[] = {
        "cr_0123456789abcdef0123456789abcdef", "cr_0123456789abcdef0123456789abcde",
        "cr_0123456789abcdef0123456789abcdef0", "cr_0123456789ABCDEF0123456789abcdef",
        "cr_0123456789abcdef0123456789abcde\n", "cr_0123456789abcdef0123456789abcd\xc3\xa9",
        "ctx_0123456789abcdef0123456789abcdef", "ctx_0123456789abcdef0123456789abcde",
        "ctx_0123456789abcdef0123456789abcdef0", "ctx_0123456789abcdef0123456789abcde\n",
        "ctx_0123456789abcdef0123456789abcd\xc3\xa9", "ctx_0123456789abcdeF0123456789abcdef",
        "self-", "self-a", "self-_a", "self-a_b.c-d", "self-a/b", "self-a\n", "self-\xc3\xa9",
        "self-a123456789012345678901234567890123456789012345678901234567",
        "self-a1234567890123456789012345678901234567890123456789012345678",
        "self-a12345678901234567890123456789012345678901234567890123456789", "", "x",
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ck_assert_msg(check_passes(c, "crs", "crs_cr_id_check", "$1::text AS cr_id", ids[i],
                                   NULL) == matches(c, "^cr_[0-9a-f]{32}$", ids[i]),
                      "cr_id '%s'", ids[i]);
        for (int self = 0; self < 2; self++) {
            int want = matches(c, "^ctx_[0-9a-f]{32}$", ids[i]) ||
                       (self && matches(c, "^self-[A-Za-z0-9][A-Za-z0-9._-]{0,58}$", ids[i]));
            ck_assert_msg(check_passes(c, "acs", "acs_context_id_check",
                                       "$1::text AS context_id, $2::boolean AS self_authorized",
                                       ids[i], self ? "true" : "false") == want,
                          "context_id '%s' self %d", ids[i], self);
        }
    }
    PQfinish(c);
}
END_TEST

/* brk_pq, the one blocking-statement helper: tolerated SQLSTATEs match whole codes only,
 * a scalar needs exactly one row, and a string is always one statement. */
START_TEST(pq_helpers)
{
    PGconn *c = fresh("it_migrate_pq", 0);
    const char *p1[1] = {"x"};
    char err[256] = "", out[32] = "";
    PGresult *r;

    ck_assert_int_eq(brk_pq_cmd(c, "CREATE TABLE t (v text)", 0, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(brk_pq_cmd(c, "CREATE TABLE t (v text)", 0, NULL, NULL, err, sizeof err),
                     BRK_EDB);
    ck_assert_msg(strstr(err, "already exists") != NULL, "message: %s", err);
    ck_assert_int_eq(brk_pq_cmd(c, "CREATE TABLE t (v text)", 0, NULL, "23505 42P07", err,
                                sizeof err),
                     0);
    ck_assert_int_eq(brk_pq_cmd(c, "CREATE TABLE t (v text)", 0, NULL, "42P0 2P07", err,
                                sizeof err),
                     BRK_EDB);
    ck_assert_int_eq(brk_pq_cmd(c, "INSERT INTO t VALUES ($1), ($1)", 1, p1, NULL, NULL, 0), 0);
    ck_assert_int_eq(brk_pq_scalar(c, "SELECT v FROM t", 0, NULL, out, sizeof out, err,
                                   sizeof err),
                     BRK_EDB);
    ck_assert_str_eq(err, "expected one row, got 2");
    ck_assert_int_eq(brk_pq_scalar(c, "SELECT count(*) FROM t WHERE v = $1", 1, p1, out,
                                   sizeof out, err, sizeof err),
                     0);
    ck_assert_str_eq(out, "2");
    ck_assert_ptr_null(brk_pq_exec(c, "SELECT 1; DROP TABLE t", 0, NULL, err, sizeof err));
    r = brk_pq_exec(c, "SELECT count(*) FROM t", 0, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
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

    tc = tcase_create("repeatable");
    tcase_add_test(tc, upgrade_from_shipped_matches_fresh);
    tcase_add_test(tc, changed_repeatable_is_reapplied);
    tcase_add_test(tc, failing_repeatable_leaves_no_trace);
    tcase_add_test(tc, dir_without_functions_is_eio);
    tcase_add_test(tc, lineage_sql_matches_jcs);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, keys_create);
    tcase_add_test(tc, keys_create_without_schema_is_edb);
    tcase_add_test(tc, pq_helpers);
    tcase_add_test(tc, format_checks_match_their_patterns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(migrate_suite());
}
