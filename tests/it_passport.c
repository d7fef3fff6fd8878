/*
 * it_passport: agent passports and signed receipts against the real binary and PostgreSQL
 * (handlers/hnd_passports.c, gov/gov_passport.c, migrations/0013_passports.sql,
 * gsap_complete). Every passport and every agent signature is made by the Agent Passport
 * System SDK itself (tests/npm/aps_passport.mjs), so what is checked is what the SDK signs:
 *   - an SDK passport countersigned by an issuer the tenant trusts is accepted, under the DID
 *     the SDK computes, and what the broker hands back verifies in the SDK again;
 *   - each signed member tampered with is refused, and nothing is stored; an untrusted or
 *     revoked issuer, an expired or not yet valid passport, a revoked agent are refused;
 *   - the passport's size limit on both sides; null members refused;
 *   - receipts: signed correctly -> no flag; unsigned under an accord with signed_receipts ->
 *     unsigned_receipt, violated, billed at the violated price; a bad signature ->
 *     bad_agent_signature (with or without the accord's requirement); an agent of a
 *     neighbour tenant, a revoked agent, an issuer revoked since -> unsigned_receipt;
 *   - the session page and the audit bundle show the agent and its passport, and
 *     `gsap-broker verify` checks the agent's signature against it.
 */
#include <check.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tst_check.h"
#include "gov_passport.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_passport"
#define LINE_WAIT_S 15
#define PRICE_COMPLETED 100 /* the rate card put on acme's default account */
#define PRICE_VIOLATED 500
#define LOG_WAIT_S 60
#define ISSUERS_LIST_MAX 256 /* as in handlers/hnd_passports.c */

static tst_broker_t B;
static char *ADMIN, *ISSUER, *EXECUTOR, *AUDITOR, *G_ADMIN, *G_EXEC;
static json_t *CA;   /* {"privateKey", "publicKey"} of the issuer acme trusts */
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=0", NULL};

/* ---- helpers ---- */

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/gsap-pp-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Runs the SDK helper; its JSON output (new reference). */
static json_t *aps(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *cmd = tst_fmt("node %s/tests/npm/aps_passport.mjs %s", getenv("GSAP_SOURCE_DIR"), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    json_error_t je;
    json_t *j = json_loadf(p, JSON_DISABLE_EOF_CHECK, &je);
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_msg(j != NULL, "aps_passport.mjs %s: %s", args, je.text);
    free(cmd);
    return j;
}

static json_t *new_issuer(void)
{
    return aps("issuer");
}

/* An SDK passport countersigned by issuer; opts a JSON object for the helper, or NULL. */
static json_t *new_passport(const json_t *issuer, const char *opts)
{
    return aps("passport %s%s%s%s", tst_str(issuer, "privateKey"), opts ? " '" : "",
               opts ? opts : "", opts ? "'" : "");
}

static json_t *post_j(const char *path, const char *token, const json_t *body, int expect)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_t *j = tst_call_json(B.port, "POST", path, token, s, expect, NULL);
    free(s);
    return j;
}

static void trust(const char *token, const char *name, const json_t *issuer)
{
    char *body = tst_fmt("{\"name\":\"%s\",\"public_key\":\"%s\"}", name,
                         tst_str(issuer, "publicKey"));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", token, body, 200, NULL));
    free(body);
}

/* Registers an SDK passport with token; the broker's view (new reference). */
static json_t *enroll(const char *token, const json_t *pp)
{
    return post_j("/agents/passports", token, json_object_get(pp, "signed"), 200);
}

static char *authorize(const char *accord)
{
    char *body = tst_fmt("{\"accord_template\":\"%s\",\"operation\":{\"command_hash\":\"" CMD
                         "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS
                         "\"}}",
                         accord);
    json_t *ac = tst_call_json(B.port, "POST", "/governance/authorize/", ISSUER, body, 200, NULL);
    char *ctx = strdup(tst_str(ac, "context_id"));
    json_decref(ac), free(body);
    return ctx;
}

static json_t *cr_doc(const char *ctx)
{
    char *s = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                      "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":"
                      "\"2026-01-01T00:00:01Z\",\"command_hash\":\"" CMD "\","
                      "\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\","
                      "\"chronicle\":{\"session_id\":\"c\",\"behavior_state\":\"verified\"}}",
                      ctx);
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    /* a time the AC allows: now */
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(j, "started_at", json_string(now));
    json_object_set_new(j, "completed_at", json_string(now));
    return j;
}

/* cr with agent_did and the SDK's signature by agent (a passport helper result). */
static json_t *signed_cr(json_t *cr, const json_t *pp)
{
    json_object_set_new(cr, "agent_did", json_string(tst_str(pp, "did")));
    char *s = json_dumps(cr, JSON_COMPACT);
    char *path = write_tmp(s);
    json_t *out = aps("sign-cr %s %s", tst_str(json_object_get(pp, "agent"), "privateKey"), path);
    unlink(path);
    free(path), free(s);
    json_decref(cr);
    return out;
}

static char *flags_of(const json_t *rc)
{
    return json_dumps(json_object_get(rc, "flags"), JSON_COMPACT);
}

static void put_signed_accord(void)
{
    const char *acc = "{\"name\":\"signed\",\"ttl_max_seconds\":600,\"session_mode_allowed\":"
                      "true,\"capability_mask\":\"0x0000ffff\",\"posture_level\":3,"
                      "\"shell_class\":\"Application\",\"signed_receipts\":true}";
    json_decref(tst_call_json(B.port, "PUT", "/admin/accords/signed", ADMIN, acc, 200, NULL));
}

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
    ISSUER = tst_keys_create(&B, "acme", "issuer");
    EXECUTOR = tst_keys_create(&B, "acme", "executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    G_ADMIN = tst_keys_create(&B, "globex", "admin");
    G_EXEC = tst_keys_create(&B, "globex", "issuer,executor");
    CA = new_issuer();
    trust(ADMIN, "acme-ca", CA);
    put_signed_accord();
}

static void teardown(void)
{
    int st = tst_broker_stop(&B);
    if (st != 0) {
        char *log = tst_broker_log(&B);
        fprintf(stderr, "%s\n", log ? log : "(no log)");
        free(log);
    }
    ck_assert_int_eq(st, 0);
    tst_broker_clear(&B);
    json_decref(CA);
    free(ADMIN), free(ISSUER), free(EXECUTOR), free(AUDITOR), free(G_ADMIN), free(G_EXEC);
}

/* ---- passports ---- */

START_TEST(sdk_passport_accepted)
{
    json_t *pp = new_passport(CA, NULL);
    json_t *v = enroll(ISSUER, pp);
    ck_assert_str_eq(tst_str(v, "agent_did"), tst_str(pp, "did")); /* the SDK's createDID */
    ck_assert_str_eq(tst_str(v, "status"), "valid");
    ck_assert_str_eq(tst_str(json_object_get(v, "issuer"), "name"), "acme-ca");
    ck_assert_str_eq(tst_str(json_object_get(v, "issuer"), "public_key"), tst_str(CA, "publicKey"));
    /* the issuer's unsigned members are not kept: the tenant's name for it is shown */
    json_t *sp = json_object_get(v, "signed_passport");
    ck_assert_ptr_null(json_object_get(json_object_get(sp, "issuerSignature"), "issuerId"));
    ck_assert_int_eq(
        tst_pg_db_longf(DB,
                        "SELECT count(*) FROM agent_passports WHERE tenant_id = 'acme' AND "
                        "agent_did = '%s' AND passport_cid = '%s'",
                        tst_str(pp, "did"), tst_str(v, "passport_cid")),
        1);
    /* what the broker keeps and hands back still verifies in the SDK with the trusted key */
    char *path = tst_fmt("/agents/passports/%s", tst_str(pp, "did"));
    json_t *g = tst_call_json(B.port, "GET", path, AUDITOR, NULL, 200, NULL);
    char *s = json_dumps(json_object_get(g, "signed_passport"), JSON_COMPACT);
    char *f = write_tmp(s);
    json_t *sdk = aps("verify %s %s", f, tst_str(CA, "publicKey"));
    ck_assert_msg(json_is_true(json_object_get(sdk, "valid")), "SDK: %s",
                  json_dumps(sdk, JSON_COMPACT));
    /* registering the same passport again is the same row */
    json_decref(enroll(ADMIN, pp));
    ck_assert_int_eq(tst_pg_db_longf(DB,
                                     "SELECT count(*) FROM agent_passports WHERE agent_did = '%s'",
                                     tst_str(pp, "did")),
                     1);
    /* an executor or auditor key does not register */
    json_decref(post_j("/agents/passports", EXECUTOR, json_object_get(pp, "signed"), 403));
    unlink(f);
    free(f), free(s), free(path);
    json_decref(sdk), json_decref(g), json_decref(v), json_decref(pp);
}
END_TEST

/* Each member the agent or the issuer signed, changed: refused, nothing stored. */
START_TEST(tampered_passport_refused)
{
    static const struct {
        const char *path; /* '/'-separated members of the signed passport */
        const char *code;
    } cases[] = {
        {"passport/agentId", "bad_passport_signature"},
        {"passport/agentName", "bad_passport_signature"},
        {"passport/ownerAlias", "bad_passport_signature"},
        {"passport/publicKey", "bad_passport_signature"},
        {"passport/mission", "bad_passport_signature"},
        {"passport/capabilities/0", "bad_passport_signature"},
        {"passport/runtime/platform", "bad_passport_signature"},
        {"passport/runtime/toolsCount", "bad_passport_signature"},
        {"passport/createdAt", "bad_passport_signature"},
        {"passport/expiresAt", "bad_passport_signature"},
        {"passport/voteWeight", "bad_passport_signature"},
        {"passport/reputation/overall", "bad_passport_signature"},
        {"passport/version", "bad_passport_signature"},
        {"signature", "bad_passport_signature"},
        {"signedAt", "bad_issuer_signature"},
        {"issuerSignature/signature", "bad_issuer_signature"},
        {"issuerSignature/issuerPublicKey", "bad_issuer_signature"},
    };
    json_t *pp = new_passport(CA, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *sp = json_deep_copy(json_object_get(pp, "signed"));
        char buf[128];
        snprintf(buf, sizeof buf, "%s", cases[i].path);
        json_t *parent = sp, *v = NULL;
        const char *last = NULL;
        for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok;
             tok = strtok_r(NULL, "/", &save)) {
            if (last)
                parent = v;
            v = json_is_array(parent) ? json_array_get(parent, (size_t)strtol(tok, NULL, 10))
                                      : json_object_get(parent, tok);
            last = tok;
        }
        ck_assert_msg(v != NULL, "%s", cases[i].path);
        json_t *nv;
        if (json_is_integer(v)) {
            nv = json_integer(json_integer_value(v) + 1);
        } else {
            /* change one hex digit or letter, keeping the form (a key stays 64 hex) */
            char *t = strdup(json_string_value(v));
            size_t k = strlen(t) / 2;
            while (t[k] != '\0' && !isalnum((unsigned char)t[k]))
                k++;
            t[k] = isdigit((unsigned char)t[k]) ? (t[k] == '9' ? '8' : (char)(t[k] + 1))
                   : t[k] == 'a'               ? 'b'
                                               : 'a';
            nv = json_string(t);
            free(t);
        }
        if (json_is_array(parent))
            json_array_set_new(parent, (size_t)strtol(last, NULL, 10), nv);
        else
            json_object_set_new(parent, last, nv);
        json_t *e = post_j("/agents/passports", ISSUER, sp, 422);
        ck_assert_msg(strcmp(tst_err_code(e), cases[i].code) == 0, "%s: %s", cases[i].path,
                      tst_err_code(e));
        json_decref(e), json_decref(sp);
    }
    /* a member added to the signed passport */
    json_t *sp = json_deep_copy(json_object_get(pp, "signed"));
    json_object_set_new(json_object_get(json_object_get(sp, "passport"), "metadata"), "role",
                        json_string("root"));
    json_t *e = post_j("/agents/passports", ISSUER, sp, 422);
    ck_assert_str_eq(tst_err_code(e), "bad_passport_signature");
    json_decref(e), json_decref(sp);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM agent_passports"), 0);
    json_decref(pp);
}
END_TEST

START_TEST(untrusted_issuer_refused)
{
    json_t *rogue = new_issuer();
    json_t *pp = new_passport(rogue, NULL);
    json_t *e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 403);
    ck_assert_str_eq(tst_err_code(e), "untrusted_issuer");
    json_decref(e);
    /* trusted by the neighbour tenant only: still not here */
    trust(G_ADMIN, "rogue", rogue);
    e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 403);
    ck_assert_str_eq(tst_err_code(e), "untrusted_issuer");
    json_decref(e);
    ck_assert_int_eq(
        tst_pg_db_longf(DB, "SELECT count(*) FROM agent_passports WHERE tenant_id = 'acme'"), 0);
    /* a revoked issuer countersigns nothing any more */
    trust(ADMIN, "old-ca", rogue);
    json_decref(
        tst_call_json(B.port, "POST", "/admin/issuers/old-ca/revoke", ADMIN, NULL, 200, NULL));
    e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 403);
    ck_assert_str_eq(tst_err_code(e), "untrusted_issuer");
    json_decref(e);
    /* the same key or name twice is a conflict; bad keys and names are 400 */
    char *body = tst_fmt("{\"name\":\"again\",\"public_key\":\"%s\"}", tst_str(CA, "publicKey"));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", ADMIN, body, 409, NULL));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", ADMIN,
                              "{\"name\":\"short\",\"public_key\":\"abcd\"}", 400, NULL));
    json_decref(
        tst_call_json(B.port, "POST", "/admin/issuers/nobody/revoke", ADMIN, NULL, 404, NULL));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", ISSUER, body, 403, NULL));
    json_t *l = tst_call_json(B.port, "GET", "/admin/issuers", ADMIN, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "issuers")), 2);
    json_decref(l);
    free(body);
    json_decref(pp), json_decref(rogue);
}
END_TEST

START_TEST(validity_window)
{
    json_t *pp = new_passport(
        CA, "{\"validityWindow\":{\"notBefore\":\"2020-01-01T00:00:00Z\",\"notAfter\":"
            "\"2021-01-01T00:00:00Z\"}}");
    json_t *e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 422);
    ck_assert_str_eq(tst_err_code(e), "passport_expired");
    json_decref(e), json_decref(pp);
    pp = new_passport(CA, "{\"validityWindow\":{\"notBefore\":\"2099-01-01T00:00:00Z\","
                          "\"notAfter\":\"2100-01-01T00:00:00Z\"}}");
    e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 422);
    ck_assert_str_eq(tst_err_code(e), "passport_not_yet_valid");
    json_decref(e), json_decref(pp);
    ck_assert_int_eq(tst_pg_db_longf(DB, "SELECT count(*) FROM agent_passports"), 0);
}
END_TEST

START_TEST(size_and_nulls)
{
    /* the canonical "passport" at exactly GOV_PASSPORT_MAX bytes, then one more */
    json_t *p0 = new_passport(CA, "{\"pad\":0}");
    char *s = json_dumps(json_object_get(p0, "signed"), JSON_COMPACT);
    char *f = write_tmp(s);
    json_t *len = aps("canon-len %s", f);
    long pad = GOV_PASSPORT_MAX - (long)json_integer_value(json_object_get(len, "len"));
    ck_assert_int_gt(pad, 0);
    char *o = tst_fmt("{\"pad\":%ld}", pad);
    json_t *at = new_passport(CA, o);
    json_decref(enroll(ISSUER, at));
    free(o);
    o = tst_fmt("{\"pad\":%ld}", pad + 1);
    json_t *over = new_passport(CA, o);
    json_t *e = post_j("/agents/passports", ISSUER, json_object_get(over, "signed"), 400);
    ck_assert_str_eq(tst_err_code(e), "field_too_long");
    json_decref(e);
    /* a null member: the SDK's canonical form drops it, RFC 8785 keeps it; refused */
    json_t *sp = json_deep_copy(json_object_get(p0, "signed"));
    json_object_set_new(json_object_get(json_object_get(sp, "passport"), "metadata"), "x",
                        json_null());
    e = post_j("/agents/passports", ISSUER, sp, 400);
    ck_assert_str_eq(tst_err_code(e), "invalid_passport");
    json_decref(e), json_decref(sp);
    /* not a passport at all */
    e = tst_call_json(B.port, "POST", "/agents/passports", ISSUER, "{\"passport\":1}", 400, NULL);
    json_decref(e);
    unlink(f);
    free(f), free(s), free(o);
    json_decref(len), json_decref(p0), json_decref(at), json_decref(over);
}
END_TEST

/* ---- receipts ---- */

static json_t *complete(const char *token, const json_t *cr, int expect)
{
    return post_j("/governance/complete/", token, cr, expect);
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

static void put_rate_card(void)
{
    const char *acct = "{\"currency\":\"USD\",\"rate_card\":{\"per_cr\":{\"completed\":100,"
                       "\"failed\":40,\"violated\":500,\"timed_out\":60,\"session_end\":0},"
                       "\"per_second\":0}}";
    json_decref(tst_call_json(B.port, "PUT", "/admin/accounts/default", ADMIN, acct, 200, NULL));
}

START_TEST(signed_receipts)
{
    put_rate_card();
    json_t *pp = new_passport(CA, NULL);
    json_t *v = enroll(ISSUER, pp);
    const char *did = tst_str(pp, "did");

    /* signed by the agent, under an accord that requires it: no flag, billed as completed */
    char *ctx = authorize("signed");
    json_t *cr = signed_cr(cr_doc(ctx), pp);
    json_t *rc = complete(EXECUTOR, cr, 200);
    char *fl = flags_of(rc);
    ck_assert_str_eq(fl, "[]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "completed");
    char *row = tst_pg_db_scalarf(
        DB, "SELECT agent_did || ' ' || agent_passport_cid FROM crs WHERE cr_id = '%s'",
        tst_str(rc, "cr_id"));
    char *want = tst_fmt("%s %s", did, tst_str(v, "passport_cid"));
    ck_assert_str_eq(row, want);
    ck_assert_int_eq(line_total(tst_str(rc, "cr_id")), PRICE_COMPLETED);
    free(fl), free(row), free(want), free(ctx);
    json_decref(rc), json_decref(cr);

    /* unsigned under the same accord: unsigned_receipt, violated, billed as violated */
    ctx = authorize("signed");
    cr = cr_doc(ctx);
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"unsigned_receipt\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    ck_assert_int_eq(line_total(tst_str(rc, "cr_id")), PRICE_VIOLATED);
    row =
        tst_pg_db_scalarf(DB,
                          "SELECT outcome || ' ' || array_to_string(flags, ',') FROM invoice_lines "
                          "WHERE cr_id = '%s'",
                          tst_str(rc, "cr_id"));
    ck_assert_str_eq(row, "violated unsigned_receipt");
    free(fl), free(row), free(ctx);
    json_decref(rc), json_decref(cr);

    /* a bad signature: the CR changed after signing */
    ctx = authorize("signed");
    cr = signed_cr(cr_doc(ctx), pp);
    json_object_set_new(cr, "exit_code", json_integer(1));
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"bad_agent_signature\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    ck_assert_int_eq(line_total(tst_str(rc, "cr_id")), PRICE_VIOLATED);
    ck_assert_int_eq(
        tst_pg_db_longf(DB,
                        "SELECT count(*) FROM crs WHERE cr_id = '%s' AND agent_passport_cid "
                        "IS NULL",
                        tst_str(rc, "cr_id")),
        1);
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr);

    /* signed by another agent's key than the DID it names */
    json_t *other = new_passport(CA, NULL);
    json_decref(enroll(ISSUER, other));
    ctx = authorize("signed");
    cr = signed_cr(cr_doc(ctx), other);
    json_object_set_new(cr, "agent_did", json_string(did)); /* claims the first agent */
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"bad_agent_signature\"]");
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr), json_decref(other);

    /* under the default accord (no requirement): unsigned is fine, a bad signature is not */
    ctx = authorize("default");
    cr = cr_doc(ctx);
    rc = complete(EXECUTOR, cr, 200);
    json_decref(cr);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[]");
    free(fl), free(ctx);
    json_decref(rc);
    ctx = authorize("default");
    cr = signed_cr(cr_doc(ctx), pp);
    json_object_set_new(cr, "outcome", json_string("failed"));
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"bad_agent_signature\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr);
    ctx = authorize("default");
    cr = signed_cr(cr_doc(ctx), pp);
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[]");
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr);
    json_decref(v), json_decref(pp);
}
END_TEST

/* An agent enrolled by the neighbour tenant signs a receipt here: it never passes. */
START_TEST(neighbour_agent_refused)
{
    trust(G_ADMIN, "acme-ca-too", CA); /* globex trusts the very same issuer */
    json_t *pp = new_passport(CA, NULL);
    json_decref(enroll(G_EXEC, pp));
    char *path = tst_fmt("/agents/passports/%s", tst_str(pp, "did"));
    json_t *e = tst_call_json(B.port, "GET", path, AUDITOR, NULL, 404, NULL);
    ck_assert_str_eq(tst_err_code(e), "passport_not_found");
    json_decref(e);
    char *rpath = tst_fmt("%s/revoke", path);
    json_decref(tst_call_json(B.port, "POST", rpath, ADMIN, NULL, 404, NULL));
    free(rpath);
    char *ctx = authorize("signed");
    json_t *cr = signed_cr(cr_doc(ctx), pp);
    json_t *rc = complete(EXECUTOR, cr, 200);
    char *fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"unsigned_receipt\"]");
    ck_assert_str_eq(tst_str(rc, "effective_outcome"), "violated");
    free(fl), free(ctx), free(path);
    json_decref(rc), json_decref(cr), json_decref(pp);
}
END_TEST

/* Revoking the agent, or its issuer, takes effect on the next receipt. */
START_TEST(revocation)
{
    json_t *pp = new_passport(CA, NULL);
    json_decref(enroll(ISSUER, pp));
    char *path = tst_fmt("/agents/passports/%s", tst_str(pp, "did"));
    char *rev = tst_fmt("%s/revoke", path);
    json_decref(tst_call_json(B.port, "POST", rev, ISSUER, NULL, 403, NULL)); /* admin only */
    json_t *v = tst_call_json(B.port, "POST", rev, ADMIN, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(v, "status"), "revoked");
    json_decref(v);
    json_t *e = post_j("/agents/passports", ISSUER, json_object_get(pp, "signed"), 409);
    ck_assert_str_eq(tst_err_code(e), "agent_revoked");
    json_decref(e);
    char *ctx = authorize("default");
    json_t *cr = signed_cr(cr_doc(ctx), pp);
    json_t *rc = complete(EXECUTOR, cr, 200);
    char *fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"unsigned_receipt\"]");
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr);

    /* a passport that expires after enrolment stops counting when it does */
    time_t soon = time(NULL) + 3;
    struct tm tm;
    char until[32];
    gmtime_r(&soon, &tm);
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *w = tst_fmt("{\"validityWindow\":{\"notBefore\":\"2020-01-01T00:00:00Z\",\"notAfter\":"
                "\"%s\"}}", until);
    json_t *brief = new_passport(CA, w);
    json_t *bv = enroll(ISSUER, brief);
    ck_assert_str_eq(tst_str(bv, "status"), "valid");
    json_decref(bv);
    while (time(NULL) <= soon)
        usleep(200 * 1000);
    ctx = authorize("default");
    cr = signed_cr(cr_doc(ctx), brief);
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"unsigned_receipt\"]");
    char *bpath = tst_fmt("/agents/passports/%s", tst_str(brief, "did"));
    bv = tst_call_json(B.port, "GET", bpath, AUDITOR, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(bv, "status"), "expired");
    free(fl), free(ctx), free(w), free(bpath);
    json_decref(rc), json_decref(cr), json_decref(brief), json_decref(bv);

    /* an issuer revoked after enrolment: its passports stop counting */
    json_t *ca2 = new_issuer();
    trust(ADMIN, "ca2", ca2);
    json_t *p2 = new_passport(ca2, NULL);
    json_decref(enroll(ISSUER, p2));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers/ca2/revoke", ADMIN, NULL, 200, NULL));
    char *path2 = tst_fmt("/agents/passports/%s", tst_str(p2, "did"));
    v = tst_call_json(B.port, "GET", path2, AUDITOR, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(v, "status"), "issuer_revoked");
    json_decref(v);
    ctx = authorize("signed");
    cr = signed_cr(cr_doc(ctx), p2);
    rc = complete(EXECUTOR, cr, 200);
    fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"unsigned_receipt\"]");
    free(fl), free(ctx), free(path), free(rev), free(path2);
    json_decref(rc), json_decref(cr), json_decref(pp), json_decref(p2), json_decref(ca2);
}
END_TEST

/* The CR's new members: together or not at all, bounded. */
START_TEST(cr_agent_fields)
{
    json_t *pp = new_passport(CA, NULL);
    json_decref(enroll(ISSUER, pp));
    char *ctx = authorize("default");
    json_t *cr = cr_doc(ctx);
    json_object_set_new(cr, "agent_did", json_string(tst_str(pp, "did")));
    json_t *e = complete(EXECUTOR, cr, 400);
    ck_assert_str_eq(tst_err_code(e), "missing_field");
    json_decref(e);
    json_object_set_new(cr, "agent_signature", json_string("ed25519:AAAA"));
    json_object_set_new(cr, "agent_did", json_string("did:web:example.com"));
    e = complete(EXECUTOR, cr, 400);
    ck_assert_str_eq(tst_err_code(e), "invalid_field");
    json_decref(e);
    /* agent_signature at GOV_AGENT_SIG_MAX bytes is taken (and is a bad signature), one more
     * is refused */
    json_object_set_new(cr, "agent_did", json_string(tst_str(pp, "did")));
    char sig[GOV_AGENT_SIG_MAX + 2];
    memset(sig, 'A', sizeof sig);
    sig[GOV_AGENT_SIG_MAX + 1] = '\0';
    json_object_set_new(cr, "agent_signature", json_string(sig));
    e = complete(EXECUTOR, cr, 400);
    ck_assert_str_eq(tst_err_code(e), "field_too_long");
    json_decref(e);
    sig[GOV_AGENT_SIG_MAX] = '\0';
    json_object_set_new(cr, "agent_signature", json_string(sig));
    json_t *rc = complete(EXECUTOR, cr, 200);
    char *fl = flags_of(rc);
    ck_assert_str_eq(fl, "[\"bad_agent_signature\"]");
    free(fl), free(ctx);
    json_decref(rc), json_decref(cr), json_decref(pp);
}
END_TEST

/* An issuer's name at GOV_ISSUER_NAME_MAX and one past it; the list at ISSUERS_LIST_MAX
 * issuers and one more. */
START_TEST(issuer_limits)
{
    char name[GOV_ISSUER_NAME_MAX + 2];
    json_t *k1 = new_issuer(), *k2 = new_issuer();
    memset(name, 'n', sizeof name);
    name[GOV_ISSUER_NAME_MAX + 1] = '\0';
    char *body = tst_fmt("{\"name\":\"%s\",\"public_key\":\"%s\"}", name,
                         tst_str(k1, "publicKey"));
    json_t *e = tst_call_json(B.port, "POST", "/admin/issuers", ADMIN, body, 400, NULL);
    ck_assert_str_eq(tst_err_code(e), "field_too_long");
    json_decref(e), free(body);
    name[GOV_ISSUER_NAME_MAX] = '\0';
    body = tst_fmt("{\"name\":\"%s\",\"public_key\":\"%s\"}", name, tst_str(k1, "publicKey"));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", ADMIN, body, 200, NULL));
    free(body);
    /* acme trusts 2 now; fill up to the page size, then one more */
    PGconn *pg = tst_pg_connect(DB);
    char *sql = tst_fmt("INSERT INTO trusted_issuers (tenant_id, name, public_key) SELECT 'acme', "
                        "'bulk-' || i, lpad(to_hex(i), 64, '0') FROM generate_series(1, %d) i",
                        ISSUERS_LIST_MAX - 3);
    PQclear(PQexec(pg, sql));
    free(sql);
    json_t *l = tst_call_json(B.port, "GET", "/admin/issuers", ADMIN, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "issuers")), ISSUERS_LIST_MAX - 1);
    json_decref(l);
    trust(ADMIN, "last", k2);
    l = tst_call_json(B.port, "GET", "/admin/issuers", ADMIN, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "issuers")), ISSUERS_LIST_MAX);
    ck_assert(json_is_false(json_object_get(l, "truncated")));
    json_decref(l);
    PQclear(PQexec(pg, "INSERT INTO trusted_issuers (tenant_id, name, public_key) VALUES "
                       "('acme', 'zz-extra', repeat('e', 64))"));
    PQfinish(pg);
    l = tst_call_json(B.port, "GET", "/admin/issuers", ADMIN, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "issuers")), ISSUERS_LIST_MAX);
    ck_assert(json_is_true(json_object_get(l, "truncated")));
    json_decref(l), json_decref(k1), json_decref(k2);
}
END_TEST

/* The CLI twin of /admin/issuers: what it adds is what registration trusts. */
START_TEST(cli_issuers)
{
    json_t *ca = new_issuer();
    const char *key = tst_str(ca, "publicKey");
    int st = -1;
    char *out = tst_broker_cli(&B, &st, "issuers", "add", "--tenant", "acme", "--name", "cli-ca",
                               "--public-key", key, NULL);
    ck_assert_msg(st == 0, "issuers add: %d %s", st, out);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_str_eq(tst_str(j, "name"), "cli-ca");
    ck_assert_str_eq(tst_str(j, "public_key"), key);
    json_decref(j), free(out);
    json_t *pp = new_passport(ca, NULL);
    json_decref(enroll(ISSUER, pp));
    /* again: refused; a bad key or name: bad usage, nothing changed */
    free(tst_broker_cli(&B, &st, "issuers", "add", "--tenant", "acme", "--name", "cli-ca",
                        "--public-key", key, NULL));
    ck_assert_int_eq(st, 1);
    free(tst_broker_cli(&B, &st, "issuers", "add", "--tenant", "acme", "--name", "x2",
                        "--public-key", "abcd", NULL));
    ck_assert_int_eq(st, 2);
    free(tst_broker_cli(&B, &st, "issuers", "add", "--tenant", "acme", "--name", "-bad",
                        "--public-key", key, NULL));
    ck_assert_int_eq(st, 2);
    out = tst_broker_cli(&B, &st, "issuers", "list", "--tenant", "acme", NULL);
    ck_assert_int_eq(st, 0);
    j = json_loads(out, 0, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(j, "issuers")), 2); /* acme-ca, cli-ca */
    json_decref(j), free(out);
    out = tst_broker_cli(&B, &st, "issuers", "revoke", "--tenant", "acme", "--name", "cli-ca", NULL);
    ck_assert_int_eq(st, 0);
    free(out);
    free(tst_broker_cli(&B, &st, "issuers", "revoke", "--tenant", "acme", "--name", "nobody", NULL));
    ck_assert_int_eq(st, 1);
    /* revoked from the command line: the broker stops trusting it at once */
    json_t *p2 = new_passport(ca, NULL);
    json_t *e = post_j("/agents/passports", ISSUER, json_object_get(p2, "signed"), 403);
    ck_assert_str_eq(tst_err_code(e), "untrusted_issuer");
    json_decref(e), json_decref(p2), json_decref(pp), json_decref(ca);
}
END_TEST

static json_t *get_accept(const char *path, const char *token, const char *accept, char **body)
{
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n%s", token, accept ? accept : "");
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "GET %s: %d %s", path, r.status, r.body);
    json_t *j = json_incref(r.json);
    if (body)
        *body = strdup(r.body);
    tst_resp_clear(&r);
    free(hdr);
    return j;
}

/* `gsap-broker verify` of b: the exit status, *report its output. */
static int verify(const json_t *b, char **report)
{
    char *s = json_dumps(b, JSON_COMPACT);
    char *path = write_tmp(s);
    int st = -1;
    char *out = tst_broker_cli(&B, &st, "verify", path, NULL);
    unlink(path);
    free(path), free(s);
    *report = out;
    return st;
}

/* The session page (JSON and HTML) and the audit bundle show the agent and its passport, and
 * the offline verifier checks the agent's signature against the passport in the bundle. */
START_TEST(session_and_bundle)
{
    json_t *pp = new_passport(CA, "{\"agentName\":\"nightly <build> bot\"}");
    json_t *v = enroll(ISSUER, pp);
    char *ctx = authorize("signed");
    json_t *scr = signed_cr(cr_doc(ctx), pp);
    json_decref(complete(EXECUTOR, scr, 200));
    json_decref(scr);

    char *path = tst_fmt("/governance/session/%s/", ctx);
    json_t *page = get_accept(path, AUDITOR, "Accept: application/json\r\n", NULL);
    json_t *agent = json_object_get(json_array_get(json_object_get(page, "receipts"), 0), "agent");
    ck_assert_str_eq(tst_str(agent, "agent_did"), tst_str(pp, "did"));
    ck_assert(json_is_true(json_object_get(agent, "signature_verified")));
    json_t *ap = json_object_get(agent, "passport");
    ck_assert_str_eq(tst_str(ap, "agent_name"), "nightly <build> bot");
    ck_assert_str_eq(tst_str(ap, "issuer"), "acme-ca");
    ck_assert_str_eq(tst_str(ap, "passport_cid"), tst_str(v, "passport_cid"));
    char *html = NULL;
    json_decref(get_accept(path, AUDITOR, NULL, &html));
    ck_assert_ptr_nonnull(strstr(html, tst_str(pp, "did")));
    ck_assert_ptr_nonnull(strstr(html, "nightly &lt;build&gt; bot")); /* escaped */
    ck_assert_ptr_nonnull(strstr(html, tst_str(v, "passport_cid")));

    /* the bundle, once the receipt is in the tenant's log */
    for (int i = 0;
         i < LOG_WAIT_S * 10 && tst_pg_db_longf(DB, "SELECT count(*) FROM tlog_entries WHERE "
                                                    "tenant_id = 'acme'") < 1;
         i++)
        usleep(100 * 1000);
    char *bpath = tst_fmt("/governance/session/%s/bundle", ctx);
    json_t *b = get_accept(bpath, AUDITOR, NULL, NULL);
    json_t *pps = json_object_get(b, "passports");
    ck_assert_int_eq(json_array_size(pps), 1);
    char *report = NULL;
    int st = verify(b, &report);
    ck_assert_msg(st == 0, "verify: %d\n%s", st, report);
    ck_assert_ptr_nonnull(strstr(report, "PASS passports[0]"));
    ck_assert_ptr_nonnull(strstr(report, "PASS receipts[0].agent_signature"));
    free(report);
    /* the passport in the bundle swapped for another agent's (a valid passport of its own):
     * the receipt's signature no longer checks */
    json_t *other = new_passport(CA, NULL);
    json_t *ov = enroll(ISSUER, other);
    json_array_set(pps, 0, json_object_get(ov, "signed_passport"));
    json_object_set_new(json_array_get(json_object_get(b, "receipts"), 0), "agent_passport_cid",
                        json_string(tst_str(ov, "passport_cid")));
    st = verify(b, &report);
    ck_assert_int_eq(st, 1);
    ck_assert_ptr_nonnull(strstr(report, "FAIL receipts[0].agent_signature"));
    free(report);
    free(path), free(bpath), free(html), free(ctx);
    json_decref(b), json_decref(page), json_decref(v), json_decref(pp), json_decref(other),
        json_decref(ov);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_passport");
    TCase *tc = tcase_create("passport");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, sdk_passport_accepted);
    tcase_add_test(tc, tampered_passport_refused);
    tcase_add_test(tc, untrusted_issuer_refused);
    tcase_add_test(tc, validity_window);
    tcase_add_test(tc, size_and_nulls);
    tcase_add_test(tc, signed_receipts);
    tcase_add_test(tc, neighbour_agent_refused);
    tcase_add_test(tc, revocation);
    tcase_add_test(tc, cr_agent_fields);
    tcase_add_test(tc, session_and_bundle);
    tcase_add_test(tc, cli_issuers);
    tcase_add_test(tc, issuer_limits);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
