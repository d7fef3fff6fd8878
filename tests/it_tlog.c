/*
 * it_tlog: the per-tenant transparency log against the real binary and PostgreSQL, with the
 * function runtime running: every accepted CR's lineage CID is appended once, gap-free from 0,
 * even with two brokers on one database; the stored leaf hashes and roots are the RFC 6962
 * ones brk_merkle computes; the database refuses to rewrite the log.
 */
#include <check.h>
#include <fcntl.h>
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
#include "tst_util.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_tlog"
#define LOG_WAIT_S 30 /* the bound on "the entry appears": the runtime wakes on NOTIFY */
#define MAX_CRS 128

static tst_broker_t B;
static char *SHELL, *OTHER, *AUDITOR, *FINANCE, *STRANGER;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=1", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    OTHER = tst_keys_create(&B, "globex", "issuer,executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    STRANGER = tst_keys_create(&B, "globex", "auditor");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(SHELL), free(OTHER), free(AUDITOR), free(FINANCE), free(STRANGER);
}

/* Issues an AC and posts one CR on it through the broker at port; the receipt. */
static json_t *post_cr(unsigned short port, const char *token)
{
    tst_resp_t r;
    char *ab = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                   "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                   CMD, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(port, "/governance/authorize/", token, ab, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    char *cb = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
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
        if ((n = tst_pg_longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = '%s'",
                              tenant)) >= want)
            return n;
        usleep(100 * 1000);
    }
    return n;
}

/* leaves[0..n) := brk_merkle's leaf hashes of the lineage CIDs of the tenant's log entries. */
static void read_leaves(PGconn *pg, const char *tenant, long n, brk_mhash_t *leaves)
{
    ck_assert_int_le(n, MAX_CRS);
    for (long i = 0; i < n; i++) {
        char *cid = tst_pg_scalarf(pg,
                                   "SELECT lineage_cid FROM tlog_entries WHERE tenant_id = '%s' "
                                   "AND idx = %ld",
                                   tenant, i);
        ck_assert_ptr_nonnull(cid);
        brk_merkle_leaf_hash(cid, strlen(cid), leaves[i]);
        free(cid);
    }
}

/* The stored leaf and root hashes of the tenant's log are brk_merkle's, entry by entry. */
static void assert_hashes(PGconn *pg, const char *tenant, long n)
{
    brk_mhash_t leaves[MAX_CRS], want;
    char hex[2 * BRK_MERKLE_HASH_LEN + 1];
    read_leaves(pg, tenant, n, leaves);
    for (long i = 0; i < n; i++) {
        brk_hex(leaves[i], BRK_MERKLE_HASH_LEN, hex);
        char *got = tst_pg_scalarf(pg,
                                   "SELECT encode(leaf_hash, 'hex') FROM tlog_entries WHERE "
                                   "tenant_id = '%s' AND idx = %ld",
                                   tenant, i);
        ck_assert_str_eq(got, hex);
        free(got);
        brk_merkle_root(leaves, (size_t)i + 1, want);
        brk_hex(want, BRK_MERKLE_HASH_LEN, hex);
        got = tst_pg_scalarf(pg,
                             "SELECT encode(root_hash, 'hex') FROM tlog_entries WHERE "
                             "tenant_id = '%s' AND idx = %ld",
                             tenant, i);
        ck_assert_msg(strcmp(got, hex) == 0, "root of size %ld: %s, want %s", i + 1, got, hex);
        free(got);
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


/* ---- Go's sumdb/note and sumdb/tlog (tests/go/tlogcheck) ---- */

static char GOTMP[64], GOBIN[128];

static void go_build(void)
{
    char cmd[1024];
    snprintf(GOTMP, sizeof GOTMP, "/tmp/it_tlog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(GOTMP));
    snprintf(GOBIN, sizeof GOBIN, "%s/tlogcheck", GOTMP);
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/go/tlogcheck' && env -u GOFLAGS GO111MODULE=off "
             "GOPATH=/usr/share/gocode GOPROXY=off GOCACHE='%s/gocache' go build -o '%s' . 2>&1",
             getenv("GSAP_SOURCE_DIR"), GOTMP, GOBIN);
    ck_assert_msg(system(cmd) == 0, "go build of tests/go/tlogcheck failed (tools/deps.sh)");
}

static void go_clear(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", GOTMP);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs tlogcheck with the printf-formatted arguments; 0 when it accepted. Its first output
 * line into out (512 bytes). */
static int go_check(char out[512], const char *f, ...)
{
    char args[8192], cmd[8400];
    va_list ap;
    va_start(ap, f);
    vsnprintf(args, sizeof args, f, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", GOBIN, args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, 511, p);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    return pclose(p);
}

/* GET path with token and an Accept header (NULL: none); checks the status. */
static tst_resp_t get(unsigned short port, const char *path, const char *token,
                      const char *accept, int expect)
{
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n%s%s%s", token, accept ? "Accept: " : "",
                    accept ? accept : "", accept ? "\r\n" : "");
    ck_assert_int_eq(tst_http(port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(r.status == expect, "GET %s: %d (want %d) %s", path, r.status, expect, r.body);
    free(hdr);
    return r;
}

static void get_error(const char *path, const char *token, int status, const char *code)
{
    tst_resp_t r = get(B.port, path, token, NULL, status);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "error"), "code"), code);
    tst_resp_clear(&r);
}

/* The hashes array of a proof as "h1,h2,..." (malloc'd). */
static char *joined(const json_t *arr)
{
    size_t cap = json_array_size(arr) * 48 + 1;
    char *s = calloc(1, cap);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (i)
            strcat(s, ",");
        strcat(s, json_string_value(json_array_get(arr, i)));
    }
    return s;
}

static char *save(const char *text)
{
    char *path = tst_fmt("%s/note-XXXXXX", GOTMP);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* The root of size n of acme's log as stored, base64 (malloc'd). */
static char *stored_root(PGconn *pg, long n)
{
    return tst_pg_scalarf(pg,
                          "SELECT encode(root_hash, 'base64') FROM tlog_entries WHERE "
                          "tenant_id = 'acme' AND idx = %ld",
                          n - 1);
}

static void assert_nodes(PGconn *pg, const char *tenant, long n);

/* ids[0..n) := the cr_ids of n CRs accepted by B (strdup'ed; the caller frees them). */
static void post_crs(char **ids, int n)
{
    for (int i = 0; i < n; i++) {
        json_t *rc = post_cr(B.port, SHELL);
        ids[i] = strdup(tst_str(rc, "cr_id"));
        json_decref(rc);
    }
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
        ids[i] = strdup(tst_str(rc, "cr_id"));
        json_decref(rc);
    }
    for (int i = 0; i < 2; i++)
        json_decref(post_cr(B.port, OTHER));
    ck_assert_int_eq(wait_log(pg, "acme", N), N);
    ck_assert_int_eq(wait_log(pg, "globex", 2), 2);
    /* one gap-free sequence per tenant, one entry per CR, its lineage CID */
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(DISTINCT idx) FROM tlog_entries WHERE "
                                  "tenant_id = 'acme' AND idx BETWEEN 0 AND %d",
                                  N - 1),
                     N);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), N);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT max(idx) FROM tlog_entries WHERE tenant_id = 'globex'"), 1);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(tst_pg_longf(pg,
                                      "SELECT count(*) FROM tlog_entries e JOIN crs c USING "
                                      "(tenant_id, cr_id) WHERE e.cr_id = '%s' AND "
                                      "e.lineage_cid = c.lineage_cid",
                                      ids[i]),
                         1);
    }
    assert_hashes(pg, "acme", N);
    assert_nodes(pg, "acme", N);
    assert_hashes(pg, "globex", 2);
    /* each CR was logged by its billing run, which numbers its line with the index: the
     * sequencer, billing's fallback, got no pair for any of them */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs WHERE function = 'tlog'"), 0);
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(*) FROM invoice_lines l JOIN tlog_entries e "
                                  "USING (tenant_id, cr_id) WHERE l.tenant_id = 'acme' AND "
                                  "l.log_index = e.idx AND e.idx < %d",
                                  N),
                     N);
    /* appending a logged CR again returns its index and changes nothing */
    long idx3 = tst_pg_longf(pg, "SELECT idx FROM tlog_entries WHERE cr_id = '%s'", ids[3]);
    char *cid3 = tst_pg_scalarf(pg, "SELECT lineage_cid FROM crs WHERE cr_id = '%s'", ids[3]);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT tlog_append('acme', '%s', '%s')", ids[3], cid3),
                     idx3);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), N);
    /* never rewritten, even by the database owner */
    refused(pg, "UPDATE tlog_entries SET idx = idx + 100 WHERE tenant_id = 'acme'");
    refused(pg, "UPDATE tlog_entries SET lineage_cid = '" H("9") "' WHERE idx = 0");
    refused(pg, "DELETE FROM tlog_entries WHERE tenant_id = 'acme' AND idx = 11");
    refused(pg, "UPDATE tlog_heads SET size = 0 WHERE tenant_id = 'acme'");
    refused(pg, "DELETE FROM tlog_heads");
    refused(pg, "TRUNCATE tlog_entries");
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'"),
                     N);
    free(cid3);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    ck_assert_int_eq(tst_broker_stop(&b2), 0);
    tst_broker_clear(&b2);
    PQfinish(pg);
}
END_TEST

/*
 * The sequencer is billing's fallback (fn.h, 0021): the subscription a start writes, the pair
 * a billing failure creates in its own transaction, and what a subscription change backfills.
 * Inside a transaction that is rolled back.
 */
START_TEST(sequencer_is_billing_fallback)
{
    enum { N = 3 };
    PGconn *pg = tst_pg_connect(DB);
    char *ids[N];
    post_crs(ids, N);
    char *billed = tst_fmt("SELECT count(*) FROM fn_runs r JOIN events e USING (tenant_id, "
                           "event_id) WHERE r.function = 'billing' AND r.done_at IS NOT NULL "
                           "AND e.payload->>'cr_id' IN ('%s', '%s', '%s')",
                           ids[0], ids[1], ids[2]);
    ck_assert_int_eq(tst_pg_wait_long(pg, billed, N, LOG_WAIT_S), N);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_subscriptions WHERE function = "
                                     "'tlog' AND event_type = 'GSAP_CR_RECEIVED' AND "
                                     "fallback_for = 'billing'"),
                     1);
    /* the sequencer's pairs for the CR ids[1] */
    char *q = tst_fmt("SELECT count(*) FROM fn_runs WHERE function = 'tlog' AND event_id = "
                      "(SELECT event_id FROM events WHERE type = 'GSAP_CR_RECEIVED' AND "
                      "payload->>'cr_id' = '%s')",
                      ids[1]);
    tst_pg_execf(pg, "BEGIN");
    /* a recorded billing failure creates the sequencer's pair, pending, in its transaction */
    ck_assert_int_eq(tst_pg_long(pg, q), 0);
    tst_pg_execf(pg,
                 "UPDATE fn_runs SET last_error = 'boom' WHERE function = 'billing' AND "
                 "event_id = (SELECT event_id FROM events WHERE type = 'GSAP_CR_RECEIVED' AND "
                 "payload->>'cr_id' = '%s')",
                 ids[1]);
    ck_assert_int_eq(tst_pg_long(pg, q), 1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs WHERE function = 'tlog' AND "
                                     "done_at IS NULL AND dead_at IS NULL AND attempts = 0"),
                     1);
    /* a second failure of the same pair changes nothing; done marks never create one */
    tst_pg_execf(pg,
                 "UPDATE fn_runs SET last_error = 'boom again' WHERE function = 'billing' AND "
                 "last_error = 'boom'");
    tst_pg_execf(pg, "UPDATE fn_runs SET done_at = now() WHERE function = 'billing' AND "
                     "done_at IS NOT NULL");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs WHERE function = 'tlog'"), 1);
    /* an unchanged start subscribes nothing and backfills nothing */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT gsap_fn_subscribe('tlog', '{GSAP_CR_RECEIVED}', "
                                     "'billing')"),
                     0);
    /* a full subscription (as before 0021) backfills a pair for every CR event without one */
    long crs = tst_pg_long(pg, "SELECT count(*) FROM events WHERE type = 'GSAP_CR_RECEIVED'");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT gsap_fn_subscribe('tlog', '{GSAP_CR_RECEIVED}', "
                                     "NULL)"),
                     crs - 1);
    /* and back to a fallback: only the events whose billing recorded an error would get one */
    tst_pg_execf(pg, "DELETE FROM fn_runs WHERE function = 'tlog'");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT gsap_fn_subscribe('tlog', '{GSAP_CR_RECEIVED}', "
                                     "'billing')"),
                     1);
    ck_assert_int_eq(tst_pg_long(pg, q), 1);
    tst_pg_execf(pg, "ROLLBACK");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs WHERE function = 'tlog'"), 0);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    free(billed), free(q);
    PQfinish(pg);
}
END_TEST

/* Every stored interior node of the tenant's log of size n is brk_merkle's root of its
 * subtree, and the nodes are exactly those of the complete subtrees. */
static void assert_nodes(PGconn *pg, const char *tenant, long n)
{
    brk_mhash_t leaves[MAX_CRS], want;
    char hex[2 * BRK_MERKLE_HASH_LEN + 1];
    long expected = 0;
    read_leaves(pg, tenant, n, leaves);
    for (int level = 1; (1L << level) <= n; level++) {
        for (long k = 0; (k + 1) << level <= n; k++) {
            brk_merkle_root(leaves + (k << level), (size_t)1 << level, want);
            brk_hex(want, BRK_MERKLE_HASH_LEN, hex);
            char *got = tst_pg_scalarf(pg,
                                       "SELECT encode(hash, 'hex') FROM tlog_nodes WHERE "
                                       "tenant_id = '%s' AND level = %d AND idx = %ld",
                                       tenant, level, k);
            ck_assert_msg(got != NULL && strcmp(got, hex) == 0, "node (%d, %ld): %s, want %s",
                          level, k, got ? got : "(none)", hex);
            free(got);
            expected++;
        }
    }
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM tlog_nodes WHERE tenant_id = '%s'", tenant),
        expected);
}

/* The set-based append (tlog_append_batch, which billing and the sequencer use): called
 * directly, inside a transaction that is rolled back, with receipts written in SQL. In one
 * call: new CRs, a CR already logged (its index, nothing appended), a CR named twice (one
 * entry); a second call continues the sequence; every leaf, root and interior node is then
 * brk_merkle's, as if the CRs had been appended one at a time. */
START_TEST(log_append_batch)
{
    enum { FIRST = 3, B1 = 40, B2 = 25 };
    PGconn *pg = tst_pg_connect(DB);
    char *ids[FIRST];
    post_crs(ids, FIRST);
    ck_assert_int_eq(wait_log(pg, "acme", FIRST), FIRST);
    long known = tst_pg_longf(pg, "SELECT idx FROM tlog_entries WHERE cr_id = '%s'", ids[1]);
    tst_pg_execf(pg, "BEGIN");
    tst_pg_fake_session(pg, ids[0], "ctx_0000000000000000000000000000ba7c", 100, 3131000000LL);
    /* call 1: the CRs of sequence 1..B1, with the logged CR ids[1] after the 10th and the
     * 5th again after the 20th */
    char *sql = tst_fmt(
        "WITH x AS (SELECT 'cr_' || lpad(to_hex(g + 3131000000), 32, '0') AS cr, g AS pos "
        "  FROM generate_series(1, %d) g "
        "  UNION ALL SELECT '%s', 10.5 UNION ALL SELECT 'cr_%032lx', 20.5), "
        "y AS (SELECT array_agg(x.cr ORDER BY x.pos) AS crs, array_agg(c.lineage_cid::text "
        "ORDER BY x.pos) AS cids FROM x JOIN crs c ON c.tenant_id = 'acme' AND c.cr_id = x.cr) "
        "SELECT array_to_string(tlog_append_batch('acme', y.crs, y.cids), ',') FROM y",
        B1, ids[1], 3131000005L);
    char *got = tst_pg_scalar(pg, sql);
    free(sql);
    ck_assert_ptr_nonnull(got);
    /* the expected indexes: FIRST.. for the new ones, known for ids[1], cr_batch_5's again */
    char want[2048] = "";
    size_t off = 0;
    for (int g = 1; g <= B1; g++) {
        off += (size_t)snprintf(want + off, sizeof want - off, "%s%d", g > 1 ? "," : "",
                                FIRST + g - 1);
        if (g == 10)
            off += (size_t)snprintf(want + off, sizeof want - off, ",%ld", known);
        if (g == 20)
            off += (size_t)snprintf(want + off, sizeof want - off, ",%d", FIRST + 4);
    }
    ck_assert_str_eq(got, want);
    free(got);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"),
                     FIRST + B1);
    /* call 2 continues where call 1 left the head */
    sql = tst_fmt("SELECT array_to_string(tlog_append_batch('acme', array_agg(cr_id ORDER BY "
                  "sequence), array_agg(lineage_cid::text ORDER BY sequence)), ',') FROM crs "
                  "WHERE context_id = 'ctx_0000000000000000000000000000ba7c' AND sequence BETWEEN %d AND %d",
                  B1 + 1, B1 + B2);
    got = tst_pg_scalar(pg, sql);
    free(sql);
    ck_assert_ptr_nonnull(got);
    char *last = strrchr(got, ',');
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(strtol(last + 1, NULL, 10), FIRST + B1 + B2 - 1);
    free(got);
    long n = FIRST + B1 + B2;
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), n);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'"),
                     n);
    assert_hashes(pg, "acme", n);
    assert_nodes(pg, "acme", n);
    /* mismatched arrays are refused, nothing appended */
    PGresult *res = PQexec(pg, "SAVEPOINT s");
    PQclear(res);
    res = PQexec(pg, "SELECT tlog_append_batch('acme', ARRAY['cr_0000000000000000000000000000ba7c'], '{}')");
    ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    tst_pg_execf(pg, "ROLLBACK TO SAVEPOINT s");
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"), n);
    tst_pg_execf(pg, "ROLLBACK");
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"),
                     FIRST);
    for (int i = 0; i < FIRST; i++)
        free(ids[i]);
    PQfinish(pg);
}
END_TEST


/* Checks a checkpoint reply (JSON) with Go's note package: the note opens under the verifier
 * key, which is the broker's published key's; returns the size. */
static long check_checkpoint(PGconn *pg, const json_t *cp)
{
    tst_resp_t w;
    char out[512];
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &w), 0);
    const char *pub = tst_str(json_array_get(json_object_get(w.json, "keys"), 0), "public_key");
    char *path = save(tst_str(cp, "note"));
    /* the verifier key is published in the broker's key document too, and opens the note */
    ck_assert_str_eq(tst_str(w.json, "checkpoint_verifier_key"), tst_str(cp, "verifier_key"));
    ck_assert_str_eq(tst_str(w.json, "checkpoint_key_name"), tst_str(cp, "key_name"));
    ck_assert_msg(go_check(out, "note '%s' '%s' '%s' '%s'", tst_str(w.json, "checkpoint_verifier_key"), path,
                           tst_str(cp, "key_name"), pub) == 0,
                  "the checkpoint does not open in Go: %s", out);
    long size = (long)json_integer_value(json_object_get(cp, "size"));
    char *want = tst_fmt("ok %s %ld %s", tst_str(cp, "origin"), size, tst_str(cp, "root_hash"));
    ck_assert_str_eq(out, want);
    char *root = stored_root(pg, size);
    ck_assert_str_eq(tst_str(cp, "root_hash"), root);
    char *origin = tst_fmt("%s/acme", tst_str(cp, "key_name"));
    ck_assert_str_eq(tst_str(cp, "origin"), origin);
    unlink(path);
    free(path), free(want), free(root), free(origin);
    tst_resp_clear(&w);
    return size;
}

START_TEST(checkpoints_and_proofs)
{
    enum { N = 7, FIRST = 5 };
    const char *const slow_env[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=3600", NULL};
    PGconn *pg = tst_pg_connect(DB);
    char *cids[N], out[512];
    tst_broker_t slow;
    tst_resp_t r;
    go_build();
    /* nothing logged yet: no checkpoint */
    get_error("/governance/log/checkpoint", AUDITOR, 404, "log_empty");
    for (int i = 0; i < FIRST; i++) {
        json_t *rc = post_cr(B.port, SHELL);
        cids[i] = strdup(tst_str(rc, "lineage_cid"));
        json_decref(rc);
    }
    ck_assert_int_eq(wait_log(pg, "acme", FIRST), FIRST);
    /* text/plain: the C2SP note itself; JSON: the same note and its parts */
    r = get(B.port, "/governance/log/checkpoint", AUDITOR, NULL, 200);
    char ct[128];
    ck_assert_ptr_nonnull(tst_resp_header(&r, "content-type", ct, sizeof ct));
    ck_assert_ptr_nonnull(strstr(ct, "text/plain"));
    char *text_note = strdup(r.body);
    tst_resp_clear(&r);
    r = get(B.port, "/governance/log/checkpoint", AUDITOR, "application/json", 200);
    ck_assert_str_eq(tst_str(r.json, "note"), text_note);
    ck_assert_int_eq(check_checkpoint(pg, r.json), FIRST);
    char *root5 = strdup(tst_str(r.json, "root_hash"));
    tst_resp_clear(&r);
    /* a tampered note does not open */
    char *bad = strdup(text_note);
    /* a character inside the signature's base64 (the last ones may carry only padding bits) */
    char *sig = strrchr(bad, ' ');
    ck_assert_ptr_nonnull(sig);
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    char *bad_path = save(bad);
    r = get(B.port, "/governance/log/checkpoint", FINANCE, "application/json", 200);
    ck_assert_int_ne(go_check(out, "note '%s' '%s'", tst_str(r.json, "verifier_key"), bad_path), 0);
    tst_resp_clear(&r);
    unlink(bad_path);
    free(bad_path), free(bad);
    /* the log grows; a broker whose GSAP_TLOG_CHECKPOINT_S has not passed serves the stored
     * checkpoint, one whose interval (1 s) has passed signs a new one */
    for (int i = FIRST; i < N; i++) {
        json_t *rc = post_cr(B.port, SHELL);
        cids[i] = strdup(tst_str(rc, "lineage_cid"));
        json_decref(rc);
    }
    ck_assert_int_eq(wait_log(pg, "acme", N), N);
    ck_assert_int_eq(tst_broker_start(&slow, tst_pg_conninfo(DB), slow_env), 0);
    r = get(slow.port, "/governance/log/checkpoint", AUDITOR, "application/json", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "size")), FIRST);
    tst_resp_clear(&r);
    long size = 0;
    for (int i = 0; i < LOG_WAIT_S * 2 && size != N; i++) {
        r = get(B.port, "/governance/log/checkpoint", AUDITOR, "application/json", 200);
        size = check_checkpoint(pg, r.json);
        tst_resp_clear(&r);
        if (size != N)
            usleep(500 * 1000);
    }
    ck_assert_int_eq(size, N);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM tlog_checkpoints WHERE "
                                     "tenant_id = 'acme' AND size IN (5, 7)"), 2);
    ck_assert_int_eq(tst_broker_stop(&slow), 0);
    tst_broker_clear(&slow);
    /* inclusion of every CID against the latest checkpoint, checked by Go's tlog */
    for (int i = 0; i < N; i++) {
        char *path = tst_fmt("/governance/log/proof?cid=%s", cids[i]);
        r = get(B.port, path, AUDITOR, NULL, 200);
        long idx =
            tst_pg_longf(pg, "SELECT idx FROM tlog_entries WHERE lineage_cid = '%s'", cids[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(r.json, "leaf_index")), idx);
        ck_assert_int_eq(json_integer_value(json_object_get(r.json, "tree_size")), N);
        ck_assert_ptr_nonnull(tst_str(r.json, "checkpoint"));
        char *h = joined(json_object_get(r.json, "hashes"));
        ck_assert_msg(go_check(out, "inclusion '%s' %d %ld '%s' '%s'", tst_str(r.json, "root_hash"),
                               N, idx, cids[i], h) == 0,
                      "inclusion of %s: %s", cids[i], out);
        /* and not as another entry or in another tree */
        ck_assert_int_ne(go_check(out, "inclusion '%s' %d %ld '%s' '%s'", root5, N, idx,
                                  cids[i], h), 0);
        ck_assert_int_ne(go_check(out, "inclusion '%s' %d %ld '%s' '%s'",
                                  tst_str(r.json, "root_hash"), N, (idx + 1) % N, cids[i], h), 0);
        free(h), free(path);
        tst_resp_clear(&r);
    }
    /* against an older tree: ?size= */
    long idx1 = tst_pg_longf(pg, "SELECT idx FROM tlog_entries WHERE lineage_cid = '%s'", cids[1]);
    char *path = tst_fmt("/governance/log/proof?cid=%s&size=%d", cids[1], FIRST);
    r = get(B.port, path, AUDITOR, NULL, 200);
    ck_assert_str_eq(tst_str(r.json, "root_hash"), root5);
    ck_assert_ptr_null(json_object_get(r.json, "checkpoint"));
    char *h = joined(json_object_get(r.json, "hashes"));
    ck_assert_int_eq(go_check(out, "inclusion '%s' %d %ld '%s' '%s'", root5, FIRST, idx1,
                              cids[1], h), 0);
    free(h), free(path);
    tst_resp_clear(&r);
    /* consistency of every older size with the latest, checked by Go's tlog */
    char *root7 = stored_root(pg, N);
    for (int from = 1; from <= N; from++) {
        path = tst_fmt("/governance/log/consistency?from=%d&to=%d", from, N);
        r = get(B.port, path, FINANCE, NULL, 200);
        char *want_from = stored_root(pg, from);
        ck_assert_str_eq(tst_str(r.json, "from_root_hash"), want_from);
        ck_assert_str_eq(tst_str(r.json, "to_root_hash"), root7);
        h = joined(json_object_get(r.json, "hashes"));
        ck_assert_msg(go_check(out, "consistency '%s' %d '%s' %d '%s'", want_from, from, root7, N,
                               h) == 0,
                      "consistency %d -> %d: %s", from, N, out);
        if (from == FIRST) /* the first checkpoint's root is a prefix of the latest */
            ck_assert_str_eq(want_from, root5);
        free(h), free(path), free(want_from);
        tst_resp_clear(&r);
    }
    /* bad requests change nothing and say why */
    char *p404 = tst_fmt("/governance/log/proof?cid=%s", H("9"));
    get_error(p404, AUDITOR, 404, "cid_not_in_log");
    free(p404);
    char *late = tst_pg_scalarf(pg,
                                "SELECT lineage_cid FROM tlog_entries WHERE tenant_id = 'acme' "
                                "AND idx = %d",
                                N - 1);
    path = tst_fmt("/governance/log/proof?cid=%s&size=%d", late, FIRST);
    get_error(path, AUDITOR, 404, "cid_not_in_checkpoint");
    free(path);
    static const struct {
        const char *query;
        int status;
        const char *code;
    } bad_q[] = {
        {"/governance/log/proof", 400, "invalid_query"},
        {"/governance/log/proof?cid=sha256:00", 400, "invalid_query"},
        {"/governance/log/consistency", 400, "invalid_query"},
        {"/governance/log/consistency?from=3", 400, "invalid_query"},
        {"/governance/log/consistency?from=0&to=3", 400, "invalid_query"},
        {"/governance/log/consistency?from=4&to=3", 400, "invalid_query"},
        {"/governance/log/consistency?from=1&to=x3", 400, "invalid_query"},
        {"/governance/log/consistency?from=1&to=-3", 400, "invalid_query"},
        {"/governance/log/consistency?from=1&to=8", 404, "size_not_in_log"},
        /* TLOG_PROOF_MAX_LEAVES (262144): at the limit the tree is looked for, past it not */
        {"/governance/log/consistency?from=1&to=262144", 404, "size_not_in_log"},
        {"/governance/log/consistency?from=1&to=262145", 413, "log_too_large"},
    };
    for (size_t i = 0; i < sizeof bad_q / sizeof bad_q[0]; i++)
        get_error(bad_q[i].query, AUDITOR, bad_q[i].status, bad_q[i].code);
    char *at = tst_fmt("/governance/log/proof?cid=%s&size=262144", cids[0]);
    get_error(at, AUDITOR, 404, "size_not_in_log");
    free(at);
    at = tst_fmt("/governance/log/proof?cid=%s&size=262145", cids[0]);
    get_error(at, AUDITOR, 413, "log_too_large");
    free(at);
    at = tst_fmt("/governance/log/proof?cid=%s&size=0", cids[0]);
    get_error(at, AUDITOR, 400, "invalid_query");
    free(at);
    /* another tenant's auditor learns nothing about acme's log */
    get_error("/governance/log/checkpoint", STRANGER, 404, "log_empty");
    at = tst_fmt("/governance/log/proof?cid=%s&size=1", cids[0]);
    get_error(at, STRANGER, 404, "size_not_in_log");
    free(at);
    r = get(B.port, "/governance/log/checkpoint", SHELL, NULL, 403);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'"),
                     N);
    for (int i = 0; i < N; i++)
        free(cids[i]);
    free(text_note), free(root5), free(root7), free(late);
    go_clear();
    PQfinish(pg);
}
END_TEST

/* POST .../finalize as finance; the reply's signed document (a new reference). */
static json_t *finalize(const char *inv)
{
    tst_resp_t r;
    char *path = tst_fmt("/billing/invoices/%s/finalize", inv);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n", FINANCE);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "finalize: %d %s", r.status, r.body);
    json_t *doc = json_incref(json_object_get(r.json, "document"));
    tst_resp_clear(&r);
    free(path), free(hdr);
    return doc;
}

/* Every line of invoice inv: its log_index is its CR's entry, shown by the API, and its
 * inclusion proof at the document's tree size verifies in Go against the document's root. */
static void check_invoice_proofs(PGconn *pg, const char *inv, const json_t *doc, const char *vkey)
{
    char out[512];
    const json_t *log = json_object_get(doc, "log");
    long size = (long)json_integer_value(json_object_get(log, "tree_size"));
    const char *root = tst_str(log, "root_hash");
    ck_assert_int_eq(size, tst_pg_longf(pg,
                                        "SELECT max(log_index) + 1 FROM invoice_lines WHERE "
                                        "invoice_id = '%s'",
                                        inv));
    char *stored = stored_root(pg, size);
    ck_assert_str_eq(root, stored);
    free(stored);
    /* the checkpoint in the signed document opens in Go and states that tree */
    char *path = save(tst_str(log, "checkpoint"));
    ck_assert_msg(go_check(out, "note '%s' '%s'", vkey, path) == 0, "invoice checkpoint: %s",
                  out);
    char *want = tst_fmt("ok %s %ld %s", tst_str(log, "origin"), size, root);
    ck_assert_str_eq(out, want);
    free(want);
    unlink(path);
    free(path);
    /* it is one of the tenant's checkpoints */
    ck_assert_int_eq(
        tst_pg_longf(pg,
                     "SELECT count(*) FROM tlog_checkpoints WHERE tenant_id = 'acme' "
                     "AND size = %ld AND note = (SELECT document->'log'->>'checkpoint' "
                     "FROM invoices WHERE invoice_id = '%s')",
                     size, inv),
        1);
    char *ip = tst_fmt("/billing/invoices/%s/", inv);
    tst_resp_t r = get(B.port, ip, FINANCE, NULL, 200);
    json_t *lines = json_object_get(r.json, "lines");
    ck_assert_uint_ge(json_array_size(lines), 1);
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *l = json_array_get(lines, i);
        long idx = (long)json_integer_value(json_object_get(l, "log_index"));
        ck_assert_int_eq(idx, tst_pg_longf(pg,
                                           "SELECT idx FROM tlog_entries WHERE cr_id = '%s' AND "
                                           "lineage_cid = '%s'",
                                           tst_str(l, "cr_id"), tst_str(l, "lineage_cid")));
        char *pp = tst_fmt("/governance/log/proof?cid=%s&size=%ld", tst_str(l, "lineage_cid"), size);
        tst_resp_t pr = get(B.port, pp, AUDITOR, NULL, 200);
        ck_assert_str_eq(tst_str(pr.json, "root_hash"), root);
        char *h = joined(json_object_get(pr.json, "hashes"));
        ck_assert_msg(go_check(out, "inclusion '%s' %ld %ld '%s' '%s'", root, size, idx,
                               tst_str(l, "lineage_cid"), h) == 0,
                      "line %zu: %s", i, out);
        free(h), free(pp);
        tst_resp_clear(&pr);
    }
    tst_resp_clear(&r);
    free(ip);
}

START_TEST(invoices_carry_proofs)
{
    enum { N = 4 };
    PGconn *pg = tst_pg_connect(DB);
    go_build();
    for (int i = 0; i < N; i++)
        json_decref(post_cr(B.port, SHELL));
    ck_assert_int_eq(wait_log(pg, "acme", N), N);
    /* every line gets its index when it is written */
    long n = -1;
    for (int i = 0; i < LOG_WAIT_S * 10 && n != N; i++) {
        n = tst_pg_long(pg, "SELECT count(*) FROM invoice_lines l JOIN tlog_entries e ON "
                            "e.tenant_id = l.tenant_id AND e.idx = l.log_index AND "
                            "e.cr_id = l.cr_id AND e.lineage_cid = l.lineage_cid");
        if (n != N)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(n, N);
    char *inv = tst_pg_scalar(pg, "SELECT invoice_id FROM invoices WHERE tenant_id = 'acme' "
                                  "AND status = 'open'");
    ck_assert_ptr_nonnull(inv);
    /* a line written before the log existed has no index: finalizing gives it its CR's */
    long last = tst_pg_longf(pg,
                             "SELECT log_index FROM invoice_lines WHERE invoice_id = '%s' AND "
                             "line_no = %d",
                             inv, N);
    free(tst_pg_scalar(pg, "UPDATE invoice_lines SET log_index = NULL WHERE line_no = 4 "
                           "RETURNING 1"));
    tst_resp_t r = get(B.port, "/governance/log/checkpoint", AUDITOR, "application/json", 200);
    char *vkey = strdup(tst_str(r.json, "verifier_key"));
    tst_resp_clear(&r);
    json_t *doc = finalize(inv);
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT log_index FROM invoice_lines WHERE invoice_id = '%s' AND "
                                  "line_no = %d",
                                  inv, N),
                     last);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "log"), "tree_size")),
                     N);
    check_invoice_proofs(pg, inv, doc, vkey);
    /* the finalized lines' indexes are frozen with them */
    PGresult *res = PQexec(pg, "UPDATE invoice_lines SET log_index = 0 WHERE line_no = 2");
    ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
    PQclear(res);
    /* a late line (its month is finalized) carries its own index, covered by its invoice */
    json_t *rc = post_cr(B.port, SHELL);
    char *late_inv = NULL;
    for (int i = 0; i < LOG_WAIT_S * 10 && late_inv == NULL; i++) {
        late_inv =
            tst_pg_scalarf(pg,
                           "SELECT invoice_id FROM invoice_lines WHERE cr_id = '%s' AND late "
                           "AND log_index IS NOT NULL",
                           tst_str(rc, "cr_id"));
        if (late_inv == NULL)
            usleep(100 * 1000);
    }
    ck_assert_ptr_nonnull(late_inv);
    ck_assert_str_ne(late_inv, inv);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT log_index FROM invoice_lines WHERE cr_id = '%s'",
                                  tst_str(rc, "cr_id")),
                     N);
    json_t *doc2 = finalize(late_inv);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(doc2, "log"), "tree_size")), N + 1);
    check_invoice_proofs(pg, late_inv, doc2, vkey);
    json_decref(rc), json_decref(doc), json_decref(doc2);
    free(inv), free(late_inv), free(vkey);
    go_clear();
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
    tcase_add_test(tc, log_append_batch);
    tcase_add_test(tc, sequencer_is_billing_fallback);
    tcase_add_test(tc, checkpoints_and_proofs);
    tcase_add_test(tc, invoices_carry_proofs);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
