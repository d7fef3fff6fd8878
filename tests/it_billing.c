/*
 * it_billing: billing against the real binary and PostgreSQL, with the function runtime
 * running: every accepted CR becomes one invoice line within a bounded delay; money per
 * currency (JPY, BHD, with multipliers, to the exact minor unit); finalizing (totals, the
 * lines' Merkle root and the signature recomputed by an independent implementation,
 * tests/npm/gsap_oracle.mjs), the database refusing changes to what is finalized, resuming an
 * interrupted finalization, late lines, credit notes, the month-close job; the CSV export read
 * back by Python's csv module and compared with the JSON lines; two brokers on one database;
 * billing in batches with several runtime workers (a poison CR in a batch, the backlog in
 * /metrics while billing is stuck), and kill -9 of the broker while clients post CRs.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bill_rate.h"
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
#define OTHER H("4")
#define ROOT H("5")
#define DB "it_billing"
#define LINE_WAIT_S 15 /* the bound on "lines appear": the runtime wakes on NOTIFY */

static tst_broker_t B;
static char *SHELL, *ADMIN, *FINANCE, *AUDITOR, *STRANGER;
static char PUBKEY[64];
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", NULL};

/* ---- helpers ---- */

static long long num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void setup(void)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    ADMIN = tst_keys_create(&B, "acme", "admin");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    STRANGER = tst_keys_create(&B, "globex", "finance,auditor,admin");
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    snprintf(PUBKEY, sizeof PUBKEY, "%s",
             tst_str(json_array_get(json_object_get(r.json, "keys"), 0), "public_key"));
    tst_resp_clear(&r);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(SHELL), free(ADMIN), free(FINANCE), free(AUDITOR), free(STRANGER);
}

/* Runs the independent oracle; its stdout's first line (malloc'd), or NULL when it failed. */
static char *oracle(const char *fmt_args, ...)
{
    char args[2048], cmd[2300], line[512] = "";
    va_list ap;
    va_start(ap, fmt_args);
    vsnprintf(args, sizeof args, fmt_args, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "node %s/tests/npm/gsap_oracle.mjs %s", getenv("GSAP_SOURCE_DIR"),
             args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(line, 1, sizeof line - 1, p);
    line[n] = 0;
    if (pclose(p) != 0)
        return NULL;
    line[strcspn(line, "\n")] = 0;
    return strdup(line);
}

static char *save(const char *data, size_t len)
{
    char path[] = "/tmp/gsap-bill-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return strdup(path);
}

/* The oracle verifies doc's signature with the broker's key; doc's cid_field must match. */
static void assert_signed(const json_t *doc, const char *cid_field)
{
    char *text = json_dumps(doc, JSON_COMPACT), *path = save(text, strlen(text));
    char *out = oracle("verify %s %s", path, PUBKEY);
    ck_assert_msg(out != NULL, "the %s document does not verify independently: %s", cid_field,
                  text);
    ck_assert_str_eq(out + 3, tst_str(doc, cid_field));
    unlink(path);
    free(path), free(text), free(out);
}

static void put_account(const char *id, const char *body)
{
    char *path = tst_fmt("/admin/accounts/%s", id);
    tst_resp_t r = tst_call(B.port, "PUT", path, ADMIN, body, 200);
    tst_resp_clear(&r);
    free(path);
}

/* Issues an AC (extra: more authorize members) and posts one CR on it; the receipt. */
typedef struct cr_opts {
    const char *extra;   /* authorize members, e.g. "\"billing_account\":\"yen\"" */
    const char *outcome; /* default "completed" */
    const char *started, *completed;
    const char *behavior; /* default "verified" */
    const char *params;   /* default PARAMS (another one is a mismatch) */
    int no_root;          /* no Chronicle merkle_root */
    const char *between;  /* SQL run after the AC is issued, before the CR is posted */
} cr_opts_t;

/* The cases here run at fixed times on 2026-01-01, which the broker would flag as starting
 * before their AC was issued (time_implausible, migrations/0007) and bill on the clamped span:
 * the AC's issued_at is moved back to that day so they are plausible and billed as claimed. */
static void backdate(const char *ctx)
{
    PGconn *pg = tst_pg_connect(DB);
    char *sql = tst_fmt("UPDATE acs SET issued_at = '2026-01-01T00:00:00Z' WHERE context_id = '%s' "
                    "RETURNING 1", ctx);
    free(tst_pg_scalar(pg, sql));
    free(sql);
    PQfinish(pg);
}

static json_t *post_cr_on(unsigned short port, const char *token, const cr_opts_t *o, int lenient)
{
    tst_resp_t r;
    char *ab = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                   "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}%s%s}",
                   CMD, CORPUS, PARAMS, o->extra ? "," : "", o->extra ? o->extra : "");
    if (tst_post_json(port, "/governance/authorize/", token, ab, &r) != 0 || r.status != 200) {
        ck_assert_msg(lenient, "authorize: %d %s", r.status, r.body);
        tst_resp_clear(&r);
        free(ab);
        return NULL;
    }
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    backdate(ctx);
    if (o->between) {
        PGconn *pg = tst_pg_connect(DB);
        free(tst_pg_scalar(pg, o->between));
        PQfinish(pg);
    }
    char *cb = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"%s\",\"exit_code\":0,\"started_at\":\"%s\","
                   "\"completed_at\":\"%s\",\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
                   "\"parameters_cid\":\"%s\",\"chronicle\":{\"session_id\":\"s\","
                   "\"behavior_state\":\"%s\"%s}}",
                   ctx, o->outcome ? o->outcome : "completed",
                   o->started ? o->started : "2026-01-01T00:00:00Z",
                   o->completed ? o->completed : "2026-01-01T00:00:01Z", CMD, CORPUS,
                   o->params ? o->params : PARAMS, o->behavior ? o->behavior : "verified",
                   o->no_root ? "" : ",\"merkle_root\":\"" ROOT "\"");
    json_t *rc = NULL;
    if (tst_post_json(port, "/governance/complete/", token, cb, &r) == 0 && r.status == 200)
        rc = json_incref(r.json);
    else
        ck_assert_msg(lenient, "complete: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    free(ab), free(cb), free(ctx);
    return rc;
}

static json_t *post_cr(const cr_opts_t *o)
{
    return post_cr_on(B.port, SHELL, o, 0);
}

/* Waits for the line of cr_id and returns it as the API shows it (GET the invoice). */
static long wait_line(PGconn *pg, const char *cr_id)
{
    char *sql = tst_fmt("SELECT count(*) FROM invoice_lines WHERE cr_id = '%s'", cr_id);
    long n = tst_pg_wait_long(pg, sql, 1, LINE_WAIT_S);
    ck_assert_msg(n == 1, "no line for %s within %d s", cr_id, LINE_WAIT_S);
    free(sql);
    return n;
}

/* Runs sql, which must fail; returns the error message (malloc'd). */
static char *sql_error(PGconn *pg, const char *sql)
{
    PGresult *res = PQexec(pg, sql);
    int failed = PQresultStatus(res) == PGRES_FATAL_ERROR;
    char *msg = strdup(PQresultErrorMessage(res));
    PQclear(res);
    ck_assert_msg(failed, "\"%s\" succeeded; the database should refuse it", sql);
    return msg;
}

/* The open invoice of an account of tenant acme (malloc'd id), or NULL. */
static char *open_invoice(PGconn *pg, const char *account)
{
    return tst_pg_scalarf(pg,
                          "SELECT invoice_id FROM invoices WHERE tenant_id = 'acme' AND "
                          "account_id = '%s' AND status = 'open'",
                          account);
}

/* Every invoice's total and line count equal its lines' sum and count; lines are 1..n. */
static void assert_totals(PGconn *pg)
{
    ck_assert_int_eq(
        tst_pg_long(
            pg,
            "SELECT count(*) FROM invoices i WHERE total_minor <> (SELECT "
            "coalesce(sum(total_minor), 0) "
            "FROM invoice_lines l WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.invoice_id) "
            "OR line_count <> (SELECT count(*) FROM invoice_lines l WHERE l.tenant_id = "
            "i.tenant_id "
            "AND l.invoice_id = i.invoice_id) OR line_count <> (SELECT coalesce(max(line_no), 0) "
            "FROM "
            "invoice_lines l WHERE l.tenant_id = i.tenant_id AND l.invoice_id = i.invoice_id)"),
        0);
}

/* hold_billing: a session holding tenant's transparency-log head locked. Billing (and the log
 * sequencer) lock it first in every batch, the HTTP side never: CRs are accepted while their
 * billing waits, so a backlog builds up. release_billing ends it. */
static PGconn *hold_billing(const char *tenant)
{
    PGconn *h = tst_pg_connect(DB);
    char *sql = tst_fmt("INSERT INTO tlog_heads (tenant_id) VALUES ('%s') ON CONFLICT DO NOTHING; "
                        "BEGIN; SELECT 1 FROM tlog_heads WHERE tenant_id = '%s' FOR UPDATE",
                        tenant, tenant);
    PGresult *res = PQexec(h, sql);
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    free(sql);
    return h;
}

static void release_billing(PGconn *h)
{
    PGresult *res = PQexec(h, "COMMIT");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(h);
}

/* restart_with: B again on the same database with env (the keys of setup stay valid). */
static void restart_with(const char *const *env)
{
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_conninfo(DB), env), 0);
}

/* metric: the value of an unlabelled sample in a /metrics body; fails when it is missing. */
static long long metric(const char *body, const char *name)
{
    char *want = tst_fmt("\n%s ", name);
    const char *p = strstr(body, want);
    ck_assert_msg(p != NULL, "/metrics has no %s", name);
    long long v = strtoll(p + strlen(want), NULL, 10);
    free(want);
    return v;
}

/* log_line_streamed: in the broker's log, the request line of a 200 for path: 1 when it
 * says "streamed":"true", 0 when it does not; fails the test when there is no such line. */
static int log_line_streamed(const char *path)
{
    char *log = tst_broker_log(&B);
    char *want = tst_fmt("\"path\":\"%s\",\"status\":\"200\"", path);
    ck_assert_ptr_nonnull(log);
    char *at = strstr(log, want);
    ck_assert_msg(at != NULL, "no request line for %s", path);
    char *end = strchr(at, '\n');
    if (end != NULL)
        *end = '\0';
    int streamed = strstr(at, "\"streamed\":\"true\"") != NULL;
    free(want);
    free(log);
    return streamed;
}

static json_t *get_invoice(const char *id, const char *query)
{
    char *path = tst_fmt("/billing/invoices/%s/%s", id, query ? query : "");
    tst_resp_t r = tst_call(B.port, "GET", path, FINANCE, NULL, 200);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(path);
    return j;
}

static json_t *finalize(const char *id)
{
    char *path = tst_fmt("/billing/invoices/%s/finalize", id);
    tst_resp_t r = tst_call(B.port, "POST", path, FINANCE, NULL, 200);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(path);
    return j;
}

/* ---- tests ---- */

START_TEST(lines_appear)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[3];
    cr_opts_t o = {0};
    for (int i = 0; i < 3; i++) {
        o.no_root = i == 2;
        rc[i] = post_cr(&o);
    }
    time_t t0 = time(NULL);
    for (int i = 0; i < 3; i++)
        wait_line(pg, tst_str(rc[i], "cr_id"));
    ck_assert_int_le(time(NULL) - t0, LINE_WAIT_S);
    /* each line carries its CR's evidence */
    char *inv = open_invoice(pg, "default");
    ck_assert_ptr_nonnull(inv);
    json_t *page = get_invoice(inv, NULL);
    json_t *lines = json_object_get(page, "lines");
    ck_assert_uint_eq(json_array_size(lines), 3);
    for (int i = 0; i < 3; i++) {
        json_t *l = json_array_get(lines, i);
        ck_assert_int_eq(num(l, "line_no"), i + 1);
        ck_assert_str_eq(tst_str(l, "cr_id"), tst_str(rc[i], "cr_id"));
        ck_assert_str_eq(tst_str(l, "context_id"), tst_str(rc[i], "context_id"));
        ck_assert_str_eq(tst_str(l, "lineage_cid"), tst_str(rc[i], "lineage_cid"));
        ck_assert_str_eq(tst_str(l, "chronicle_cid"), tst_str(rc[i], "chronicle_cid"));
        ck_assert_str_eq(tst_str(l, "outcome"), "completed");
        if (i < 2)
            ck_assert_str_eq(tst_str(l, "merkle_root"), ROOT);
        else
            ck_assert(json_is_null(json_object_get(l, "merkle_root")));
        /* the default account: USD, 0.10 per CR + 0.01 per started second, 1 s here */
        ck_assert_int_eq(num(l, "quantity"), 1);
        ck_assert_int_eq(num(l, "total_minor"), 11);
        ck_assert_str_eq(tst_str(l, "total"), "0.11");
        ck_assert(json_is_false(json_object_get(l, "late")));
    }
    json_t *head = json_object_get(page, "invoice");
    ck_assert_str_eq(tst_str(head, "status"), "open");
    ck_assert_str_eq(tst_str(head, "currency"), "USD");
    ck_assert_int_eq(num(head, "total_minor"), 33);
    ck_assert_int_eq(num(head, "line_count"), 3);
    /* roles, and another tenant sees nothing */
    tst_resp_t r = tst_call(B.port, "GET", "/billing/invoices/", AUDITOR, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "invoices")), 1);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(r.json, "invoices"), 0), "invoice_id"),
                     inv);
    tst_resp_clear(&r);
    tst_expect_status(B.port, "GET", "/billing/invoices/", SHELL, NULL, 403, NULL);
    r = tst_call(B.port, "GET", "/billing/invoices/", STRANGER, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "invoices")), 0);
    tst_resp_clear(&r);
    char *path = tst_fmt("/billing/invoices/%s/", inv);
    tst_expect_status(B.port, "GET", path, STRANGER, NULL, 404, "invoice_not_found");
    free(path);
    path = tst_fmt("/billing/invoices/%s/lines.csv", inv);
    tst_expect_status(B.port, "GET", path, STRANGER, NULL, 404, "invoice_not_found");
    free(path);
    path = tst_fmt("/billing/invoices/%s/finalize", inv);
    tst_expect_status(B.port, "POST", path, STRANGER, NULL, 404, "invoice_not_found");
    tst_expect_status(B.port, "POST", path, AUDITOR, NULL, 403, NULL);
    free(path);
    tst_expect_status(B.port, "GET", "/billing/invoices/inv_nope/", FINANCE, NULL, 404,
                      "invoice_not_found");
    tst_expect_status(B.port, "GET", "/billing/invoices/inv_00000000000000000000000000000000/",
                      FINANCE, NULL, 404, "invoice_not_found");
    assert_totals(pg);
    for (int i = 0; i < 3; i++)
        json_decref(rc[i]);
    json_decref(page);
    free(inv);
    PQfinish(pg);
}
END_TEST

#define CARD(completed, failed, violated, timed_out, session_end, per_second, shell, caps, extra)  \
    "{\"per_cr\":{\"completed\":" #completed ",\"failed\":" #failed ",\"violated\":" #violated     \
    ",\"timed_out\":" #timed_out ",\"session_end\":" #session_end "},\"per_second\":" #per_second  \
    ",\"shell_class_multipliers\":" shell ",\"capability_multipliers\":" caps extra "}"

/* money_cases: the same seven CRs, billed one at a time (batched 0) or, with one runtime worker
 * held up by the tenant's log head while they are posted, six of them in one batch of several
 * accounts and currencies (batched 1): the amounts are the same to the minor unit. */
static void money_cases(int batched)
{
    static const char *const one_worker[] = {"GSAP_FN_POLL_MS=200", "GSAP_FN_WORKERS=1", NULL};
    PGconn *pg = tst_pg_connect(DB), *h = NULL;
    put_account("yen", "{\"currency\":\"JPY\",\"rate_card\":" CARD(
                           100, 40, 500, 60, 0, 7, "{\"Application\":\"1.5\"}", "{\"0\":\"1.25\"}",
                           ",\"flagged_surcharge\":3") "}");
    put_account("dinar", "{\"currency\":\"BHD\",\"rate_card\":" CARD(
                             1000, 500, 2000, 700, 100, 125, "{\"Application\":\"0.333\"}",
                             "{\"1\":\"2.5\"}", ",\"flagged_surcharge\":50") "}");
    put_account("ghost",
                "{\"currency\":\"JPY\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}");
    /* Expected, by hand (half-even at each multiplication, bill_rate.h):
     * yen   caps 1, completed, 2.5 s: (100 + 3*7) = 121 * 1.5 = 181.5 -> 182 * 1.25 = 227.5 -> 228
     * yen   caps 0, failed, 10 s:     (40 + 70) = 110 * 1.5 = 165
     * yen   caps 1, violated by the Chronicle (flagged), 0.2 s: (500 + 7) = 507 * 1.5 = 760.5
     *       -> 760 * 1.25 = 950, + 3 = 953
     * dinar caps 2, completed, 1.000001 s: (1000 + 2*125) = 1250 * 0.333 = 416.25 -> 416
     *       * 2.5 = 1040 ("1.040")
     * dinar caps 0, timed_out, 3 s: (700 + 375) = 1075 * 0.333 = 357.975 -> 358 ("0.358")
     * dinar caps 2, completed, 0 s: 1000 * 0.333 = 333 * 2.5 = 832.5 -> 832 ("0.832")
     * ghost (gone by the time the CR is billed: the default, USD): 10 + 1 = 11 ("0.11") */
    static const struct {
        cr_opts_t o;
        long long total;
        const char *shown, *account;
    } cases[] = {
        {{"\"billing_account\":\"yen\",\"capability_set\":\"0x00000001\"", NULL, NULL,
          "2026-01-01T00:00:02.5Z"},
         228,
         "228",
         "yen"},
        {{"\"billing_account\":\"yen\"", "failed", NULL, "2026-01-01T00:00:10Z"},
         165,
         "165",
         "yen"},
        {{"\"billing_account\":\"yen\",\"capability_set\":\"0x00000001\"", NULL, NULL,
          "2026-01-01T00:00:00.2Z", "violated"},
         953,
         "953",
         "yen"},
        {{"\"billing_account\":\"dinar\",\"capability_set\":\"0x00000002\"", NULL, NULL,
          "2026-01-01T00:00:01.000001Z"},
         1040,
         "1.040",
         "dinar"},
        {{"\"billing_account\":\"dinar\"", "timed_out", NULL, "2026-01-01T00:00:03Z"},
         358,
         "0.358",
         "dinar"},
        {{"\"billing_account\":\"dinar\",\"capability_set\":\"0x00000002\"", NULL, NULL,
          "2026-01-01T00:00:00Z"},
         832,
         "0.832",
         "dinar"},
        {{"\"billing_account\":\"ghost\"", .between =
                                               "DELETE FROM billing_accounts WHERE "
                                               "tenant_id = 'acme' AND account_id = 'ghost'"},
         11,
         "0.11",
         "default"},
    };
    json_t *rc[7];
    if (batched) {
        restart_with(one_worker);
        h = hold_billing("acme");
    }
    for (int i = 0; i < 7; i++)
        rc[i] = post_cr(&cases[i].o);
    if (batched) {
        /* the first CR's pass waits on the head; the other six wait for the next pass */
        ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines"), 0);
        release_billing(h);
    }
    for (int i = 0; i < 7; i++) {
        wait_line(pg, tst_str(rc[i], "cr_id"));
        char *acct =
            tst_pg_scalarf(pg,
                           "SELECT i.account_id FROM invoice_lines l JOIN invoices i USING "
                           "(tenant_id, invoice_id) WHERE l.cr_id = '%s'",
                           tst_str(rc[i], "cr_id"));
        ck_assert_str_eq(acct, cases[i].account);
        ck_assert_int_eq(tst_pg_longf(pg,
                                      "SELECT total_minor FROM invoice_lines WHERE cr_id = '%s'",
                                      tst_str(rc[i], "cr_id")),
                         cases[i].total);
        free(acct);
    }
    const char *accounts[] = {"yen", "dinar"}, *currency[] = {"JPY", "BHD"};
    const long long totals[] = {228 + 165 + 953, 1040 + 358 + 832};
    const char *shown[] = {"1346", "2.230"};
    for (int a = 0; a < 2; a++) {
        char *inv = open_invoice(pg, accounts[a]);
        json_t *page = get_invoice(inv, NULL), *head = json_object_get(page, "invoice");
        ck_assert_str_eq(tst_str(head, "currency"), currency[a]);
        ck_assert_int_eq(num(head, "exponent"), a == 0 ? 0 : 3);
        ck_assert_int_eq(num(head, "total_minor"), totals[a]);
        ck_assert_str_eq(tst_str(head, "total"), shown[a]);
        size_t i;
        json_t *l;
        ck_assert_uint_eq(json_array_size(json_object_get(page, "lines")), 3);
        json_array_foreach(json_object_get(page, "lines"), i, l)
        {
            int c;
            for (c = 0; c < 7 && strcmp(tst_str(rc[c], "cr_id"), tst_str(l, "cr_id")) != 0; c++)
                ;
            ck_assert_int_lt(c, 7);
            ck_assert_str_eq(cases[c].account, accounts[a]);
            ck_assert_str_eq(tst_str(l, "total"), cases[c].shown);
        }
        json_decref(page);
        free(inv);
    }
    /* With one worker, line numbers follow the events within each invoice, batch or not
     * (with several workers or brokers they follow the order in which billing commits). */
    for (int i = 0; batched && i + 1 < 7; i++)
        if (strcmp(cases[i].account, cases[i + 1].account) == 0)
            ck_assert_int_eq(
                tst_pg_longf(pg,
                             "SELECT (SELECT line_no FROM invoice_lines WHERE cr_id = '%s') "
                             "- (SELECT line_no FROM invoice_lines WHERE cr_id = '%s')",
                             tst_str(rc[i + 1], "cr_id"), tst_str(rc[i], "cr_id")),
                1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines WHERE log_index IS NULL"),
                     0);
    if (batched) /* and one transaction wrote lines of several invoices (accounts) */
        ck_assert_int_ge(tst_pg_long(pg, "SELECT max(n) FROM (SELECT count(DISTINCT invoice_id) n "
                                         "FROM invoice_lines GROUP BY xmin::text) x"),
                         2);
    /* the flagged line carries its flags, its effective outcome and the surcharge */
    json_t *flags = json_object_get(rc[2], "flags");
    ck_assert_str_eq(json_string_value(json_array_get(flags, 0)), "behavior_violated");
    char *rating = tst_pg_scalarf(pg,
                                  "SELECT rating->>'surcharge_minor' || ' ' || outcome FROM "
                                  "invoice_lines WHERE cr_id = '%s'",
                                  tst_str(rc[2], "cr_id"));
    ck_assert_str_eq(rating, "3 violated");
    free(rating);

    /* the currency is locked once there are lines; the card can still change */
    tst_expect_status(
        B.port, "PUT", "/admin/accounts/yen", ADMIN,
        "{\"currency\":\"USD\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}", 409,
        "currency_locked");
    put_account("yen",
                "{\"currency\":\"JPY\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}");
    /* an account without lines may change currency */
    put_account("spare",
                "{\"currency\":\"EUR\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}");
    put_account("spare",
                "{\"currency\":\"CLF\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}");
    tst_resp_t r = tst_call(B.port, "GET", "/admin/accounts/spare", ADMIN, NULL, 200);
    ck_assert_str_eq(tst_str(r.json, "currency"), "CLF");
    ck_assert_int_eq(num(r.json, "exponent"), 4);
    tst_resp_clear(&r);
    /* bad input: a clear error, nothing changed */
    tst_expect_status(
        B.port, "PUT", "/admin/accounts/spare", ADMIN,
        "{\"currency\":\"XYZ\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}", 422,
        "unknown_currency");
    tst_expect_status(
        B.port, "PUT", "/admin/accounts/spare", ADMIN,
        "{\"currency\":\"EUR\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{\"0\":1.5}", "") "}",
        400, "invalid_field");
    tst_expect_status(
        B.port, "PUT", "/admin/accounts/spare", ADMIN,
        "{\"currency\":\"EUR\",\"rate_card\":" CARD(1, 1, 1, 1, 1, -1, "{}", "{}", "") "}", 422,
        "out_of_range");
    tst_expect_status(B.port, "PUT", "/admin/accounts/spare", ADMIN, "{\"currency\":\"EUR\"}", 400,
                      "missing_field");
    tst_expect_status(
        B.port, "PUT", "/admin/accounts/sp%20are", ADMIN,
        "{\"currency\":\"EUR\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 1, "{}", "{}", "") "}", 400,
        "invalid_field");
    r = tst_call(B.port, "GET", "/admin/accounts/spare", ADMIN, NULL, 200);
    ck_assert_str_eq(tst_str(r.json, "currency"), "CLF");
    tst_resp_clear(&r);
    tst_expect_status(B.port, "GET", "/admin/accounts/spare", STRANGER, NULL, 404,
                      "account_not_found");
    tst_expect_status(B.port, "GET", "/admin/accounts/spare", FINANCE, NULL, 403, NULL);
    assert_totals(pg);
    for (int i = 0; i < 7; i++)
        json_decref(rc[i]);
    PQfinish(pg);
}

START_TEST(money_per_currency)
{
    money_cases(0);
}
END_TEST

START_TEST(money_per_currency_batched)
{
    money_cases(1);
}
END_TEST

START_TEST(accounts_cli)
{
    const char *body = "{\"currency\":\"KWD\",\"rate_card\":" CARD(5, 5, 5, 5, 5, 2, "{}",
                                                                   "{\"4\":\"1.100\"}", "") "}";
    char *path = save(body, strlen(body));
    int st;
    char *out = tst_broker_cli(&B, &st, "accounts", "put", "--tenant", "acme", "--account",
                               "cli-made", "--file", path, NULL);
    ck_assert_msg(st == 0, "accounts put: exit %d: %s", st, out ? out : "");
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_str_eq(
        tst_str(json_object_get(json_object_get(j, "rate_card"), "capability_multipliers"), "4"),
        "1.1");
    tst_resp_t r = tst_call(B.port, "GET", "/admin/accounts/cli-made", ADMIN, NULL, 200);
    ck_assert_str_eq(tst_str(r.json, "currency"), "KWD");
    ck_assert_int_eq(num(r.json, "exponent"), 3);
    tst_resp_clear(&r);
    free(out);
    json_decref(j);
    unlink(path);
    free(path);
    /* an invalid file changes nothing */
    const char *bad = "{\"currency\":\"KWD\",\"rate_card\":{\"per_second\":1}}";
    path = save(bad, strlen(bad));
    free(tst_broker_cli(&B, &st, "accounts", "put", "--tenant", "acme", "--account", "cli-bad",
                        "--file", path, NULL));
    ck_assert_int_eq(st, 2);
    tst_expect_status(B.port, "GET", "/admin/accounts/cli-bad", ADMIN, NULL, 404,
                      "account_not_found");
    unlink(path);
    free(path);
}
END_TEST

/* Posts n CRs to account and waits for their lines; the receipts in rc. */
static void bill_n(PGconn *pg, const char *account, int n, json_t **rc)
{
    char *extra = tst_fmt("\"billing_account\":\"%s\"", account);
    cr_opts_t o = {extra};
    for (int i = 0; i < n; i++)
        rc[i] = post_cr(&o);
    for (int i = 0; i < n; i++)
        wait_line(pg, tst_str(rc[i], "cr_id"));
    free(extra);
}

/* Rate cards that could overflow a line are refused at PUT (422, nothing stored, an
 * existing card unchanged; the CLI too); a line that would take an invoice past
 * BILL_INVOICE_TOTAL_MAX goes on a continuation invoice of the same period, not late, and
 * the full one is frozen for finalizing. */
START_TEST(ratecard_bounds_and_rollover)
{
    PGconn *pg = tst_pg_connect(DB);
    char *max_card = tst_fmt("{\"per_cr\":{\"completed\":%lld,\"failed\":%lld,\"violated\":%lld,"
                         "\"timed_out\":%lld,\"session_end\":%lld},\"per_second\":%lld,"
                         "\"flagged_surcharge\":%lld,\"shell_class_multipliers\":{\"X\":\"10\"},"
                         "\"capability_multipliers\":{\"0\":\"10\",\"1\":\"10\"}}",
                         BILL_PRICE_MAX, BILL_PRICE_MAX, BILL_PRICE_MAX, BILL_PRICE_MAX,
                         BILL_PRICE_MAX, BILL_PER_SECOND_MAX, BILL_PRICE_MAX);
    char *body = tst_fmt("{\"currency\":\"USD\",\"rate_card\":%s}", max_card);
    put_account("big", body);
    free(body);
    struct {
        const char *card, *code;
    } bad[] = {
        {CARD(1, 1, 1, 1, 1, 100000001, "{}", "{}", ""), "out_of_range"},
        {CARD(1, 1, 1, 1, 1, 1, "{\"X\":\"10\"}", "{\"0\":\"10\",\"1\":\"10.000001\"}", ""),
         "rate_card_too_large"},
        {CARD(1, 1, 1, 1, 1, 1, "{}", "{\"0\":\"1000\",\"1\":\"1000\"}", ""),
         "rate_card_too_large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        body = tst_fmt("{\"currency\":\"USD\",\"rate_card\":%s}", bad[i].card);
        tst_expect_status(B.port, "PUT", "/admin/accounts/big2", ADMIN, body, 422, bad[i].code);
        tst_expect_status(B.port, "GET", "/admin/accounts/big2", ADMIN, NULL, 404,
                          "account_not_found");
        tst_expect_status(B.port, "PUT", "/admin/accounts/big", ADMIN, body, 422, bad[i].code);
        free(body);
    }
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT (rate_card->>'per_second')::bigint FROM billing_accounts "
                                  "WHERE tenant_id = 'acme' AND account_id = 'big'"),
                     BILL_PER_SECOND_MAX);
    char *mult =
        tst_pg_scalarf(pg, "SELECT rate_card->'capability_multipliers'->>'1' FROM "
                           "billing_accounts WHERE tenant_id = 'acme' AND account_id = 'big'");
    ck_assert_str_eq(mult, "10");
    free(mult);
    body = tst_fmt("{\"currency\":\"USD\",\"rate_card\":%s}", bad[1].card);
    char *path = save(body, strlen(body));
    int st;
    free(tst_broker_cli(&B, &st, "accounts", "put", "--tenant", "acme", "--account", "cli-big",
                        "--file", path, NULL));
    ck_assert_int_ne(st, 0);
    tst_expect_status(B.port, "GET", "/admin/accounts/cli-big", ADMIN, NULL, 404,
                      "account_not_found");
    unlink(path);
    free(path), free(body), free(max_card);

    /* rollover: a line of 101 does not fit an invoice 50 short of the cap */
    put_account("roll",
                "{\"currency\":\"USD\",\"rate_card\":" CARD(100, 100, 100, 100, 100, 1, "{}", "{}", "") "}");
    json_t *rc[3];
    bill_n(pg, "roll", 1, rc);
    char *first = open_invoice(pg, "roll");
    ck_assert_ptr_nonnull(first);
    char *sql = tst_fmt("UPDATE invoices SET total_minor = %lld - 50 WHERE invoice_id = '%s' "
                    "RETURNING 1", BILL_INVOICE_TOTAL_MAX, first);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    bill_n(pg, "roll", 2, rc + 1);
    char *second = open_invoice(pg, "roll");
    ck_assert_ptr_nonnull(second);
    ck_assert_str_ne(first, second);
    for (int i = 1; i < 3; i++) {
        char *inv = tst_pg_scalarf(pg,
                                   "SELECT invoice_id || ' ' || line_no || ' ' || late || ' ' || "
                                   "total_minor FROM invoice_lines WHERE cr_id = '%s'",
                                   tst_str(rc[i], "cr_id"));
        char *want = tst_fmt("%s %d false 101", second, i);
        ck_assert_str_eq(inv, want);
        free(inv), free(want);
    }
    char *head = tst_pg_scalarf(pg,
                                "SELECT status || ' ' || rolled_over || ' ' || line_count || ' ' "
                                "|| total_minor FROM invoices WHERE invoice_id = '%s'",
                                first);
    char *want = tst_fmt("finalizing true 1 %lld", BILL_INVOICE_TOTAL_MAX - 50);
    ck_assert_str_eq(head, want);
    free(head), free(want);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT count(DISTINCT period) FROM invoices WHERE "
                                      "account_id = 'roll'"),
                     1);
    /* at the cap exactly a line still fits; one minor unit past it, it rolls over */
    put_account("edge",
                "{\"currency\":\"USD\",\"rate_card\":" CARD(100, 100, 100, 100, 100, 1, "{}", "{}", "") "}");
    json_t *ec[3];
    bill_n(pg, "edge", 1, ec);
    char *edge = open_invoice(pg, "edge");
    sql = tst_fmt("UPDATE invoices SET total_minor = %lld - 101 WHERE invoice_id = '%s' RETURNING 1",
              BILL_INVOICE_TOTAL_MAX, edge);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    bill_n(pg, "edge", 1, ec + 1);
    head = tst_pg_scalarf(pg,
                          "SELECT status || ' ' || line_count || ' ' || total_minor FROM invoices "
                          "WHERE invoice_id = '%s'",
                          edge);
    want = tst_fmt("open 2 %lld", BILL_INVOICE_TOTAL_MAX);
    ck_assert_str_eq(head, want);
    free(head), free(want);
    bill_n(pg, "edge", 1, ec + 2);
    char *edge2 = open_invoice(pg, "edge");
    ck_assert_str_ne(edge, edge2);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM invoice_lines WHERE invoice_id = '%s'", edge2), 1);
    for (int i = 0; i < 3; i++)
        json_decref(ec[i]);
    free(edge), free(edge2);

    /* the continuation is an ordinary invoice: it finalizes and verifies */
    json_t *fin = finalize(second);
    ck_assert_int_eq(num(json_object_get(fin, "invoice"), "line_count"), 2);
    json_decref(fin);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT count(*) FROM fn_runs WHERE dead_at IS NOT NULL"), 0);
    for (int i = 0; i < 3; i++)
        json_decref(rc[i]);
    free(first), free(second);
    PQfinish(pg);
}
END_TEST

/* The invoice's lines_root recomputed independently from the lineage CIDs in the database. */
static char *independent_root(PGconn *pg, const char *inv)
{
    char *sql = tst_fmt("SELECT string_agg(lineage_cid, E'\\n' ORDER BY line_no) FROM invoice_lines "
                    "WHERE invoice_id = '%s'",
                    inv);
    char *cids = tst_pg_scalar(pg, sql), *path = save(cids ? cids : "", cids ? strlen(cids) : 0);
    char *root = oracle("merkle %s", path);
    ck_assert_ptr_nonnull(root);
    unlink(path);
    free(sql), free(cids), free(path);
    return root;
}

START_TEST(finalize_and_trigger)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[5];
    put_account(
        "fin", "{\"currency\":\"GBP\",\"rate_card\":" CARD(250, 1, 1, 1, 1, 3, "{}", "{}", "") "}");
    bill_n(pg, "fin", 5, rc);
    char *inv = open_invoice(pg, "fin");
    json_t *res = finalize(inv), *doc = json_object_get(res, "document");
    /* totals, count and root recomputed independently of the broker */
    long sum =
        tst_pg_longf(pg, "SELECT sum(total_minor) FROM invoice_lines WHERE invoice_id = '%s'", inv);
    ck_assert_int_eq(sum, 5 * 253);
    ck_assert_str_eq(tst_str(doc, "total_minor"), "1265");
    ck_assert_str_eq(tst_str(doc, "total"), "12.65");
    ck_assert_int_eq(num(doc, "line_count"), 5);
    ck_assert_str_eq(tst_str(doc, "currency"), "GBP");
    ck_assert_str_eq(tst_str(doc, "invoice_id"), inv);
    char *root = independent_root(pg, inv);
    ck_assert_str_eq(tst_str(doc, "lines_root"), root);
    assert_signed(doc, "invoice_cid");
    /* what GET shows is what was signed */
    json_t *page = get_invoice(inv, NULL);
    ck_assert_str_eq(tst_str(json_object_get(page, "invoice"), "status"), "finalized");
    ck_assert_str_eq(tst_str(json_object_get(page, "invoice"), "invoice_cid"), tst_str(doc, "invoice_cid"));
    assert_signed(json_object_get(page, "document"), "invoice_cid");
    char *path = tst_fmt("/billing/invoices/%s/finalize", inv);
    tst_expect_status(B.port, "POST", path, FINANCE, NULL, 409, "invoice_finalized");
    free(path);

    /* the database itself refuses changes to a finalized invoice and its lines */
    const char *refused[] = {
        "UPDATE invoices SET total_minor = 0 WHERE invoice_id = '%s'",
        "UPDATE invoices SET status = 'open' WHERE invoice_id = '%s'",
        "DELETE FROM invoices WHERE invoice_id = '%s'",
        "UPDATE invoice_lines SET total_minor = 0 WHERE invoice_id = '%s'",
        "DELETE FROM invoice_lines WHERE invoice_id = '%s' AND line_no = 1",
        "INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, cr_id, context_id, "
        "lineage_cid, "
        "chronicle_cid, outcome, quantity, unit_minor, total_minor, rating, occurred_at) SELECT "
        "tenant_id, invoice_id, 99, cr_id, context_id, lineage_cid, chronicle_cid, outcome, 0, 0, "
        "0, "
        "'{}', now() FROM invoice_lines WHERE invoice_id = '%s' AND line_no = 1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *sql = tst_fmt(refused[i], inv), *msg = sql_error(pg, sql);
        ck_assert_msg(strstr(msg, "finalized") != NULL || strstr(msg, "duplicate") != NULL,
                      "%s: %s", sql, msg);
        free(sql), free(msg);
    }
    char *msg = sql_error(pg, "TRUNCATE invoices, invoice_lines, credit_notes");
    ck_assert_ptr_nonnull(strstr(msg, "cannot be truncated"));
    free(msg);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT total_minor FROM invoices WHERE invoice_id = '%s'", inv), 1265);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM invoice_lines WHERE invoice_id = '%s'", inv), 5);

    /* an interrupted finalization (left finalizing) is finished by the next POST; while
     * finalizing, lines cannot be added to it by hand either */
    json_t *more[2];
    bill_n(pg, "fin", 2, more);
    char *inv2 = open_invoice(pg, "fin");
    ck_assert_str_ne(inv2, inv);
    char *sql = tst_fmt("UPDATE invoices SET status = 'finalizing', finalizing_at = now() "
                    "WHERE invoice_id = '%s'",
                    inv2);
    free(tst_pg_scalar(pg, sql));
    free(sql);
    sql = tst_fmt("DELETE FROM invoice_lines WHERE invoice_id = '%s'", inv2);
    msg = sql_error(pg, sql);
    ck_assert_ptr_nonnull(strstr(msg, "finalizing"));
    free(msg), free(sql);
    json_t *res2 = finalize(inv2);
    doc = json_object_get(res2, "document");
    ck_assert_int_eq(num(doc, "line_count"), 2);
    free(root);
    root = independent_root(pg, inv2);
    ck_assert_str_eq(tst_str(doc, "lines_root"), root);
    assert_signed(doc, "invoice_cid");
    assert_totals(pg);
    for (int i = 0; i < 5; i++)
        json_decref(rc[i]);
    json_decref(more[0]), json_decref(more[1]);
    json_decref(res), json_decref(res2), json_decref(page);
    free(inv), free(inv2), free(root);
    PQfinish(pg);
}
END_TEST

START_TEST(late_lines)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[1], *late[2];
    put_account("late", "{\"currency\":\"EUR\",\"rate_card\":" CARD(100, 1, 1, 1, 1, 0, "{}", "{}",
                                                                    "") "}");
    bill_n(pg, "late", 1, rc);
    char *first = open_invoice(pg, "late");
    json_t *res = finalize(first);
    /* this month is finalized now: its further CRs go on a new open invoice, marked late */
    bill_n(pg, "late", 2, late);
    char *next = open_invoice(pg, "late");
    ck_assert_ptr_nonnull(next);
    ck_assert_str_ne(next, first);
    for (int i = 0; i < 2; i++) {
        char *where = tst_pg_scalarf(pg,
                                     "SELECT invoice_id || ' ' || late FROM invoice_lines "
                                     "WHERE cr_id = '%s'",
                                     tst_str(late[i], "cr_id"));
        char *want = tst_fmt("%s true", next);
        ck_assert_str_eq(where, want);
        free(where), free(want);
    }
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT line_count FROM invoices WHERE invoice_id = '%s'", first), 1);
    char *same = tst_pg_scalarf(pg,
                                "SELECT (SELECT period FROM invoices WHERE invoice_id = '%s') = "
                                "(SELECT period FROM invoices WHERE invoice_id = '%s')",
                                first, next);
    ck_assert_str_eq(same, "t");
    json_t *page = get_invoice(next, NULL);
    ck_assert_int_eq(num(json_object_get(page, "invoice"), "late_lines"), 2);
    ck_assert(
        json_is_true(json_object_get(json_array_get(json_object_get(page, "lines"), 0), "late")));
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(*) FROM invoice_lines WHERE invoice_id = '%s' AND "
                                  "NOT late",
                                  first),
                     1);
    assert_totals(pg);
    json_decref(rc[0]), json_decref(late[0]), json_decref(late[1]);
    json_decref(res), json_decref(page);
    free(first), free(next), free(same);
    PQfinish(pg);
}
END_TEST

START_TEST(credit_notes)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[2];
    put_account(
        "crn", "{\"currency\":\"USD\",\"rate_card\":" CARD(500, 1, 1, 1, 1, 0, "{}", "{}", "") "}");
    bill_n(pg, "crn", 2, rc);
    char *inv = open_invoice(pg, "crn");
    char *path = tst_fmt("/billing/invoices/%s/credit-notes", inv);
    /* only on finalized invoices */
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":100,\"reason\":\"x\"}", 409,
                      "invoice_not_finalized");
    json_t *res = finalize(inv);
    const char *invoice_cid = tst_str(json_object_get(res, "document"), "invoice_cid");
    tst_expect_status(B.port, "POST", path, AUDITOR,
                      "{\"line_no\":1,\"amount_minor\":100,\"reason\":\"x\"}", 403, NULL);
    tst_expect_status(B.port, "POST", path, STRANGER,
                      "{\"line_no\":1,\"amount_minor\":100,\"reason\":\"x\"}", 404,
                      "invoice_not_found");
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":0,\"reason\":\"x\"}", 422, NULL);
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":501,\"reason\":\"x\"}", 422,
                      "credit_exceeds_line");
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":0,\"amount_minor\":1,\"reason\":\"x\"}", 422, NULL);
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":3,\"amount_minor\":1,\"reason\":\"x\"}", 404, "line_not_found");
    tst_expect_status(B.port, "POST", path, FINANCE, "{\"line_no\":1,\"amount_minor\":1}", 400,
                      "missing_field");
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":1,\"reason\":\"\"}", 400, NULL);
    char reason[258];
    memset(reason, 'r', sizeof reason);
    reason[257] = 0; /* 257 bytes: one over CREDIT_REASON_MAX */
    char *long_body = tst_fmt("{\"line_no\":1,\"amount_minor\":1,\"reason\":\"%s\"}", reason);
    tst_expect_status(B.port, "POST", path, FINANCE, long_body, 400, "field_too_long");
    free(long_body);
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":\"1\",\"reason\":\"x\"}", 400, NULL);
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":1,\"amount_minor\":1,\"reason\":\"x\",\"y\":1}", 400,
                      "unknown_field");
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM credit_notes WHERE invoice_id = '%s'", inv), 0);
    /* a good one: signed, referencing the line and the invoice; then the rest of the line */
    tst_resp_t r =
        tst_call(B.port, "POST", path, FINANCE,
                 "{\"line_no\":2,\"amount_minor\":120,\"reason\":\"duplicate run\"}", 200);
    json_t *cdoc = json_object_get(r.json, "document");
    assert_signed(cdoc, "credit_cid");
    ck_assert_str_eq(tst_str(cdoc, "invoice_cid"), invoice_cid);
    ck_assert_str_eq(tst_str(cdoc, "lineage_cid"), tst_str(rc[1], "lineage_cid"));
    ck_assert_str_eq(tst_str(cdoc, "amount"), "1.20");
    ck_assert_str_eq(tst_str(r.json, "amount"), "1.20");
    char *credit_id = strdup(tst_str(r.json, "credit_id"));
    tst_resp_clear(&r);
    tst_expect_status(B.port, "POST", path, FINANCE,
                      "{\"line_no\":2,\"amount_minor\":381,\"reason\":\"x\"}", 422,
                      "credit_exceeds_line");
    reason[256] = 0; /* exactly CREDIT_REASON_MAX */
    long_body = tst_fmt("{\"line_no\":2,\"amount_minor\":380,\"reason\":\"%s\"}", reason);
    r = tst_call(B.port, "POST", path, FINANCE, long_body, 200);
    ck_assert_uint_eq(strlen(tst_str(r.json, "reason")), 256);
    tst_resp_clear(&r);
    free(long_body);
    json_t *page = get_invoice(inv, NULL), *head = json_object_get(page, "invoice");
    ck_assert_uint_eq(json_array_size(json_object_get(page, "credit_notes")), 2);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(page, "credit_notes"), 0), "credit_id"),
                     credit_id);
    ck_assert_int_eq(num(head, "total_minor"), 1000); /* the invoice itself never changes */
    ck_assert_int_eq(num(head, "credited_minor"), 500);
    ck_assert_str_eq(tst_str(head, "net"), "5.00");
    /* credit notes are never changed either */
    char *sql = tst_fmt("UPDATE credit_notes SET amount_minor = 1 WHERE credit_id = '%s'", credit_id);
    char *msg = sql_error(pg, sql);
    ck_assert_ptr_nonnull(strstr(msg, "never changed"));
    free(sql), free(msg);
    sql = tst_fmt("DELETE FROM credit_notes WHERE credit_id = '%s'", credit_id);
    msg = sql_error(pg, sql);
    free(sql), free(msg);
    /* the HTML page shows them */
    char *gpath = tst_fmt("/billing/invoices/%s/", inv);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: text/html\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", gpath, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "<html>"));
    ck_assert_ptr_nonnull(strstr(r.body, credit_id));
    ck_assert_ptr_nonnull(strstr(r.body, invoice_cid));
    tst_resp_clear(&r);
    free(gpath), free(hdr), free(path), free(inv), free(credit_id);
    json_decref(res), json_decref(page), json_decref(rc[0]), json_decref(rc[1]);
    PQfinish(pg);
}
END_TEST

/* Parses a CSV file with Python's csv module into a JSON array of row objects. */
static json_t *python_csv(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import csv, json, sys; print(json.dumps(list(csv.DictReader("
             "open(sys.argv[1], newline=\"\")))))' %s",
             path);
    FILE *p = popen(cmd, "r");
    json_error_t e;
    json_t *j = json_loadf(p, 0, &e);
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(j != NULL, "python's csv output does not parse: %s", e.text);
    return j;
}

static void compare_csv_row(const json_t *row, const json_t *line, const char *inv,
                            const char *currency)
{
    char buf[64];
    ck_assert_str_eq(tst_str(row, "invoice_id"), inv);
    snprintf(buf, sizeof buf, "%lld", num(line, "line_no"));
    ck_assert_str_eq(tst_str(row, "line_no"), buf);
    const char *same[] = {"cr_id", "context_id",  "occurred_at",   "outcome", "unit",
                          "total", "lineage_cid", "chronicle_cid", NULL};
    for (int k = 0; same[k]; k++)
        ck_assert_str_eq(tst_str(row, same[k]), tst_str(line, same[k]));
    const char *ints[] = {"quantity", "unit_minor", "total_minor", NULL};
    for (int k = 0; ints[k]; k++) {
        snprintf(buf, sizeof buf, "%lld", num(line, ints[k]));
        ck_assert_str_eq(tst_str(row, ints[k]), buf);
    }
    ck_assert_str_eq(tst_str(row, "late"),
                     json_is_true(json_object_get(line, "late")) ? "true" : "false");
    ck_assert_str_eq(tst_str(row, "currency"), currency);
    json_t *mr = json_object_get(line, "merkle_root");
    ck_assert_str_eq(tst_str(row, "merkle_root"), json_is_null(mr) ? "" : json_string_value(mr));
    /* the log index column: the line's own index in the tenant's transparency log */
    ck_assert_msg(json_is_integer(json_object_get(line, "log_index")), "line without log_index");
    snprintf(buf, sizeof buf, "%lld", num(line, "log_index"));
    ck_assert_str_eq(tst_str(row, "log_index"), buf);
    char flags[512] = "";
    size_t i, n = 0;
    json_t *f;
    json_array_foreach(json_object_get(line, "flags"), i, f) n +=
        (size_t)snprintf(flags + n, sizeof flags - n, "%s%s", i ? ";" : "", json_string_value(f));
    ck_assert_str_eq(tst_str(row, "flags"), flags);
}

START_TEST(csv_export)
{
    enum { BULK = 1005 }; /* more than one page of BILL_PAGE_LINES (1000) */
    PGconn *pg = tst_pg_connect(DB);
    tst_resp_t r;
    put_account("bulk", "{\"currency\":\"BHD\",\"rate_card\":" CARD(
                            1234, 1, 777, 1, 5, 1, "{}", "{}", ",\"flagged_surcharge\":1") "}");
    /* a few with flags, one without a Chronicle root, then a session with many receipts */
    cr_opts_t o = {"\"billing_account\":\"bulk\"", NULL, NULL, NULL, "violated", OTHER};
    json_t *x = post_cr(&o);
    json_decref(x);
    o = (cr_opts_t){"\"billing_account\":\"bulk\"", NULL, NULL, NULL, NULL, NULL, 1};
    x = post_cr(&o);
    json_decref(x);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", SHELL,
                                   "{\"accord_template\":\"default\",\"session_mode\":true,"
                                   "\"billing_account\":\"bulk\",\"ttl_seconds\":900,"
                                   "\"operation\":{\"command_hash\":\"" CMD
                                   "\",\"corpus_entry_cid\":"
                                   "\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\"}}",
                                   &r),
                     0);
    ck_assert_int_eq(r.status, 200);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    backdate(ctx);
    for (int i = 0; i < BULK - 2; i++) {
        char *b = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":%d,"
                      "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":"
                      "\"2026-01-01T00:00:00Z\",\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":"
                      "\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\",\"chronicle\":"
                      "{\"behavior_state\":\"verified\",\"merkle_root\":\"" ROOT "\"}}",
                      ctx, i);
        ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", SHELL, b, &r), 0);
        ck_assert_int_eq(r.status, 200);
        tst_resp_clear(&r);
        free(b);
    }
    char *inv = open_invoice(pg, "bulk");
    char *sql = tst_fmt("SELECT count(*) FROM invoice_lines WHERE invoice_id = '%s'", inv);
    ck_assert_int_eq(tst_pg_wait_long(pg, sql, BULK, 60), BULK);
    free(sql);

    /* the JSON lines, two pages */
    json_t *p1 = get_invoice(inv, NULL);
    ck_assert_int_eq(num(p1, "next_after"), 1000);
    json_t *p2 = get_invoice(inv, "?after=1000");
    ck_assert(json_is_null(json_object_get(p2, "next_after")));
    ck_assert_uint_eq(json_array_size(json_object_get(p2, "lines")), BULK - 1000);
    json_t *lines = json_deep_copy(json_object_get(p1, "lines"));
    json_array_extend(lines, json_object_get(p2, "lines"));
    tst_expect_status(B.port, "GET",
                      "/billing/invoices/inv_00000000000000000000000000000000/?after=x", FINANCE,
                      NULL, 400, "invalid_query");

    /* the CSV, streamed in chunks, read back by a real CSV parser */
    char *path = tst_fmt("/billing/invoices/%s/lines.csv", inv);
    r = tst_call(B.port, "GET", path, AUDITOR, NULL, 200);
    char v[128];
    ck_assert_ptr_nonnull(tst_resp_header(&r, "content-type", v, sizeof v));
    ck_assert_int_eq(strncmp(v, "text/csv", 8), 0);
    ck_assert_str_eq(tst_resp_header(&r, "transfer-encoding", v, sizeof v), "chunked");
    ck_assert_int_eq(strncmp(r.body, "invoice_id,line_no,cr_id,", 25), 0);
    char *file = save(r.body, r.body_len);
    json_t *rows = python_csv(file);
    ck_assert_uint_eq(json_array_size(rows), BULK);
    for (size_t i = 0; i < BULK; i++)
        compare_csv_row(json_array_get(rows, i), json_array_get(lines, i), inv, "BHD");
    /* the flagged line: two flags, the effective outcome, the surcharge, formatted by BHD */
    json_t *first = json_array_get(rows, 0);
    ck_assert_str_eq(tst_str(first, "flags"), "parameters_mismatch;behavior_violated");
    ck_assert_str_eq(tst_str(first, "outcome"), "violated");
    ck_assert_str_eq(tst_str(first, "total"), "0.779");
    ck_assert_str_eq(tst_str(json_array_get(rows, 1), "merkle_root"), "");
    ck_assert_str_eq(tst_str(json_array_get(rows, 2), "total"), "1.234");
    tst_resp_clear(&r);
    unlink(file);
    /* the request log says which reply was streamed, in the same line shape as the others */
    ck_assert_int_eq(log_line_streamed(path), 1);
    char *page = tst_fmt("/billing/invoices/%s/", inv);
    ck_assert_int_eq(log_line_streamed(page), 0);
    free(page);
    /* and finalizing a two-page invoice sums and hashes every line */
    json_t *res = finalize(inv);
    char *root = independent_root(pg, inv);
    ck_assert_str_eq(tst_str(json_object_get(res, "document"), "lines_root"), root);
    ck_assert_int_eq(num(json_object_get(res, "document"), "line_count"), BULK);
    assert_signed(json_object_get(res, "document"), "invoice_cid");
    assert_totals(pg);
    free(ctx), free(inv), free(path), free(file), free(root);
    json_decref(p1), json_decref(p2), json_decref(lines), json_decref(rows), json_decref(res);
    PQfinish(pg);
}
END_TEST

START_TEST(month_close)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[2];
    put_account("old",
                "{\"currency\":\"JPY\",\"rate_card\":" CARD(7, 1, 1, 1, 1, 0, "{}", "{}", "") "}");
    bill_n(pg, "old", 2, rc);
    char *inv = open_invoice(pg, "old");
    /* pretend its month is over: the month-close job finalizes it on its own */
    char *sql = tst_fmt("UPDATE invoices SET period = date_trunc('month', now() - interval '40 days') "
                    "WHERE invoice_id = '%s'",
                    inv);
    free(tst_pg_scalar(pg, sql));
    free(sql);
    sql =
        tst_fmt("SELECT count(*) FROM invoices WHERE invoice_id = '%s' AND status = 'finalized'", inv);
    ck_assert_msg(tst_pg_wait_long(pg, sql, 1, 45) == 1, "the month-close job did not finalize %s",
                  inv);
    free(sql);
    json_t *page = get_invoice(inv, NULL), *doc = json_object_get(page, "document");
    ck_assert_str_eq(tst_str(doc, "total_minor"), "14");
    char *root = independent_root(pg, inv);
    ck_assert_str_eq(tst_str(doc, "lines_root"), root);
    assert_signed(doc, "invoice_cid");
    free(inv), free(root);
    json_decref(page), json_decref(rc[0]), json_decref(rc[1]);
    PQfinish(pg);
}
END_TEST

START_TEST(two_brokers)
{
    enum { N = 40 };
    tst_broker_t b2;
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_broker_start(&b2, tst_pg_conninfo(DB), ENV), 0);
    put_account("twin",
                "{\"currency\":\"USD\",\"rate_card\":" CARD(3, 1, 1, 1, 1, 1, "{}", "{}", "") "}");
    cr_opts_t o = {"\"billing_account\":\"twin\""};
    char *ids[N];
    for (int i = 0; i < N; i++) {
        json_t *rc = post_cr_on(i % 2 ? b2.port : B.port, SHELL, &o, 0);
        ids[i] = strdup(tst_str(rc, "cr_id"));
        json_decref(rc);
    }
    ck_assert_int_eq(tst_pg_wait_long(pg,
                                      "SELECT count(*) FROM invoice_lines l JOIN invoices i "
                                      "USING (tenant_id, invoice_id) WHERE i.account_id = 'twin'",
                                      N, 30),
                     N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(
            tst_pg_longf(pg, "SELECT count(*) FROM invoice_lines WHERE cr_id = '%s'", ids[i]), 1);
        free(ids[i]);
    }
    /* each billing run took effect once, whichever broker ran it */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs r JOIN events e USING "
                                     "(tenant_id, event_id) WHERE r.function = 'billing' AND "
                                     "e.type = 'GSAP_CR_RECEIVED' AND r.done_at IS NULL"),
                     0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT total_minor FROM invoices WHERE account_id = 'twin'"),
                     N * 4);
    assert_totals(pg);
    ck_assert_int_eq(tst_broker_stop(&b2), 0);
    tst_broker_clear(&b2);
    PQfinish(pg);
}
END_TEST

START_TEST(display_limits)
{
    PGconn *pg = tst_pg_connect(DB);
    json_t *rc[1];
    /* the list shows BILL_LIST_MAX (1000) invoices, newest period first: 1000 all, 1001 cut */
    free(tst_pg_scalar(pg, "INSERT INTO invoices (tenant_id, invoice_id, account_id, period, "
                           "currency, exponent) SELECT 'acme', 'inv_' || lpad(to_hex(g), 32, '0'), "
                           "'default', date '1900-01-01' + make_interval(months => g), 'USD', 2 "
                           "FROM generate_series(1, 1000) g"));
    tst_resp_t r = tst_call(B.port, "GET", "/billing/invoices/", AUDITOR, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "invoices")), 1000);
    tst_resp_clear(&r);
    bill_n(pg, "default", 1, rc);
    r = tst_call(B.port, "GET", "/billing/invoices/", AUDITOR, NULL, 200);
    json_t *list = json_object_get(r.json, "invoices");
    ck_assert_uint_eq(json_array_size(list), 1000);
    char *inv = tst_pg_scalarf(pg, "SELECT invoice_id FROM invoice_lines WHERE cr_id = '%s'",
                               tst_str(rc[0], "cr_id"));
    char *newest =
        tst_pg_scalarf(pg, "SELECT invoice_id FROM invoices ORDER BY period DESC LIMIT 1");
    ck_assert_str_eq(tst_str(json_array_get(list, 0), "invoice_id"), newest);
    ck_assert_str_ne(tst_str(json_array_get(list, 999), "invoice_id"),
                     "inv_00000000000000000000000000000001");
    tst_resp_clear(&r);
    /* an invoice shows BILL_CREDITS_MAX (1000) credit notes: 1000 all, 1001 cut */
    json_t *res = finalize(inv);
    char *sql = tst_fmt("INSERT INTO credit_notes (tenant_id, credit_id, invoice_id, line_no, "
                    "amount_minor, reason, document, credit_cid, signature, key_id, created_at) "
                    "SELECT 'acme', 'crn_' || lpad(to_hex(g), 32, '0'), '%s', 1, 1, 'bulk', '{}', "
                    "'sha256:' || repeat('0', 64), 'x', 'k', now() FROM generate_series(1, %%d) g",
                    inv);
    char *q = tst_fmt(sql, 1000);
    free(tst_pg_scalar(pg, q));
    free(q);
    json_t *page = get_invoice(inv, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(page, "credit_notes")), 1000);
    json_decref(page);
    q = tst_fmt("INSERT INTO credit_notes (tenant_id, credit_id, invoice_id, line_no, amount_minor, "
            "reason, document, credit_cid, signature, key_id, created_at) VALUES ('acme', "
            "'crn_ffffffffffffffffffffffffffffffff', '%s', 1, 1, 'one more', '{}', "
            "'sha256:' || repeat('0', 64), 'x', 'k', now())",
            inv);
    free(tst_pg_scalar(pg, q));
    free(q);
    page = get_invoice(inv, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(page, "credit_notes")), 1000);
    ck_assert_int_eq(num(json_object_get(page, "invoice"), "credited_minor"), 1001);
    json_decref(page), json_decref(res), json_decref(rc[0]);
    free(sql), free(inv), free(newest);
    PQfinish(pg);
}
END_TEST

/* ---- batches, workers, the queue in /metrics ---- */

#define PENDING "SELECT count(*) FROM fn_runs WHERE done_at IS NULL AND dead_at IS NULL"

START_TEST(metrics_show_backlog)
{
    enum { N = 4 };
    PGconn *pg = tst_pg_connect(DB);
    cr_opts_t o = {0};
    tst_resp_t r;

    /* The runtime is stuck inside a billing batch: what /metrics shows is still the
     * database's count, not what the runtime last managed to refresh. */
    PGconn *h = hold_billing("acme");
    for (int i = 0; i < N; i++)
        json_decref(post_cr(&o));
    sleep(2);
    long want = tst_pg_long(pg, PENDING);
    ck_assert_int_ge(want, N); /* billing's, one per CR (it logs each CR itself) */
    r = tst_call(B.port, "GET", "/metrics", ADMIN, NULL, 200);
    ck_assert_int_eq(metric(r.body, "gsap_fn_queue_depth"), want);
    ck_assert_int_ge(metric(r.body, "gsap_fn_oldest_pending_seconds"), 2);
    ck_assert_int_eq(metric(r.body, "gsap_fn_queue_measured"), 1);
    tst_resp_clear(&r);
    release_billing(h);
    ck_assert_int_eq(tst_pg_wait_long(pg, "SELECT count(*) FROM invoice_lines", N, LINE_WAIT_S), N);
    ck_assert_int_eq(
        tst_pg_wait_long(pg,
                         "SELECT (count(*) = 0)::int FROM fn_runs WHERE done_at IS NULL "
                         "AND dead_at IS NULL",
                         1, LINE_WAIT_S),
        1);
    r = tst_call(B.port, "GET", "/metrics", ADMIN, NULL, 200);
    ck_assert_int_eq(metric(r.body, "gsap_fn_queue_depth"), 0);
    ck_assert_int_eq(metric(r.body, "gsap_fn_oldest_pending_seconds"), 0);
    tst_resp_clear(&r);
    PQfinish(pg);
}
END_TEST

/*
 * The HTTP connections send the NOTIFY that wakes the runtimes right after a receipt's
 * transaction, as a transaction of its own (handlers/hnd_util.h): with the poll timer at a
 * minute, a receipt is still billed at once. gsap_emit itself notifies only in sessions that
 * do not say they will (gsap.notify = 'deferred'): the CLI and plain SQL still wake the
 * runtimes from inside their transactions.
 */
START_TEST(woken_after_commit)
{
    static const char *const env[] = {"GSAP_FN_POLL_MS=60000", NULL};
    PGconn *pg = tst_pg_connect(DB), *listener = tst_pg_connect(DB);
    cr_opts_t o = {0};

    restart_with(env);
    sleep(1); /* past the runtime's first pass at start */
    long before = tst_pg_long(pg, "SELECT count(*) FROM invoice_lines");
    for (int i = 0; i < 3; i++) {
        json_t *rc = post_cr(&o);
        char *q = tst_fmt("SELECT count(*) FROM invoice_lines WHERE cr_id = '%s'",
                          tst_str(rc, "cr_id"));
        ck_assert_int_eq(tst_pg_wait_long(pg, q, 1, 5), 1);
        free(q);
        json_decref(rc);
    }
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines"), before + 3);

    /* gsap_emit, called in SQL: a NOTIFY unless the session defers it */
    tst_pg_execf(listener, "LISTEN gsap_events");
    const char *emit = "SELECT gsap_emit('acme', 'TEST_WAKE', NULL, '{}'::jsonb)";
    int got[2];
    for (int deferred = 0; deferred < 2; deferred++) {
        tst_pg_execf(pg, "SET gsap.notify = '%s'", deferred ? "deferred" : "");
        tst_pg_execf(pg, "BEGIN");
        tst_pg_execf(pg, "%s", emit);
        tst_pg_execf(pg, "COMMIT");
        tst_pg_execf(listener, "SELECT 1"); /* delivers what was sent before it */
        PGnotify *n;
        got[deferred] = 0;
        PQconsumeInput(listener);
        while ((n = PQnotifies(listener)) != NULL) {
            got[deferred]++;
            PQfreemem(n);
        }
    }
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[1], 0);
    PQfinish(listener);
    PQfinish(pg);
    restart_with(NULL);
}
END_TEST

START_TEST(poison_in_batch)
{
    enum { N = 6 };
    static const char *const env[] = {"GSAP_FN_POLL_MS=200", "GSAP_FN_WORKERS=1",
                                      "GSAP_FN_BACKOFF_MS=60000", NULL};
    PGconn *pg = tst_pg_connect(DB);
    cr_opts_t o = {0};
    json_t *rc[N];

    restart_with(env);
    /* One worker, stuck in a first batch: the rest, poison included, wait for the next. */
    PGconn *h = hold_billing("acme");
    for (int i = 0; i < N; i++) {
        if (i == N / 2) /* a CR event whose lineage CID the database refuses (not a gsap_cid):
                         * it passes the checks in C and fails its batch's statement */
            free(tst_pg_scalar(pg, "INSERT INTO events (tenant_id, type, context_id, payload) "
                                   "SELECT tenant_id, type, context_id, payload || "
                                   "'{\"cr_id\":\"cr_ffffffffffffffffffffffffffffffff\","
                                   "\"lineage_cid\":\"sha256:poison\"}' FROM events "
                                   "WHERE type = 'GSAP_CR_RECEIVED' ORDER BY event_id DESC LIMIT 1 "
                                   "RETURNING event_id"));
        rc[i] = post_cr(&o);
    }
    release_billing(h);
    ck_assert_int_eq(tst_pg_wait_long(pg, "SELECT count(*) FROM invoice_lines", N, LINE_WAIT_S), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(tst_pg_longf(pg,
                                      "SELECT count(*) FROM invoice_lines WHERE cr_id = '%s' AND "
                                      "log_index IS NOT NULL",
                                      tst_str(rc[i], "cr_id")),
                         1);
        json_decref(rc[i]);
    }
    /* the poison failed alone: pending, one attempt, its error kept, retried after backoff */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines WHERE cr_id = "
                                     "'cr_ffffffffffffffffffffffffffffffff'"),
                     0);
    /* billing's failure created the log sequencer's pair, which failed on the same CID in a
     * later pass */
    ck_assert_int_eq(tst_pg_wait_long(pg,
                                      "SELECT count(*) FROM fn_runs r JOIN events e USING "
                                      "(tenant_id, event_id) WHERE e.payload->>'lineage_cid' = "
                                      "'sha256:poison' AND r.done_at IS NULL AND r.dead_at IS NULL "
                                      "AND r.attempts = 1 AND r.last_error LIKE '%gsap_cid%' "
                                      "AND r.next_attempt_at > now() + interval '30 seconds'",
                                      2, LINE_WAIT_S),
                     2);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs WHERE function = 'tlog'"), 1);
    ck_assert_int_eq(tst_pg_long(pg, PENDING), 2);
    /* and it was in a batch with good CRs, which the runtime then ran one by one */
    char *log = tst_broker_log(&B);
    const char *p = strstr(log, "function batch failed, running its events one by one");
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(strstr(p, "\"function\":\"billing\""));
    const char *ev = strstr(p, "\"events\":\"");
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_ge(strtol(ev + strlen("\"events\":\""), NULL, 10), 2);
    free(log);
    assert_totals(pg);
    PQfinish(pg);
}
END_TEST


/* ---- bill_add_lines, called directly ---- */

#define SET_BASE 4141000000LL /* cr ids and lineage CIDs of the CRs written in SQL below */
#define SET_CTX "ctx_00000000000000000000000000005e7b"

/* bill_add_lines' element for the CR of sequence seq of SET_CTX (malloc'd). */
static char *set_line(int seq, const char *acct, const char *occurred, long long total,
                      const char *flags)
{
    return tst_fmt("{\"tenant\":\"acme\",\"account\":\"%s\",\"currency\":\"USD\",\"exponent\":\"2\","
                   "\"cr_id\":\"cr_%032llx\",\"context\":\"" SET_CTX "\",\"lineage\":"
                   "\"sha256:%064llx\",\"chronicle\":\"" OTHER "\",\"merkle\":null,\"outcome\":"
                   "\"completed\",\"flags\":%s,\"quantity\":\"1\",\"unit\":\"%lld\",\"total\":"
                   "\"%lld\",\"rating\":{\"seq\":%d},\"occurred\":\"%s\"}",
                   acct, SET_BASE + seq, SET_BASE + seq, flags, total, total, seq, occurred);
}

/* Calls bill_add_lines with the n elements; its n rows as
 * "ord:account:line:late:inserted:index" joined by spaces, in ord order (malloc'd). Each row's
 * invoice, line number, late flag and index are also those stored for its CR. */
static char *add_lines(PGconn *pg, char **els, int n)
{
    size_t len = 3;
    for (int i = 0; i < n; i++)
        len += strlen(els[i]) + 1;
    char *arr = calloc(1, len), *p = arr;
    *p++ = '[';
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", els[i]);
    *p = ']';
    /* the call alone: a statement's own scans do not see the invoices its function creates */
    char *sql = tst_fmt("SELECT ord, invoice_id, concat_ws(':', line_no, late, inserted, "
                        "log_index), cr_id, concat_ws(':', invoice_id, line_no, late, "
                        "log_index) FROM bill_add_lines('%s'::jsonb) ORDER BY ord", arr);
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "bill_add_lines: %s",
                  PQresultErrorMessage(res));
    ck_assert_int_eq(PQntuples(res), n);
    char *got = strdup("");
    for (int i = 0; i < n; i++) {
        char *acct = tst_pg_scalarf(pg, "SELECT account_id FROM invoices WHERE invoice_id = '%s'",
                                    PQgetvalue(res, i, 1));
        ck_assert_ptr_nonnull(acct);
        /* what it returns is what is stored */
        char *stored = tst_pg_scalarf(pg, "SELECT concat_ws(':', invoice_id, line_no, late, "
                                          "log_index) FROM invoice_lines WHERE tenant_id = "
                                          "'acme' AND cr_id = '%s'", PQgetvalue(res, i, 3));
        ck_assert_ptr_nonnull(stored);
        ck_assert_str_eq(stored, PQgetvalue(res, i, 4));
        free(stored);
        char *next = tst_fmt("%s%s%s:%s:%s", got, i ? " " : "", PQgetvalue(res, i, 0), acct,
                             PQgetvalue(res, i, 2));
        free(got), free(acct);
        got = next;
    }
    PQclear(res);
    free(arr), free(sql);
    return got;
}

/* The set-based batch (migrations/functions/20_bill_add_lines.sql) gives every line what the
 * line-by-line path gave it: two accounts and two months in one batch (a group each, lines
 * numbered in event order, log indexes in (account, event) order), a CR named twice (one
 * line), a replay (nothing changes), a group that does not fit under the invoice cap (it
 * rolls over line by line), and a late group (every line late on the next open invoice). */
START_TEST(add_lines_set_based)
{
    PGconn *pg = tst_pg_connect(DB);
    const char *card = "{\"currency\":\"USD\",\"rate_card\":" CARD(1, 1, 1, 1, 1, 0, "{}", "{}", "") "}";
    put_account("seta", card);
    put_account("setb", card);
    json_t *rc[1];
    rc[0] = post_cr(&(cr_opts_t){.extra = "\"billing_account\":\"seta\""});
    ck_assert_int_eq(wait_line(pg, tst_str(rc[0], "cr_id")), 1); /* index 0 of acme's log */
    /* an AC and 20 receipts on it, written directly (their content is not what this checks) */
    tst_pg_fake_session(pg, tst_str(rc[0], "cr_id"), SET_CTX, 20, SET_BASE);

    /* 1. one batch: positions 1..10; position 6 names the CR of position 1 again */
    const char *jan = "2026-01-15T10:00:00Z", *feb = "2026-02-03T10:00:00Z";
    struct { int seq; const char *acct, *when; } b1[] = {
        {1, "seta", jan}, {2, "setb", jan}, {3, "seta", feb}, {4, "seta", jan}, {5, "setb", jan},
        {1, "seta", jan}, {7, "seta", feb}, {8, "seta", jan}, {9, "seta", jan}, {10, "seta", jan},
    };
    char *els[10];
    for (int i = 0; i < 10; i++)
        els[i] = set_line(b1[i].seq, b1[i].acct, b1[i].when, 1000 + b1[i].seq,
                          b1[i].seq == 4 ? "[\"behavior_violated\"]" : "[]");
    char *got = add_lines(pg, els, 10);
    /* seta's lines are logged first (1, 3, 4, 7, 8, 9, 10 from index 1), then setb's (2, 5) */
    ck_assert_str_eq(got, "1:seta:1:f:t:1 2:setb:1:f:t:8 3:seta:1:f:t:2 "
                          "4:seta:2:f:t:3 5:setb:2:f:t:9 6:seta:1:f:f:1 "
                          "7:seta:2:f:t:4 8:seta:3:f:t:5 9:seta:4:f:t:6 "
                          "10:seta:5:f:t:7");
    free(got);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM invoice_lines WHERE context_id = '" SET_CTX "'"), 9);
    /* each month of each account is an invoice of its own, with the sums of its lines */
    char *inv =
        tst_pg_scalarf(pg, "SELECT string_agg(account_id || ' ' || period || ' ' || line_count || "
                           "' ' || total_minor, ', ' ORDER BY account_id, period) FROM invoices "
                           "WHERE account_id IN ('seta', 'setb')");
    /* (the CR posted through the broker is on seta's invoice of the month it was received) */
    ck_assert_ptr_nonnull(strstr(inv, "seta 2026-01-01 5 5032"));
    ck_assert_ptr_nonnull(strstr(inv, "seta 2026-02-01 2 2010"));
    ck_assert_ptr_nonnull(strstr(inv, "setb 2026-01-01 2 2007"));
    free(inv);
    assert_totals(pg);
    /* what the bulk insert wrote is what the line-by-line path writes */
    got = tst_pg_scalarf(pg,
                         "SELECT l.line_no || ' ' || array_to_string(l.flags, ',') || ' ' || "
                         "l.quantity || ' ' || l.unit_minor || ' ' || l.total_minor || ' ' || "
                         "(l.rating->>'seq') || ' ' || (l.rate_card_version = (SELECT max(version) "
                         "FROM rate_card_versions WHERE tenant_id = 'acme' AND account_id = "
                         "'seta')) || ' ' || (e.lineage_cid = l.lineage_cid) FROM invoice_lines l "
                         "JOIN tlog_entries e ON e.tenant_id = l.tenant_id AND e.idx = l.log_index "
                         "WHERE l.cr_id = 'cr_%032llx'",
                         SET_BASE + 4);
    ck_assert_str_eq(got, "2 behavior_violated 1 1004 1004 4 true true");
    free(got);
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(*) FROM invoice_lines WHERE context_id = '" SET_CTX
                                  "' AND (rate_card_version IS NULL OR log_index IS NULL)"),
                     0);

    /* 2. the same batch again: every line is a replay, nothing changes */
    long size = tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'");
    got = add_lines(pg, els, 10);
    ck_assert_ptr_null(strstr(got, ":t:"));
    free(got);
    ck_assert_int_eq(
        tst_pg_longf(pg, "SELECT count(*) FROM invoice_lines WHERE context_id = '" SET_CTX "'"), 9);
    ck_assert_int_eq(tst_pg_longf(pg, "SELECT size FROM tlog_heads WHERE tenant_id = 'acme'"),
                     size);
    for (int i = 0; i < 10; i++)
        free(els[i]);

    /* 3. seta's January invoice 2,500 short of the cap: of three lines of 1,011..1,013 the
     * first two fit, the third freezes it and opens its continuation */
    char *jan_a =
        tst_pg_scalarf(pg, "SELECT invoice_id FROM invoices WHERE account_id = 'seta' AND "
                           "period = '2026-01-01' AND status = 'open'");
    char *sql = tst_fmt("UPDATE invoices SET total_minor = %lld - 2500 WHERE invoice_id = '%s' "
                  "RETURNING 1", BILL_INVOICE_TOTAL_MAX, jan_a);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    for (int i = 0; i < 3; i++)
        els[i] = set_line(11 + i, "seta", jan, 1000 + 11 + i, "[]");
    got = add_lines(pg, els, 3);
    ck_assert_str_eq(got, "1:seta:6:f:t:10 2:seta:7:f:t:11 "
                          "3:seta:1:f:t:12");
    free(got);
    got = tst_pg_scalarf(pg,
                         "SELECT status || ' ' || rolled_over || ' ' || line_count FROM invoices "
                         "WHERE invoice_id = '%s'",
                         jan_a);
    ck_assert_str_eq(got, "finalizing true 7");
    free(got);
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(*) FROM invoices WHERE account_id = 'seta' AND "
                                  "period = '2026-01-01' AND status = 'open' AND line_count = 1"),
                     1);
    for (int i = 0; i < 3; i++)
        free(els[i]);

    /* 4. setb's January invoice finalizing: two more January lines are late, both on the next
     * open invoice of the account */
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "WITH u AS (UPDATE invoices SET status = 'finalizing', "
                                  "finalizing_at = now() WHERE account_id = 'setb' AND period = "
                                  "'2026-01-01' RETURNING 1) SELECT count(*) FROM u"),
                     1);
    for (int i = 0; i < 2; i++)
        els[i] = set_line(14 + i, "setb", jan, 1000 + 14 + i, "[]");
    got = add_lines(pg, els, 2);
    ck_assert_str_eq(got, "1:setb:1:t:t:13 2:setb:2:t:t:14");
    free(got);
    ck_assert_int_eq(tst_pg_longf(pg,
                                  "SELECT count(DISTINCT invoice_id) FROM invoice_lines WHERE "
                                  "cr_id IN ('cr_%032llx', 'cr_%032llx') AND invoice_id IN (SELECT "
                                  "invoice_id FROM invoices WHERE status = 'open' AND period > "
                                  "'2026-01-01')",
                                  SET_BASE + 14, SET_BASE + 15),
                     1);
    for (int i = 0; i < 2; i++)
        free(els[i]);
    /* totals: the frozen invoice moved by its two lines from where it was set, the others
     * are the sums of their lines */
    ck_assert_int_eq(
        tst_pg_longf(pg,
                     "SELECT count(*) FROM invoices i WHERE invoice_id <> '%s' AND "
                     "(total_minor, line_count) IS DISTINCT FROM (SELECT "
                     "(coalesce(sum(total_minor), 0)::bigint, count(*)) FROM invoice_lines l "
                     "WHERE l.invoice_id = i.invoice_id)",
                     jan_a),
        0);
    sql = tst_fmt("SELECT count(*) FROM invoices WHERE invoice_id = '%s' AND total_minor = "
                  "%lld - 2500 + 1011 + 1012", jan_a, BILL_INVOICE_TOTAL_MAX);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    free(jan_a);
    json_decref(rc[0]);
    PQfinish(pg);
}
END_TEST

/* ---- kill -9 while clients post ---- */

#define CRASH_MAX 4096

typedef struct client {
    pthread_mutex_t mu;
    volatile int stop;
    char *token;
    char *ok[CRASH_MAX]; /* cr_ids answered 200 */
    int nok, attempts;
} client_t;

static void *client_loop(void *arg)
{
    client_t *c = arg;
    cr_opts_t o = {0};
    while (!c->stop && c->nok < CRASH_MAX) {
        json_t *rc = post_cr_on(B.port, c->token, &o, 1);
        pthread_mutex_lock(&c->mu);
        c->attempts++;
        if (rc != NULL)
            c->ok[c->nok++] = strdup(tst_str(rc, "cr_id"));
        pthread_mutex_unlock(&c->mu);
        if (rc == NULL)
            usleep(20 * 1000); /* the broker is down: try again shortly */
        json_decref(rc);
    }
    return NULL;
}

enum { CRASH_CLIENTS = 4 };

START_TEST(crash_kill9)
{
    /* Several workers and batches of up to 64 pairs; the kills land while the backlog that
     * piled up behind a held log head is being billed in batches. */
    static const char *const env[] = {"GSAP_FN_POLL_MS=200", "GSAP_FN_WORKERS=3",
                                      "GSAP_FN_BATCH=64", NULL};
    client_t c[CRASH_CLIENTS];
    pthread_t th[CRASH_CLIENTS];
    PGconn *pg = tst_pg_connect(DB);
    char *token = tst_keys_create(&B, "crash", "issuer,executor");
    int nok = 0;

    restart_with(env);
    /* three workers, two connections each */
    ck_assert_int_ge(tst_pg_wait_long(pg,
                                      "SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'gsap-fn-runtime' AND datname = '" DB "'",
                                      6, 10),
                     6);
    for (int i = 0; i < CRASH_CLIENTS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        pthread_mutex_init(&c[i].mu, NULL);
        c[i].token = token;
        ck_assert_int_eq(pthread_create(&th[i], NULL, client_loop, &c[i]), 0);
    }
    for (int k = 0; k < 3; k++) {
        PGconn *h = hold_billing("crash");
        usleep(1200 * 1000);
        release_billing(h);
        usleep((useconds_t)(30 + 60 * k) * 1000); /* mid-batch, at different points */
        tst_broker_kill(&B);
        usleep(300 * 1000);
        ck_assert_int_eq(tst_broker_restart(&B), 0);
    }
    usleep(1500 * 1000);
    for (int i = 0; i < CRASH_CLIENTS; i++) {
        c[i].stop = 1;
        pthread_join(th[i], NULL);
        nok += c[i].nok;
    }
    ck_assert_int_gt(nok, 10);
    /* the runtime catches up: every accepted CR (answered or not) gets its line */
    long crs = tst_pg_long(pg, "SELECT count(*) FROM crs WHERE tenant_id = 'crash'");
    ck_assert_int_ge(crs, nok);
    ck_assert_int_eq(
        tst_pg_wait_long(pg, "SELECT count(*) FROM invoice_lines WHERE tenant_id = 'crash'", crs,
                         90),
        crs);
    for (int i = 0; i < CRASH_CLIENTS; i++)
        for (int j = 0; j < c[i].nok; j++) {
            ck_assert_int_eq(
                tst_pg_longf(pg,
                             "SELECT count(*) FROM invoice_lines WHERE tenant_id = 'crash' "
                             "AND cr_id = '%s'",
                             c[i].ok[j]),
                1);
            free(c[i].ok[j]);
        }
    /* anti-joins: no CR without its line, no line without its CR; totals add up */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM crs c WHERE c.tenant_id = 'crash' AND "
                                     "NOT EXISTS (SELECT 1 FROM invoice_lines l WHERE "
                                     "l.tenant_id = c.tenant_id AND l.cr_id = c.cr_id)"),
                     0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines l WHERE NOT EXISTS "
                                     "(SELECT 1 FROM crs c WHERE c.tenant_id = l.tenant_id AND "
                                     "c.cr_id = l.cr_id)"),
                     0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) - count(DISTINCT cr_id) FROM invoice_lines"),
                     0);
    /* the money: every CR is alike, so the tenant's invoices hold count x one line's price */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(DISTINCT total_minor) FROM invoice_lines "
                                     "WHERE tenant_id = 'crash'"),
                     1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT sum(total_minor) FROM invoices WHERE tenant_id = 'crash'"),
                     tst_pg_long(pg, "SELECT count(*) * min(l.total_minor) FROM crs c JOIN "
                                     "invoice_lines l USING (tenant_id, cr_id) "
                                     "WHERE c.tenant_id = 'crash'"));
    /* every line has its log index, and the log holds each CR once */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM invoice_lines WHERE tenant_id = 'crash' "
                                     "AND log_index IS NULL"),
                     0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'crash'"),
                     crs);
    /* and billing did run in batches: transactions that wrote several lines at once */
    ck_assert_int_gt(tst_pg_long(pg, "SELECT max(n) FROM (SELECT count(*) n FROM invoice_lines "
                                     "WHERE tenant_id = 'crash' GROUP BY xmin::text) x"),
                     1);
    assert_totals(pg);
    free(token);
    PQfinish(pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_billing");
    TCase *tc = tcase_create("billing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, lines_appear);
    tcase_add_test(tc, money_per_currency);
    tcase_add_test(tc, money_per_currency_batched);
    tcase_add_test(tc, accounts_cli);
    tcase_add_test(tc, ratecard_bounds_and_rollover);
    tcase_add_test(tc, finalize_and_trigger);
    tcase_add_test(tc, late_lines);
    tcase_add_test(tc, credit_notes);
    tcase_add_test(tc, csv_export);
    tcase_add_test(tc, month_close);
    tcase_add_test(tc, display_limits);
    tcase_add_test(tc, two_brokers);
    tcase_add_test(tc, metrics_show_backlog);
    tcase_add_test(tc, poison_in_batch);
    tcase_add_test(tc, crash_kill9);
    tcase_add_test(tc, add_lines_set_based);
    tcase_add_test(tc, woken_after_commit);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
