/*
 * unit_mtls: the mtls driver's pure rules (broker/brk_mtls.h): which SAN URIs and prefixes
 * are accepted, how a URI becomes a DID, and the DID's length limit.
 */
#include <check.h>
#include <string.h>

#include "brk_err.h"
#include "brk_mtls.h"
#include "tst_check.h"

START_TEST(uri_forms)
{
    size_t td = 0;
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org/ci/runner", 0, &td), 1);
    ck_assert_uint_eq(td, strlen("spiffe://example.org"));
    ck_assert_int_eq(brk_mtls_uri_check("https://a.b/x_Y.z-1", 0, NULL), 1);
    /* refused: no path, empty segments, dot segments, query, port, user, upper-case host */
    const char *bad[] = {"spiffe://example.org",         "spiffe://example.org/",
                         "spiffe://example.org//x",      "spiffe://example.org/x/",
                         "spiffe://example.org/./x",     "spiffe://example.org/a/../b",
                         "spiffe://example.org/x?y=1",   "spiffe://example.org:443/x",
                         "spiffe://u@example.org/x",     "spiffe://Example.org/x",
                         "SPIFFE://example.org/x",       "spiffe:/example.org/x",
                         "spiffe://example.org/x#f",     "spiffe://example.org/x%41",
                         "",                             "://example.org/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(brk_mtls_uri_check(bad[i], 0, NULL) == 0, "accepted %s", bad[i]);
    /* prefixes end at a segment boundary */
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org/", 1, &td), 1);
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org/ci/", 1, NULL), 1);
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org/ci", 1, NULL), 0);
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org", 1, NULL), 0);
    ck_assert_int_eq(brk_mtls_uri_check("spiffe://example.org/ci//", 1, NULL), 0);
}
END_TEST

START_TEST(uri_length_limit)
{
    char u[BRK_MTLS_URI_MAX + 2];
    size_t n = (size_t)snprintf(u, sizeof u, "spiffe://example.org/");
    while (n < BRK_MTLS_URI_MAX)
        u[n++] = 'a';
    u[n] = '\0';
    ck_assert_int_eq(brk_mtls_uri_check(u, 0, NULL), 1);
    u[n++] = 'a';
    u[n] = '\0';
    ck_assert_int_eq(brk_mtls_uri_check(u, 0, NULL), 0);
}
END_TEST

START_TEST(did_prefixes)
{
    ck_assert_int_eq(brk_mtls_did_prefix_check("did:web:agents.example.com:"), 1);
    ck_assert_int_eq(brk_mtls_did_prefix_check("did:example:"), 1);
    ck_assert_int_eq(brk_mtls_did_prefix_check("did:example"), 0);
    ck_assert_int_eq(brk_mtls_did_prefix_check("did::x"), 0);
    ck_assert_int_eq(brk_mtls_did_prefix_check("web:x:"), 0);
    ck_assert_int_eq(brk_mtls_did_prefix_check("did:Web:x"), 0);
    ck_assert_int_eq(brk_mtls_did_prefix_check("did:web:a/b"), 0);
    char p[BRK_MTLS_DID_PREFIX_MAX + 2] = "did:example:";
    size_t n = strlen(p);
    while (n < BRK_MTLS_DID_PREFIX_MAX)
        p[n++] = 'x';
    p[n] = '\0';
    ck_assert_int_eq(brk_mtls_did_prefix_check(p), 1);
    p[n++] = 'x';
    p[n] = '\0';
    ck_assert_int_eq(brk_mtls_did_prefix_check(p), 0);
}
END_TEST

START_TEST(did_mapping)
{
    char did[BRK_MTLS_DID_MAX + 1];
    ck_assert_int_eq(brk_mtls_did("spiffe://example.org/ci/runner", "spiffe://example.org/ci/",
                                  NULL, did, sizeof did),
                     0);
    ck_assert_str_eq(did, "did:web:example.org:ci:runner");
    ck_assert_int_eq(brk_mtls_did("spiffe://example.org/ci/build/7", "spiffe://example.org/ci/",
                                  "did:example:agents:", did, sizeof did),
                     0);
    ck_assert_str_eq(did, "did:example:agents:build:7");
    /* the URI must lie under the prefix and leave something after it */
    ck_assert_int_eq(brk_mtls_did("spiffe://example.org/ci/", "spiffe://example.org/ci/",
                                  "did:x:", did, sizeof did),
                     BRK_EINVAL);
    ck_assert_int_eq(brk_mtls_did("spiffe://example.org/cd/x", "spiffe://example.org/ci/", NULL,
                                  did, sizeof did),
                     BRK_EINVAL);
    /* BRK_MTLS_DID_MAX bytes of DID, and one more */
    char uri[BRK_MTLS_URI_MAX + 1], pre[BRK_MTLS_DID_PREFIX_MAX + 1] = "did:example:";
    size_t n = strlen(pre);
    while (n < BRK_MTLS_DID_PREFIX_MAX)
        pre[n++] = 'p';
    pre[n] = '\0';
    size_t rest = BRK_MTLS_DID_MAX - BRK_MTLS_DID_PREFIX_MAX;
    n = (size_t)snprintf(uri, sizeof uri, "spiffe://e.org/");
    for (size_t i = 0; i < rest; i++)
        uri[n++] = 'r';
    uri[n] = '\0';
    ck_assert_int_eq(brk_mtls_did(uri, "spiffe://e.org/", pre, did, sizeof did), 0);
    ck_assert_uint_eq(strlen(did), BRK_MTLS_DID_MAX);
    uri[n++] = 'r';
    uri[n] = '\0';
    ck_assert_int_eq(brk_mtls_did(uri, "spiffe://e.org/", pre, did, sizeof did), BRK_EINVAL);
}
END_TEST

START_TEST(ca_pem_refusals)
{
    STACK_OF(X509) *cas = NULL;
    const char *code = NULL;
    char msg[256];
    ck_assert_int_eq(brk_mtls_ca_load("", 0, &cas, &code, msg, sizeof msg), BRK_EINVAL);
    ck_assert_str_eq(code, "invalid_ca");
    ck_assert_int_eq(brk_mtls_ca_load("not pem", 7, &cas, &code, msg, sizeof msg), BRK_EINVAL);
    const char *junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    ck_assert_int_eq(brk_mtls_ca_load(junk, strlen(junk), &cas, &code, msg, sizeof msg),
                     BRK_EINVAL);
    ck_assert_int_eq(brk_mtls_ca_load(junk, BRK_MTLS_CA_PEM_MAX + 1, &cas, &code, msg,
                                      sizeof msg),
                     BRK_ETOOBIG);
    ck_assert_str_eq(code, "too_big");
    ck_assert_ptr_null(cas);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_mtls");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, uri_forms);
    tcase_add_test(tc, uri_length_limit);
    tcase_add_test(tc, did_prefixes);
    tcase_add_test(tc, did_mapping);
    tcase_add_test(tc, ca_pem_refusals);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
