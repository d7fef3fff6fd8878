/*
 * brk_tls_client: the one TLS client setup of the project (see brk_tls_client.h).
 *
 * Invariant: every SSL made here verifies the peer (SSL_VERIFY_PEER) against the context's
 * trust store and checks the certificate's name against the host the caller connects to;
 * a failure aborts the handshake, so no request byte (and no bearer token) is ever written
 * to an unverified peer.
 */
#include "brk_tls_client.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "brk_err.h"
#include "banned.h"

/* Why the last OpenSSL call failed, as text, and the error queue emptied. */
static void openssl_reason(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char r[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, r, sizeof r);
    ERR_clear_error();
    snprintf(err, errlen, "%s: %s", what, r);
}

int brk_tls_client_ctx_new(const char *ca_file, SSL_CTX **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = BRK_ENOMEM;

    *out = NULL;
    err[0] = '\0';
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        goto out;
    }
    rc = BRK_ECRYPTO;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        openssl_reason(err, errlen, "cannot require TLS 1.2");
        goto out;
    }
    if (ca_file != NULL) {
        /* Only this file: a private CA replaces the public ones rather than adding to them. */
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            char what[320];
            snprintf(what, sizeof what, "cannot load the CA file \"%s\"", ca_file);
            openssl_reason(err, errlen, what);
            goto out;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_reason(err, errlen, "cannot load the system trust store");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    SSL_CTX_free(ctx);
    return rc;
}

/* 1 when host is an IPv4 or IPv6 literal. */
static int is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Records the first failed check of the chain or the name. libevent's evhttp resets the SSL
 * (SSL_clear) when a connection fails, which forgets SSL_get_verify_result; app data stays. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    brk_tls_diag_t *diag = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!ok && diag && diag->reason[0] == '\0')
        snprintf(diag->reason, sizeof diag->reason, "certificate verify failed: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    return ok;
}

int brk_tls_client_bev_new(struct event_base *base, SSL_CTX *ctx, const char *host,
                           brk_tls_diag_t *diag, struct bufferevent **out)
{
    SSL *ssl = SSL_new(ctx);
    struct bufferevent *bev = NULL;
    int rc = BRK_ENOMEM;

    *out = NULL;
    memset(diag, 0, sizeof *diag);
    if (ssl == NULL)
        goto out;
    rc = BRK_ECRYPTO;
    SSL_set_app_data(ssl, diag);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
    if (is_ip_literal(host)) {
        /* An address is checked against the certificate's IP SANs; no SNI for an address
         * (RFC 6066 allows only host names there). */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
            goto out;
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
            goto out;
    }
    rc = BRK_ENOMEM;
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL)
        goto out;
    ssl = NULL; /* the bufferevent owns it (BEV_OPT_CLOSE_ON_FREE) */
    /* A peer that closes after a complete, length-delimited answer without close_notify
     * lost us nothing: evhttp has the whole message. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    *out = bev;
    rc = 0;
out:
    if (ssl)
        SSL_free(ssl);
    ERR_clear_error();
    return rc;
}

int brk_tls_client_failure(struct bufferevent *bev, const brk_tls_diag_t *diag, char *buf,
                           size_t cap)
{
    unsigned long e;

    buf[0] = '\0';
    if (diag && diag->reason[0]) {
        snprintf(buf, cap, "%s", diag->reason);
        return 1;
    }
    /* libevent also queues plain socket errors (a refused connection) here: only an error of
     * an OpenSSL library is a TLS failure. */
    if (bev && (e = bufferevent_get_openssl_error(bev)) != 0 && !ERR_SYSTEM_ERROR(e) &&
        ERR_GET_LIB(e) != 0 && ERR_GET_LIB(e) != ERR_LIB_SYS) {
        char r[256];
        ERR_error_string_n(e, r, sizeof r);
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
        snprintf(buf, cap, "TLS failed: %s", r);
        return 1;
    }
    return 0;
}

int brk_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (host == NULL)
        return 0;
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        /* ::ffff:127.x.y.z reaches the IPv4 loopback too */
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}
