/*
 * it_tlog: the per-tenant transparency log against the real binary and PostgreSQL, with the
 * function runtime running: every accepted CR's lineage CID is appended once, gap-free from 0,
 * even with two brokers on one database; the stored leaf hashes and roots are the RFC 6962
 * ones brk_merkle computes; the database refuses to rewrite the log.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brk_crypto.h"
#include "brk_merkle.h"
#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_tlog"
#define LOG_WAIT_S 30 /* the bound on "the entry appears": the runtime wakes on NOTIFY */
#define MAX_CRS 64

static tst_broker_t B;
static char *SHELL, *OTHER, *AUDITOR, *STRANGER;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=1", NULL};

static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s;
    va_start(ap, f);
    ck_assert_int_ge(vasprintf(&s, f, ap), 0);
    va_end(ap);
    return s;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long longf(PGconn *pg, const char *f, ...)
{
    va_list ap;
    char *sql;
    va_start(ap, f);
    ck_assert_int_ge(vasprintf(&sql, f, ap), 0);
    va_end(ap);
    long v = tst_pg_long(pg, sql);
    free(sql);
    return v;
}

static char *scalarf(PGconn *pg, const char *f, ...)
{
    va_list ap;
    char *sql;
    va_start(ap, f);
    ck_assert_int_ge(vasprintf(&sql, f, ap), 0);
    va_end(ap);
    char *v = tst_pg_scalar(pg, sql);
    free(sql);
    return v;
}

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    OTHER = tst_keys_create(&B, "globex", "issuer,executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    STRANGER = tst_keys_create(&B, "globex", "auditor");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(SHELL), free(OTHER), free(AUDITOR), free(STRANGER);
}

/* Issues an AC and posts one CR on it through the broker at port; the receipt. */
static json_t *post_cr(unsigned short port, const char *token)
{
    tst_resp_t r;
    char *ab = fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                   "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                   CMD, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(port, "/governance/authorize/", token, ab, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(str(r.json, "context_id"));
    tst_resp_clear(&r);
    char *cb = fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                   "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":"
                   "\"2026-01-01T00:00:01Z\",\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
                   "\"parameters_cid\":\"%s\",\"chronicle\":{\"session_id\":\"s\","
                   "\"behavior_state\":\"verified\"}}",
                   ctx, CMD, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(port, "/governance/complete/", token, cb, &r), 0);
    ck_assert_msg(r.status == 200, "complete: %d %s", r.status, r.body);
    json_t *rc = json_incref(r.json);
    tst_resp_clear(&r);
    free(ab), free(cb), free(ctx);
    return rc;
}

/* Polls until the tenant's log has want entries, for up to LOG_WAIT_S; the last count. */
static long wait_log(PGconn *pg, const char *tenant, long want)
{
    long n = -1;
    for (int i = 0; i < LOG_WAIT_S * 10; i++) {
        if ((n = longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = '%s'", tenant)) >=
            want)
            return n;
        usleep(100 * 1000);
    }
    return n;
}

/* The stored leaf and root hashes of the tenant's log are brk_merkle's, entry by entry. */
static void assert_hashes(PGconn *pg, const char *tenant, long n)
{
    brk_mhash_t leaves[MAX_CRS], want;
    char hex[2 * BRK_MERKLE_HASH_LEN + 1];
    ck_assert_int_le(n, MAX_CRS);
    for (long i = 0; i < n; i++) {
        char *cid = scalarf(pg, "SELECT lineage_cid FROM tlog_entries WHERE tenant_id = '%s' "
                                "AND idx = %ld", tenant, i);
        ck_assert_ptr_nonnull(cid);
        brk_merkle_leaf_hash(cid, strlen(cid), leaves[i]);
        brk_hex(leaves[i], BRK_MERKLE_HASH_LEN, hex);
        char *got = scalarf(pg, "SELECT encode(leaf_hash, 'hex') FROM tlog_entries WHERE "
                                "tenant_id = '%s' AND idx = %ld", tenant, i);
        ck_assert_str_eq(got, hex);
        free(got);
        brk_merkle_root(leaves, (size_t)i + 1, want);
        brk_hex(want, BRK_MERKLE_HASH_LEN, hex);
        got = scalarf(pg, "SELECT encode(root_hash, 'hex') FROM tlog_entries WHERE "
                          "tenant_id = '%s' AND idx = %ld", tenant, i);
        ck_assert_msg(strcmp(got, hex) == 0, "root of size %ld: %s, want %s", i + 1, got, hex);
        free(got), free(cid);
    }
}

/* Runs sql, which must fail. */
static void refused(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "\"%s\" succeeded", sql);
    ck_assert_ptr_nonnull(strstr(PQresultErrorMessage(res), "append-only"));
    PQclear(res);
}

START_TEST(log_append)
{
    enum { N = 12 };
    tst_broker_t b2;
    PGconn *pg = tst_pg_connect(DB);
    char *ids[N];
    ck_assert_int_eq(tst_broker_start(&b2, tst_pg_conninfo(DB), ENV), 0);
    /* two brokers on one database, CRs alternating between them, and a neighbour tenant */
    for (int i = 0; i < N; i++) {
        json_t *rc = post_cr(i % 2 ? b2.port : B.port, SHELL);
        ids[i] = strdup(str(rc, "cr_id"));
        json_decref(rc);
    }
    for (int i = 0; i < 2; i++)
        json_decref(post_cr(B.port, OTHER));
    ck_assert_int_eq(wait_log(pg, "acme", N), N);
    ck_assert_int_eq(wait_log(pg, "globex", 2), 2);
    /* one gap-free sequence per tenant, one entry per CR, its lineage CID */
    ck_assert_int_eq(longf(pg, "SELECT count(DISTINCT idx) FROM tlog_entries WHERE "
                               "tenant_id = 'acme' AND idx BETWEEN 0 AND %d", N - 1), N);
    ck_assert_int_eq(longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), N);
    ck_assert_int_eq(longf(pg, "SELECT max(idx) FROM tlog_entries WHERE tenant_id = 'globex'"),
                     1);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(longf(pg, "SELECT count(*) FROM tlog_entries e JOIN crs c USING "
                                   "(tenant_id, cr_id) WHERE e.cr_id = '%s' AND "
                                   "e.lineage_cid = c.lineage_cid", ids[i]), 1);
    }
    assert_hashes(pg, "acme", N);
    assert_hashes(pg, "globex", 2);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs r JOIN events e USING "
                                     "(tenant_id, event_id) WHERE r.function = 'tlog' AND "
                                     "e.type = 'GSAP_CR_RECEIVED' AND r.done_at IS NULL"),
                     0);
    /* appending a logged CR again returns its index and changes nothing */
    long idx3 = longf(pg, "SELECT idx FROM tlog_entries WHERE cr_id = '%s'", ids[3]);
    char *cid3 = scalarf(pg, "SELECT lineage_cid FROM crs WHERE cr_id = '%s'", ids[3]);
    ck_assert_int_eq(longf(pg, "SELECT tlog_append('acme', '%s', '%s')", ids[3], cid3), idx3);
    ck_assert_int_eq(longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), N);
    /* never rewritten, even by the database owner */
    refused(pg, "UPDATE tlog_entries SET idx = idx + 100 WHERE tenant_id = 'acme'");
    refused(pg, "UPDATE tlog_entries SET lineage_cid = '" H("9") "' WHERE idx = 0");
    refused(pg, "DELETE FROM tlog_entries WHERE tenant_id = 'acme' AND idx = 11");
    refused(pg, "UPDATE tlog_heads SET size = 0 WHERE tenant_id = 'acme'");
    refused(pg, "DELETE FROM tlog_heads");
    refused(pg, "TRUNCATE tlog_entries");
    ck_assert_int_eq(longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'"), N);
    free(cid3);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    ck_assert_int_eq(tst_broker_stop(&b2), 0);
    tst_broker_clear(&b2);
    PQfinish(pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_tlog");
    TCase *tc = tcase_create("tlog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, log_append);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
