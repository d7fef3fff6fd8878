/*
 * unit_tls_client: the pure parts of broker/brk_tls_client: which hosts count as loopback
 * (where exec may send a token over plain http), and the client context's CA handling (a CA
 * file that does not load is an error, never a silent fall back to no verification).
 */
#include "tst_check.h"
#include "brk_tls_client.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

START_TEST(loopback_forms)
{
    static const char *const yes[] = {
        "127.0.0.1",  "127.255.255.254",  "127.0.0.0",       "::1", "localhost", "LocalHost",
        "localhost.", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1", NULL};
    static const char *const no[] = {"128.0.0.1",
                                     "126.255.255.255",
                                     "0.0.0.0",
                                     "::",
                                     "localhost.example",
                                     "[::1]",
                                     "127.0.0.1.nip.io",
                                     "::ffff:10.0.0.1",
                                     "10.0.0.1",
                                     "",
                                     "127.1",
                                     NULL};
    for (int i = 0; yes[i]; i++)
        ck_assert_msg(brk_host_is_loopback(yes[i]) == 1, "%s", yes[i]);
    for (int i = 0; no[i]; i++)
        ck_assert_msg(brk_host_is_loopback(no[i]) == 0, "%s", no[i]);
    ck_assert_int_eq(brk_host_is_loopback(NULL), 0);
}
END_TEST

START_TEST(ca_file)
{
    SSL_CTX *ctx = NULL;
    char err[256];

    ck_assert_int_eq(brk_tls_client_ctx_new("/nonexistent/ca.pem", &ctx, err, sizeof err),
                     BRK_ECRYPTO);
    ck_assert_ptr_null(ctx);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/ca.pem"));
    /* the system store loads, and verification is on */
    ck_assert_int_eq(brk_tls_client_ctx_new(NULL, &ctx, err, sizeof err), 0);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    SSL_CTX_free(ctx);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls_client");
    TCase *tc = tcase_create("tls_client");
    tcase_add_test(tc, loopback_forms);
    tcase_add_test(tc, ca_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(tls_suite());
}
