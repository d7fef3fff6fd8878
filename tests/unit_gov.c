/*
 * unit_gov: the protocol's rules (gov/) on their own: linked against gsap_gov and the broker
 * core only, no handler, no database. Accords and the policy decision, the field checks and
 * their bounds, CR validation and redaction, the signed documents, elevation decisions, the
 * lineage rule against the literal object SQL hashes, and the SQL result code table.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "gov.h"
#include "gov_accord.h"
#include "gov_acreq.h"
#include "gov_cr.h"
#include "gov_doc.h"
#include "gov_elev.h"
#include "gov_field.h"
#include "gov_lineage.h"
#include "gov_result.h"
#include "banned.h"

#define CID_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CID_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define CID_C "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define CID_D "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    ck_assert_msg(j != NULL, "bad test JSON: %s", s);
    return j;
}

static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

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

/* ---- signed documents and elevations ---- */

static char tmpdir[64], keydir[128];

/* A fresh key ring in a directory of its own (removed by drop_keyring). */
static brk_keyring_t *keyring(void)
{
    brk_keyring_t *kr = NULL;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/unit_gov.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(keydir, sizeof keydir, "%s/keys", tmpdir);
    ck_assert_int_eq(brk_keyring_load(keydir, &kr), 0);
    return kr;
}

static void drop_keyring(brk_keyring_t *kr)
{
    DIR *d = opendir(keydir);
    struct dirent *de;
    char path[512];
    brk_keyring_free(kr);
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", keydir, de->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(keydir);
    rmdir(tmpdir);
}

/* 1 when doc's signature verifies over its canonical form without signature and cid_field,
 * and cid_field is that form's CID. */
static int verifies(const brk_keyring_t *kr, const json_t *doc, const char *cid_field)
{
    json_t *copy = json_deep_copy(doc);
    const char *sig = json_string_value(json_object_get(doc, "signature"));
    char *canon = NULL, cid[BRK_CID_LEN + 1];
    size_t len;
    uint8_t raw[BRK_ED25519_SIG_LEN];
    json_object_del(copy, "signature");
    json_object_del(copy, cid_field);
    int ok = sig != NULL && strncmp(sig, "ed25519:", 8) == 0 &&
             brk_b64url_decode(sig + 8, strlen(sig + 8), raw, sizeof raw) == BRK_ED25519_SIG_LEN &&
             brk_jcs_canonicalize(copy, &canon, &len) == 0;
    if (ok) {
        brk_cid_of_bytes(canon, len, cid);
        ok = strcmp(cid, json_string_value(json_object_get(doc, cid_field))) == 0 &&
             brk_ed25519_verify(brk_keyring_public(kr, 0), canon, len, raw) == 1;
    }
    free(canon);
    json_decref(copy);
    return ok;
}

START_TEST(ac_and_denial_documents)
{
    brk_keyring_t *kr = keyring();
    json_t *in = parse("{\"name\":\"p\",\"elevation_required\":\"0x04\",\"approvals_required\":2}");
    gov_accord_t a;
    gov_decision_t d;
    const char *code;
    char msg[GOV_MSG_MAX];
    ck_assert_int_eq(gov_accord_parse(in, NULL, &a, &code, msg, sizeof msg), 0);
    json_t *unknown = parse("[\"x_new\"]");
    gov_principal_t p = {"did:ex:alice", "did:ex:bob", "Bob", "k1", "t1"};
    gov_ac_req_t q = {CID_A, CID_B, CID_C, NULL, GOV_DEFAULT_ACCOUNT, 0, 0x05, 1, unknown};
    gov_policy_decide(&a, 0, q.caps, q.corpus_entry_cid, NULL, 120, &d);
    ck_assert_int_eq(d.pending, 1);
    json_t *ac, *elev;
    ck_assert_int_eq(gov_ac_issue(kr, &p, &q, &a, &d, "ctx_1", 1796032800, "u", &ac, &elev), 0);
    ck_assert_str_eq(json_string_value(json_object_get(ac, "status")), "pending");
    ck_assert_str_eq(json_string_value(json_object_get(ac, "issued_at")), "2026-11-30T10:00:00Z");
    ck_assert_str_eq(json_string_value(json_object_get(ac, "expires_at")), "2026-11-30T10:02:00Z");
    ck_assert_str_eq(json_string_value(json_object_get(ac, "capability_set")), "0x00000005");
    ck_assert_str_eq(json_string_value(json_object_get(elev, "required")), "0x00000004");
    ck_assert_int_eq(json_integer_value(json_object_get(elev, "approvals_required")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(ac, "identity_proof"), "delegated_by")),
                     "did:ex:bob");
    ck_assert_ptr_nonnull(json_object_get(ac, "unrecognized_fields"));
    ck_assert(verifies(kr, ac, "ac_cid"));
    json_object_set_new(ac, "capability_set", json_string("0xffffffff"));
    ck_assert(!verifies(kr, ac, "ac_cid")); /* a changed AC does not verify */

    /* elevation: the requester may not decide; two approvals, the second re-signs */
    gov_err_t e;
    gov_elev_result_t out;
    json_object_set_new(ac, "capability_set", json_string("0x00000005"));
    gov_elev_decision_t self = {"k1", "did:ex:carol", 1, NULL, 1796032900, 120};
    ck_assert_int_eq(gov_elev_decide(kr, ac, elev, "k1", &self, &out, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "self_approval_forbidden");
    gov_elev_decision_t one = {"k2", "did:ex:carol", 1, "ok", 1796032900, 120};
    ck_assert_int_eq(gov_elev_decide(kr, ac, elev, "k1", &one, &out, &e), 0);
    ck_assert_int_eq(out.signed_, 0);
    ck_assert_uint_eq(out.seen, 0);
    ck_assert_int_eq(gov_elev_decide(kr, ac, elev, "k1", &one, &out, &e), BRK_ECONFLICT);
    ck_assert_str_eq(e.code, "approval_duplicate");
    gov_elev_decision_t two = {"k3", "did:ex:dave", 1, NULL, 1796032900, 120};
    ck_assert_int_eq(gov_elev_decide(kr, ac, elev, "k1", &two, &out, &e), 0);
    ck_assert_int_eq(out.signed_, 1);
    ck_assert_uint_eq(out.seen, 1);
    ck_assert_str_eq(json_string_value(json_object_get(ac, "status")), "authorized");
    ck_assert_str_eq(json_string_value(json_object_get(ac, "expires_at")), "2026-11-30T10:03:40Z");
    ck_assert_str_eq(json_string_value(json_object_get(elev, "status")), "approved");
    ck_assert(verifies(kr, ac, "ac_cid"));

    /* denial */
    gov_policy_decide(&a, 0, 0x10000, CID_B, NULL, 60, &d);
    ck_assert_str_eq(d.deny_code, "capability_not_allowed");
    json_t *den = gov_denial_issue(kr, &p, &q, &a, &d, "den_1", 1796032800);
    ck_assert_ptr_nonnull(den);
    ck_assert(verifies(kr, den, "denial_cid"));
    json_t *body = gov_denial_body(den, d.reason, "req-1", unknown);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "error"), "code")),
                     "policy_denied");
    ck_assert_ptr_nonnull(json_object_get(body, "unrecognized_fields"));
    json_decref(body), json_decref(den), json_decref(ac), json_decref(elev);
    json_decref(unknown), json_decref(in);
    gov_accord_clear(&a);
    drop_keyring(kr);
}
END_TEST

START_TEST(ac_view_status)
{
    json_t *v = gov_ac_view("{\"status\":\"pending\"}", "authorized", 1, "{\"status\":\"approved\"}");
    ck_assert_str_eq(json_string_value(json_object_get(v, "status")), "expired");
    ck_assert_ptr_nonnull(json_object_get(v, "elevation"));
    json_decref(v);
    v = gov_ac_view("{}", "consumed", 1, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(v, "status")), "consumed");
    json_decref(v);
    ck_assert_ptr_null(gov_ac_view("not json", "pending", 0, NULL));
}
END_TEST

START_TEST(receipt_and_accord_documents)
{
    gov_receipt_t x = {"cr_1", "ctx_1", "2", CID_A, CID_B, CID_C, NULL, CID_D, "active",
                       "completed", "violated", "[\"overage\"]", "[]", "u"};
    json_t *d = gov_receipt_doc(&x);
    ck_assert_str_eq(json_string_value(json_object_get(d, "receipt_id")), "cr_1");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "sequence")), 2);
    ck_assert(json_is_null(json_object_get(d, "prev_lineage_cid")));
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "flags"), 0)), "overage");
    ck_assert_uint_eq(json_object_size(d), 15);
    json_decref(d);
    json_t *a = gov_accord_doc("{\"name\":\"a\"}");
    char cid[BRK_CID_LEN + 1];
    json_t *plain = parse("{\"name\":\"a\"}");
    ck_assert_int_eq(brk_jcs_cid(plain, cid), 0);
    ck_assert_str_eq(json_string_value(json_object_get(a, "accord_hash")), cid);
    json_decref(a), json_decref(plain);
    ck_assert_ptr_null(gov_accord_doc("["));
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
    tcase_add_test(tc, ac_and_denial_documents);
    tcase_add_test(tc, ac_view_status);
    tcase_add_test(tc, receipt_and_accord_documents);
    tcase_add_test(tc, lineage_rule);
    tcase_add_test(tc, result_codes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(gov_suite());
}
