/*
 * brk_tls: see brk_tls.h. Each handshake takes references to the current (leaf, key, chain)
 * under the mutex and installs them on its own SSL (SSL_use_cert_and_key), so a reload never
 * changes material a handshake is using: the old objects live until their last SSL is freed.
 *
 * Client certificates (the mtls identity driver). Which CA a client certificate must chain
 * to depends on the tenant, known only once a request arrives, so the handshake asks for a
 * certificate (SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT: API-key clients without one
 * still connect) and accepts any chain (a cert-verify callback that returns 1 without
 * trusting anything); OpenSSL still checks the client's CertificateVerify signature, so the
 * peer holds the certificate's key. The chain is verified per request (brk_mtls_verify).
 *
 * Finding the SSL of a request: libh2o 2.2.5 keeps struct st_h2o_socket_ssl_t private (its
 * SSL is the second field), and has no accessor for it. Reading that private layout would
 * break silently on any change to h2o. Instead the SSL finds its socket through public
 * OpenSSL calls: h2o installs its own BIO (named "h2o_socket", its data the h2o_socket_t) on
 * every server SSL before the handshake (lib/common/socket.c, setup_bio). An info callback
 * at the end of each handshake (full or resumed) records socket -> SSL in a table after
 * checking the BIO is h2o's by its method name; an SSL ex_data slot whose free callback runs
 * inside SSL_free (h2o frees the SSL before the socket) removes the entry. If a later h2o
 * changes its BIO, the name check fails and no certificate is ever found: mtls stops
 * authenticating (401), it never attributes a certificate to the wrong connection. The
 * table is process-wide under a mutex, so it holds whichever thread frees the SSL.
 */
#include "brk_tls.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <stdint.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "banned.h"

typedef struct material {
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
} material_t;

struct brk_tls {
    SSL_CTX *ctx;
    char *cert_file, *key_file;
    pthread_mutex_t lock;
    material_t cur; /* under lock */
};

/* Buckets of the socket -> SSL table (a power of two); entries chain, one per connection. */
#define BRK_TLS_PEER_BUCKETS 4096
/* The name libh2o 2.2.5 gives its socket BIO method (lib/common/socket.c). */
#define BRK_TLS_H2O_BIO_NAME "h2o_socket"
/* Session id context: with SSL_VERIFY_PEER, OpenSSL refuses to resume a session without one. */
#define BRK_TLS_SID_CTX "gsap-broker"

typedef struct peer_entry {
    const void *sock;
    SSL *ssl;
    struct peer_entry *next;
} peer_entry_t;

static pthread_mutex_t g_peer_lock = PTHREAD_MUTEX_INITIALIZER;
static peer_entry_t *g_peers[BRK_TLS_PEER_BUCKETS];
static int g_peer_idx = -1;
static pthread_once_t g_peer_once = PTHREAD_ONCE_INIT;

static size_t peer_bucket(const void *sock)
{
    uintptr_t p = (uintptr_t)sock;
    return (size_t)((p >> 4) ^ (p >> 16)) & (BRK_TLS_PEER_BUCKETS - 1);
}

/* Runs inside SSL_free: the connection is going away, so its entry goes too. */
static void peer_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr == NULL)
        return;
    pthread_mutex_lock(&g_peer_lock);
    for (peer_entry_t **pp = &g_peers[peer_bucket(ptr)]; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->sock == ptr && (*pp)->ssl == parent) {
            peer_entry_t *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&g_peer_lock);
}

static void peer_idx_init(void)
{
    g_peer_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_ex_free);
}

/* Records socket -> ssl once the handshake is done (resumed ones included). */
static void info_cb(const SSL *cssl, int where, int ret)
{
    SSL *ssl = (SSL *)cssl;
    BIO *b;
    const void *sock;
    (void)ret;
    if (!(where & SSL_CB_HANDSHAKE_DONE) || g_peer_idx < 0 ||
        SSL_get_ex_data(ssl, g_peer_idx) != NULL)
        return;
    if ((b = SSL_get_rbio(ssl)) == NULL || BIO_method_name(b) == NULL ||
        strcmp(BIO_method_name(b), BRK_TLS_H2O_BIO_NAME) != 0 || (sock = BIO_get_data(b)) == NULL)
        return;
    peer_entry_t *e = brk_calloc(1, sizeof *e);
    e->sock = sock;
    e->ssl = ssl;
    pthread_mutex_lock(&g_peer_lock);
    size_t h = peer_bucket(sock);
    e->next = g_peers[h];
    g_peers[h] = e;
    SSL_set_ex_data(ssl, g_peer_idx, (void *)sock);
    pthread_mutex_unlock(&g_peer_lock);
}

/* The handshake trusts no client chain: verification waits for the tenant (see above). */
static int accept_any_chain(X509_STORE_CTX *x, void *arg)
{
    (void)x;
    (void)arg;
    return 1;
}

int brk_tls_peer_get(const void *sock, X509 **leaf, STACK_OF(X509) **chain)
{
    int rc = BRK_ENOTFOUND;
    *leaf = NULL;
    *chain = NULL;
    if (sock == NULL)
        return rc;
    pthread_mutex_lock(&g_peer_lock);
    for (peer_entry_t *e = g_peers[peer_bucket(sock)]; e != NULL; e = e->next) {
        if (e->sock != sock)
            continue;
        X509 *x = SSL_get1_peer_certificate(e->ssl);
        if (x != NULL) {
            STACK_OF(X509) *c = SSL_get_peer_cert_chain(e->ssl);
            *leaf = x;
            *chain = c != NULL ? X509_chain_up_ref(c) : sk_X509_new_null();
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&g_peer_lock);
    return rc;
}

static void material_clear(material_t *m)
{
    X509_free(m->leaf);
    EVP_PKEY_free(m->key);
    sk_X509_pop_free(m->chain, X509_free);
    memset(m, 0, sizeof *m);
}

/* The last OpenSSL error as text (the queue is emptied). */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, cap, "no certificate or key found");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

static int material_load(const char *cert_file, const char *key_file, material_t *m, char *err,
                         size_t errlen)
{
    char why[256];
    BIO *b = NULL;
    X509 *x;
    int rc = BRK_EIO;

    memset(m, 0, sizeof *m);
    ERR_clear_error();
    if ((b = BIO_new_file(cert_file, "r")) == NULL ||
        (m->leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) == NULL) {
        snprintf(err, errlen, "cannot read the certificate GSAP_TLS_CERT (%s): %s", cert_file,
                 ossl_reason(why, sizeof why));
        goto out;
    }
    m->chain = sk_X509_new_null();
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        sk_X509_push(m->chain, x);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    BIO_free(b);
    if ((b = BIO_new_file(key_file, "r")) == NULL ||
        (m->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
        snprintf(err, errlen, "cannot read the key GSAP_TLS_KEY (%s): %s", key_file,
                 ossl_reason(why, sizeof why));
        goto out;
    }
    if (X509_check_private_key(m->leaf, m->key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "GSAP_TLS_KEY (%s) is not the key of GSAP_TLS_CERT (%s)", key_file,
                 cert_file);
        goto out;
    }
    rc = 0;
out:
    BIO_free(b);
    if (rc != 0)
        material_clear(m);
    return rc;
}

/* Runs on the worker, per handshake, before the server picks its certificate. */
static int cert_cb(SSL *ssl, void *arg)
{
    brk_tls_t *t = arg;
    material_t m;
    int ok;

    pthread_mutex_lock(&t->lock);
    m.leaf = t->cur.leaf;
    m.key = t->cur.key;
    X509_up_ref(m.leaf);
    EVP_PKEY_up_ref(m.key);
    m.chain = X509_chain_up_ref(t->cur.chain);
    pthread_mutex_unlock(&t->lock);
    ok = SSL_use_cert_and_key(ssl, m.leaf, m.key, m.chain, 1) == 1;
    material_clear(&m);
    return ok;
}

brk_tls_t *brk_tls_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    brk_tls_t *t = brk_calloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->cert_file = brk_strdup(cert_file);
    t->key_file = brk_strdup(key_file);
    if (material_load(cert_file, key_file, &t->cur, err, errlen) != 0)
        goto fail;
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        snprintf(err, errlen, "cannot create the TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* The context's own copy serves until the callback replaces it per handshake. */
    if (SSL_CTX_use_cert_and_key(t->ctx, t->cur.leaf, t->cur.key, t->cur.chain, 1) != 1) {
        snprintf(err, errlen, "cannot use the TLS certificate");
        goto fail;
    }
    SSL_CTX_set_cert_cb(t->ctx, cert_cb, t);
    /* Ask for a client certificate, require none, trust none at this stage (see the top). */
    pthread_once(&g_peer_once, peer_idx_init);
    if (g_peer_idx < 0 ||
        SSL_CTX_set_session_id_context(t->ctx, (const unsigned char *)BRK_TLS_SID_CTX,
                                       sizeof BRK_TLS_SID_CTX - 1) != 1) {
        snprintf(err, errlen, "cannot set up client certificates");
        goto fail;
    }
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_cert_verify_callback(t->ctx, accept_any_chain, NULL);
    SSL_CTX_set_info_callback(t->ctx, info_cb);
    /* A renegotiation could swap the client certificate under a connection's requests. */
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
    return t;
fail:
    brk_tls_free(t);
    return NULL;
}

SSL_CTX *brk_tls_ctx(brk_tls_t *t)
{
    return t->ctx;
}

int brk_tls_reload(brk_tls_t *t, char *err, size_t errlen)
{
    material_t m, old;
    if (material_load(t->cert_file, t->key_file, &m, err, errlen) != 0)
        return BRK_EIO;
    pthread_mutex_lock(&t->lock);
    old = t->cur;
    t->cur = m;
    pthread_mutex_unlock(&t->lock);
    material_clear(&old);
    return 0;
}

void brk_tls_subject(brk_tls_t *t, char *buf, size_t cap)
{
    pthread_mutex_lock(&t->lock);
    X509_NAME_oneline(X509_get_subject_name(t->cur.leaf), buf, (int)cap);
    pthread_mutex_unlock(&t->lock);
}

void brk_tls_free(brk_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    material_clear(&t->cur);
    pthread_mutex_destroy(&t->lock);
    free(t->cert_file);
    free(t->key_file);
    free(t);
}
