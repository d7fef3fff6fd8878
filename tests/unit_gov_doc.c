/*
 * unit_gov_doc: the protocol's documents (gov/gov_doc.h, gov/gov_elev.h) on their own, linked
 * against gsap_gov and the broker core only: the AC and the denial receipt as signed (their
 * signatures verify, a changed document does not), elevation decisions up to the re-signed
 * AC, the view of a stored AC, the receipt answer and the accord as answered.
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
#include "gov_doc.h"
#include "gov_elev.h"
#include "tst_gov.h"
#include "banned.h"

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

static Suite *gov_doc_suite(void)
{
    Suite *s = suite_create("gov_doc");
    TCase *tc = tcase_create("documents");
    tcase_add_test(tc, ac_and_denial_documents);
    tcase_add_test(tc, ac_view_status);
    tcase_add_test(tc, receipt_and_accord_documents);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(gov_doc_suite());
}
