/*
 * fuzz_mtls: libFuzzer target for the mtls driver's rules over untrusted input
 * (broker/brk_mtls.h): a client certificate's SAN URI, the URI-to-DID mapping, and the CA
 * PEM an admin uploads.
 *
 * The first byte picks what the rest is:
 *   0: a DER certificate, as a client sends it. When brk_mtls_san_uri accepts one, the URI
 *      must pass brk_mtls_uri_check, be at most BRK_MTLS_URI_MAX bytes, and map to a DID
 *      (under its own trust domain as prefix, with and without a DID prefix) of at most
 *      BRK_MTLS_DID_MAX bytes, made only of did:web's characters ([A-Za-z0-9._:-]).
 *   1: a CA PEM: brk_mtls_ca_load either fails with a code or returns 1 to
 *      BRK_MTLS_CA_CERTS_MAX certificates, each a CA.
 *   2: a URI: the same properties as 0 for whatever brk_mtls_uri_check accepts; and a prefix
 *      it accepts ends in '/'.
 * Any violation abort()s so libFuzzer records the input.
 */
#include "brk_mtls.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_mtls: %s\n", what);
    abort();
}

static void did_ok(const char *did)
{
    if (strlen(did) > BRK_MTLS_DID_MAX || strncmp(did, "did:", 4) != 0)
        fail("a DID is too long or not a DID");
    for (const char *p = did; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == ':'))
            fail("a DID holds a character did:web does not allow");
}

/* The properties of an accepted URI. */
static void uri_ok(const char *uri)
{
    size_t td = 0;
    char prefix[BRK_MTLS_URI_MAX + 2], did[BRK_MTLS_DID_MAX + 1];
    if (!brk_mtls_uri_check(uri, 0, &td) || strlen(uri) > BRK_MTLS_URI_MAX || td == 0 ||
        td >= strlen(uri) || uri[td] != '/')
        fail("an accepted URI does not hold its own rules");
    memcpy(prefix, uri, td + 1);
    prefix[td + 1] = '\0';
    if (!brk_mtls_uri_check(prefix, 1, NULL))
        fail("the trust domain of an accepted URI is not an accepted prefix");
    if (brk_mtls_did(uri, prefix, NULL, did, sizeof did) == 0)
        did_ok(did);
    if (brk_mtls_did(uri, prefix, "did:example:a:", did, sizeof did) == 0)
        did_ok(did);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char uri[BRK_MTLS_URI_MAX + 1];

    if (data[0] == 0) {
        X509 *x = d2i_X509(NULL, &p, (long)n);
        if (x != NULL && brk_mtls_san_uri(x, uri, sizeof uri) == 0)
            uri_ok(uri);
        X509_free(x);
    } else if (data[0] == 1) {
        STACK_OF(X509) *cas = NULL;
        const char *code = NULL;
        char msg[256];
        int rc = brk_mtls_ca_load((const char *)p, n, &cas, &code, msg, sizeof msg);
        if (rc == 0) {
            if (cas == NULL || sk_X509_num(cas) < 1 || sk_X509_num(cas) > BRK_MTLS_CA_CERTS_MAX)
                fail("brk_mtls_ca_load returned a wrong number of certificates");
            for (int i = 0; i < sk_X509_num(cas); i++)
                if (X509_check_ca(sk_X509_value(cas, i)) < 1)
                    fail("brk_mtls_ca_load returned a certificate that is not a CA");
        } else if (cas != NULL || code == NULL) {
            fail("brk_mtls_ca_load failed without a code or left certificates");
        }
        sk_X509_pop_free(cas, X509_free);
    } else if (data[0] == 2 && n <= BRK_MTLS_URI_MAX + 8) {
        char s[BRK_MTLS_URI_MAX + 9];
        memcpy(s, p, n);
        s[n] = '\0';
        if (brk_mtls_uri_check(s, 0, NULL))
            uri_ok(s);
        if (brk_mtls_uri_check(s, 1, NULL) && (n == 0 || s[strlen(s) - 1] != '/'))
            fail("an accepted prefix does not end in '/'");
    }
    return 0;
}
