/*
 * brk_tls_client: outbound https for the broker's clients (`gsap-broker exec` and the
 * Chronicle emitter), one setup for both so they trust the same things the same way.
 *
 * Trust: the PEM file named by GSAP_CA_FILE when it is set, else the system store
 * (OpenSSL's default verify paths). The peer's certificate chain must verify and its name
 * must match the host of the URL (DNS name, or IP address for a literal); TLS 1.2 or newer.
 * There is no switch that turns verification off.
 *
 * Also here: the loopback test both clients use before they send a secret over plain http.
 *
 * An SSL_CTX from brk_tls_client_ctx_new may be shared by several connections of one thread
 * (OpenSSL makes the context itself thread-safe). Each bufferevent belongs to its base's loop.
 */
#ifndef BRK_TLS_CLIENT_H
#define BRK_TLS_CLIENT_H

#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#define BRK_TLS_CA_ENV "GSAP_CA_FILE"
#define BRK_TLS_REASON_MAX 200

/* Why a handshake failed, filled by the verification callback of one connection. A plain
 * value struct the caller owns; it must outlive the bufferevent it was given to. */
typedef struct brk_tls_diag {
    char reason[BRK_TLS_REASON_MAX]; /* "" until a check fails */
} brk_tls_diag_t;

/*
 * brk_tls_client_ctx_new: a client SSL_CTX with peer verification on. ca_file (PEM, may be
 * NULL: the system store) is the only trust anchor when given. On 0 *out is owned by the
 * caller (SSL_CTX_free). Returns BRK_ECRYPTO (err says why: an unreadable CA file, ...) or
 * BRK_ENOMEM. err (errlen bytes) is always NUL-terminated. Any thread.
 */
int brk_tls_client_ctx_new(const char *ca_file, SSL_CTX **out, char *err, size_t errlen);

/*
 * brk_tls_client_bev_new: a not yet connected OpenSSL bufferevent on base for a connection
 * to host (a DNS name or an IP literal without brackets): SNI for names, and the expected
 * name or address set for verification; diag (zeroed here) records the first failed check.
 * For evhttp_connection_base_bufferevent_new, which
 * connects it and frees it with the connection (BEV_OPT_CLOSE_ON_FREE frees the SSL too).
 * On 0 *out is owned by the caller. Returns BRK_ENOMEM or BRK_ECRYPTO. Loop thread of base.
 */
int brk_tls_client_bev_new(struct event_base *base, SSL_CTX *ctx, const char *host,
                           brk_tls_diag_t *diag, struct bufferevent **out);

/*
 * brk_tls_client_failure: after a failed exchange on bev (from brk_tls_client_bev_new with
 * diag), why TLS failed, into buf ("certificate verify failed: self-signed certificate",
 * ...): returns 1 when TLS itself failed (a certificate or handshake error), 0 when nothing
 * TLS-specific went wrong (the connection was refused or timed out; buf is then "").
 * bev may be NULL (connection already gone: only diag is consulted).
 */
int brk_tls_client_failure(struct bufferevent *bev, const brk_tls_diag_t *diag, char *buf,
                           size_t cap);

/* brk_host_is_loopback: 1 when host is "localhost", an address in 127.0.0.0/8 or ::1 (IPv6
 * without brackets), else 0. A name is not resolved: only the literal forms count. */
int brk_host_is_loopback(const char *host);

#endif
