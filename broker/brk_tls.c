/*
 * brk_tls: see brk_tls.h. Each handshake takes references to the current (leaf, key, chain)
 * under the mutex and installs them on its own SSL (SSL_use_cert_and_key), so a reload never
 * changes material a handshake is using: the old objects live until their last SSL is freed.
 */
#include "brk_tls.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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
