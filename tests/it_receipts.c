/*
 * it_receipts: the receipt path as an auditor and gsh see it, against the real binary and
 * PostgreSQL (migrations/0007_receipt_evidence.sql, handlers/hnd_complete.c):
 *   - time claims: checked against the AC's stored issued_at and the database clock with the
 *     configured skew (GSAP_TIME_SKEW_S, set to SKEW_S here so the setting is seen to count),
 *     flagged time_implausible, effective outcome violated, and billed on the clamped span —
 *     the invoice amounts are recomputed from the stored times;
 *   - members the broker does not know: kept, covered by cr_cid, listed back, bounded on both
 *     sides of every GOV_UNKNOWN_* limit; the same for authorize;
 *   - exit_code is required for completed and failed;
 *   - self-authorized receipts: the context is created server-side once, per accord
 *     (self_authorized_allowed), idempotent, 409 for another CR, invisible across tenants.
 * CIDs are recomputed by the independent oracle (tests/npm/gsap_oracle.mjs).
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_event.h"
#include "gov.h"
#include "gov_field.h"
#include "gov_lineage.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_receipts"
#define SKEW_S 10          /* GSAP_TIME_SKEW_S of the broker under test */
#define SELF_WINDOW_S (7 * 86400) /* CR_SELF_AUTH_WINDOW_S in hnd_complete.c */
#define LINE_WAIT_S 15
#define PER_CR 10          /* the default account's card: 0.10 per CR, any outcome */
#define PER_SECOND 1       /* and 0.01 per started second */

static tst_broker_t B;
static char *ISSUER, *EXECUTOR, *AUDITOR, *ADMIN, *OTHER_TENANT;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TIME_SKEW_S=10", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    ISSUER = tst_keys_create(&B, "acme", "issuer");
    EXECUTOR = tst_keys_create(&B, "acme", "executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    ADMIN = tst_keys_create(&B, "acme", "admin");
    OTHER_TENANT = tst_keys_create(&B, "globex", "issuer,executor,auditor");
}

static void teardown(void)
{
    /* a graceful stop, so the sanitizer build checks the receipt paths for leaks at exit */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);
    free(ISSUER), free(EXECUTOR), free(AUDITOR), free(ADMIN), free(OTHER_TENANT);
}

/* ---- helpers ---- */

/* Runs the independent oracle; its stdout line (malloc'd) or NULL on failure. */
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

/* The oracle's CID of the JSON text json. */
static char *oracle_cid(const char *json)
{
    char path[] = "/tmp/gsap-json-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char *cid = oracle("cid %s", path);
    unlink(path);
    ck_assert_ptr_nonnull(cid);
    return cid;
}

/* A UTC time t + us microseconds, as RFC 3339 with six fractional digits. */
static void fmt_time(time_t t, long us, char out[40])
{
    struct tm tm;
    while (us < 0) {
        us += 1000000;
        t--;
    }
    t += us / 1000000;
    us %= 1000000;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%06ldZ", us);
}

static time_t parse_time(const char *s)
{
    struct tm tm = {0};
    ck_assert_ptr_nonnull(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
    return timegm(&tm);
}

static json_t *authorize_as(const char *token, const char *extra, int expect)
{
    tst_resp_t r;
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}%s%s}",
                     CMD, CORPUS, PARAMS, extra ? "," : "", extra ? extra : "");
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == expect, "authorize: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    return j;
}

static json_t *authorize(const char *extra)
{
    return authorize_as(ISSUER, extra, 200);
}

/* A CR body on ctx with the given times; exit_code 0 unless extra says otherwise. */
static char *cr(const char *ctx, const char *outcome, const char *started, const char *completed,
                const char *extra)
{
    return tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"%s\",\"started_at\":\"%s\","
               "\"completed_at\":\"%s\",\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\""
               CORPUS "\",\"parameters_cid\":\"" PARAMS "\",\"chronicle\":{\"session_id\":\"c\","
               "\"behavior_state\":\"verified\"}%s%s}",
               ctx, outcome, started, completed, extra ? "," : "", extra ? extra : "");
}

static json_t *post_as(const char *token, const char *body, int expect)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", token, body, &r), 0);
    ck_assert_msg(r.status == expect, "complete: %d (want %d) %s", r.status, expect, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    return j;
}

static json_t *post(const char *body, int expect)
{
    return post_as(EXECUTOR, body, expect);
}

static char *flags_of(const json_t *rc)
{
    return json_dumps(json_object_get(rc, "flags"), JSON_COMPACT);
}

/* Waits for the invoice line of cr_id; its total_minor. */
static long line_total(const char *cr_id)
{
    for (int i = 0; i < LINE_WAIT_S * 10; i++) {
        if (tst_pg_db_longf(DB, "SELECT count(*) FROM invoice_lines WHERE cr_id = '%s'", cr_id) ==
            1)
            return tst_pg_db_longf(DB, "SELECT total_minor FROM invoice_lines WHERE cr_id = '%s'",
                                   cr_id);
        usleep(100 * 1000);
    }
    ck_abort_msg("no invoice line for %s within %d s", cr_id, LINE_WAIT_S);
    return -1;
}

/* ---- time claims ---- */

/* The CR of the issue: started 1970, completed 9999. Stored with its claims, flagged, violated,
 * and billed on the span from the AC's issued_at to the received time — not 2.5 billion. */
START_TEST(time_claims_1970_9999)
{
    json_t *ac = authorize(NULL);
    const char *ctx = tst_str(ac, "context_id");
    sleep(2); /* a span of a few seconds between issue and receipt */
    char *body = cr(ctx, "completed", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                    "\"exit_code\":0");
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    ck_assert_str_eq(f, "[\"time_implausible\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    ck_assert_str_eq(tst_str(rc, "outcome"), "completed");
    const char *id = tst_str(rc, "cr_id");
    /* the claims stay as evidence, covered by cr_cid */
    char *claims =
        tst_pg_db_scalarf(DB,
                          "SELECT started_at = '1970-01-01T00:00:00Z' AND completed_at = "
                          "'9999-12-31T23:59:59Z' AND cr->>'started_at' = '1970-01-01T00:00:00Z' "
                          "FROM crs WHERE cr_id = '%s'",
                          id);
    ck_assert_str_eq(claims, "t");
    char *stored = tst_pg_db_scalarf(DB, "SELECT cr::text FROM crs WHERE cr_id = '%s'", id);
    char *cid = oracle_cid(stored);
    ck_assert_str_eq(cid, tst_str(rc, "cr_cid"));
    /* the billed span is what the broker saw: the AC's issued_at .. the received time */
    char *span =
        tst_pg_db_scalarf(DB,
                          "SELECT c.billed_started_at = a.issued_at AND c.billed_completed_at = "
                          "c.received_at FROM crs c JOIN acs a USING (tenant_id, context_id) "
                          "WHERE c.cr_id = '%s'",
                          id);
    ck_assert_str_eq(span, "t");
    char *payload =
        tst_pg_db_scalarf(DB,
                          "SELECT (payload->>'billed_started_at')::timestamptz = "
                          "c.billed_started_at AND (payload->>'billed_completed_at')::timestamptz"
                          " = c.billed_completed_at FROM events e JOIN crs c ON c.cr_id = "
                          "e.payload->>'cr_id' WHERE e.type = 'GSAP_CR_RECEIVED' AND "
                          "c.cr_id = '%s'",
                          id);
    ck_assert_str_eq(payload, "t");
    /* expected amount, exactly: per CR (violated) + started seconds of the clamped span */
    long secs =
        tst_pg_db_longf(DB,
                        "SELECT ceil(extract(epoch FROM c.received_at - a.issued_at))::bigint "
                        "FROM crs c JOIN acs a USING (tenant_id, context_id) WHERE c.cr_id = '%s'",
                        id);
    ck_assert_int_ge(secs, 2);
    ck_assert_int_le(secs, 60);
    long total = line_total(id);
    ck_assert_int_eq(total, PER_CR + secs * PER_SECOND);
    ck_assert_int_eq(
        tst_pg_db_longf(DB, "SELECT quantity FROM invoice_lines WHERE cr_id = '%s'", id), secs);
    char *outcome =
        tst_pg_db_scalarf(DB, "SELECT outcome FROM invoice_lines WHERE cr_id = '%s'", id);
    ck_assert_str_eq(outcome, "violated");
    free(body), free(f), free(claims), free(stored), free(cid), free(span), free(payload);
    free(outcome);
    json_decref(rc), json_decref(ac);
}
END_TEST

/* A CR whose times lie within what the broker saw: no flag, billed exactly as claimed. */
START_TEST(time_claims_plausible)
{
    json_t *ac = authorize(NULL);
    char started[40], completed[40];
    time_t issued = parse_time(tst_str(ac, "issued_at"));
    fmt_time(issued, 250000, started); /* issued + 0.25 s */
    sleep(2);
    fmt_time(issued, 1500000, completed); /* issued + 1.5 s: before the receipt is posted */
    char *body = cr(tst_str(ac, "context_id"), "failed", started, completed, "\"exit_code\":3");
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    ck_assert_str_eq(f, "[]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "failed");
    const char *id = tst_str(rc, "cr_id");
    char *same =
        tst_pg_db_scalarf(DB,
                          "SELECT billed_started_at = started_at AND billed_completed_at = "
                          "completed_at AND exit_code = 3 FROM crs WHERE cr_id = '%s'",
                          id);
    ck_assert_str_eq(same, "t");
    /* 1.25 s is 2 started seconds */
    ck_assert_int_eq(line_total(id), PER_CR + 2 * PER_SECOND);
    free(body), free(f), free(same);
    json_decref(rc), json_decref(ac);
}
END_TEST

/* GSAP_TIME_SKEW_S at and one microsecond past the boundary, on both sides. */
START_TEST(time_skew_boundary)
{
    char started[40], now[40];
    /* started_at exactly issued_at - skew: plausible; billed from issued_at */
    json_t *ac = authorize(NULL);
    time_t issued = parse_time(tst_str(ac, "issued_at"));
    fmt_time(issued - SKEW_S, 0, started);
    fmt_time(time(NULL), 0, now);
    char *body = cr(tst_str(ac, "context_id"), "completed", started, now, "\"exit_code\":0");
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    ck_assert_str_eq(f, "[]");
    char *clamped =
        tst_pg_db_scalarf(DB,
                          "SELECT c.billed_started_at = a.issued_at FROM crs c JOIN acs a "
                          "USING (tenant_id, context_id) WHERE c.cr_id = '%s'",
                          tst_str(rc, "cr_id"));
    ck_assert_str_eq(clamped, "t");
    free(body), free(f), free(clamped);
    json_decref(rc), json_decref(ac);
    /* one microsecond earlier: implausible (the default skew, 30 s, would have allowed it) */
    ac = authorize(NULL);
    issued = parse_time(tst_str(ac, "issued_at"));
    fmt_time(issued - SKEW_S, -1, started);
    fmt_time(time(NULL), 0, now);
    body = cr(tst_str(ac, "context_id"), "completed", started, now, "\"exit_code\":0");
    rc = post(body, 200);
    f = flags_of(rc);
    ck_assert_str_eq(f, "[\"time_implausible\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    free(body), free(f);
    json_decref(rc), json_decref(ac);
    /* completed_at after the receipt: within the skew plausible, past it not */
    const int ahead[] = {SKEW_S - 3, SKEW_S + 20};
    for (int i = 0; i < 2; i++) {
        ac = authorize(NULL);
        time_t t = time(NULL);
        fmt_time(t, 0, started);
        fmt_time(t + ahead[i], 0, now);
        body = cr(tst_str(ac, "context_id"), "completed", started, now, "\"exit_code\":0");
        rc = post(body, 200);
        f = flags_of(rc);
        ck_assert_str_eq(f, i == 0 ? "[]" : "[\"time_implausible\"]");
        /* either way the billed end is not after the received time */
        char *end =
            tst_pg_db_scalarf(DB,
                              "SELECT billed_completed_at <= received_at FROM crs WHERE cr_id = "
                              "'%s'",
                              tst_str(rc, "cr_id"));
        ck_assert_str_eq(end, "t");
        free(body), free(f), free(end);
        json_decref(rc), json_decref(ac);
    }
    /* the database's own check to the microsecond, with the clock of one transaction */
    char *v = tst_pg_db_scalarf(
        DB, "SELECT string_agg(implausible::text, ',' ORDER BY n) FROM (VALUES "
            "(1, now() - interval '10 s'), (2, now() - interval '10.000001 s')) s(n, st), "
            "LATERAL gsap_time_check(now(), now(), st, now(), 10)");
    ck_assert_str_eq(v, "false,true");
    free(v);
    v = tst_pg_db_scalarf(
        DB, "SELECT string_agg(implausible::text, ',' ORDER BY n) FROM (VALUES "
            "(1, now() + interval '10 s'), (2, now() + interval '10.000001 s')) s(n, en), "
            "LATERAL gsap_time_check(now() - interval '1 h', now(), now(), en, 10)");
    ck_assert_str_eq(v, "false,true");
    free(v);
}
END_TEST

/* Completing before starting is stored and flagged, billed on an empty span, not refused. */
START_TEST(time_reversed)
{
    json_t *ac = authorize(NULL);
    char started[40], completed[40];
    time_t t = time(NULL);
    fmt_time(t, 0, started);
    fmt_time(t - 5, 0, completed);
    char *body = cr(tst_str(ac, "context_id"), "completed", started, completed, "\"exit_code\":0");
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    ck_assert_str_eq(f, "[\"time_implausible\"]");
    ck_assert_int_eq(line_total(tst_str(rc, "cr_id")), PER_CR);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT quantity FROM invoice_lines WHERE cr_id = '%s'",
                                     tst_str(rc, "cr_id")),
                     0);
    free(body), free(f);
    json_decref(rc), json_decref(ac);
}
END_TEST

/* ---- required and unknown members ---- */

START_TEST(exit_code_rule)
{
    json_t *ac = authorize("\"session_mode\":true");
    const char *ctx = tst_str(ac, "context_id");
    char now[40];
    fmt_time(time(NULL), 0, now);
    const char *need[] = {"completed", "failed"};
    for (int i = 0; i < 2; i++) {
        char *body = cr(ctx, need[i], now, now, NULL);
        json_t *e = post(body, 400);
        ck_assert_str_eq(tst_err_code(e), "missing_field");
        ck_assert_ptr_nonnull(strstr(tst_str(json_object_get(e, "error"), "message"), "exit_code"));
        free(body);
        json_decref(e);
    }
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM crs"), 0);
    /* null is not an exit code either */
    char *body = cr(ctx, "completed", now, now, "\"exit_code\":null");
    json_t *e = post(body, 400);
    free(body), json_decref(e);
    /* an outcome without an exit code is stored without one, not as 0 */
    body = cr(ctx, "timed_out", now, now, NULL);
    json_t *rc = post(body, 200);
    ck_assert_int_eq(
        tst_pg_db_longf(DB, "SELECT count(*) FROM crs WHERE cr_id = '%s' AND exit_code IS NULL",
                        tst_str(rc, "cr_id")),
        1);
    free(body), json_decref(rc), json_decref(ac);
}
END_TEST

START_TEST(cr_unknown_fields)
{
    json_t *ac = authorize(NULL);
    char now[40];
    fmt_time(time(NULL), 0, now);
    char *body = cr(tst_str(ac, "context_id"), "completed", now, now,
                    "\"exit_code\":0,\"zeta\":{\"a\":[1,2]},\"gsh_version\":\"2.1.0\","
                    "\"api_token\":\"hunter2\"");
    json_t *rc = post(body, 200);
    char *u = json_dumps(json_object_get(rc, "unrecognized_fields"), JSON_COMPACT);
    ck_assert_str_eq(u, "[\"api_token\",\"gsh_version\",\"zeta\"]");
    /* stored with the CR (a secret-looking one masked), and cr_cid covers them */
    char *stored =
        tst_pg_db_scalarf(DB, "SELECT cr::text FROM crs WHERE cr_id = '%s'", tst_str(rc, "cr_id"));
    json_t *sj = json_loads(stored, 0, NULL);
    ck_assert_str_eq(tst_str(sj, "gsh_version"), "2.1.0");
    ck_assert_int_eq(json_integer_value(json_array_get(
                         json_object_get(json_object_get(sj, "zeta"), "a"), 1)),
                     2);
    ck_assert_str_eq(tst_str(sj, "api_token"), "***");
    ck_assert_ptr_null(strstr(stored, "hunter2"));
    char *cid = oracle_cid(stored);
    ck_assert_str_eq(cid, tst_str(rc, "cr_cid"));
    /* an identical retry: the same receipt, the same list */
    json_t *again = post(body, 200);
    ck_assert_str_eq(tst_str(again, "cr_id"), tst_str(rc, "cr_id"));
    char *u2 = json_dumps(json_object_get(again, "unrecognized_fields"), JSON_COMPACT);
    ck_assert_str_eq(u2, u);
    /* a receipt without any: an empty list */
    json_t *ac2 = authorize(NULL);
    char *plain = cr(tst_str(ac2, "context_id"), "completed", now, now, "\"exit_code\":0");
    json_t *rc2 = post(plain, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(rc2, "unrecognized_fields")), 0);
    /* inside "chronicle" an unknown member is still refused */
    json_t *ac3 = authorize(NULL);
    char *nested = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                       "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"" CMD
                       "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS
                       "\",\"chronicle\":{\"behavior_state\":\"verified\",\"extra\":1}}",
                       tst_str(ac3, "context_id"), now, now);
    json_t *e = post(nested, 400);
    ck_assert_str_eq(tst_err_code(e), "unknown_field");
    free(body), free(u), free(u2), free(stored), free(cid), free(plain), free(nested);
    json_decref(sj), json_decref(rc), json_decref(again), json_decref(ac), json_decref(ac2);
    json_decref(rc2), json_decref(ac3), json_decref(e);
}
END_TEST

/* "\"k0\":0,...": n members named u<i>, each key padded to klen bytes when klen > 0. */
static char *members(int n, size_t klen)
{
    size_t cap = (size_t)n * (klen + 16) + 1;
    char *s = calloc(1, cap), *p = s;
    for (int i = 0; i < n; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "u%02d", i);
        p += sprintf(p, "%s\"%s", i ? "," : "", k);
        for (size_t j = (size_t)kl; j < klen; j++)
            *p++ = 'x';
        p += sprintf(p, "\":0");
    }
    return s;
}

/* Posts a CR with extra members on the session AC ctx: at the limit 200, past it 400. */
static void bound(const char *ctx, char *extra, int ok)
{
    char now[40], *body;
    long before = tst_pg_db_longf(DB, "SELECT count(*) FROM crs");
    fmt_time(time(NULL), 0, now);
    body = cr(ctx, "completed", now, now, extra);
    json_t *rc = post(body, ok ? 200 : 400);
    if (!ok) {
        ck_assert_str_eq(tst_err_code(rc), "unrecognized_fields_over_limit");
        ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM crs"), before);
    }
    free(body), free(extra);
    json_decref(rc);
}

START_TEST(unknown_limits)
{
    json_t *ac = authorize("\"session_mode\":true");
    const char *ctx = tst_str(ac, "context_id");
    char *m;
    /* GOV_UNKNOWN_MAX members */
    m = members(GOV_UNKNOWN_MAX, 0);
    bound(ctx, tst_fmt("\"exit_code\":0,%s", m), 1);
    free(m);
    m = members(GOV_UNKNOWN_MAX + 1, 0);
    bound(ctx, tst_fmt("\"exit_code\":0,%s", m), 0);
    free(m);
    /* GOV_UNKNOWN_KEY_MAX bytes of a name */
    m = members(1, GOV_UNKNOWN_KEY_MAX);
    bound(ctx, tst_fmt("\"exit_code\":1,%s", m), 1);
    free(m);
    m = members(1, GOV_UNKNOWN_KEY_MAX + 1);
    bound(ctx, tst_fmt("\"exit_code\":1,%s", m), 0);
    free(m);
    /* GOV_UNKNOWN_BYTES_MAX: name "b" (1) + the quoted string (n + 2) */
    for (int over = 0; over < 2; over++) {
        size_t n = GOV_UNKNOWN_BYTES_MAX - 3 + over;
        char *v = malloc(n + 1);
        memset(v, 'v', n);
        v[n] = 0;
        bound(ctx, tst_fmt("\"exit_code\":2,\"b\":\"%s\"", v), !over);
        free(v);
    }
    /* GOV_UNKNOWN_DEPTH_MAX levels of nesting */
    for (int over = 0; over < 2; over++) {
        int d = GOV_UNKNOWN_DEPTH_MAX + over;
        char open[64] = "", close[64] = "";
        memset(open, '[', (size_t)d);
        memset(close, ']', (size_t)d);
        bound(ctx, tst_fmt("\"exit_code\":3,\"deep\":%s%s", open, close), !over);
    }
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM crs WHERE cr ? 'deep'"), 1);
    json_decref(ac);
}
END_TEST

START_TEST(authorize_unknown_fields)
{
    tst_resp_t r;
    json_t *ac = authorize("\"x_client\":\"sk-plugin/1.2\",\"client_secret\":\"s3cr3t\"");
    char *u = json_dumps(json_object_get(ac, "unrecognized_fields"), JSON_COMPACT);
    ck_assert_str_eq(u, "[\"client_secret\",\"x_client\"]");
    /* the list is part of the signed AC: ac_cid covers it */
    json_t *unsigned_ac = json_deep_copy(ac);
    json_object_del(unsigned_ac, "signature");
    json_object_del(unsigned_ac, "ac_cid");
    char *text = json_dumps(unsigned_ac, JSON_COMPACT);
    char *cid = oracle_cid(text);
    ck_assert_str_eq(cid, tst_str(ac, "ac_cid"));
    /* the values are stored with the AC, a secret-looking one masked */
    char *vals = tst_pg_db_scalarf(DB, "SELECT unrecognized::text FROM acs WHERE context_id = '%s'",
                                   tst_str(ac, "context_id"));
    json_t *vj = json_loads(vals, 0, NULL);
    ck_assert_str_eq(tst_str(vj, "x_client"), "sk-plugin/1.2");
    ck_assert_str_eq(tst_str(vj, "client_secret"), "***");
    /* polling shows the same document */
    char *path = tst_fmt("/governance/authorize/%s/", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_get(B.port, path, ISSUER, &r), 0);
    ck_assert_str_eq(tst_str(r.json, "signature"), tst_str(ac, "signature"));
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "unrecognized_fields")), 2);
    tst_resp_clear(&r);
    /* an AC from a request without any has no such member (unchanged for older clients) */
    json_t *plain = authorize(NULL);
    ck_assert_ptr_null(json_object_get(plain, "unrecognized_fields"));
    /* a denial lists them too */
    json_t *d = authorize_as(ISSUER, "\"capability_set\":\"0x00010000\",\"x_client\":1", 403);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "unrecognized_fields"), 0)),
                     "x_client");
    /* over a bound: 400, no AC */
    long before = tst_pg_db_longf(DB, "SELECT count(*) FROM acs");
    char *m = members(GOV_UNKNOWN_MAX + 1, 0);
    json_t *e = authorize_as(ISSUER, m, 400);
    ck_assert_str_eq(tst_err_code(e), "unrecognized_fields_over_limit");
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM acs"), before);
    free(m);
    json_decref(e);
    m = members(GOV_UNKNOWN_MAX, 0);
    e = authorize_as(ISSUER, m, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(e, "unrecognized_fields")), GOV_UNKNOWN_MAX);
    free(m), free(u), free(text), free(cid), free(vals), free(path);
    json_decref(e), json_decref(ac), json_decref(unsigned_ac), json_decref(vj);
    json_decref(plain), json_decref(d);
}
END_TEST

/* ---- self-authorized receipts ---- */

static char *self_cr(const char *ctx, const char *started, const char *extra)
{
    char now[40];
    fmt_time(time(NULL), 0, now);
    char *more = tst_fmt("\"exit_code\":0,\"self_authorized\":true%s%s", extra ? "," : "",
                     extra ? extra : "");
    char *b = cr(ctx, "completed", started ? started : now, now, more);
    free(more);
    return b;
}

START_TEST(self_authorized_default_accord)
{
    const char *ctx = "self-0b6f9f1e-6c1a-4f4e-9a55-1f0b2a3c4d5e";
    tst_resp_t r;
    char *body = self_cr(ctx, NULL, NULL);
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    /* "default" does not allow self-authorized receipts: stored, billed, violated */
    ck_assert_str_eq(f, "[\"self_authorized\",\"self_authorized_not_allowed\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    ck_assert_str_eq(tst_str(rc, "ac_status"), "consumed");
    ck_assert_str_eq(tst_str(rc, "context_id"), ctx);
    /* the context the broker created: the executor's, unsigned, its CID recomputable */
    char *row =
        tst_pg_db_scalarf(DB,
                          "SELECT self_authorized::text || ' ' || accord_name || ' ' || "
                          "billing_account || ' ' || (issuer_key_id = '%.16s') || ' ' || "
                          "coalesce(ac->>'signature', 'unsigned') FROM acs WHERE context_id = '%s'",
                          EXECUTOR + strlen("gsap.acme."), ctx);
    ck_assert_str_eq(row, "true default default true unsigned");
    char *doc = tst_pg_db_scalarf(DB,
                                  "SELECT (ac - 'signature' - 'ac_cid')::text FROM acs "
                                  "WHERE context_id = '%s'",
                                  ctx);
    char *cid = oracle_cid(doc);
    ck_assert_str_eq(cid, tst_str(rc, "ac_cid"));
    char *lin = oracle("lineage %s %s %s null 1", tst_str(rc, "ac_cid"), tst_str(rc, "chronicle_cid"),
                       tst_str(rc, "cr_cid"));
    ck_assert_str_eq(lin, tst_str(rc, "lineage_cid"));
    /* an identical retry returns the same receipt; another CR is a conflict */
    json_t *again = post(body, 200);
    ck_assert_str_eq(tst_str(again, "cr_id"), tst_str(rc, "cr_id"));
    char *other = self_cr(ctx, NULL, "\"x\":1");
    json_t *e = post(other, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_consumed");
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM crs WHERE context_id = '%s'", ctx),
                     1);
    /* billed like any other */
    ck_assert_int_gt(line_total(tst_str(rc, "cr_id")), 0);
    /* shown on the session page */
    char *path = tst_fmt("/governance/session/%s/", ctx);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "receipts")), 1);
    ck_assert(json_is_true(json_object_get(json_object_get(r.json, "ac"), "self_authorized")));
    tst_resp_clear(&r);
    /* another tenant: neither sees it nor can create the same id */
    ck_assert_int_eq(tst_get(B.port, path, OTHER_TENANT, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    char *theirs = self_cr(ctx, NULL, "\"try\":2");
    json_t *nf = post_as(OTHER_TENANT, theirs, 404);
    ck_assert_str_eq(tst_err_code(nf), "context_not_found");
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM acs WHERE context_id = '%s'", ctx),
                     1);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM acs WHERE tenant_id = 'globex'"), 0);
    free(body), free(f), free(row), free(doc), free(cid), free(lin), free(other), free(path);
    free(hdr), free(theirs);
    json_decref(rc), json_decref(again), json_decref(e), json_decref(nf);
}
END_TEST

START_TEST(self_authorized_allowed_accord)
{
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", ADMIN);
    const char *acc = "{\"self_authorized_allowed\":true,\"shell_class\":\"Offline\"}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/accords/offline-ok", hdr, acc, strlen(acc),
                              &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "self_authorized_allowed")));
    tst_resp_clear(&r);
    const char *bad = "{\"self_authorized_allowed\":\"yes\"}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/accords/bad", hdr, bad, strlen(bad), &r), 0);
    ck_assert_int_eq(r.status, 400);
    tst_resp_clear(&r);
    /* an accord that does not set it keeps its hash: the member is absent, not false */
    ck_assert_int_eq(tst_get(B.port, "/admin/accords/default", ADMIN, &r), 0);
    ck_assert_ptr_null(json_object_get(r.json, "self_authorized_allowed"));
    tst_resp_clear(&r);

    char *body = self_cr("self-allowed-1", NULL, "\"accord_template\":\"offline-ok\"");
    json_t *rc = post(body, 200);
    char *f = flags_of(rc);
    ck_assert_str_eq(f, "[\"self_authorized\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "completed");
    char *acc_name =
        tst_pg_db_scalarf(DB, "SELECT accord_name FROM acs WHERE context_id = 'self-allowed-1'");
    ck_assert_str_eq(acc_name, "offline-ok");
    line_total(tst_str(rc, "cr_id"));
    /* billed as completed, under the accord's shell class (the context document has none) */
    char *line =
        tst_pg_db_scalarf(DB,
                          "SELECT l.outcome || ' ' || (e.payload->>'shell_class') FROM "
                          "invoice_lines l JOIN events e ON e.payload->>'cr_id' = l.cr_id WHERE "
                          "e.type = 'GSAP_CR_RECEIVED' AND l.cr_id = '%s'",
                          tst_str(rc, "cr_id"));
    ck_assert_str_eq(line, "completed Offline");
    /* an unknown accord: 404, nothing created */
    char *b2 = self_cr("self-allowed-2", NULL, "\"accord_template\":\"nope\"");
    json_t *e = post(b2, 404);
    ck_assert_str_eq(tst_err_code(e), "accord_not_found");
    ck_assert_int_eq(
        tst_pg_db_longf(DB, "SELECT count(*) FROM acs WHERE context_id = 'self-allowed-2'"), 0);
    /* a start further back than the window: flagged, billed from the window's start */
    char *b3 = self_cr("self-old", "2026-01-01T00:00:00Z", "\"accord_template\":\"offline-ok\"");
    json_t *rc3 = post(b3, 200);
    char *f3 = flags_of(rc3);
    ck_assert_str_eq(f3, "[\"time_implausible\",\"self_authorized\"]");
    ck_assert_str_eq(tst_str(rc3, "effective_outcome"), "violated");
    ck_assert_int_eq(
        tst_pg_db_longf(DB,
                        "SELECT extract(epoch FROM received_at - billed_started_at)::bigint "
                        "FROM crs WHERE cr_id = '%s'",
                        tst_str(rc3, "cr_id")),
        SELF_WINDOW_S);
    free(hdr), free(body), free(f), free(acc_name), free(line), free(b2), free(b3), free(f3);
    json_decref(rc), json_decref(e), json_decref(rc3);
}
END_TEST

START_TEST(self_authorized_refusals)
{
    /* a broker-issued id cannot be created, nor can an unknown one without the flag */
    char *b = self_cr("ctx_0123456789abcdef0123456789abcdef", NULL, NULL);
    json_t *e = post(b, 404);
    ck_assert_str_eq(tst_err_code(e), "context_not_found");
    free(b), json_decref(e);
    char now[40];
    fmt_time(time(NULL), 0, now);
    b = cr("self-unflagged", "completed", now, now, "\"exit_code\":0");
    e = post(b, 404);
    free(b), json_decref(e);
    /* another tenant's broker-issued context stays 404 with the flag */
    json_t *ac = authorize_as(OTHER_TENANT, NULL, 200);
    b = self_cr(tst_str(ac, "context_id"), NULL, NULL);
    e = post(b, 404);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT cr_count FROM acs WHERE context_id = '%s'",
                                     tst_str(ac, "context_id")),
                     0);
    free(b), json_decref(e), json_decref(ac);
    /* the form: "self-" and 1..59 of [A-Za-z0-9._-], starting with a letter or digit */
    const char *bad[] = {"self-", "self-a/b", "self-.x", "self-a b", NULL};
    for (int i = 0; bad[i]; i++) {
        b = self_cr(bad[i], NULL, NULL);
        e = post(b, 400);
        ck_assert_str_eq(tst_err_code(e), "invalid_field");
        free(b), json_decref(e);
    }
    char id[80] = "self-";
    memset(id + 5, 'a', GOV_CONTEXT_ID_MAX - 5);
    id[GOV_CONTEXT_ID_MAX] = 0;
    b = self_cr(id, NULL, NULL);
    e = post(b, 200);
    free(b), json_decref(e);
    id[GOV_CONTEXT_ID_MAX] = 'a';
    id[GOV_CONTEXT_ID_MAX + 1] = 0;
    b = self_cr(id, NULL, NULL);
    e = post(b, 400);
    ck_assert_str_eq(tst_err_code(e), "field_too_long");
    free(b), json_decref(e);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM acs WHERE self_authorized"), 1);
}
END_TEST

/* ---- the rules gov/ and broker/brk_event.h state, against what gsap_complete wrote ---- */

/* Two receipts in one session: each lineage_cid the database computed is gov_lineage_cid of
 * the link, the second chained to the first; and the GSAP_CR_RECEIVED payload holds exactly
 * the members brk_event.h defines. */
START_TEST(lineage_and_payload_match_gov)
{
    json_t *ac = authorize("\"session_mode\":true"), *rc[2];
    const char *ctx = tst_str(ac, "context_id");
    char now[40], cid[BRK_CID_LEN + 1];
    fmt_time(time(NULL), 0, now);
    for (int i = 0; i < 2; i++) {
        /* another exit code: an identical body would be a retry of the first receipt */
        char *body = cr(ctx, "completed", now, now, i == 0 ? "\"exit_code\":0" : "\"exit_code\":1");
        rc[i] = post(body, 200);
        ck_assert_int_eq(json_integer_value(json_object_get(rc[i], "sequence")), i + 1);
        free(body);
        const char *prev = i == 0 ? NULL : tst_str(rc[0], "lineage_cid");
        ck_assert_int_eq(gov_lineage_cid(tst_str(rc[i], "ac_cid"), tst_str(rc[i], "chronicle_cid"),
                                         tst_str(rc[i], "cr_cid"), prev, i + 1, cid),
                         0);
        ck_assert_str_eq(cid, tst_str(rc[i], "lineage_cid"));
        if (prev == NULL)
            ck_assert(json_is_null(json_object_get(rc[i], "prev_lineage_cid")));
        else
            ck_assert_str_eq(tst_str(rc[i], "prev_lineage_cid"), prev);
    }
    char *text = tst_pg_db_scalarf(DB,
                                   "SELECT payload::text FROM events WHERE type = '%s' AND "
                                   "payload->>'cr_id' = '%s'",
                                   BRK_EV_CR_RECEIVED, tst_str(rc[1], "cr_id"));
    json_t *payload = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(payload);
    size_t n = 0;
    for (; brk_cr_received_names[n] != NULL; n++)
        ck_assert_msg(json_object_get(payload, brk_cr_received_names[n]) != NULL,
                      "the payload lacks \"%s\"", brk_cr_received_names[n]);
    ck_assert_uint_eq(json_object_size(payload), n);
    brk_cr_received_t p;
    brk_cr_received_read(payload, &p);
    ck_assert_str_eq(json_string_value(p.lineage_cid), tst_str(rc[1], "lineage_cid"));
    ck_assert_str_eq(json_string_value(p.prev_lineage_cid), tst_str(rc[0], "lineage_cid"));
    ck_assert_int_eq(json_integer_value(p.sequence), 2);
    free(text);
    json_decref(payload), json_decref(rc[0]), json_decref(rc[1]), json_decref(ac);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_receipts");
    TCase *tc = tcase_create("receipts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, time_claims_1970_9999);
    tcase_add_test(tc, time_claims_plausible);
    tcase_add_test(tc, time_skew_boundary);
    tcase_add_test(tc, time_reversed);
    tcase_add_test(tc, exit_code_rule);
    tcase_add_test(tc, cr_unknown_fields);
    tcase_add_test(tc, unknown_limits);
    tcase_add_test(tc, authorize_unknown_fields);
    tcase_add_test(tc, self_authorized_default_accord);
    tcase_add_test(tc, self_authorized_allowed_accord);
    tcase_add_test(tc, self_authorized_refusals);
    tcase_add_test(tc, lineage_and_payload_match_gov);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
