/*
 * unit_gov: the protocol's rules (gov/) on their own: linked against gsap_gov and the broker
 * core only, no handler, no database. Accords and the policy decision, the field checks and
 * their bounds, requests for an AC, CR validation and redaction, the lineage rule against the
 * literal object SQL hashes, and the SQL result code table (documents: unit_gov_doc.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "gov.h"
#include "gov_accord.h"
#include "gov_acreq.h"
#include "gov_cr.h"
#include "gov_doc.h"
#include "gov_field.h"
#include "gov_lineage.h"
#include "gov_result.h"
#include "banned.h"

#include "tst_gov.h"
#include "banned.h"

/* ---- accords ---- */

static int accord_rc(const char *text, const char **code)
{
    json_t *in = parse(text);
    gov_accord_t a;
    char msg[GOV_MSG_MAX];
    int rc = gov_accord_parse(in, NULL, &a, code, msg, sizeof msg);
    if (rc == 0)
        gov_accord_clear(&a);
    json_decref(in);
    return rc;
}

START_TEST(accord_defaults_and_bounds)
{
    json_t *in = parse("{\"name\":\"ops\"}");
    gov_accord_t a;
    const char *code;
    char msg[GOV_MSG_MAX], buf[512];
    ck_assert_int_eq(gov_accord_parse(in, NULL, &a, &code, msg, sizeof msg), 0);
    ck_assert_int_eq(a.ttl_max, GOV_ACCORD_TTL_DEFAULT);
    ck_assert_uint_eq(a.cap_mask, GOV_ACCORD_MASK_DEFAULT);
    ck_assert_int_eq(a.posture, GOV_ACCORD_POSTURE_DEFAULT);
    ck_assert_str_eq(a.shell_class, GOV_ACCORD_SHELL_DEFAULT);
    ck_assert_int_eq(a.approvals_required, GOV_APPROVALS_MIN);
    /* settings at their defaults stay out of the normalized form (and of accord_hash) */
    ck_assert_ptr_null(json_object_get(a.body, "approvals_required"));
    ck_assert_ptr_null(json_object_get(a.body, "self_authorized_allowed"));
    ck_assert_str_eq(json_string_value(json_object_get(a.body, "capability_mask")), "0x0000ffff");
    char cid[BRK_CID_LEN + 1];
    ck_assert_int_eq(brk_jcs_cid(a.body, cid), 0);
    ck_assert_str_eq(cid, a.accord_hash);
    gov_accord_clear(&a);
    json_decref(in);

    char *name = rep('n', GOV_ACCORD_NAME_MAX);
    snprintf(buf, sizeof buf, "{\"name\":\"%s\"}", name);
    ck_assert_int_eq(accord_rc(buf, &code), 0);
    snprintf(buf, sizeof buf, "{\"name\":\"%sn\"}", name);
    ck_assert_int_eq(accord_rc(buf, &code), BRK_EINVAL);
    ck_assert_str_eq(code, "invalid_field");
    free(name);
    snprintf(buf, sizeof buf, "{\"name\":\"a\",\"approvals_required\":%d}", GOV_APPROVALS_MAX);
    ck_assert_int_eq(accord_rc(buf, &code), 0);
    snprintf(buf, sizeof buf, "{\"name\":\"a\",\"approvals_required\":%d}", GOV_APPROVALS_MAX + 1);
    ck_assert_int_eq(accord_rc(buf, &code), BRK_ERANGE);
    ck_assert_str_eq(code, "out_of_range");
    snprintf(buf, sizeof buf, "{\"name\":\"a\",\"ttl_max_seconds\":%d}", GOV_TTL_MAX + 1);
    ck_assert_int_eq(accord_rc(buf, &code), BRK_ERANGE);
    ck_assert_int_eq(accord_rc("{\"name\":\"a\",\"colour\":1}", &code), BRK_EINVAL);
    ck_assert_str_eq(code, "unknown_field");
    ck_assert_int_eq(accord_rc("{\"name\":\"a\",\"capability_mask\":\"0x123456789\"}", &code),
                     BRK_EINVAL);
}
END_TEST

START_TEST(policy_decisions)
{
    json_t *in = parse("{\"name\":\"p\",\"ttl_max_seconds\":60,\"session_mode_allowed\":false,"
                       "\"capability_mask\":\"0x0f\",\"elevation_required\":\"0x08\","
                       "\"corpus_allow\":[\"" CID_A "\"],\"environment_commitment\":\"" CID_B
                       "\"}");
    gov_accord_t a;
    gov_decision_t d;
    const char *code;
    char msg[GOV_MSG_MAX];
    ck_assert_int_eq(gov_accord_parse(in, "p", &a, &code, msg, sizeof msg), 0);
    gov_policy_decide(&a, 0, 0x03, CID_A, CID_B, 300, &d);
    ck_assert_ptr_null(d.deny_code);
    ck_assert_int_eq(d.pending, 0);
    ck_assert_int_eq(d.ttl, 60); /* clamped to the accord's cap */
    gov_policy_decide(&a, 0, 0x08, CID_A, CID_B, 30, &d);
    ck_assert_int_eq(d.pending, 1);
    ck_assert_int_eq(d.ttl, 30);
    gov_policy_decide(&a, 1, 0x01, CID_A, CID_B, 30, &d);
    ck_assert_str_eq(d.deny_code, "session_mode_not_allowed");
    gov_policy_decide(&a, 0, 0x10, CID_A, CID_B, 30, &d);
    ck_assert_str_eq(d.deny_code, "capability_not_allowed");
    gov_policy_decide(&a, 0, 0x01, CID_C, CID_B, 30, &d);
    ck_assert_str_eq(d.deny_code, "corpus_not_allowed");
    gov_policy_decide(&a, 0, 0x01, CID_A, NULL, 30, &d);
    ck_assert_str_eq(d.deny_code, "environment_mismatch");
    gov_accord_clear(&a);
    json_decref(in);
}
END_TEST

START_TEST(ids_caps_and_dids)
{
    uint32_t v;
    char s[GOV_CAPS_STR_MAX + 1], did[GOV_DID_MAX + 1], id[GOV_ID_LEN + 1], id2[GOV_ID_LEN + 1];
    ck_assert_int_eq(gov_caps_parse("0xdeadBEEF", &v), 0);
    ck_assert_uint_eq(v, 0xdeadbeefu);
    ck_assert_int_eq(gov_caps_parse("0x123456789", &v), BRK_EINVAL); /* 11 characters */
    ck_assert_int_eq(gov_caps_parse("0x", &v), BRK_EINVAL);
    ck_assert_int_eq(gov_caps_parse("12", &v), BRK_EINVAL);
    gov_caps_fmt(0x2a, s);
    ck_assert_str_eq(s, "0x0000002a");
    gov_principal_did("broker one:443", "t1", "k1", did, sizeof did);
    ck_assert_str_eq(did, "did:web:broker-one-443:tenants:t1:keys:k1");
    gov_new_id("ctx_", id);
    gov_new_id("ctx_", id2);
    ck_assert_uint_eq(strlen(id), GOV_ID_LEN);
    ck_assert_str_ne(id, id2);
    char *ok = rep('a', GOV_CONTEXT_ID_MAX), *over = rep('a', GOV_CONTEXT_ID_MAX + 1);
    memcpy(ok, GOV_SELF_CONTEXT_PREFIX, strlen(GOV_SELF_CONTEXT_PREFIX));
    memcpy(over, GOV_SELF_CONTEXT_PREFIX, strlen(GOV_SELF_CONTEXT_PREFIX));
    ck_assert_int_eq(gov_self_context_valid(ok), 1);
    ck_assert_int_eq(gov_self_context_valid(over), 0);
    ck_assert_int_eq(gov_self_context_valid("self-"), 0);
    ck_assert_int_eq(gov_self_context_valid("self-.x"), 0);
    free(ok), free(over);
}
END_TEST

/* ---- field checks ---- */

START_TEST(field_checks)
{
    gov_err_t e;
    const char *s;
    long long n = 7;
    int idx;
    static const char *const colours[] = {"red", "green", NULL};
    json_t *o = parse("{\"s\":\"abcd\",\"nul\":\"a\\u0000b\",\"n\":5,\"c\":\"blue\",\"cid\":\"" CID_A
                      "\",\"bad\":\"sha256:AA\",\"z\":null}");
    ck_assert_int_eq(gov_req_string(o, "s", 4, &s, &e), 0);
    ck_assert_str_eq(s, "abcd");
    ck_assert_int_eq(gov_req_string(o, "s", 3, &s, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "field_too_long");
    ck_assert_int_eq(gov_req_string(o, "nul", 10, &s, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    ck_assert_int_eq(gov_req_string(o, "missing", 10, &s, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "missing_field");
    ck_assert_int_eq(gov_opt_string(o, "z", 10, &s, &e), 0);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(gov_opt_int(o, "n", 5, 5, &n, &e), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(gov_opt_int(o, "n", 6, 9, &n, &e), BRK_ERANGE);
    ck_assert_str_eq(e.code, "out_of_range");
    ck_assert_int_eq(gov_req_enum(o, "c", colours, &idx, &e), BRK_ERANGE);
    ck_assert_str_eq(e.code, "invalid_enum");
    ck_assert_str_eq(e.msg, "\"c\" has no value \"blue\"");
    ck_assert_int_eq(gov_req_cid(o, "cid", &s, &e), 0);
    ck_assert_int_eq(gov_req_cid(o, "bad", &s, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_cid");
    json_decref(o);
}
END_TEST

START_TEST(unknown_members_and_secrets)
{
    static const char *const known[] = {"a", NULL};
    json_t *o = json_object(), *names;
    gov_err_t e;
    char k[16];
    json_object_set_new(o, "a", json_true());
    for (int i = 0; i < GOV_UNKNOWN_MAX; i++) {
        snprintf(k, sizeof k, "x%02d", GOV_UNKNOWN_MAX - i);
        json_object_set_new(o, k, json_integer(i));
    }
    ck_assert_int_eq(gov_collect_unknown(o, known, &names, &e), 0);
    ck_assert_uint_eq(json_array_size(names), GOV_UNKNOWN_MAX);
    ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "x01"); /* sorted */
    json_decref(names);
    json_object_set_new(o, "one_more", json_true());
    ck_assert_int_eq(gov_collect_unknown(o, known, &names, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "unrecognized_fields_over_limit");
    ck_assert_ptr_null(names);
    json_decref(o);
    ck_assert_int_eq(gov_looks_secret("X-Api-Key"), 1);
    ck_assert_int_eq(gov_looks_secret("bearer_TOKEN"), 1);
    ck_assert_int_eq(gov_looks_secret("colour"), 0);
}
END_TEST

/* ---- requests for an AC ---- */

static int acreq(const char *extra, gov_ac_request_t *q, gov_err_t *e)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"" CID_A
             "\",\"corpus_entry_cid\":\"" CID_B "\",\"parameters_cid\":\"" CID_C "\"}%s%s}",
             extra ? "," : "", extra ? extra : "");
    json_t *b = parse(buf);
    int rc = gov_ac_request_parse(b, q, e);
    if (rc == 0) {
        ck_assert_str_eq(q->command, CID_A); /* borrowed: checked while b lives */
        gov_ac_request_clear(q);
    }
    json_decref(b);
    return rc;
}

START_TEST(ac_request_rules)
{
    gov_ac_request_t q;
    gov_err_t e;
    char extra[256];
    ck_assert_int_eq(acreq(NULL, &q, &e), 0);
    ck_assert_str_eq(q.account, GOV_DEFAULT_ACCOUNT);
    ck_assert_int_eq(q.ttl, GOV_TTL_DEFAULT);
    ck_assert_ptr_null(q.unknown);
    char *acct = rep('a', BRK_ACCOUNT_ID_MAX);
    snprintf(extra, sizeof extra, "\"billing_account\":\"%s\"", acct);
    ck_assert_int_eq(acreq(extra, &q, &e), 0);
    snprintf(extra, sizeof extra, "\"billing_account\":\"%sa\"", acct);
    ck_assert_int_eq(acreq(extra, &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "field_too_long");
    free(acct);
    ck_assert_int_eq(acreq("\"on_behalf_of\":\"did:x\"", &q, &e), BRK_EINVAL); /* < 7 bytes */
    ck_assert_str_eq(e.msg, "\"on_behalf_of\" must be a did: string");
    ck_assert_int_eq(acreq("\"on_behalf_of\":\"did:x:y\"", &q, &e), 0);
    ck_assert_int_eq(acreq("\"capability_set\":\"0xfffffffff\"", &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "field_too_long");
    ck_assert_int_eq(acreq("\"capability_set\":\"0xzz\"", &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    snprintf(extra, sizeof extra, "\"ttl_seconds\":%d", GOV_TTL_MAX + 1);
    ck_assert_int_eq(acreq(extra, &q, &e), BRK_ERANGE);

    /* unknown members kept, secret-looking values masked */
    json_t *b = parse("{\"accord_template\":\"d\",\"operation\":{\"command_hash\":\"" CID_A
                      "\",\"corpus_entry_cid\":\"" CID_B "\",\"parameters_cid\":\"" CID_C
                      "\"},\"x_token\":\"t0k3n\",\"x_mode\":\"fast\"}");
    ck_assert_int_eq(gov_ac_request_parse(b, &q, &e), 0);
    ck_assert_uint_eq(json_array_size(q.unknown), 2);
    ck_assert_str_eq(json_string_value(json_object_get(q.unknown_values, "x_token")), GOV_REDACTED);
    ck_assert_str_eq(json_string_value(json_object_get(q.unknown_values, "x_mode")), "fast");
    gov_ac_request_clear(&q);
    char h1[GOV_REQUEST_HASH_LEN + 1], h2[GOV_REQUEST_HASH_LEN + 1];
    ck_assert_int_eq(gov_request_hash(b, h1, &e), 0);
    json_object_set_new(b, "x_mode", json_string("slow"));
    ck_assert_int_eq(gov_request_hash(b, h2, &e), 0);
    ck_assert_uint_eq(strlen(h1), GOV_REQUEST_HASH_LEN);
    ck_assert_str_ne(h1, h2);
    json_decref(b);

    char *key = rep('k', GOV_IDEMPOTENCY_KEY_MAX + 1);
    ck_assert_int_eq(gov_idempotency_key_valid(key, GOV_IDEMPOTENCY_KEY_MAX), 1);
    ck_assert_int_eq(gov_idempotency_key_valid(key, GOV_IDEMPOTENCY_KEY_MAX + 1), 0);
    ck_assert_int_eq(gov_idempotency_key_valid("a b", 3), 0);
    ck_assert_int_eq(gov_idempotency_key_valid("", 0), 0);
    free(key);
}
END_TEST

/* ---- Completion Receipts ---- */

static const char *cr_text(char *buf, size_t cap, const char *outcome, const char *extra)
{
    snprintf(buf, cap,
             "{\"context_id\":\"ctx_1\",\"outcome\":\"%s\",\"started_at\":"
             "\"2026-11-30T10:00:00Z\",\"completed_at\":\"2026-11-30T10:00:01Z\","
             "\"command_hash\":\"" CID_A "\",\"corpus_entry_cid\":\"" CID_B "\","
             "\"parameters_cid\":\"" CID_C "\",\"chronicle\":{\"behavior_state\":\"verified\"}%s%s}",
             outcome, extra ? "," : "", extra ? extra : "");
    return buf;
}

START_TEST(cr_validation)
{
    char buf[2048];
    gov_cr_t cr;
    gov_err_t e;
    json_t *b = parse(cr_text(buf, sizeof buf, "completed", NULL));
    /* a command that ran to its end has an exit code */
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "missing_field");
    ck_assert_ptr_null(cr.stored);
    json_decref(b);
    b = parse(cr_text(buf, sizeof buf, "timed_out", NULL));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), 0);
    ck_assert_int_eq(cr.outcome, GOV_OUTCOME_TIMED_OUT);
    ck_assert_int_eq(cr.has_exit_code, 0);
    ck_assert_int_eq(cr.creates_context, 0);
    gov_cr_clear(&cr);
    json_decref(b);
    b = parse(cr_text(buf, sizeof buf, "failed", "\"exit_code\":2,\"x\":1"));
    json_object_set_new(b, "started_at", json_string("yesterday"));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_time");
    json_decref(b);
    b = parse(cr_text(buf, sizeof buf, "failed", "\"exit_code\":1"));
    json_object_set_new(b, "chronicle", json_integer(1));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    json_object_del(b, "chronicle");
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "missing_field");
    json_decref(b);
    /* metadata: at most GOV_CR_METADATA_MAX_KEYS keys */
    json_t *md = json_object();
    for (int i = 0; i < GOV_CR_METADATA_MAX_KEYS + 1; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(md, k, json_integer(i));
    }
    b = parse(cr_text(buf, sizeof buf, "failed", "\"exit_code\":1"));
    json_object_set_new(b, "metadata", md);
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "field_too_long");
    json_object_del(json_object_get(b, "metadata"), "k0");
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), 0);
    gov_cr_clear(&cr);
    json_decref(b);
}
END_TEST

START_TEST(cr_redaction_and_cids)
{
    char buf[2048], cid[BRK_CID_LEN + 1];
    gov_cr_t cr;
    gov_err_t e;
    json_t *b = parse(cr_text(buf, sizeof buf, "completed",
                              "\"exit_code\":0,\"metadata\":{\"api_key\":\"s3cret\",\"host\":\"h\"},"
                              "\"x_password\":\"hunter2\",\"x_colour\":\"blue\""));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), 0);
    ck_assert_uint_eq(json_array_size(cr.unknown), 2);
    json_t *md = json_object_get(cr.stored, "metadata");
    ck_assert_str_eq(json_string_value(json_object_get(md, "api_key")), GOV_REDACTED);
    ck_assert_str_eq(json_string_value(json_object_get(md, "host")), "h");
    ck_assert_str_eq(json_string_value(json_object_get(cr.stored, "x_password")), GOV_REDACTED);
    ck_assert_str_eq(json_string_value(json_object_get(cr.stored, "x_colour")), "blue");
    /* the body checked is not changed; cr_cid covers the stored (redacted) form */
    ck_assert_str_eq(json_string_value(json_object_get(b, "x_password")), "hunter2");
    ck_assert_int_eq(brk_jcs_cid(cr.stored, cid), 0);
    ck_assert_str_eq(cid, cr.cr_cid);
    ck_assert_int_eq(brk_jcs_cid(json_object_get(b, "chronicle"), cid), 0);
    ck_assert_str_eq(cid, cr.chronicle_cid);
    gov_cr_clear(&cr);
    json_decref(b);
}
END_TEST

START_TEST(cr_self_authorized)
{
    char buf[2048];
    gov_cr_t cr;
    gov_err_t e;
    json_t *b = parse(cr_text(buf, sizeof buf, "completed", "\"exit_code\":0,\"self_authorized\":true"));
    json_object_set_new(b, "context_id", json_string("self-0b9c.run_1"));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), 0);
    ck_assert_int_eq(cr.creates_context, 1);
    ck_assert_str_eq(cr.accord_template, GOV_DEFAULT_ACCORD);
    gov_principal_t p = {"did:x", "did:x", "gsh", "k1", "t1"};
    json_t *doc = gov_self_context_doc(&p, cr.context_id, cr.accord_template, cr.command_hash,
                                       cr.corpus_entry_cid, cr.parameters_cid, "u");
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_is_null(json_object_get(doc, "signature")));
    /* ac_cid: over the document without ac_cid and signature */
    char ac_cid[BRK_CID_LEN + 1], cid[BRK_CID_LEN + 1];
    snprintf(ac_cid, sizeof ac_cid, "%s", json_string_value(json_object_get(doc, "ac_cid")));
    json_object_del(doc, "ac_cid");
    json_object_del(doc, "signature");
    ck_assert_int_eq(brk_jcs_cid(doc, cid), 0);
    ck_assert_str_eq(cid, ac_cid);
    json_decref(doc);
    gov_cr_clear(&cr);
    json_object_set_new(b, "context_id", json_string("self-"));
    ck_assert_int_eq(gov_cr_check(b, &cr, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    json_decref(b);
}
END_TEST

/* ---- lineage and result codes ---- */

/* The object gsap_lineage_cid (migrations/0002_protocol.sql) formats and hashes, literally. */
static void sql_lineage(const char *ac, const char *ch, const char *cr, const char *prev, int seq,
                        char out[BRK_CID_LEN + 1])
{
    char text[512], pv[80];
    uint8_t md[BRK_SHA256_LEN];
    snprintf(pv, sizeof pv, prev ? "\"%s\"" : "null", prev);
    snprintf(text, sizeof text,
             "{\"ac_cid\":\"%s\",\"chronicle_cid\":\"%s\",\"cr_cid\":\"%s\","
             "\"prev_lineage_cid\":%s,\"sequence\":%d}",
             ac, ch, cr, pv, seq);
    brk_sha256(text, strlen(text), md);
    memcpy(out, "sha256:", 7);
    brk_hex(md, sizeof md, out + 7);
}

START_TEST(lineage_rule)
{
    char c1[BRK_CID_LEN + 1], c2[BRK_CID_LEN + 1], s1[BRK_CID_LEN + 1], s2[BRK_CID_LEN + 1];
    ck_assert_int_eq(gov_lineage_cid(CID_A, CID_B, CID_C, NULL, 1, c1), 0);
    sql_lineage(CID_A, CID_B, CID_C, NULL, 1, s1);
    ck_assert_str_eq(c1, s1);
    ck_assert_int_eq(gov_lineage_cid(CID_A, CID_D, CID_C, c1, 2, c2), 0);
    sql_lineage(CID_A, CID_D, CID_C, c1, 2, s2);
    ck_assert_str_eq(c2, s2);
    ck_assert_str_ne(c1, c2);
    ck_assert_int_eq(gov_lineage_cid(CID_A, CID_B, CID_C, NULL, 0, c1), BRK_EINVAL);
    ck_assert_int_eq(gov_lineage_cid("sha256:x", CID_B, CID_C, NULL, 1, c1), BRK_EINVAL);
}
END_TEST

START_TEST(result_codes)
{
    const gov_result_t *x = gov_result_find("consumed");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->rc, BRK_ECONFLICT);
    ck_assert_str_eq(x->code, "ac_consumed");
    ck_assert_str_eq(gov_result_find("pending")->code, "ac_not_approved");
    ck_assert_str_eq(gov_result_find("not_approved")->code, "ac_not_approved");
    ck_assert_int_eq(gov_result_find("self")->rc, BRK_EFORBIDDEN);
    ck_assert_int_eq(gov_result_find("not_found")->rc, BRK_ENOTFOUND);
    ck_assert_ptr_null(gov_result_find("ok"));
    ck_assert_ptr_null(gov_result_find("retry"));
    gov_err_t e;
    ck_assert_int_eq(gov_result_fail("stale", &e), BRK_ECONFLICT);
    ck_assert_str_eq(e.code, "elevation_conflict");
}
END_TEST

static Suite *gov_suite(void)
{
    Suite *s = suite_create("gov");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, accord_defaults_and_bounds);
    tcase_add_test(tc, policy_decisions);
    tcase_add_test(tc, ids_caps_and_dids);
    tcase_add_test(tc, field_checks);
    tcase_add_test(tc, unknown_members_and_secrets);
    tcase_add_test(tc, ac_request_rules);
    tcase_add_test(tc, cr_validation);
    tcase_add_test(tc, cr_redaction_and_cids);
    tcase_add_test(tc, cr_self_authorized);
    tcase_add_test(tc, lineage_rule);
    tcase_add_test(tc, result_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(gov_suite());
}
