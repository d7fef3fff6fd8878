/*
 * it_gov: the GSAP protocol against the real binary and PostgreSQL: issuing, idempotency,
 * denials, elevation, single use under concurrency, session ACs, evidence flags, redaction,
 * lineage, tenants; every signature and CID is re-checked by an independent implementation
 * (tests/npm/gsap_oracle.mjs: canonicalize + @noble/ed25519).
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

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define OTHER H("4")

static tst_broker_t B;
static char *ISSUER, *EXECUTOR, *APPROVER, *AUDITOR, *ADMIN, *OTHER_TENANT;
static char PUBKEY[64];

static void setup(void)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb("it_gov"), NULL), 0);
    ISSUER = tst_keys_create(&B, "acme", "issuer");
    EXECUTOR = tst_keys_create(&B, "acme", "executor");
    APPROVER = tst_keys_create(&B, "acme", "approver");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    ADMIN = tst_keys_create(&B, "acme", "admin");
    OTHER_TENANT = tst_keys_create(&B, "globex", "issuer,executor,auditor");
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    snprintf(PUBKEY, sizeof PUBKEY, "%s",
             json_string_value(json_object_get(json_array_get(json_object_get(r.json, "keys"), 0),
                                               "public_key")));
    tst_resp_clear(&r);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(ISSUER), free(EXECUTOR), free(APPROVER), free(AUDITOR), free(ADMIN), free(OTHER_TENANT);
}

/* Runs the independent oracle; returns its stdout line (malloc'd) or NULL on failure. */
static char *oracle(const char *fmt_args, ...)
{
    char args[2048], cmd[2300], line[512] = "";
    va_list ap;
    va_start(ap, fmt_args);
    vsnprintf(args, sizeof args, fmt_args, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "node %s/tests/npm/gsap_oracle.mjs %s", getenv("GSAP_SOURCE_DIR"), args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(line, 1, sizeof line - 1, p);
    line[n] = 0;
    int rc = pclose(p);
    if (rc != 0)
        return NULL;
    line[strcspn(line, "\n")] = 0;
    return strdup(line);
}

static char *save_json(const json_t *v)
{
    char path[] = "/tmp/gsap-json-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    json_dumpf(v, f, JSON_COMPACT);
    fclose(f);
    return strdup(path);
}

/* The oracle verifies doc's signature with the broker's published key and returns its CID. */
static void assert_signed(const json_t *doc, const char *cid_field)
{
    char *path = save_json(doc);
    char *out = oracle("verify %s %s", path, PUBKEY);
    unlink(path);
    free(path);
    ck_assert_msg(out != NULL, "the signature does not verify independently");
    ck_assert_str_eq(out + 3, json_string_value(json_object_get(doc, cid_field)));
    free(out);
}

static json_t *authorize(const char *token, const char *extra, const char *idem, int expect)
{
    tst_resp_t r;
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}%s%s}",
                     CMD, CORPUS, PARAMS, extra ? "," : "", extra ? extra : "");
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n%s%s%s", token,
                    idem ? "Idempotency-Key: " : "", idem ? idem : "", idem ? "\r\n" : "");
    ck_assert_int_eq(tst_http(B.port, "POST", "/governance/authorize/", hdr, body, strlen(body), &r), 0);
    ck_assert_msg(r.status == expect, "authorize: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    free(hdr);
    return j;
}

/* The current UTC time to the second, as a CR's times are written. */
static const char *now_utc(void)
{
    static char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* A CR on ctx. Its times are plausible (migrations/0007): started_at (default: now, which is
 * not before the AC just issued) and completed_at now. */
static char *cr_body(const char *ctx, const char *outcome, int exit_code, const char *params,
                     const char *behavior, const char *started, const char *extra)
{
    char now[32];
    snprintf(now, sizeof now, "%s", now_utc());
    return tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"%s\",\"exit_code\":%d,"
               "\"started_at\":\"%s\",\"completed_at\":\"%s\","
               "\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
               "\"stdout_hash\":\"%s\",\"output_bytes\":12,"
               "\"chronicle\":{\"session_id\":\"chr-1\",\"behavior_state\":\"%s\","
               "\"merkle_root\":\"%s\"}%s%s}",
               ctx, outcome, exit_code, started ? started : now, now, CMD, CORPUS,
               params ? params : PARAMS, OTHER, behavior ? behavior : "verified", OTHER,
               extra ? "," : "", extra ? extra : "");
}

static json_t *complete(const char *body, int expect)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", EXECUTOR, body, &r), 0);
    ck_assert_msg(r.status == expect, "complete: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    return j;
}

START_TEST(issue_signed_ac)
{
    json_t *ac = authorize(ISSUER, "\"ttl_seconds\":10000", NULL, 200);
    ck_assert_str_eq(tst_str(ac, "gsap_version"), "1.0");
    ck_assert_str_eq(tst_str(ac, "status"), "authorized");
    ck_assert_int_eq(strncmp(tst_str(ac, "context_id"), "ctx_", 4), 0);
    ck_assert_int_eq(strncmp(tst_str(ac, "signature"), "ed25519:", 8), 0);
    ck_assert_int_eq(strncmp(tst_str(json_object_get(ac, "principal"), "did"), "did:web:", 8), 0);
    ck_assert_str_eq(tst_str(ac, "capability_set"), "0x00000000");
    ck_assert_int_eq(json_integer_value(json_object_get(ac, "posture_level")), 3);
    ck_assert_str_eq(tst_str(ac, "shell_class"), "Application");
    ck_assert_str_eq(tst_str(json_object_get(ac, "operation"), "corpus_entry_cid"), CORPUS);
    ck_assert_str_eq(tst_str(json_object_get(ac, "identity_proof"), "driver"), "api-key");
    ck_assert_ptr_nonnull(strstr(tst_str(ac, "session_url"), tst_str(ac, "context_id")));
    /* TTL above the default accord's cap (900 s) is clamped */
    struct tm a = {0}, b = {0};
    strptime(tst_str(ac, "issued_at"), "%Y-%m-%dT%H:%M:%SZ", &a);
    strptime(tst_str(ac, "expires_at"), "%Y-%m-%dT%H:%M:%SZ", &b);
    ck_assert_int_eq((long)(timegm(&b) - timegm(&a)), 900);
    assert_signed(ac, "ac_cid");
    /* the accord hash is the CID of the stored accord, recomputed independently */
    PGconn *c = tst_pg_connect("it_gov");
    char *accord = tst_pg_scalar(c, "SELECT body::text FROM accords WHERE tenant_id='acme' AND name='default'");
    json_t *aj = json_loads(accord, 0, NULL);
    char *path = save_json(aj), *cid = oracle("cid %s", path);
    ck_assert_str_eq(cid, tst_str(json_object_get(ac, "accord"), "accord_hash"));
    unlink(path);
    /* stored, with its outbox event in the same transaction */
    char *sql = tst_fmt("SELECT ac_cid FROM acs WHERE context_id='%s'", tst_str(ac, "context_id"));
    char *stored = tst_pg_scalar(c, sql);
    ck_assert_str_eq(stored, tst_str(ac, "ac_cid"));
    free(sql);
    sql = tst_fmt("SELECT count(*) FROM events WHERE type='GSAP_AC_ISSUED' AND context_id='%s'",
              tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    /* polling returns the same signed document */
    tst_resp_t r;
    char *p = tst_fmt("/governance/authorize/%s/", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_get(B.port, p, EXECUTOR, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "signature"), tst_str(ac, "signature"));
    assert_signed(r.json, "ac_cid");
    tst_resp_clear(&r);
    /* and another tenant cannot see it */
    ck_assert_int_eq(tst_get(B.port, p, OTHER_TENANT, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    free(p), free(sql), free(stored), free(path), free(cid), free(accord);
    json_decref(aj);
    json_decref(ac);
    PQfinish(c);
}
END_TEST

START_TEST(idempotency)
{
    json_t *a = authorize(ISSUER, NULL, "retry-1", 200);
    json_t *b = authorize(ISSUER, NULL, "retry-1", 200);
    ck_assert_str_eq(tst_str(a, "context_id"), tst_str(b, "context_id"));
    ck_assert_str_eq(tst_str(a, "signature"), tst_str(b, "signature"));
    json_t *c = authorize(ISSUER, "\"ttl_seconds\":60", "retry-1", 409);
    ck_assert_str_eq(tst_err_code(c), "idempotency_conflict");
    PGconn *pg = tst_pg_connect("it_gov");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs WHERE idempotency_key='retry-1'"), 1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM events WHERE type='GSAP_AC_ISSUED'"), 1);
    PQfinish(pg);
    json_decref(a), json_decref(b), json_decref(c);
}
END_TEST

START_TEST(denials_and_errors)
{
    json_t *d = authorize(ISSUER, "\"capability_set\":\"0x00010000\"", NULL, 403);
    ck_assert_str_eq(tst_err_code(d), "policy_denied");
    json_t *den = json_object_get(d, "denial");
    ck_assert_str_eq(tst_str(den, "reason_code"), "capability_not_allowed");
    assert_signed(den, "denial_cid");
    PGconn *pg = tst_pg_connect("it_gov");
    char *sql = tst_fmt("SELECT count(*) FROM denials WHERE denial_id='%s'", tst_str(den, "denial_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM events WHERE type='GSAP_AC_DENIED'"), 1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs"), 0);
    free(sql);
    /* an accord with an allow-list and no sessions */
    tst_resp_t r;
    char *accord = tst_fmt("{\"ttl_max_seconds\":60,\"session_mode_allowed\":false,"
                       "\"corpus_allow\":[\"%s\"]}", OTHER);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/accords/strict", hdr, accord, strlen(accord), &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "capability_mask"), "0x0000ffff");
    tst_resp_clear(&r);
    char *body = tst_fmt("{\"accord_template\":\"strict\",\"operation\":{\"command_hash\":\"%s\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}", CMD, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER, body, &r), 0);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "denial"), "reason_code"), "corpus_not_allowed");
    tst_resp_clear(&r);
    free(body);
    body = tst_fmt("{\"accord_template\":\"strict\",\"session_mode\":true,\"operation\":{\"command_hash\":\"%s\","
               "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}", CMD, OTHER, PARAMS);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER, body, &r), 0);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "denial"), "reason_code"), "session_mode_not_allowed");
    tst_resp_clear(&r);
    free(body);
    /* bad input changes nothing */
    json_t *e = authorize(ISSUER, "\"ttl_seconds\":0", NULL, 422);
    json_decref(e);
    e = authorize(ISSUER, "\"ttl_seconds\":\"5\"", NULL, 400);
    json_decref(e);
    /* unknown top-level members are kept (it_receipts); inside "operation" they are refused */
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER,
                                   "{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"" CMD
                                   "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS
                                   "\",\"surprise\":1}}", &r), 0);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(tst_err_code(r.json), "unknown_field");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER,
                                   "{\"accord_template\":\"nope\",\"operation\":{\"command_hash\":\"" CMD
                                   "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\"}}", &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(tst_err_code(r.json), "accord_not_found");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", EXECUTOR, "{}", &r), 0);
    ck_assert_int_eq(r.status, 403);
    tst_resp_clear(&r);
    e = authorize(ISSUER, "\"billing_account\":\"nobody\"", NULL, 404);
    ck_assert_str_eq(tst_err_code(e), "account_not_found");
    json_decref(e);
    e = authorize(ISSUER, "\"on_behalf_of\":\"did:web:someone\"", NULL, 403);
    ck_assert_str_eq(tst_err_code(e), "delegation_forbidden");
    json_decref(e);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs"), 0);
    PQfinish(pg);
    free(hdr), free(accord);
    json_decref(d);
}
END_TEST

START_TEST(single_use_and_receipt)
{
    json_t *ac = authorize(ISSUER, NULL, NULL, 200);
    const char *ctx = tst_str(ac, "context_id");
    char *body = cr_body(ctx, "completed", 0, NULL, NULL, NULL,
                         "\"metadata\":{\"api_token\":\"hunter2\",\"host\":\"build-7\"}");
    json_t *rc = complete(body, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(rc, "sequence")), 1);
    ck_assert_str_eq(tst_str(rc, "receipt_id"), tst_str(rc, "cr_id"));
    ck_assert_str_eq(tst_str(rc, "ac_status"), "consumed");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "completed");
    ck_assert_int_eq(json_array_size(json_object_get(rc, "flags")), 0);
    ck_assert(json_is_null(json_object_get(rc, "prev_lineage_cid")));
    /* lineage recomputed independently from the AC's and the CR's CIDs */
    char *lin = oracle("lineage %s %s %s null 1", tst_str(ac, "ac_cid"), tst_str(rc, "chronicle_cid"),
                       tst_str(rc, "cr_cid"));
    ck_assert_str_eq(lin, tst_str(rc, "lineage_cid"));
    /* the stored CR is redacted, and cr_cid is the CID of exactly what is stored */
    PGconn *pg = tst_pg_connect("it_gov");
    char *sql = tst_fmt("SELECT cr::text FROM crs WHERE cr_id='%s'", tst_str(rc, "cr_id"));
    char *stored = tst_pg_scalar(pg, sql);
    ck_assert_ptr_null(strstr(stored, "hunter2"));
    json_t *sj = json_loads(stored, 0, NULL);
    ck_assert_str_eq(tst_str(json_object_get(sj, "metadata"), "api_token"), "***");
    ck_assert_str_eq(tst_str(json_object_get(sj, "metadata"), "host"), "build-7");
    char *path = save_json(sj), *cid = oracle("cid %s", path);
    ck_assert_str_eq(cid, tst_str(rc, "cr_cid"));
    unlink(path), free(path), free(cid);
    path = save_json(json_object_get(sj, "chronicle"));
    cid = oracle("cid %s", path);
    ck_assert_str_eq(cid, tst_str(rc, "chronicle_cid"));
    /* identical retry: the same receipt; another CR: 409 */
    json_t *again = complete(body, 200);
    ck_assert_str_eq(tst_str(again, "cr_id"), tst_str(rc, "cr_id"));
    ck_assert_str_eq(tst_str(again, "lineage_cid"), tst_str(rc, "lineage_cid"));
    char *other = cr_body(ctx, "failed", 1, NULL, NULL, NULL, NULL);
    json_t *conflict = complete(other, 409);
    ck_assert_str_eq(tst_err_code(conflict), "ac_consumed");
    free(sql);
    sql = tst_fmt("SELECT count(*) FROM crs WHERE context_id='%s'", ctx);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    sql = tst_fmt("SELECT count(*) FROM events WHERE type='GSAP_CR_RECEIVED' AND context_id='%s'", ctx);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    /* unknown context, a value outside its enum, a malformed time */
    char *unknown = cr_body("ctx_00000000000000000000000000000000", "completed", 0, NULL, NULL, NULL, NULL);
    json_t *e = complete(unknown, 404);
    ck_assert_str_eq(tst_err_code(e), "context_not_found");
    json_decref(e);
    char *bad = cr_body(ctx, "exploded", 0, NULL, NULL, NULL, NULL);
    e = complete(bad, 422);
    json_decref(e);
    free(bad);
    bad = cr_body(ctx, "completed", 0, NULL, "confused", NULL, NULL);
    e = complete(bad, 422);
    json_decref(e);
    free(bad);
    bad = cr_body(ctx, "completed", 0, NULL, NULL, "yesterday", NULL);
    e = complete(bad, 400);
    json_decref(e);
    free(bad);
    PQfinish(pg);
    free(body), free(other), free(unknown), free(lin), free(sql), free(stored), free(path), free(cid);
    json_decref(sj), json_decref(ac), json_decref(rc), json_decref(again), json_decref(conflict);
}
END_TEST

START_TEST(evidence_flags)
{
    json_t *ac = authorize(ISSUER, NULL, NULL, 200);
    char *body = cr_body(tst_str(ac, "context_id"), "completed", 0, OTHER, "violated", NULL,
                         "\"self_authorized\":true");
    json_t *rc = complete(body, 200);
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    ck_assert_str_eq(tst_str(rc, "outcome"), "completed");
    json_t *flags = json_object_get(rc, "flags");
    char *f = json_dumps(flags, JSON_COMPACT);
    ck_assert_str_eq(f, "[\"parameters_mismatch\",\"behavior_violated\",\"self_authorized\"]");
    free(f);
    json_decref(rc), json_decref(ac);
    free(body);
    /* late: started before expiry, posted after it; and started after expiry */
    ac = authorize(ISSUER, "\"ttl_seconds\":1", NULL, 200);
    json_t *ac2 = authorize(ISSUER, "\"ttl_seconds\":1", NULL, 200);
    sleep(2);
    body = cr_body(tst_str(ac, "context_id"), "completed", 0, NULL, NULL, tst_str(ac, "issued_at"), NULL);
    rc = complete(body, 200);
    f = json_dumps(json_object_get(rc, "flags"), JSON_COMPACT);
    ck_assert_str_eq(f, "[\"overage\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "completed");
    free(f), free(body);
    json_decref(rc);
    /* started after it was posted (and after expiry), so completed before it started: not
     * refused but stored, flagged time_implausible, effective outcome violated (0007) */
    json_t *ac3 = authorize(ISSUER, "\"ttl_seconds\":1", NULL, 200);
    body = cr_body(tst_str(ac3, "context_id"), "completed", 0, NULL, NULL, "2031-01-01T00:00:00Z", NULL);
    rc = complete(body, 200);
    f = json_dumps(json_object_get(rc, "flags"), JSON_COMPACT);
    ck_assert_str_eq(f, "[\"time_implausible\",\"started_after_expiry\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    free(f);
    json_decref(rc), json_decref(ac3);
    free(body);
    body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"timed_out\",\"started_at\":\"%s\","
               "\"completed_at\":\"%s\",\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
               "\"parameters_cid\":\"%s\",\"chronicle\":{\"behavior_state\":\"unavailable\"}}",
               tst_str(ac2, "context_id"), now_utc(), now_utc(), CMD, CORPUS, PARAMS);
    /* an unused AC past its expiry reads as expired */
    tst_resp_t pr;
    char *poll = tst_fmt("/governance/authorize/%s", tst_str(ac2, "context_id"));
    ck_assert_int_eq(tst_get(B.port, poll, ISSUER, &pr), 0);
    ck_assert_str_eq(tst_str(pr.json, "status"), "expired");
    tst_resp_clear(&pr);
    free(poll);
    /* another tenant's executor cannot complete it: 404, as if it did not exist */
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", OTHER_TENANT, body, &pr), 0);
    ck_assert_int_eq(pr.status, 404);
    tst_resp_clear(&pr);
    rc = complete(body, 200);
    f = json_dumps(json_object_get(rc, "flags"), JSON_COMPACT);
    ck_assert_str_eq(f, "[\"started_after_expiry\"]");
    free(f), free(body);
    json_decref(rc), json_decref(ac), json_decref(ac2);
}
END_TEST

START_TEST(session_ac)
{
    json_t *ac = authorize(ISSUER, "\"session_mode\":true", NULL, 200);
    const char *ctx = tst_str(ac, "context_id");
    char prev[80] = "null";
    for (int i = 1; i <= 4; i++) {
        char *body = cr_body(ctx, i == 4 ? "session_end" : "completed", i, NULL, NULL, NULL, NULL);
        json_t *rc = complete(body, 200);
        ck_assert_int_eq(json_integer_value(json_object_get(rc, "sequence")), i);
        ck_assert_str_eq(tst_str(rc, "ac_status"), i == 4 ? "consumed" : "active");
        char *lin = oracle("lineage %s %s %s %s %d", tst_str(ac, "ac_cid"), tst_str(rc, "chronicle_cid"),
                           tst_str(rc, "cr_cid"), prev, i);
        ck_assert_str_eq(lin, tst_str(rc, "lineage_cid"));
        snprintf(prev, sizeof prev, "%s", tst_str(rc, "lineage_cid"));
        free(lin), free(body);
        json_decref(rc);
    }
    char *late = cr_body(ctx, "completed", 9, NULL, NULL, NULL, NULL);
    json_t *e = complete(late, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_consumed");
    /* the session page shows the chain, to auditors, as JSON and as HTML */
    tst_resp_t r;
    char *path = tst_fmt("/governance/session/%s/", ctx);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "receipts")), 4);
    ck_assert_str_eq(tst_str(r.json, "lineage_head"), prev);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "ac"), "status"), "consumed");
    tst_resp_clear(&r);
    free(hdr);
    hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: text/html\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "<html>"));
    ck_assert_ptr_nonnull(strstr(r.body, prev));
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, path, OTHER_TENANT, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/governance/drivers/", AUDITOR, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(r.json, "drivers"), 0), "name"), "api-key");
    tst_resp_clear(&r);
    free(late), free(path), free(hdr);
    json_decref(e), json_decref(ac);
}
END_TEST

START_TEST(elevation)
{
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", ADMIN);
    const char *accord = "{\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/accords/ops", hdr, accord, strlen(accord), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    char *body = tst_fmt("{\"accord_template\":\"ops\",\"capability_set\":\"0x00000081\",\"operation\":"
                     "{\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                     CMD, CORPUS, PARAMS);
    json_t *acs[2];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER, body, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(tst_str(r.json, "status"), "pending");
        ck_assert_str_eq(tst_str(json_object_get(r.json, "elevation"), "required"), "0x00000080");
        acs[i] = json_incref(r.json);
        tst_resp_clear(&r);
    }
    /* a CR before the decision is refused and stored nowhere */
    char *cr = cr_body(tst_str(acs[0], "context_id"), "completed", 0, NULL, NULL, NULL, NULL);
    json_t *e = complete(cr, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_not_approved");
    json_decref(e);
    /* approve: re-signed, authorized; refuse: revoked; deciding twice: 409 */
    char *dec = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"approve\",\"reason\":\"change 42\"}",
                    tst_str(acs[0], "context_id"));
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", ISSUER, dec, &r), 0);
    ck_assert_int_eq(r.status, 403);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", APPROVER, dec, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "status"), "authorized");
    ck_assert_str_eq(tst_str(json_object_get(r.json, "elevation"), "status"), "approved");
    ck_assert_str_ne(tst_str(r.json, "ac_cid"), tst_str(acs[0], "ac_cid"));
    assert_signed(r.json, "ac_cid");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", APPROVER, dec, &r), 0);
    ck_assert_int_eq(r.status, 409);
    ck_assert_str_eq(tst_err_code(r.json), "elevation_decided");
    tst_resp_clear(&r);
    json_t *rc = complete(cr, 200);
    json_decref(rc);
    free(dec);
    dec = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"refuse\"}", tst_str(acs[1], "context_id"));
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", APPROVER, dec, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "status"), "revoked");
    tst_resp_clear(&r);
    char *poll = tst_fmt("/governance/authorize/%s/", tst_str(acs[1], "context_id"));
    ck_assert_int_eq(tst_get(B.port, poll, ISSUER, &r), 0);
    ck_assert_str_eq(tst_str(r.json, "status"), "revoked");
    ck_assert_str_eq(tst_str(json_object_get(r.json, "elevation"), "status"), "refused");
    tst_resp_clear(&r);
    free(dec);
    dec = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"maybe\"}", tst_str(acs[1], "context_id"));
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", APPROVER, dec, &r), 0);
    ck_assert_int_eq(r.status, 422);
    tst_resp_clear(&r);
    PGconn *pg = tst_pg_connect("it_gov");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM events WHERE type LIKE 'GSAP_ELEVATION_%'"), 2);
    PQfinish(pg);
    free(dec), free(poll), free(cr), free(body), free(hdr);
    json_decref(acs[0]), json_decref(acs[1]);
}
END_TEST


/* ---- separation of duties, N-of-M approvals, ACs that were never approved ---- */

/* The key id of a token "gsap.<tenant>.<key_id>.<secret>" (static buffer). */
static const char *key_id_of(const char *token)
{
    static char id[64];
    const char *a = strchr(token, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    const char *c = b ? strchr(b + 1, '.') : NULL;
    ck_assert_ptr_nonnull(c);
    snprintf(id, sizeof id, "%.*s", (int)(c - b - 1), b + 1);
    return id;
}

static void put_accord(const char *name, const char *body, int expect, const char *code)
{
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", ADMIN);
    char *path = tst_fmt("/admin/accords/%s", name);
    ck_assert_int_eq(tst_http(B.port, "PUT", path, hdr, body, strlen(body), &r), 0);
    ck_assert_msg(r.status == expect, "PUT %s: %d %s", name, r.status, r.body);
    if (code != NULL)
        ck_assert_str_eq(tst_err_code(r.json), code);
    tst_resp_clear(&r);
    free(hdr), free(path);
}

/* A pending AC of accord name (which must require elevation for bit 7), issued by token,
 * with extra request members (may be NULL). */
static json_t *pending_ac(const char *name, const char *token, const char *extra)
{
    tst_resp_t r;
    char *body = tst_fmt("{\"accord_template\":\"%s\",\"capability_set\":\"0x00000081\","
                     "\"operation\":{\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
                     "\"parameters_cid\":\"%s\"}%s%s}",
                     name, CMD, CORPUS, PARAMS, extra ? "," : "", extra ? extra : "");
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    ck_assert_str_eq(tst_str(r.json, "status"), "pending");
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    return j;
}

/* POSTs a decision by token; checks the status (and the error code when code is not NULL);
 * returns the body. */
static json_t *decide(const char *token, const json_t *ac, const char *decision, int expect,
                      const char *code)
{
    tst_resp_t r;
    char *dec = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"%s\",\"reason\":\"change 7\"}",
                    tst_str(ac, "context_id"), decision);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", token, dec, &r), 0);
    ck_assert_msg(r.status == expect, "elevate: %d %s", r.status, r.body);
    if (code != NULL)
        ck_assert_str_eq(tst_err_code(r.json), code);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(dec);
    return j;
}

static long ctx_count(PGconn *pg, const char *table_where, const json_t *ac)
{
    char *sql = tst_fmt("SELECT count(*) FROM %s AND context_id = '%s'", table_where,
                    tst_str(ac, "context_id"));
    long n = tst_pg_long(pg, sql);
    free(sql);
    return n;
}

START_TEST(self_approval_forbidden)
{
    tst_resp_t r;
    put_accord("ops", "{\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"}",
               200, NULL);
    PGconn *pg = tst_pg_connect("it_gov");
    /* the same key: it may issue and approve, but not its own request */
    char *both = tst_keys_create(&B, "acme", "issuer,approver");
    json_t *ac = pending_ac("ops", both, NULL);
    json_t *e = decide(both, ac, "approve", 403, "self_approval_forbidden");
    json_decref(e);
    e = decide(both, ac, "refuse", 403, "self_approval_forbidden");
    json_decref(e);
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE true", ac), 0);
    ck_assert_int_eq(ctx_count(pg, "acs WHERE status = 'pending'", ac), 1);
    json_decref(ac);

    /* the same principal through another key: a delegating issuer asks on behalf of the
     * approver's own DID; that approver may not decide, another one may */
    int st;
    char *deleg = tst_broker_cli(&B, &st, "keys", "create", "--tenant", "acme", "--role",
                                 "issuer", "--delegate", NULL);
    ck_assert_int_eq(st, 0);
    json_t *mine = authorize(ISSUER, NULL, NULL, 200);
    const char *issuer_did = tst_str(json_object_get(mine, "principal"), "did");
    char *approver_did = tst_fmt("%.*s%s", (int)(strrchr(issuer_did, ':') + 1 - issuer_did),
                             issuer_did, key_id_of(APPROVER));
    /* acting for the approver takes a delegation to it (0012) */
    char *dbody = tst_fmt("{\"agent_did\":\"%s\"}", approver_did);
    ck_assert_int_eq(tst_post_json(B.port, "/delegations/", deleg, dbody, &r), 0);
    ck_assert_msg(r.status == 201, "delegation: %d %s", r.status, r.body);
    char *obo = tst_fmt("\"on_behalf_of\":\"%s\",\"delegation_id\":\"%s\"", approver_did,
                        tst_str(r.json, "delegation_id"));
    tst_resp_clear(&r);
    free(dbody);
    ac = pending_ac("ops", deleg, obo);
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"), approver_did);
    e = decide(APPROVER, ac, "approve", 403, "self_approval_forbidden");
    json_decref(e);
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE true", ac), 0);
    char *other = tst_keys_create(&B, "acme", "approver");
    e = decide(other, ac, "approve", 200, NULL);
    ck_assert_str_eq(tst_str(e, "status"), "authorized");
    assert_signed(e, "ac_cid");
    json_decref(e);
    PQfinish(pg);
    free(both), free(deleg), free(approver_did), free(obo), free(other);
    json_decref(ac), json_decref(mine);
}
END_TEST

START_TEST(two_person_rule)
{
    tst_resp_t r;
    const char *base = "\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"";
    char *body;
    /* approvals_required: 1 and 5 accepted, 0 and 6 refused (422), not an integer 400;
     * a refused accord stores nothing */
    const struct {
        const char *name, *value;
        int status;
        const char *code;
    } cases[] = {{"two", "2", 200, NULL},         {"five", "5", 200, NULL},
                 {"one", "1", 200, NULL},         {"zero", "0", 422, "out_of_range"},
                 {"six", "6", 422, "out_of_range"}, {"str", "\"2\"", 400, "invalid_field"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        body = tst_fmt("{%s,\"approvals_required\":%s}", base, cases[i].value);
        put_accord(cases[i].name, body, cases[i].status, cases[i].code);
        free(body);
        char *path = tst_fmt("/admin/accords/%s", cases[i].name);
        ck_assert_int_eq(tst_get(B.port, path, ADMIN, &r), 0);
        ck_assert_int_eq(r.status, cases[i].status == 200 ? 200 : 404);
        tst_resp_clear(&r);
        free(path);
    }
    ck_assert_int_eq(tst_get(B.port, "/admin/accords/two", ADMIN, &r), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "approvals_required")), 2);
    tst_resp_clear(&r);
    /* at its default the setting is left out, so an accord keeps the hash it had */
    ck_assert_int_eq(tst_get(B.port, "/admin/accords/one", ADMIN, &r), 0);
    ck_assert_ptr_null(json_object_get(r.json, "approvals_required"));
    tst_resp_clear(&r);

    PGconn *pg = tst_pg_connect("it_gov");
    char *second = tst_keys_create(&B, "acme", "approver");
    json_t *ac = pending_ac("two", ISSUER, NULL);
    json_t *el = json_object_get(ac, "elevation");
    ck_assert_int_eq(json_integer_value(json_object_get(el, "approvals_required")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(el, "approvals")), 0);
    assert_signed(ac, "ac_cid");

    /* first approval: recorded, still pending, still unusable */
    json_t *d1 = decide(APPROVER, ac, "approve", 200, NULL);
    ck_assert_str_eq(tst_str(d1, "status"), "pending");
    el = json_object_get(d1, "elevation");
    ck_assert_str_eq(tst_str(el, "status"), "pending");
    ck_assert_int_eq(json_array_size(json_object_get(el, "approvals")), 1);
    json_t *a0 = json_array_get(json_object_get(el, "approvals"), 0);
    ck_assert_str_eq(tst_str(a0, "key_id"), key_id_of(APPROVER));
    ck_assert_str_eq(tst_str(a0, "decision"), "approve");
    ck_assert_str_eq(tst_str(a0, "reason"), "change 7");
    ck_assert_int_eq(strncmp(tst_str(a0, "principal"), "did:web:", 8), 0);
    ck_assert_ptr_nonnull(tst_str(a0, "decided_at"));
    ck_assert_str_eq(tst_str(d1, "ac_cid"), tst_str(ac, "ac_cid")); /* not re-signed yet */
    char *cr = cr_body(tst_str(ac, "context_id"), "completed", 0, NULL, NULL, NULL, NULL);
    json_t *e = complete(cr, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_not_approved");
    json_decref(e);
    /* the same key twice: 409, nothing recorded */
    e = decide(APPROVER, ac, "approve", 409, "approval_duplicate");
    json_decref(e);
    e = decide(APPROVER, ac, "refuse", 409, "approval_duplicate");
    json_decref(e);
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE true", ac), 1);

    /* second approver: authorized, re-signed, both approvals in the signed record */
    json_t *d2 = decide(second, ac, "approve", 200, NULL);
    ck_assert_str_eq(tst_str(d2, "status"), "authorized");
    el = json_object_get(d2, "elevation");
    ck_assert_str_eq(tst_str(el, "status"), "approved");
    ck_assert_int_eq(json_array_size(json_object_get(el, "approvals")), 2);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(el, "approvals"), 1), "key_id"),
                     key_id_of(second));
    ck_assert_str_ne(tst_str(d2, "ac_cid"), tst_str(ac, "ac_cid"));
    assert_signed(d2, "ac_cid");
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE decision = 'approve'", ac), 2);
    ck_assert_int_eq(ctx_count(pg, "events WHERE type = 'GSAP_ELEVATION_APPROVAL_RECORDED'", ac), 1);
    ck_assert_int_eq(ctx_count(pg, "events WHERE type = 'GSAP_ELEVATION_APPROVED'", ac), 1);
    e = decide(APPROVER, ac, "approve", 409, "elevation_decided");
    json_decref(e);

    /* polling and the session page (JSON and HTML) show the approvals */
    char *poll = tst_fmt("/governance/authorize/%s/", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_get(B.port, poll, ISSUER, &r), 0);
    ck_assert_str_eq(tst_str(r.json, "status"), "authorized");
    el = json_object_get(r.json, "elevation");
    ck_assert_int_eq(json_integer_value(json_object_get(el, "approvals_required")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(el, "approvals")), 2);
    tst_resp_clear(&r);
    char *path = tst_fmt("/governance/session/%s/", tst_str(ac, "context_id"));
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    el = json_object_get(json_object_get(r.json, "ac"), "elevation");
    ck_assert_int_eq(json_array_size(json_object_get(el, "approvals")), 2);
    tst_resp_clear(&r);
    free(hdr);
    hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: text/html\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "Approvals"));
    ck_assert_ptr_nonnull(strstr(r.body, key_id_of(APPROVER)));
    ck_assert_ptr_nonnull(strstr(r.body, key_id_of(second)));
    tst_resp_clear(&r);
    e = complete(cr, 200);
    json_decref(e);

    /* one refusal refuses, even after an approval */
    json_t *ac2 = pending_ac("two", ISSUER, NULL);
    e = decide(APPROVER, ac2, "approve", 200, NULL);
    json_decref(e);
    e = decide(second, ac2, "refuse", 200, NULL);
    ck_assert_str_eq(tst_str(e, "status"), "revoked");
    ck_assert_str_eq(tst_str(json_object_get(e, "elevation"), "status"), "refused");
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(e, "elevation"), "approvals")), 2);
    json_decref(e);
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE decision = 'refuse'", ac2), 1);
    free(cr);
    cr = cr_body(tst_str(ac2, "context_id"), "completed", 0, NULL, NULL, NULL, NULL);
    e = complete(cr, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_revoked");
    json_decref(e);
    PQfinish(pg);
    free(second), free(cr), free(poll), free(path), free(hdr);
    json_decref(ac), json_decref(ac2), json_decref(d1), json_decref(d2);
}
END_TEST

/* Waits (up to 20 s) for the expiry job to mark the AC expired. */
static void wait_expired(PGconn *pg, const json_t *ac)
{
    char *sql = tst_fmt("UPDATE acs SET expires_at = now() - interval '1 second' "
                    "WHERE context_id = '%s' RETURNING 1", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    for (int i = 0; i < 200 && ctx_count(pg, "acs WHERE status = 'expired'", ac) == 0; i++)
        usleep(100 * 1000);
    ck_assert_int_eq(ctx_count(pg, "acs WHERE status = 'expired'", ac), 1);
}

START_TEST(never_approved_never_usable)
{
    put_accord("ops", "{\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"}",
               200, NULL);
    PGconn *pg = tst_pg_connect("it_gov");
    json_t *pend = pending_ac("ops", ISSUER, NULL), *rev = pending_ac("ops", ISSUER, NULL);
    json_t *e = decide(APPROVER, rev, "refuse", 200, NULL);
    json_decref(e);
    char *cp = cr_body(tst_str(pend, "context_id"), "completed", 0, NULL, NULL, NULL, NULL);
    char *cv = cr_body(tst_str(rev, "context_id"), "completed", 0, NULL, NULL, NULL, NULL);
    /* before expiry */
    e = complete(cp, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_not_approved");
    json_decref(e);
    e = complete(cv, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_revoked");
    json_decref(e);
    /* after the expiry job moved the pending AC to expired: the same answers */
    wait_expired(pg, pend);
    char *sql = tst_fmt("UPDATE acs SET expires_at = now() - interval '1 second' "
                    "WHERE context_id = '%s' RETURNING 1", tst_str(rev, "context_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    e = complete(cp, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_not_approved");
    json_decref(e);
    e = complete(cv, 409);
    ck_assert_str_eq(tst_err_code(e), "ac_revoked");
    json_decref(e);
    /* nothing stored or billed; every attempt is an event with its reason and key */
    const json_t *acs[2] = {pend, rev};
    const char *reasons[2] = {"not_approved", "revoked"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(ctx_count(pg, "crs WHERE true", acs[i]), 0);
        ck_assert_int_eq(ctx_count(pg, "events WHERE type = 'GSAP_CR_RECEIVED'", acs[i]), 0);
        ck_assert_int_eq(ctx_count(pg, "invoice_lines WHERE true", acs[i]), 0);
        char *w = tst_fmt("events WHERE type = 'GSAP_CR_REFUSED' AND payload->>'reason' = '%s' "
                      "AND payload->>'executor_key_id' = '%s' AND payload->>'cr_cid' LIKE 'sha256:%%'",
                      reasons[i], key_id_of(EXECUTOR));
        ck_assert_int_eq(ctx_count(pg, w, acs[i]), 2);
        free(w);
    }
    /* billing subscribes to none of them */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM fn_runs r JOIN events e USING "
                                     "(tenant_id, event_id) WHERE e.type = 'GSAP_CR_REFUSED' "
                                     "AND r.function = 'billing'"),
                     0);
    /* the auditor sees the attempts on the session page */
    tst_resp_t r;
    char *path = tst_fmt("/governance/session/%s/", tst_str(pend, "context_id"));
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *ref = json_object_get(r.json, "refused_receipts");
    ck_assert_int_eq(json_array_size(ref), 2);
    ck_assert_str_eq(tst_str(json_array_get(ref, 0), "reason"), "not_approved");
    ck_assert_str_eq(tst_str(json_array_get(ref, 0), "ac_status"), "pending");
    ck_assert_str_eq(tst_str(json_array_get(ref, 1), "ac_status"), "expired");
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "receipts")), 0);
    tst_resp_clear(&r);
    free(hdr);
    hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: text/html\r\n", AUDITOR);
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "Refused receipts"));
    tst_resp_clear(&r);
    /* an approval after expiry cannot revive it, nor one past expires_at that the expiry
     * job has not marked yet */
    e = decide(APPROVER, pend, "approve", 409, "elevation_decided");
    json_decref(e);
    json_t *late = pending_ac("ops", ISSUER, NULL);
    sql = tst_fmt("UPDATE acs SET expires_at = now() - interval '1 second' WHERE context_id = '%s' "
              "AND status = 'pending' RETURNING 1", tst_str(late, "context_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    e = decide(APPROVER, late, "approve", 409, "elevation_decided");
    json_decref(e);
    ck_assert_int_eq(ctx_count(pg, "ac_approvals WHERE true", late), 0);
    json_decref(late);
    PQfinish(pg);
    free(cp), free(cv), free(path), free(hdr);
    json_decref(pend), json_decref(rev);
}
END_TEST

/* ---- 64 concurrent receipts on one AC ---- */

#define RACERS 64

typedef struct racer {
    const char *body;
    int status;
    char cr_id[64];
} racer_t;

static void *race(void *arg)
{
    racer_t *x = arg;
    tst_resp_t r;
    if (tst_post_json(B.port, "/governance/complete/", EXECUTOR, x->body, &r) == 0) {
        x->status = r.status;
        if (r.status == 200)
            snprintf(x->cr_id, sizeof x->cr_id, "%s", tst_str(r.json, "cr_id"));
        tst_resp_clear(&r);
    }
    return NULL;
}

static void run_race(int identical)
{
    json_t *ac = authorize(ISSUER, NULL, NULL, 200);
    pthread_t th[RACERS];
    racer_t x[RACERS];
    char *bodies[RACERS];
    int ok = 0, conflict = 0;
    for (int i = 0; i < RACERS; i++) {
        bodies[i] = cr_body(tst_str(ac, "context_id"), "completed", identical ? 0 : i, NULL, NULL, NULL, NULL);
        x[i] = (racer_t){bodies[i], 0, ""};
    }
    for (int i = 0; i < RACERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &x[i]), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        ok += x[i].status == 200;
        conflict += x[i].status == 409;
    }
    if (identical) {
        ck_assert_int_eq(ok, RACERS);
        for (int i = 1; i < RACERS; i++)
            ck_assert_str_eq(x[i].cr_id, x[0].cr_id);
    } else {
        ck_assert_int_eq(ok, 1);
        ck_assert_int_eq(conflict, RACERS - 1);
    }
    PGconn *pg = tst_pg_connect("it_gov");
    char *sql = tst_fmt("SELECT count(*) FROM crs WHERE context_id='%s'", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    sql = tst_fmt("SELECT count(*) FROM events WHERE type='GSAP_CR_RECEIVED' AND context_id='%s'",
              tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    PQfinish(pg);
    for (int i = 0; i < RACERS; i++)
        free(bodies[i]);
    json_decref(ac);
}

START_TEST(concurrent_single_use)
{
    run_race(0);
    run_race(1);
}
END_TEST

START_TEST(accords_cli)
{
    char path[] = "/tmp/gsap-accord-XXXXXX";
    int fd = mkstemp(path), st;
    const char *acc = "{\"name\":\"cli-made\",\"ttl_max_seconds\":120,\"posture_level\":5}";
    ck_assert_int_eq(write(fd, acc, strlen(acc)), (ssize_t)strlen(acc));
    close(fd);
    char *out = tst_broker_cli(&B, &st, "accords", "put", "--tenant", "acme", "--file", path, NULL);
    ck_assert_int_eq(st, 0);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "posture_level")), 5);
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, "/admin/accords/cli-made", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "accord_hash"), tst_str(j, "accord_hash"));
    tst_resp_clear(&r);
    /* an invalid accord file changes nothing */
    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "{\"name\":\"bad\",\"posture_level\":9}";
    ck_assert_int_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    free(tst_broker_cli(&B, &st, "accords", "put", "--tenant", "acme", "--file", path, NULL));
    ck_assert_int_ne(st, 0);
    ck_assert_int_eq(tst_get(B.port, "/admin/accords/bad", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    unlink(path);
    free(out);
    json_decref(j);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_gov");
    TCase *tc = tcase_create("gov");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, issue_signed_ac);
    tcase_add_test(tc, idempotency);
    tcase_add_test(tc, denials_and_errors);
    tcase_add_test(tc, single_use_and_receipt);
    tcase_add_test(tc, evidence_flags);
    tcase_add_test(tc, session_ac);
    tcase_add_test(tc, elevation);
    tcase_add_test(tc, self_approval_forbidden);
    tcase_add_test(tc, two_person_rule);
    tcase_add_test(tc, never_approved_never_usable);
    tcase_add_test(tc, concurrent_single_use);
    tcase_add_test(tc, accords_cli);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
