/*
 * unit_gov_deleg: the delegation rules (gov/gov_deleg.h) on their own: the request's bounds,
 * resolution against a parent, monotonic narrowing field by field (at and one past each
 * boundary), the depth limit, what an AC under a delegation may ask, and the check of a
 * delegation the Agent Passport System SDK signed (tests/data/aps_delegation.json, made with
 * the SDK 6.0.1): it verifies as signed, and a change to any signed member does not.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "gov.h"
#include "gov_deleg.h"
#include "tst_gov.h"
#include "banned.h"

#define NOW 1800000000LL

/* A parent at depth 0: caps 0xff, accords [a, b], corpus [A, B], prohibits [D], expires
 * NOW + 1000, 10 commands of which 4 used, spend 500, max depth 2. */
static gov_deleg_parent_t parent(void)
{
    gov_deleg_parent_t p;
    memset(&p, 0, sizeof p);
    p.s.caps = 0xff;
    p.s.accords = parse("[\"a\",\"b\"]");
    p.s.corpus = parse("[\"" CID_A "\",\"" CID_B "\"]");
    p.s.prohibited = parse("[\"" CID_D "\"]");
    p.s.expires = NOW + 1000;
    p.s.max_commands = 10;
    p.s.spend_limit = 500;
    p.s.max_depth = 2;
    p.depth = 0;
    p.acs_issued = 4;
    return p;
}

/* The child that equals the parent where it can (max_commands: the parent's remaining). */
static gov_deleg_scope_t same(const gov_deleg_parent_t *p)
{
    gov_deleg_scope_t c = p->s;
    c.accords = json_deep_copy(p->s.accords);
    c.corpus = json_deep_copy(p->s.corpus);
    c.prohibited = json_deep_copy(p->s.prohibited);
    c.max_commands = p->s.max_commands - p->acs_issued;
    return c;
}

static void expect_violation(const gov_deleg_scope_t *c, const gov_deleg_parent_t *p,
                             const char *field)
{
    gov_err_t e;
    ck_assert_int_eq(gov_deleg_narrow(c, p, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "narrowing_violation");
    ck_assert_msg(strstr(e.msg, field) != NULL, "%s does not name %s", e.msg, field);
}

START_TEST(narrowing_field_by_field)
{
    gov_deleg_parent_t p = parent();
    gov_deleg_scope_t c = same(&p);
    gov_err_t e;
    /* equal is narrow enough; one past each boundary is not */
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    c.caps = 0x1ff;
    expect_violation(&c, &p, "capability_set");
    c.caps = 0x0f;
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    json_array_append_new(c.accords, json_string("c"));
    expect_violation(&c, &p, "accords");
    json_decref(c.accords);
    c.accords = NULL; /* "any" under a listed parent widens */
    expect_violation(&c, &p, "accords");
    c.accords = parse("[\"b\"]");
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    json_array_append_new(c.corpus, json_string(CID_C));
    expect_violation(&c, &p, "corpus_cids");
    json_decref(c.corpus);
    c.corpus = NULL;
    expect_violation(&c, &p, "corpus_cids");
    c.corpus = parse("[]");
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    json_array_clear(c.prohibited); /* dropping a prohibition widens */
    expect_violation(&c, &p, "prohibited_command_hashes");
    json_array_append_new(c.prohibited, json_string(CID_C));
    json_array_append_new(c.prohibited, json_string(CID_D));
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    c.expires = p.s.expires + 1;
    expect_violation(&c, &p, "expires_at");
    c.expires = p.s.expires;

    c.max_commands = 7; /* 10 - 4 = 6 left */
    expect_violation(&c, &p, "max_commands");
    c.max_commands = 6;
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    c.spend_limit = 501;
    expect_violation(&c, &p, "spend_limit_minor");
    c.spend_limit = -1; /* no limit under a limited parent */
    expect_violation(&c, &p, "spend_limit_minor");
    c.spend_limit = 500;

    c.max_depth = 3;
    expect_violation(&c, &p, "max_delegation_depth");
    c.max_depth = 2;
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);

    /* an unlimited parent lets a child be anything of its kind */
    gov_deleg_scope_clear(&p.s);
    p.s.caps = 0xff;
    p.s.prohibited = json_array();
    p.s.spend_limit = -1;
    c.spend_limit = -1;
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);
    gov_deleg_scope_clear(&c);
    gov_deleg_scope_clear(&p.s);
}
END_TEST

START_TEST(depth_limit)
{
    gov_deleg_parent_t p = parent();
    gov_deleg_scope_t c = same(&p);
    gov_err_t e;
    p.depth = 1; /* a child at depth 2 = max_depth: allowed */
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), 0);
    p.depth = 2; /* depth 3 > 2 */
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "delegation_depth_exceeded");
    p.s.max_depth = 0;
    p.depth = 0;
    ck_assert_int_eq(gov_deleg_narrow(&c, &p, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "delegation_depth_exceeded");
    gov_deleg_scope_clear(&c);
    gov_deleg_scope_clear(&p.s);
}
END_TEST

static int req(const char *body, gov_deleg_request_t *q, gov_err_t *e)
{
    json_t *b = parse(body);
    int rc = gov_deleg_request_parse(b, q, e);
    /* the request borrows strings from b: tests read them before b goes */
    json_decref(b);
    return rc;
}

START_TEST(request_bounds_and_resolution)
{
    gov_deleg_request_t q;
    gov_deleg_scope_t s;
    gov_err_t e;
    json_t *b;

    ck_assert_int_eq(req("{}", &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "missing_field");
    ck_assert_int_eq(req("{\"agent_did\":\"did:x\"}", &q, &e), BRK_EINVAL);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"nope\":1}", &q, &e), BRK_EINVAL);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"parent_id\":\"dlg_12\"}", &q, &e),
                     BRK_EINVAL);
    /* GOV_DELEG_DEPTH_MAX, GOV_DELEG_COMMANDS_MAX, GOV_DELEG_TTL_MAX: at and one past */
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"max_delegation_depth\":16}", &q, &e), 0);
    gov_deleg_request_clear(&q);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"max_delegation_depth\":17}", &q, &e),
                     BRK_ERANGE);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"max_commands\":1000000}", &q, &e), 0);
    gov_deleg_request_clear(&q);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"max_commands\":1000001}", &q, &e),
                     BRK_ERANGE);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"ttl_seconds\":2592000}", &q, &e), 0);
    gov_deleg_request_clear(&q);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"ttl_seconds\":2592001}", &q, &e),
                     BRK_ERANGE);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"accords\":[\"a\",\"a\"]}", &q, &e),
                     BRK_EINVAL);
    ck_assert_int_eq(req("{\"agent_did\":\"did:x:y\",\"corpus_cids\":[\"sha256:xx\"]}", &q, &e),
                     BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_cid");
    /* GOV_DELEG_LIST_MAX entries: 64 accepted, 65 refused */
    json_t *list = json_array();
    for (int i = 0; i < GOV_DELEG_LIST_MAX + 1; i++) {
        char n[16];
        snprintf(n, sizeof n, "acc%d", i);
        json_array_append_new(list, json_string(n));
    }
    b = json_pack("{s:s,s:O}", "agent_did", "did:x:y", "accords", list);
    ck_assert_int_eq(gov_deleg_request_parse(b, &q, &e), BRK_ETOOBIG);
    json_decref(b);
    json_array_remove(list, GOV_DELEG_LIST_MAX);
    b = json_pack("{s:s,s:O}", "agent_did", "did:x:y", "accords", list);
    ck_assert_int_eq(gov_deleg_request_parse(b, &q, &e), 0);
    gov_deleg_request_clear(&q);
    json_decref(b);
    json_decref(list);
    /* fields beside an SDK delegation would be unsigned */
    ck_assert_int_eq(req("{\"aps_delegation\":{},\"max_commands\":1}", &q, &e), BRK_EINVAL);

    /* a root takes the defaults; a child inherits, max_commands the parent's remaining */
    b = parse("{\"agent_did\":\"did:x:y\",\"capability_set\":\"0x3\"}");
    ck_assert_int_eq(gov_deleg_request_parse(b, &q, &e), 0);
    ck_assert_int_eq(gov_deleg_resolve(&q, NULL, NOW, &s), 0);
    ck_assert_uint_eq(s.caps, 3);
    ck_assert_ptr_null(s.accords);
    ck_assert_int_eq(s.expires, NOW + GOV_DELEG_TTL_DEFAULT);
    ck_assert_int_eq(s.max_commands, GOV_DELEG_COMMANDS_DEFAULT);
    ck_assert_int_eq(s.spend_limit, -1);
    ck_assert_int_eq(s.max_depth, GOV_DELEG_DEPTH_DEFAULT);
    ck_assert_int_eq(gov_deleg_root_check(&s, NOW, &e), 0);
    gov_deleg_scope_clear(&s);
    gov_deleg_parent_t p = parent();
    ck_assert_int_eq(gov_deleg_resolve(&q, &p, NOW, &s), 0);
    ck_assert_int_eq(s.max_commands, 6);
    ck_assert_int_eq(s.spend_limit, 500);
    ck_assert_int_eq(s.expires, NOW + 1000);
    ck_assert_int_eq(json_array_size(s.accords), 2);
    ck_assert_int_eq(gov_deleg_narrow(&s, &p, &e), 0);
    gov_deleg_scope_clear(&s);
    gov_deleg_scope_clear(&p.s);
    gov_deleg_request_clear(&q);
    json_decref(b);
}
END_TEST

START_TEST(ac_under_delegation)
{
    gov_deleg_parent_t p = parent();
    gov_err_t e;
    gov_deleg_use_t u = {"a", CID_C, CID_A, 0x0f, NOW + 1000};
    ck_assert_int_eq(gov_deleg_allows(&p.s, &u, &e), 0);
    const struct {
        gov_deleg_use_t u;
        const char *field;
    } bad[] = {
        {{"a", CID_C, CID_A, 0x100, NOW}, "capability_set"},
        {{"z", CID_C, CID_A, 0x0f, NOW}, "accord_template"},
        {{"a", CID_C, CID_C, 0x0f, NOW}, "corpus_entry_cid"},
        {{"a", CID_D, CID_A, 0x0f, NOW}, "command_hash"},
        {{"a", CID_C, CID_A, 0x0f, NOW + 1001}, "ttl_seconds"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(gov_deleg_allows(&p.s, &bad[i].u, &e), BRK_EFORBIDDEN);
        ck_assert_str_eq(e.code, "delegation_scope_exceeded");
        ck_assert_msg(strstr(e.msg, bad[i].field) != NULL, "%s", e.msg);
    }
    gov_deleg_scope_clear(&p.s);
}
END_TEST

/* A copy of s with its last-but-one character changed (a digit or a letter stays one). */
static char *tst_dup_x(const char *s)
{
    char *d = strdup(s);
    size_t n = strlen(d);
    ck_assert_uint_ge(n, 2);
    char *c = &d[n - 2];
    if (*c >= '0' && *c <= '9')
        *c = (char)('0' + (*c - '0' + 1) % 10);
    else
        *c = *c == 'a' ? 'b' : 'a';
    return d;
}

static json_t *aps_vector(char signer[GOV_DELEG_PUBHEX_LEN + 1])
{
    char path[512];
    snprintf(path, sizeof path, "%s/aps_delegation.json", getenv("GSAP_TESTDATA"));
    json_t *v = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(v);
    snprintf(signer, GOV_DELEG_PUBHEX_LEN + 1, "%s",
             json_string_value(json_object_get(v, "signer")));
    json_t *d = json_deep_copy(json_object_get(v, "delegation"));
    json_decref(v);
    return d;
}

START_TEST(aps_delegation_signed_by_the_sdk)
{
    char signer[GOV_DELEG_PUBHEX_LEN + 1];
    json_t *d = aps_vector(signer);
    gov_deleg_request_t q;
    gov_err_t e;

    memset(&q, 0, sizeof q);
    ck_assert_int_eq(gov_deleg_aps_parse(d, signer, NOW, &q, &e), 0);
    ck_assert_str_eq(q.agent_did, "did:web:example.com:agent");
    ck_assert_uint_eq(q.s.caps, 0x0f);
    ck_assert_int_eq(q.s.max_commands, 5);
    ck_assert_int_eq(q.s.spend_limit, 500);
    ck_assert_int_eq(q.s.max_depth, 2);
    ck_assert_int_eq(q.aps_depth, 0);
    ck_assert_str_eq(json_string_value(json_array_get(q.s.accords, 0)), "default");
    ck_assert_str_eq(json_string_value(json_array_get(q.s.prohibited, 0)), CID_D);
    gov_deleg_request_clear(&q);

    /* another key than the registered one */
    char other[GOV_DELEG_PUBHEX_LEN + 1];
    snprintf(other, sizeof other, "%s", signer);
    other[0] = other[0] == 'a' ? 'b' : 'a';
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(gov_deleg_aps_parse(d, other, NOW, &q, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "aps_signer_unknown");

    /* every signed member, changed, breaks the signature */
    const char *members[] = {"delegationId", "delegatedTo", "expiresAt", "createdAt", "notBefore"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        json_t *t = json_deep_copy(d);
        char *v = tst_dup_x(json_string_value(json_object_get(t, members[i])));
        json_object_set_new(t, members[i], json_string(v));
        free(v);
        memset(&q, 0, sizeof q);
        ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
        ck_assert_str_eq(e.code, "aps_signature_invalid");
        json_decref(t);
    }
    const char *numbers[] = {"spendLimit", "maxDepth", "currentDepth", "spentAmount"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        json_t *t = json_deep_copy(d);
        json_object_set_new(t, numbers[i],
                            json_integer(json_integer_value(json_object_get(t, numbers[i])) + 1));
        memset(&q, 0, sizeof q);
        ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
        ck_assert_str_eq(e.code, "aps_signature_invalid");
        json_decref(t);
    }
    /* a scope entry dropped (a prohibition), added, or the signature itself flipped */
    json_t *t = json_deep_copy(d);
    json_array_remove(json_object_get(t, "scope"), 6);
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    json_decref(t);
    t = json_deep_copy(d);
    json_array_append_new(json_object_get(t, "scope"), json_string("gsap:cap:31"));
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    json_decref(t);
    t = json_deep_copy(d);
    char *sig = tst_dup_x(json_string_value(json_object_get(t, "signature")));
    json_object_set_new(t, "signature", json_string(sig));
    free(sig);
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    json_decref(t);
    /* a member added after signing */
    t = json_deep_copy(d);
    json_object_set_new(t, "extra", json_true());
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    json_decref(t);
    /* null members are dropped by the SDK's canonical form: still valid */
    t = json_deep_copy(d);
    json_object_set_new(t, "observation_policy", json_null());
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), 0);
    gov_deleg_request_clear(&q);
    json_decref(t);
    /* valid, but not yet (before notBefore) or no longer */
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(gov_deleg_aps_parse(d, signer, 1000000000, &q, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "delegation_not_yet_valid");
    ck_assert_int_eq(gov_deleg_aps_parse(d, signer, 4102444800LL * 2, &q, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "delegation_expired");
    json_decref(d);
}
END_TEST

/* GOV_DELEG_APS_SCOPE_MAX and GOV_DELEG_APS_STR_MAX: at the bound the form passes and the
 * signature (of another object) is what fails; one past, the form is refused first. */
START_TEST(aps_form_bounds)
{
    char signer[GOV_DELEG_PUBHEX_LEN + 1];
    json_t *d = aps_vector(signer);
    gov_deleg_request_t q;
    gov_err_t e;

    json_t *t = json_deep_copy(d);
    json_t *scope = json_object_get(t, "scope");
    while (json_array_size(scope) < GOV_DELEG_APS_SCOPE_MAX)
        json_array_append_new(scope, json_string("gsap:cap:0"));
    memset(&q, 0, sizeof q);
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "aps_signature_invalid");
    json_array_append_new(scope, json_string("gsap:cap:0"));
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    json_decref(t);

    t = json_deep_copy(d);
    char *id = rep('x', GOV_DELEG_APS_STR_MAX);
    json_object_set_new(t, "delegationId", json_string(id));
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EFORBIDDEN);
    ck_assert_str_eq(e.code, "aps_signature_invalid");
    free(id);
    id = rep('x', GOV_DELEG_APS_STR_MAX + 1);
    json_object_set_new(t, "delegationId", json_string(id));
    ck_assert_int_eq(gov_deleg_aps_parse(t, signer, NOW, &q, &e), BRK_EINVAL);
    ck_assert_str_eq(e.code, "invalid_field");
    free(id);
    json_decref(t);
    json_decref(d);
}
END_TEST

START_TEST(did_key_of_a_bare_key)
{
    /* The did:key test vector of the W3C did:key spec (Ed25519, 2019 suite) */
    uint8_t pub[32];
    char did[GOV_DELEG_DID_KEY_MAX];
    ck_assert_int_eq(
        brk_unhex("2e6fcce36701dc791488e0d0b1745cc1e33a4c1c9fcc41c63bd343dbbe0970e6", 64, pub, 32),
        0);
    gov_deleg_did_key(pub, did, sizeof did);
    ck_assert_str_eq(did, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK");
}
END_TEST

static Suite *gov_deleg_suite(void)
{
    Suite *s = suite_create("gov_deleg");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, narrowing_field_by_field);
    tcase_add_test(tc, depth_limit);
    tcase_add_test(tc, request_bounds_and_resolution);
    tcase_add_test(tc, ac_under_delegation);
    tcase_add_test(tc, aps_delegation_signed_by_the_sdk);
    tcase_add_test(tc, aps_form_bounds);
    tcase_add_test(tc, did_key_of_a_bare_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(gov_deleg_suite());
}
