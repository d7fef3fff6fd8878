/*
 * unit_keys: bearer token parsing, tenant names and roles (broker/brk_keys.h). Pure
 * functions, no database. Every limit is tested on both sides.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_keys.h"
#include "banned.h"

#define KEY_ID "0123456789abcdef"
#define SECRET "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ012-_89" /* 43 base64url characters */
#define GOOD "gsap.acme-1." KEY_ID "." SECRET

static int parse(const char *s, brk_token_t *t)
{
    return brk_token_parse(s, strlen(s), t);
}

static void expect_reject(const char *s)
{
    brk_token_t t;

    ck_assert_msg(parse(s, &t) == BRK_EAUTH, "accepted malformed token '%s'", s);
}

START_TEST(token_good)
{
    brk_token_t t;
    uint8_t md[BRK_SHA256_LEN];
    char hex[65];

    ck_assert_uint_eq(strlen(SECRET), BRK_SECRET_B64_LEN);
    ck_assert_int_eq(parse(GOOD, &t), 0);
    ck_assert_str_eq(t.tenant, "acme-1");
    ck_assert_str_eq(t.key_id, KEY_ID);
    brk_sha256(SECRET, strlen(SECRET), md);
    brk_hex(md, sizeof md, hex);
    ck_assert_str_eq(t.secret_hash, hex);
}
END_TEST

START_TEST(token_uses_only_n_bytes)
{
    brk_token_t t;
    char buf[256];

    /* The length is what counts, not a NUL: trailing bytes past n are not part of it. */
    snprintf(buf, sizeof buf, "%sXYZ", GOOD);
    ck_assert_int_eq(brk_token_parse(buf, strlen(GOOD), &t), 0);
    ck_assert_int_eq(brk_token_parse(buf, strlen(buf), &t), BRK_EAUTH);
    ck_assert_int_eq(brk_token_parse(GOOD, strlen(GOOD) - 1, &t), BRK_EAUTH);
}
END_TEST

START_TEST(token_missing_parts)
{
    expect_reject("");
    expect_reject("gsap");
    expect_reject("gsap.");
    expect_reject("gsap.acme");
    expect_reject("gsap.acme.");
    expect_reject("gsap.acme." KEY_ID);
    expect_reject("gsap.acme." KEY_ID ".");
    expect_reject("gsap." KEY_ID "." SECRET);
    expect_reject("gsap.." KEY_ID "." SECRET);
    expect_reject("gsap.acme.." SECRET);
    expect_reject("acme." KEY_ID "." SECRET);
    expect_reject(".acme." KEY_ID "." SECRET);
}
END_TEST

START_TEST(token_bad_prefix_and_tenant)
{
    expect_reject("GSAP.acme." KEY_ID "." SECRET);
    expect_reject("gsap_acme." KEY_ID "." SECRET);
    expect_reject("gsapx.acme." KEY_ID "." SECRET);
    expect_reject("gsap.Acme." KEY_ID "." SECRET);
    expect_reject("gsap.-acme." KEY_ID "." SECRET);
    expect_reject("gsap.ac_me." KEY_ID "." SECRET);
    expect_reject("gsap.ac me." KEY_ID "." SECRET);
}
END_TEST

START_TEST(token_bad_key_id)
{
    expect_reject("gsap.acme.0123456789abcde." SECRET);   /* 15 */
    expect_reject("gsap.acme.0123456789abcdef0." SECRET); /* 17 */
    expect_reject("gsap.acme.0123456789ABCDEF." SECRET);  /* upper case */
    expect_reject("gsap.acme.0123456789abcdeg." SECRET);  /* not hex */
}
END_TEST

START_TEST(token_bad_secret)
{
    char s[256];

    /* 42 characters: one short. */
    snprintf(s, sizeof s, "gsap.acme.%s.%.42s", KEY_ID, SECRET);
    expect_reject(s);
    /* 44 characters: one long. */
    snprintf(s, sizeof s, "gsap.acme.%s.%sA", KEY_ID, SECRET);
    expect_reject(s);
    /* padding and standard base64 characters are not base64url */
    snprintf(s, sizeof s, "gsap.acme.%s.%.42s=", KEY_ID, SECRET);
    expect_reject(s);
    snprintf(s, sizeof s, "gsap.acme.%s.%.42s+", KEY_ID, SECRET);
    expect_reject(s);
    snprintf(s, sizeof s, "gsap.acme.%s.%.42s/", KEY_ID, SECRET);
    expect_reject(s);
}
END_TEST

START_TEST(token_extra_dots)
{
    char s[256];

    expect_reject("gsap.acme." KEY_ID "." SECRET ".");
    expect_reject("gsap.acme." KEY_ID ".." SECRET);
    expect_reject("gsap.acme.x." KEY_ID "." SECRET);
    expect_reject("gsap.gsap.acme." KEY_ID "." SECRET);
    /* a dot replacing one secret character keeps the length */
    snprintf(s, sizeof s, "gsap.acme.%s.%.42s.", KEY_ID, SECRET);
    expect_reject(s);
}
END_TEST

START_TEST(token_length_limit)
{
    char tenant[BRK_TENANT_MAX + 2], s[512];
    brk_token_t t;

    /* The longest valid token (63-character tenant) is 129 bytes, under the cap. */
    memset(tenant, 'a', BRK_TENANT_MAX);
    tenant[BRK_TENANT_MAX] = '\0';
    snprintf(s, sizeof s, "gsap.%s.%s.%s", tenant, KEY_ID, SECRET);
    ck_assert_uint_le(strlen(s), BRK_TOKEN_MAX);
    ck_assert_int_eq(parse(s, &t), 0);
    ck_assert_str_eq(t.tenant, tenant);

    /* 64-character tenant */
    memset(tenant, 'a', BRK_TENANT_MAX + 1);
    tenant[BRK_TENANT_MAX + 1] = '\0';
    snprintf(s, sizeof s, "gsap.%s.%s.%s", tenant, KEY_ID, SECRET);
    expect_reject(s);

    /* anything past BRK_TOKEN_MAX is refused before it is looked at */
    memset(s, 'a', sizeof s);
    memcpy(s, "gsap.", 5);
    ck_assert_int_eq(brk_token_parse(s, BRK_TOKEN_MAX + 1, &t), BRK_EAUTH);
    ck_assert_int_eq(brk_token_parse(s, sizeof s, &t), BRK_EAUTH);
}
END_TEST

START_TEST(token_embedded_nul)
{
    char s[256];
    brk_token_t t;
    size_t n = strlen(GOOD);

    memcpy(s, GOOD, n + 1);
    s[n - 3] = '\0';
    ck_assert_int_eq(brk_token_parse(s, n, &t), BRK_EAUTH);
    memcpy(s, GOOD, n + 1);
    s[7] = '\0';
    ck_assert_int_eq(brk_token_parse(s, n, &t), BRK_EAUTH);
}
END_TEST

START_TEST(tenant_bounds)
{
    char s[BRK_TENANT_MAX + 2];

    memset(s, 'a', sizeof s);
    ck_assert_int_eq(brk_tenant_valid(s, 1), 1);
    ck_assert_int_eq(brk_tenant_valid(s, BRK_TENANT_MAX), 1);
    ck_assert_int_eq(brk_tenant_valid(s, BRK_TENANT_MAX + 1), 0);
    ck_assert_int_eq(brk_tenant_valid(s, 0), 0);
    ck_assert_int_eq(brk_tenant_valid("0", 1), 1);
    ck_assert_int_eq(brk_tenant_valid("a-", 2), 1);
    ck_assert_int_eq(brk_tenant_valid("a-b-9", 5), 1);
    ck_assert_int_eq(brk_tenant_valid("-a", 2), 0);
    ck_assert_int_eq(brk_tenant_valid("A", 1), 0);
    ck_assert_int_eq(brk_tenant_valid("a_b", 3), 0);
    ck_assert_int_eq(brk_tenant_valid("a.b", 3), 0);
    ck_assert_int_eq(brk_tenant_valid("a b", 3), 0);
    ck_assert_int_eq(brk_tenant_valid("\xc3\xa9", 2), 0);
    ck_assert_int_eq(brk_tenant_valid("ab\0c", 4), 0);
}
END_TEST

START_TEST(role_names)
{
    static const char *names[] = {"issuer", "executor", "approver", "finance", "auditor", "admin"};
    unsigned all = 0, bit;
    size_t i;

    for (i = 0; i < 6; i++) {
        bit = brk_role_parse(names[i], strlen(names[i]));
        ck_assert_uint_ne(bit, 0);
        ck_assert_str_eq(brk_role_name(bit), names[i]);
        all |= bit;
    }
    ck_assert_uint_eq(all, BRK_ROLE_ALL);
    ck_assert_uint_eq(brk_role_parse("issuer", 6), BRK_ROLE_ISSUER);
    ck_assert_uint_eq(brk_role_parse("admin", 5), BRK_ROLE_ADMIN);
    ck_assert_uint_eq(brk_role_parse("Admin", 5), 0);
    ck_assert_uint_eq(brk_role_parse("admins", 6), 0);
    ck_assert_uint_eq(brk_role_parse("admin", 4), 0);
    ck_assert_uint_eq(brk_role_parse("", 0), 0);
    ck_assert_ptr_null(brk_role_name(0));
    ck_assert_ptr_null(brk_role_name(BRK_ROLE_ISSUER | BRK_ROLE_ADMIN));
    ck_assert_ptr_null(brk_role_name(1u << 6));
}
END_TEST

START_TEST(roles_list)
{
    unsigned m = 12345;

    ck_assert_int_eq(brk_roles_parse_list("issuer", &m), 0);
    ck_assert_uint_eq(m, BRK_ROLE_ISSUER);
    ck_assert_int_eq(brk_roles_parse_list("issuer,executor", &m), 0);
    ck_assert_uint_eq(m, BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR);
    ck_assert_int_eq(brk_roles_parse_list("admin,auditor,finance,approver,executor,issuer", &m), 0);
    ck_assert_uint_eq(m, BRK_ROLE_ALL);
    ck_assert_int_eq(brk_roles_parse_list("auditor,auditor", &m), 0);
    ck_assert_uint_eq(m, BRK_ROLE_AUDITOR);

    m = 777;
    ck_assert_int_eq(brk_roles_parse_list("", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list(",", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list("issuer,", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list(",issuer", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list("issuer,,admin", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list("issuer, admin", &m), BRK_EINVAL);
    ck_assert_int_eq(brk_roles_parse_list("issuer,root", &m), BRK_EINVAL);
    ck_assert_uint_eq(m, 777); /* untouched on failure */
}
END_TEST

static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("token");

    tcase_add_test(tc, token_good);
    tcase_add_test(tc, token_uses_only_n_bytes);
    tcase_add_test(tc, token_missing_parts);
    tcase_add_test(tc, token_bad_prefix_and_tenant);
    tcase_add_test(tc, token_bad_key_id);
    tcase_add_test(tc, token_bad_secret);
    tcase_add_test(tc, token_extra_dots);
    tcase_add_test(tc, token_length_limit);
    tcase_add_test(tc, token_embedded_nul);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, tenant_bounds);
    tcase_add_test(tc, role_names);
    tcase_add_test(tc, roles_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(keys_suite());
}
