/*
 * brk_tls: the server's TLS context, whose certificate and key can be replaced while it
 * serves (SIGHUP), without a restart and without dropping a connection.
 *
 * The SSL_CTX is made once and shared by every worker; the certificate material lives beside
 * it, behind a mutex, and a certificate callback hands each new handshake the material current
 * at that moment. A reload that fails (unreadable file, a key that does not match) keeps the
 * material in use. Owned by brk_server; brk_tls_reload runs on the main thread, the callback on
 * workers.
 *
 * The context also asks every client for a certificate, requires none and verifies none
 * during the handshake: a client certificate is only captured, for brk_tls_peer_get, and
 * checked per request against the tenant's CA (brk_mtls.h). Never trust a certificate from
 * brk_tls_peer_get before brk_mtls_verify accepted it.
 */
#ifndef BRK_TLS_H
#define BRK_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

typedef struct brk_tls brk_tls_t;

/* brk_tls_new: a TLS 1.2+ server context with the PEM chain cert_file (leaf first) and the
 * PEM key key_file. NULL with a message in err when they cannot be loaded or do not match. */
brk_tls_t *brk_tls_new(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* brk_tls_ctx: the context for h2o's accept (owned by t). */
SSL_CTX *brk_tls_ctx(brk_tls_t *t);

/* brk_tls_reload: reads both files again; handshakes from now on use them. Returns 0, or
 * BRK_EIO with a message in err and the previous certificate still in use. */
int brk_tls_reload(brk_tls_t *t, char *err, size_t errlen);

/* brk_tls_subject: the current leaf's subject, one line, into buf. */
void brk_tls_subject(brk_tls_t *t, char *buf, size_t cap);

void brk_tls_free(brk_tls_t *t);

/*
 * brk_tls_peer_get: the client certificate of the TLS connection whose h2o_socket_t is sock
 * (h2o_conn_t callbacks->get_socket), UNVERIFIED. Returns 0 with *leaf and *chain (the
 * other certificates the client sent, possibly empty) as new references the caller frees
 * (X509_free, sk_X509_pop_free(.., X509_free)); BRK_ENOTFOUND when the connection is not TLS
 * or sent no certificate. Any thread; the table is shared by all workers.
 */
int brk_tls_peer_get(const void *sock, X509 **leaf, STACK_OF(X509) **chain);

#endif
