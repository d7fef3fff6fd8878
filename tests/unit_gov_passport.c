/*
 * unit_gov_passport: gov/gov_passport.c against values the Agent Passport System SDK
 * computed (createDID, sign over canonicalizeJCS: tests/npm/aps_passport.mjs) and against the
 * SDK passports of the fuzz seed corpus (fuzz/corpus/passport/): DIDs, the did:aps form and its
 * length limit, agent signatures on receipts, a passport's two signatures and its validity
 * window at and one microsecond past each edge.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tst_check.h"
#include "brk_err.h"
#include "brk_time.h"
#include "gov_passport.h"

static void unhex32(const char *s, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

START_TEST(did_matches_sdk)
{
    static const char *const v[][2] = {
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "did:aps:z6MkeTG3bFFSLYVU7VqhgZxqr6YzpaGrQtFMh1uvqGy1vDnP"},
        {"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
         "did:aps:z6MkwgaR63138bEEgad7uk993KMX54vBA6KTB4sFhCPnSB2e"},
        {"b11102f68ac438a7173860d4abcc6cdaebff50d8ae38a968008f2718d4bf63d7",
         "did:aps:z6MkrNTFdherL3hAxT1X1udPgn1uztKPWapDTapeh228QpUv"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t pub[32];
        char did[GOV_AGENT_DID_MAX + 1];
        unhex32(v[i][0], pub);
        gov_agent_did_of(pub, did);
        ck_assert_str_eq(did, v[i][1]);
        ck_assert(gov_agent_did_valid(did));
    }
}
END_TEST

START_TEST(did_form)
{
    char s[GOV_AGENT_DID_MAX + 2];
    ck_assert(!gov_agent_did_valid("did:aps:z"));
    ck_assert(!gov_agent_did_valid("did:aps:"));
    ck_assert(!gov_agent_did_valid("did:key:z6MkeTG3bFFSLYVU7VqhgZxqr6YzpaGrQtFMh1uvqGy1vDnP"));
    ck_assert(!gov_agent_did_valid("did:aps:z6Mk0")); /* '0' is not base58 */
    ck_assert(!gov_agent_did_valid("did:aps:z6Mk l"));
    /* at the limit and one past it */
    memset(s, 'a', sizeof s);
    memcpy(s, GOV_AGENT_DID_PREFIX, strlen(GOV_AGENT_DID_PREFIX));
    s[GOV_AGENT_DID_MAX] = '\0';
    ck_assert(gov_agent_did_valid(s));
    s[GOV_AGENT_DID_MAX] = 'a';
    s[GOV_AGENT_DID_MAX + 1] = '\0';
    ck_assert(!gov_agent_did_valid(s));
}
END_TEST

#define CR_VECTOR                                                                                  \
    "{\"context_id\":\"ctx_00000000000000000000000000000000\",\"outcome\":\"completed\","          \
    "\"agent_did\":\"did:aps:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw\"}"
#define CR_PUB "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define CR_SIG                                                                                     \
    "ed25519:eDWKEDmVC0hx-mc64H2kk_OVZQxIClDdsYfBKPWM0ul7njkmDWg8KsFGVylKLS2H0gi95ZRno0dbyBfXqCFeDA"

START_TEST(agent_signature)
{
    uint8_t pub[32], other[32] = {0};
    unhex32(CR_PUB, pub);
    json_t *cr = json_loads(CR_VECTOR, 0, NULL);
    json_object_set_new(cr, "agent_signature", json_string(CR_SIG));
    ck_assert(gov_agent_sig_verify(cr, pub));
    ck_assert(!gov_agent_sig_verify(cr, other));
    /* the DID the SDK gives that key is the one signed */
    char did[GOV_AGENT_DID_MAX + 1];
    gov_agent_did_of(pub, did);
    ck_assert_str_eq(did, json_string_value(json_object_get(cr, "agent_did")));
    /* another spelling of the same signature, a changed character, a changed member */
    json_object_set_new(cr, "agent_signature", json_string(CR_SIG "="));
    ck_assert(!gov_agent_sig_verify(cr, pub));
    char bad[] = CR_SIG;
    bad[20] = bad[20] == 'A' ? 'B' : 'A';
    json_object_set_new(cr, "agent_signature", json_string(bad));
    ck_assert(!gov_agent_sig_verify(cr, pub));
    json_object_set_new(cr, "agent_signature", json_string(CR_SIG + strlen("ed25519:")));
    ck_assert(!gov_agent_sig_verify(cr, pub));
    json_object_set_new(cr, "agent_signature", json_string(CR_SIG));
    json_object_set_new(cr, "outcome", json_string("failed"));
    ck_assert(!gov_agent_sig_verify(cr, pub));
    json_object_del(cr, "agent_signature");
    ck_assert(!gov_agent_sig_verify(cr, pub));
    json_decref(cr);
}
END_TEST

static json_t *seed(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/passport/%s", getenv("GSAP_SOURCE_DIR"), name);
    json_t *j = json_load_file(path, 0, NULL);
    ck_assert_msg(j != NULL, "%s", path);
    return j;
}

START_TEST(sdk_passport)
{
    json_t *sp = seed("sdk_passport.json"), *st = seed("stored.json"), *t = seed("tampered.json");
    gov_passport_t p, q;
    gov_err_t e;
    char did[GOV_AGENT_DID_MAX + 1];
    ck_assert_int_eq(gov_passport_check(sp, 0, 0, &p, &e), 0);
    uint8_t pub[32];
    unhex32(json_string_value(json_object_get(json_object_get(sp, "passport"), "publicKey")), pub);
    gov_agent_did_of(pub, did);
    ck_assert_str_eq(p.agent_did, did);
    /* what is kept is exactly the signed members, and passes again with the same CID */
    ck_assert(json_equal(p.stored, st));
    ck_assert_int_eq(gov_passport_check(st, 0, 0, &q, &e), 0);
    ck_assert_str_eq(q.passport_cid, p.passport_cid);
    gov_passport_clear(&q);
    ck_assert_int_eq(gov_passport_check(t, 0, 0, &q, &e), BRK_ERANGE);
    ck_assert_str_eq(e.code, "bad_passport_signature");
    ck_assert_ptr_null(q.stored);
    /* no notBefore: createdAt is a claim, not a window (as the SDK's isPassportValid) */
    int64_t nbf, exp;
    ck_assert_int_eq(gov_passport_check(sp, GOV_PASSPORT_CHECK_TIME, 0, &q, &e), 0);
    gov_passport_clear(&q);
    /* a window, at each edge and one microsecond past it */
    json_t *w = seed("window_passport.json");
    ck_assert_int_eq(brk_time_parse_us("2026-01-01T00:00:00Z", &nbf), 0);
    ck_assert_int_eq(brk_time_parse_us("2027-01-01T00:00:00Z", &exp), 0);
    ck_assert_int_eq(gov_passport_check(w, GOV_PASSPORT_CHECK_TIME, exp, &q, &e), 0);
    gov_passport_clear(&q);
    ck_assert_int_eq(gov_passport_check(w, GOV_PASSPORT_CHECK_TIME, exp + 1, &q, &e), BRK_ERANGE);
    ck_assert_str_eq(e.code, "passport_expired");
    ck_assert_int_eq(gov_passport_check(w, GOV_PASSPORT_CHECK_TIME, nbf, &q, &e), 0);
    gov_passport_clear(&q);
    ck_assert_int_eq(gov_passport_check(w, GOV_PASSPORT_CHECK_TIME, nbf - 1, &q, &e), BRK_ERANGE);
    ck_assert_str_eq(e.code, "passport_not_yet_valid");
    json_decref(w);
    /* an unknown top-level member, and the issuer's signature missing */
    json_t *x = json_deep_copy(sp);
    json_object_set_new(x, "extra", json_true());
    ck_assert_int_eq(gov_passport_check(x, 0, 0, &q, &e), BRK_EINVAL);
    json_object_del(x, "extra");
    json_object_del(x, "issuerSignature");
    ck_assert_int_eq(gov_passport_check(x, 0, 0, &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "missing_field");
    gov_passport_clear(&p);
    json_decref(x), json_decref(sp), json_decref(st), json_decref(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_gov_passport");
    TCase *tc = tcase_create("passport");
    tcase_add_test(tc, did_matches_sdk);
    tcase_add_test(tc, did_form);
    tcase_add_test(tc, agent_signature);
    tcase_add_test(tc, sdk_passport);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
