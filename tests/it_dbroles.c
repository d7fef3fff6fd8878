/*
 * it_dbroles: the broker's own database roles on its embedded default. The real binary runs
 * on its embedded cluster, bills a CR and finalizes the invoice; then, connected exactly as
 * the broker's runtime connections are (the runtime role, password from GSAP_DATA_DIR/pgpass),
 * the test tries what a compromised broker process would try against the finalized invoice:
 * switching the immutability triggers off, editing the row, deleting and truncating. Each is
 * refused by PostgreSQL; the schema owner, by contrast, owns the tables.
 */
#include <check.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H64 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define LINE_WAIT_S 60

/* connect_as: the embedded cluster of broker b, as role, with the broker's password file. */
static PGconn *connect_as(const tst_broker_t *b, const char *role)
{
    char *info = tst_fmt("host=%s/pg/run port=5432 dbname=gsap user=%s passfile=%s/pgpass", b->dir,
                     role, b->dir);
    PGconn *c = PQconnectdb(info);

    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s: %s", info, PQerrorMessage(c));
    free(info);
    return c;
}

static char *scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *v;

    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
                  PQerrorMessage(c));
    v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* refused: sql must fail with SQLSTATE want (42501 insufficient privilege, or the trigger's
 * own error for a permitted statement that the trigger stops). */
static void refused(PGconn *c, const char *sql, const char *want)
{
    PGresult *r = PQexec(c, sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

    ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: was allowed", sql);
    ck_assert_msg(state != NULL && strcmp(state, want) == 0, "%s: %s (want %s): %s", sql,
                  state ? state : "-", want, PQerrorMessage(c));
    PQclear(r);
}

START_TEST(runtime_role_cannot_unfreeze_a_finalized_invoice)
{
    static const char *const env[] = {"GSAP_FN_POLL_MS=200", NULL};
    tst_broker_t b = {0};
    tst_resp_t r;
    PGconn *app, *owner;
    char *token, *body, *ctx, *cr_id, *sql, *inv, *path, *v;

    ck_assert_int_eq(tst_broker_start(&b, NULL, env), 0);
    token = tst_keys_create(&b, "default", "issuer,executor,finance");

    /* one CR, billed */
    body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
               "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
               H64, H64, H64);
    ck_assert_int_eq(tst_post_json(b.port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    ctx = strdup(json_string_value(json_object_get(r.json, "context_id")));
    tst_resp_clear(&r);
    free(body);
    body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
               "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"%s\","
               "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
               "\"chronicle\":{\"session_id\":\"s\",\"behavior_state\":\"verified\"}}",
               ctx, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", H64, H64, H64);
    ck_assert_int_eq(tst_post_json(b.port, "/governance/complete/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "complete: %d %s", r.status, r.body);
    cr_id = strdup(json_string_value(json_object_get(r.json, "cr_id")));
    tst_resp_clear(&r);

    app = connect_as(&b, "gsap_app");
    sql = tst_fmt("SELECT count(*) FROM invoice_lines WHERE cr_id = '%s'", cr_id);
    for (int i = 0; i < LINE_WAIT_S * 10; i++) {
        v = scalar(app, sql);
        int done = strcmp(v, "1") == 0;
        free(v);
        if (done)
            break;
        usleep(100 * 1000);
    }
    free(sql);
    sql = tst_fmt("SELECT invoice_id FROM invoice_lines WHERE cr_id = '%s'", cr_id);
    inv = scalar(app, sql);
    free(sql);
    path = tst_fmt("/billing/invoices/%s/finalize", inv);
    ck_assert_int_eq(tst_post_json(b.port, path, token, "{}", &r), 0);
    ck_assert_msg(r.status == 200, "finalize: %d %s", r.status, r.body);
    tst_resp_clear(&r);

    /* the broker's runtime role: not a superuser, owns nothing */
    v = scalar(app, "SELECT current_user || ' ' || rolsuper FROM pg_roles WHERE rolname = "
                    "current_user");
    ck_assert_str_eq(v, "gsap_app false");
    free(v);
    v = scalar(app, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND "
                    "tableowner = current_user");
    ck_assert_str_eq(v, "0");
    free(v);

    /* what it must not do to the finalized invoice */
    refused(app, "ALTER TABLE invoices DISABLE TRIGGER invoices_immutable", "42501");
    refused(app, "ALTER TABLE invoices DISABLE TRIGGER ALL", "42501");
    refused(app, "ALTER TABLE invoice_lines DISABLE TRIGGER USER", "42501");
    refused(app, "SET session_replication_role = replica", "42501");
    refused(app, "DROP TRIGGER invoices_immutable ON invoices", "42501");
    refused(app, "DELETE FROM invoices", "42501");
    refused(app, "TRUNCATE invoices", "42501");
    refused(app, "DELETE FROM crs", "42501");
    refused(app, "UPDATE schema_migrations SET sha256 = 'x'", "42501");
    /* nor make the owner's next run re-apply (or skip) a function file */
    refused(app, "UPDATE schema_repeatables SET sha256 = 'x'", "42501");
    refused(app, "INSERT INTO schema_repeatables (name, sha256) VALUES ('99_x.sql', 'x')",
            "42501");
    sql = tst_fmt("UPDATE invoices SET total_minor = total_minor + 1 WHERE invoice_id = '%s'", inv);
    refused(app, sql, "23000"); /* allowed to UPDATE, and the trigger refuses this one */
    free(sql);
    sql = tst_fmt("SELECT status FROM invoices WHERE invoice_id = '%s'", inv);
    v = scalar(app, sql);
    ck_assert_str_eq(v, "finalized");
    free(v);
    free(sql);
    PQfinish(app);

    owner = connect_as(&b, "gsap_owner");
    v = scalar(owner, "SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'");
    ck_assert_str_eq(v, "gsap_owner");
    free(v);
    PQfinish(owner);

    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    free(token), free(body), free(ctx), free(cr_id), free(inv), free(path);
}
END_TEST

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* migrate: `gsap-broker migrate` with the two URLs; its exit status, stderr in *err. */
static int migrate(const char *runtime, const char *owner, char **err)
{
    char dir[] = "/tmp/gsap-roles-XXXXXX";
    char *cmd, *errfile;
    FILE *f;
    long n;
    int st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    errfile = tst_fmt("%s/err", dir);
    cmd = tst_fmt("GSAP_DATA_DIR=%s GSAP_DATABASE_URL='%s' GSAP_OWNER_DATABASE_URL='%s' %s migrate "
              ">/dev/null 2>%s",
              dir, runtime, owner, getenv("GSAP_BROKER_BIN"), errfile);
    st = system(cmd);
    f = fopen(errfile, "r");
    ck_assert_ptr_nonnull(f);
    *err = calloc(1, 4096);
    n = (long)fread(*err, 1, 4095, f);
    (void)n;
    fclose(f);
    free(cmd);
    cmd = tst_fmt("rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd), free(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(external_database_with_two_roles)
{
    char own[64], app[64], db[64], *sql, *runtime, *owner, *super, *err, *v;
    PGconn *su = tst_pg_connect("postgres"), *c;

    snprintf(own, sizeof own, "gsap_t_own_%d", (int)getpid());
    snprintf(app, sizeof app, "gsap_t_app_%d", (int)getpid());
    snprintf(db, sizeof db, "gsap_t_roles_%d", (int)getpid());
    sql = tst_fmt("CREATE ROLE %s LOGIN", own);
    exec_ok(su, sql);
    free(sql);
    sql = tst_fmt("CREATE ROLE %s LOGIN", app);
    exec_ok(su, sql);
    free(sql);
    sql = tst_fmt("CREATE DATABASE %s OWNER %s", db, own);
    exec_ok(su, sql);
    free(sql);
    runtime = tst_fmt("host=%s port=%s dbname=%s user=%s", getenv("GSAP_TEST_PGHOST"),
                  getenv("GSAP_TEST_PGPORT"), db, app);
    owner = tst_fmt("host=%s port=%s dbname=%s user=%s", getenv("GSAP_TEST_PGHOST"),
                getenv("GSAP_TEST_PGPORT"), db, own);
    super = tst_fmt("host=%s port=%s dbname=%s user=postgres", getenv("GSAP_TEST_PGHOST"),
                getenv("GSAP_TEST_PGPORT"), db);

    /* a superuser as the runtime role is refused: it could switch the triggers off */
    ck_assert_int_eq(migrate(super, owner, &err), 1);
    ck_assert_msg(strstr(err, "is a superuser") != NULL, "%s", err);
    free(err);
    /* the owner as the runtime role too */
    ck_assert_int_eq(migrate(owner, owner, &err), 1);
    ck_assert_msg(strstr(err, "owns part of the schema") != NULL, "%s", err);
    free(err);

    ck_assert_int_eq(migrate(runtime, owner, &err), 0);
    free(err);
    c = PQconnectdb(runtime);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    v = scalar(c, "SELECT count(*) > 0 FROM schema_migrations");
    ck_assert_str_eq(v, "t");
    free(v);
    v = scalar(c, "SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'");
    ck_assert_str_eq(v, own);
    free(v);
    refused(c, "ALTER TABLE invoices DISABLE TRIGGER ALL", "42501");
    refused(c, "DELETE FROM crs", "42501");
    refused(c, "CREATE TABLE mine (x int)", "42501");
    PQfinish(c);

    sql = tst_fmt("DROP DATABASE %s WITH (FORCE)", db);
    exec_ok(su, sql);
    free(sql);
    sql = tst_fmt("DROP ROLE %s", app);
    exec_ok(su, sql);
    free(sql);
    sql = tst_fmt("DROP ROLE %s", own);
    exec_ok(su, sql);
    free(sql);
    PQfinish(su);
    free(runtime), free(owner), free(super);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_dbroles");
    TCase *tc = tcase_create("roles");

    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, runtime_role_cannot_unfreeze_a_finalized_invoice);
    tcase_add_test(tc, external_database_with_two_roles);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
