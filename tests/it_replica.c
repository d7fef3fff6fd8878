/*
 * it_replica: GSAP_READ_DATABASE_URL. Finance and auditor reads (routes flagged
 * BRK_ROUTE_REPLICA_OK) go to the read URL; everything else, authentication included, stays
 * on the primary. The "replica" here is a snapshot of the primary (CREATE DATABASE ...
 * TEMPLATE), so a row written after the snapshot is visible on one side only and shows which
 * side answered: exactly what a lagging replica looks like to a client.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define DB "it_replica"
#define RO "it_replica_ro"

static tst_broker_t B;
static char *TOKEN;

static void sql(const char *db, const char *q)
{
    PGconn *pg = tst_pg_connect(db);
    PGresult *res = PQexec(pg, q);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", q, PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
}

static char *authorize(void)
{
    tst_resp_t r;
    const char *body = "{\"accord_template\":\"default\",\"operation\":{"
                       "\"command_hash\":\"" H("1") "\",\"corpus_entry_cid\":\"" H("2") "\","
                       "\"parameters_cid\":\"" H("3") "\"}}";
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", TOKEN, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    return ctx;
}

static int get_status(const char *path)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, path, TOKEN, &r), 0);
    int st = r.status;
    tst_resp_clear(&r);
    return st;
}

/* The status of path once this broker's pools have connected: each worker's pools connect in
 * the background after the start, and a worker whose read pool is not up yet answers 503. */
static int settled(const char *path)
{
    int st = 0;
    for (int i = 0; i < 200 && (st = get_status(path)) == 503; i++)
        usleep(50 * 1000);
    return st;
}

static int wait_ready(void)
{
    return settled("/readyz");
}

static long count_acs(const char *db, const char *ctx)
{
    char *q = tst_fmt("SELECT count(*) FROM acs WHERE context_id = '%s'", ctx);
    PGconn *pg = tst_pg_connect(db);
    long n = tst_pg_long(pg, q);
    PQfinish(pg);
    free(q);
    return n;
}

START_TEST(reads_follow_the_read_url)
{
    /* Before the snapshot: a context both sides have. */
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    TOKEN = tst_keys_create(&B, "acme", "issuer,executor,auditor,finance");
    char *revoked = tst_keys_create(&B, "acme", "auditor");
    char *before = authorize();
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);

    sql("postgres", "DROP DATABASE IF EXISTS " RO);
    sql("postgres", "CREATE DATABASE " RO " TEMPLATE " DB);

    char *ro = tst_fmt("GSAP_READ_DATABASE_URL=%s", tst_pg_conninfo(RO));
    const char *env[] = {ro, NULL};
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_conninfo(DB), env), 0);
    ck_assert_int_eq(wait_ready(), 200);

    /* A write after the snapshot lands on the primary only... */
    char *after = authorize();
    ck_assert_int_eq(count_acs(DB, after), 1);
    ck_assert_int_eq(count_acs(RO, after), 0);

    /* ...so the session page, an auditor read, answers from the read URL: it has the old
     * context and not the new one. Authentication (the key lookup) went to the primary or
     * the token would not work on either. */
    char *p = tst_fmt("/governance/session/%s", before);
    ck_assert_int_eq(settled(p), 200);
    free(p);
    p = tst_fmt("/governance/session/%s", after);
    ck_assert_int_eq(settled(p), 404);
    free(p);
    ck_assert_int_eq(settled("/governance/denials/"), 200);
    ck_assert_int_eq(settled("/billing/invoices/"), 200);
    /* A key revoked on the primary after the snapshot is still valid on the replica: a route
     * answered from the replica must still authenticate on the primary, or the lag would let
     * the revoked key in. */
    char *rq = tst_fmt("UPDATE api_keys SET revoked_at = now() WHERE key_id = '%.16s' RETURNING 1",
                       strrchr(revoked, '.') - 16);
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_pg_long(pg, rq), 1);
    PQfinish(pg);
    free(rq);
    tst_resp_t rr;
    ck_assert_int_eq(tst_get(B.port, "/governance/denials/", revoked, &rr), 0);
    ck_assert_int_eq(rr.status, 401);
    tst_resp_clear(&rr);
    free(revoked);

    /* The replica catches up: the same page answers. */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    sql("postgres", "DROP DATABASE " RO);
    sql("postgres", "CREATE DATABASE " RO " TEMPLATE " DB);
    ck_assert_int_eq(tst_broker_restart(&B), 0);
    ck_assert_int_eq(wait_ready(), 200);
    p = tst_fmt("/governance/session/%s", after);
    ck_assert_int_eq(settled(p), 200);
    free(p);

    tst_broker_clear(&B);
    free(before), free(after), free(ro), free(TOKEN);
}
END_TEST

START_TEST(an_unreachable_read_url_fails_reads_only)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    TOKEN = tst_keys_create(&B, "acme", "issuer,executor,auditor,finance");
    char *ctx = authorize();
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);

    const char *env[] = {"GSAP_READ_DATABASE_URL=host=/nonexistent-gsap-replica dbname=x "
                         "connect_timeout=1",
                         NULL};
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_conninfo(DB), env), 0);
    /* Not ready: the finance and auditor routes cannot answer. */
    ck_assert_int_eq(get_status("/readyz"), 503);
    char *p = tst_fmt("/governance/session/%s", ctx);
    ck_assert_int_eq(get_status(p), 503);
    free(p);
    /* Writes do not depend on the replica. */
    char *more = authorize();
    ck_assert_int_eq(count_acs(DB, more), 1);
    tst_broker_clear(&B);
    free(ctx), free(more), free(TOKEN);
}
END_TEST

START_TEST(read_url_needs_an_external_database)
{
    /* The embedded cluster has no replica: the start is refused with a message naming the
     * variable, and nothing is created. */
    const char *env[] = {"GSAP_READ_DATABASE_URL=dbname=x", NULL};
    ck_assert_int_ne(tst_broker_start(&B, NULL, env), 0);
    char *log = tst_broker_log(&B);
    ck_assert_msg(log != NULL && strstr(log, "GSAP_READ_DATABASE_URL needs GSAP_DATABASE_URL"),
                  "log: %s", log ? log : "(none)");
    free(log);
    tst_broker_clear(&B);
    /* A malformed URL is refused the same way. */
    const char *bad[] = {"GSAP_READ_DATABASE_URL=postgresql://[", NULL};
    ck_assert_int_ne(tst_broker_start(&B, tst_pg_createdb(DB), bad), 0);
    log = tst_broker_log(&B);
    ck_assert_msg(log != NULL && strstr(log, "invalid GSAP_READ_DATABASE_URL"), "log: %s",
                  log ? log : "(none)");
    ck_assert_ptr_null(strstr(log, "postgresql://[")); /* never echoed: it may hold a password */
    free(log);
    tst_broker_clear(&B);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_replica");
    TCase *tc = tcase_create("replica");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, reads_follow_the_read_url);
    tcase_add_test(tc, an_unreachable_read_url_fails_reads_only);
    tcase_add_test(tc, read_url_needs_an_external_database);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
