/*
 * brk_mtls: see brk_mtls.h. Certificates come from OpenSSL, already parsed; this module only
 * applies the driver's rules to them. Strings it accepts are limited to the SPIFFE ID
 * characters, so a URI or a DID built from one never needs escaping anywhere it is shown.
 */
#include "brk_mtls.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

int brk_mtls_ca_load(const char *pem, size_t len, STACK_OF(X509) **out, const char **code,
                     char *msg, size_t cap)
{
    STACK_OF(X509) *cas = NULL;
    BIO *b = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    int rc = BRK_EINVAL;

    *out = NULL;
    *code = "invalid_ca";
    if (len > BRK_MTLS_CA_PEM_MAX) {
        *code = "too_big";
        snprintf(msg, cap, "the CA PEM is longer than %d bytes", BRK_MTLS_CA_PEM_MAX);
        return BRK_ETOOBIG;
    }
    if (memchr(pem, '\0', len) != NULL) {
        snprintf(msg, cap, "the CA PEM contains a NUL byte");
        return BRK_EINVAL;
    }
    cas = sk_X509_new_null();
    if (cas == NULL || (b = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    ERR_clear_error();
    while (PEM_read_bio(b, &name, &header, &data, &dlen) == 1) {
        const unsigned char *p = data;
        X509 *x = NULL;
        if (strcmp(name, "CERTIFICATE") != 0) {
            snprintf(msg, cap, "the CA PEM holds a \"%.32s\" block; only CERTIFICATE blocks belong there",
                     name);
            goto out;
        }
        if (sk_X509_num(cas) >= BRK_MTLS_CA_CERTS_MAX) {
            snprintf(msg, cap, "the CA PEM holds more than %d certificates", BRK_MTLS_CA_CERTS_MAX);
            goto out;
        }
        if ((x = d2i_X509(NULL, &p, dlen)) == NULL || p != data + dlen) {
            X509_free(x);
            snprintf(msg, cap, "certificate %d of the CA PEM does not parse", sk_X509_num(cas) + 1);
            goto out;
        }
        if (X509_check_ca(x) < 1) {
            X509_free(x);
            snprintf(msg, cap, "certificate %d of the CA PEM is not a CA", sk_X509_num(cas) + 1);
            goto out;
        }
        sk_X509_push(cas, x);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = NULL;
        data = NULL;
    }
    ERR_clear_error(); /* the end of the input reads as "no start line" */
    if (sk_X509_num(cas) == 0) {
        snprintf(msg, cap, "the CA PEM holds no certificate");
        goto out;
    }
    *out = cas;
    cas = NULL;
    *code = NULL;
    rc = 0;
out:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(b);
    sk_X509_pop_free(cas, X509_free);
    ERR_clear_error();
    return rc;
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_seg_char(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' || c == '-';
}

int brk_mtls_uri_check(const char *uri, int prefix, size_t *td_len)
{
    size_t n = strlen(uri), i = 0, seg;
    if (n == 0 || n > BRK_MTLS_URI_MAX || !(uri[0] >= 'a' && uri[0] <= 'z'))
        return 0;
    while (i < n && (is_lower_alnum(uri[i]) || uri[i] == '+' || uri[i] == '.' || uri[i] == '-'))
        i++;
    if (n - i < 3 || memcmp(uri + i, "://", 3) != 0)
        return 0;
    i += 3;
    seg = i;
    while (i < n && (is_lower_alnum(uri[i]) || uri[i] == '.' || uri[i] == '_' || uri[i] == '-'))
        i++;
    if (i == seg || i == n || uri[i] != '/')
        return 0;
    if (td_len != NULL)
        *td_len = i;
    /* path: "/" segment ("/" segment)*, or for a prefix the same ending in "/" */
    while (i < n) {
        i++; /* the '/' */
        seg = i;
        while (i < n && is_seg_char(uri[i]))
            i++;
        if (i == n && prefix && i == seg)
            return 1; /* a prefix ends with its '/' */
        if (i == seg || (i < n && uri[i] != '/'))
            return 0;
        if ((i - seg == 1 && uri[seg] == '.') ||
            (i - seg == 2 && uri[seg] == '.' && uri[seg + 1] == '.'))
            return 0;
    }
    return !prefix; /* a full URI ends with a segment; a prefix must end with '/' */
}

int brk_mtls_did_prefix_check(const char *p)
{
    size_t n = strlen(p), i = 4;
    if (n > BRK_MTLS_DID_PREFIX_MAX || n < 6 || memcmp(p, "did:", 4) != 0)
        return 0;
    while (i < n && is_lower_alnum(p[i]))
        i++;
    if (i == 4 || i == n || p[i] != ':')
        return 0;
    for (i++; i < n; i++)
        if (!is_seg_char(p[i]) && p[i] != ':')
            return 0;
    return 1;
}

int brk_mtls_san_uri(X509 *leaf, char *out, size_t cap)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    int rc = BRK_ENOTFOUND, found = 0;
    if (names == NULL) {
        ERR_clear_error();
        return BRK_ENOTFOUND;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        if (++found > 1) {
            rc = BRK_EINVAL; /* SPIFFE: exactly one URI SAN; two would be two identities */
            break;
        }
        const unsigned char *d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (len <= 0 || (size_t)len > BRK_MTLS_URI_MAX || (size_t)len >= cap ||
            memchr(d, '\0', (size_t)len) != NULL) {
            rc = BRK_EINVAL;
            break;
        }
        memcpy(out, d, (size_t)len);
        out[len] = '\0';
        rc = brk_mtls_uri_check(out, 0, NULL) ? 0 : BRK_EINVAL;
    }
    GENERAL_NAMES_free(names);
    if (rc != 0 && cap > 0)
        out[0] = '\0';
    return rc;
}

int brk_mtls_verify(STACK_OF(X509) *cas, X509 *leaf, STACK_OF(X509) *chain, const char **code,
                    char *msg, size_t cap)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = BRK_EAUTH, err;

    *code = "cert_untrusted";
    if (st == NULL || ctx == NULL) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(cas); i++)
        X509_STORE_add_cert(st, sk_X509_value(cas, i));
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_STORE_CTX_init(ctx, st, leaf, chain) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        snprintf(msg, cap, "cannot set up the verification");
        goto out;
    }
    if (X509_verify_cert(ctx) == 1) {
        *code = NULL;
        rc = 0;
        goto out;
    }
    err = X509_STORE_CTX_get_error(ctx);
    if (err == X509_V_ERR_CERT_HAS_EXPIRED)
        *code = "cert_expired";
    else if (err == X509_V_ERR_CERT_NOT_YET_VALID)
        *code = "cert_not_yet_valid";
    snprintf(msg, cap, "%s (depth %d)", X509_verify_cert_error_string(err),
             X509_STORE_CTX_get_error_depth(ctx));
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    ERR_clear_error();
    return rc;
}

int brk_mtls_did(const char *uri, const char *san_prefix, const char *did_prefix, char *out,
                 size_t cap)
{
    size_t pl = strlen(san_prefix), n = strlen(uri), o = 0, i;
    const char *rest;
    size_t lim = cap - 1 < BRK_MTLS_DID_MAX ? cap - 1 : BRK_MTLS_DID_MAX;

    if (cap == 0 || n <= pl || strncmp(uri, san_prefix, pl) != 0)
        return BRK_EINVAL;
    if (did_prefix == NULL || did_prefix[0] == '\0') {
        const char *a = strstr(uri, "://");
        if (a == NULL)
            return BRK_EINVAL;
        rest = a + 3;
        did_prefix = "did:web:";
    } else {
        rest = uri + pl;
    }
    size_t dl = strlen(did_prefix), rl = strlen(rest);
    if (dl + rl > lim)
        return BRK_EINVAL;
    memcpy(out, did_prefix, dl);
    o = dl;
    for (i = 0; i < rl; i++)
        out[o++] = rest[i] == '/' ? ':' : rest[i];
    out[o] = '\0';
    return 0;
}

int brk_mtls_config_check(const char *ca_pem, size_t len, const char *prefix,
                          const char *did_prefix, char *td, const char **code, char *msg,
                          size_t cap)
{
    STACK_OF(X509) *cas = NULL;
    size_t td_len = 0;
    int rc = brk_mtls_ca_load(ca_pem, len, &cas, code, msg, cap);
    sk_X509_pop_free(cas, X509_free);
    if (rc != 0)
        return rc;
    if (!brk_mtls_uri_check(prefix, 1, &td_len)) {
        *code = "invalid_san_uri_prefix";
        snprintf(msg, cap, "\"san_uri_prefix\" must be scheme://trust-domain/ then path "
                           "segments, ending in '/', at most %d bytes", BRK_MTLS_URI_MAX);
        return BRK_EINVAL;
    }
    if (did_prefix != NULL && !brk_mtls_did_prefix_check(did_prefix)) {
        *code = "invalid_did_prefix";
        snprintf(msg, cap, "\"did_prefix\" must be did:<method>: then [A-Za-z0-9._:-], at most "
                           "%d bytes", BRK_MTLS_DID_PREFIX_MAX);
        return BRK_EINVAL;
    }
    memcpy(td, prefix, td_len);
    td[td_len] = '\0';
    *code = NULL;
    return 0;
}

static json_t *asn1_time_json(const ASN1_TIME *t)
{
    struct tm tm;
    char buf[32];
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return json_null();
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

json_t *brk_mtls_row_json(const PGresult *pr, int row)
{
    STACK_OF(X509) *cas = NULL;
    const char *code;
    char msg[128], subject[256];
    json_t *certs = json_array(), *roles = json_array();
    const char *list = PQgetvalue(pr, row, 5);

    while (*list) {
        size_t n = strcspn(list, ",");
        json_array_append_new(roles, json_stringn(list, n));
        list += n + (list[n] == ',');
    }
    if (brk_mtls_ca_load(PQgetvalue(pr, row, 6), (size_t)PQgetlength(pr, row, 6), &cas, &code,
                         msg, sizeof msg) == 0) {
        for (int i = 0; i < sk_X509_num(cas); i++) {
            X509 *x = sk_X509_value(cas, i);
            unsigned char *der = NULL;
            int dl = i2d_X509(x, &der);
            uint8_t h[BRK_SHA256_LEN];
            char hex[2 * BRK_SHA256_LEN + 1] = "";
            if (dl > 0) {
                brk_sha256(der, (size_t)dl, h);
                brk_hex(h, sizeof h, hex);
            }
            OPENSSL_free(der);
            X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof subject);
            json_array_append_new(certs, json_pack("{s:s,s:s,s:o}", "subject", subject, "sha256",
                                                   hex, "not_after",
                                                   asn1_time_json(X509_get0_notAfter(x))));
        }
    }
    sk_X509_pop_free(cas, X509_free);
    return json_pack("{s:s,s:b,s:s,s:s,s:o,s:o,s:o,s:s}", "tenant_id", PQgetvalue(pr, row, 0),
                     "enabled", PQgetvalue(pr, row, 1)[0] == 't', "trust_domain",
                     PQgetvalue(pr, row, 2), "san_uri_prefix", PQgetvalue(pr, row, 3),
                     "did_prefix",
                     PQgetisnull(pr, row, 4) ? json_null() : json_string(PQgetvalue(pr, row, 4)),
                     "roles", roles, "ca_certs", certs, "updated_at", PQgetvalue(pr, row, 7));
}
