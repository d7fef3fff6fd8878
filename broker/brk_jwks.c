/*
 * brk_jwks: JWKS cache and fetch thread; see brk_jwks.h. One mutex guards the table; the
 * fetch thread holds it only to pick an entry and to install the result, never across the
 * network. An entry being fetched is pinned (never evicted), so the thread finds it again.
 */
#include "brk_jwks.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_tls_client.h"
#include "banned.h"

#define KEY_MAX (BRK_JWT_URL_MAX + 1)

typedef struct entry {
    int used;
    int is_url;
    int fetching;
    int want;          /* a refetch was asked for (unknown kid) */
    char key[KEY_MAX]; /* the URL, or the hex digest of an inline document */
    brk_jwks_t *ks;
    time_t fetched_at;   /* last successful fetch (0: never) */
    time_t attempted_at; /* last fetch attempt */
    time_t last_used;
} entry_t;

struct brk_jwks_cache {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stop;
    unsigned refresh_s;
    SSL_CTX *tls;
    entry_t e[BRK_JWKS_CACHE_MAX];
};

static time_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

/* The entry for key, or a free / least recently used unpinned slot made ready for it. */
static entry_t *slot_for(brk_jwks_cache_t *c, const char *key, int is_url)
{
    entry_t *victim = NULL;
    for (size_t i = 0; i < BRK_JWKS_CACHE_MAX; i++) {
        entry_t *e = &c->e[i];
        if (e->used && e->is_url == is_url && strcmp(e->key, key) == 0)
            return e;
        if (!e->used) {
            if (victim == NULL || victim->used)
                victim = e;
        } else if (!e->fetching &&
                   (victim == NULL || (victim->used && e->last_used < victim->last_used))) {
            victim = e;
        }
    }
    if (victim == NULL)
        return NULL;
    brk_jwks_unref(victim->ks);
    memset(victim, 0, sizeof *victim);
    victim->used = 1;
    victim->is_url = is_url;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    return victim;
}

int brk_jwks_cache_url(brk_jwks_cache_t *c, const char *url, int unknown_kid, brk_jwks_t **out)
{
    int rc = BRK_EAGAIN;
    time_t now = now_s();
    unsigned min = c->refresh_s < BRK_JWKS_REFETCH_MIN_S ? c->refresh_s : BRK_JWKS_REFETCH_MIN_S;

    *out = NULL;
    if (strlen(url) >= KEY_MAX)
        return BRK_EINVAL;
    pthread_mutex_lock(&c->mu);
    entry_t *e = slot_for(c, url, 1);
    if (e != NULL) {
        e->last_used = now;
        if (e->ks != NULL) {
            *out = brk_jwks_ref(e->ks);
            rc = 0;
        }
        if (e->ks == NULL || (unknown_kid && now - e->attempted_at >= (time_t)min)) {
            e->want = 1;
            pthread_cond_signal(&c->cv);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int brk_jwks_cache_inline(brk_jwks_cache_t *c, const char *text, size_t n, brk_jwks_t **out)
{
    uint8_t d[BRK_SHA256_LEN];
    char hex[2 * BRK_SHA256_LEN + 1];
    brk_jwks_t *ks = NULL;
    char msg[128];
    int rc;

    *out = NULL;
    brk_sha256(text, n, d);
    brk_hex(d, sizeof d, hex);
    pthread_mutex_lock(&c->mu);
    entry_t *e = slot_for(c, hex, 0);
    if (e != NULL && e->ks != NULL) {
        e->last_used = now_s();
        *out = brk_jwks_ref(e->ks);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    /* Parsed outside the lock; two threads racing here both parse, one result is kept. */
    rc = brk_jwks_parse(text, n, &ks, msg, sizeof msg);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    e = slot_for(c, hex, 0);
    if (e != NULL) {
        e->last_used = now_s();
        if (e->ks == NULL)
            e->ks = brk_jwks_ref(ks);
    }
    pthread_mutex_unlock(&c->mu);
    *out = ks;
    return 0;
}

/* ---- the fetch thread ---- */

typedef struct fetch {
    struct event_base *base;
    int done;
    int status;
    char *body;
    size_t len;
    brk_tls_diag_t diag;
} fetch_t;

static void on_fetched(struct evhttp_request *req, void *arg)
{
    fetch_t *f = arg;
    f->done = 1;
    f->status = req ? evhttp_request_get_response_code(req) : 0;
    if (req != NULL && f->status == 200) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        if (n <= BRK_JWKS_MAX_BYTES) {
            f->body = brk_malloc(n + 1);
            evbuffer_remove(b, f->body, n);
            f->body[n] = '\0';
            f->len = n;
        }
    }
    event_base_loopbreak(f->base);
}

/* fetch_url: GET url on base; the body (malloc'd) of a 200 within the size limit, or NULL. */
static char *fetch_url(brk_jwks_cache_t *c, struct event_base *base, const char *url, size_t *len,
                       char *why, size_t whylen)
{
    struct evhttp_uri *uri = evhttp_uri_parse(url);
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req = NULL;
    struct bufferevent *bev = NULL;
    fetch_t f = {.base = base};
    char target[BRK_JWT_URL_MAX + 2], hosthdr[300], bare[256];
    const char *host, *path, *query;
    int tls, port;

    snprintf(why, whylen, "the URL does not parse");
    if (uri == NULL || (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0')
        goto out;
    tls = evhttp_uri_get_scheme(uri) && strcasecmp(evhttp_uri_get_scheme(uri), "https") == 0;
    port = evhttp_uri_get_port(uri) < 0 ? (tls ? 443 : 80) : evhttp_uri_get_port(uri);
    path = evhttp_uri_get_path(uri);
    query = evhttp_uri_get_query(uri);
    snprintf(target, sizeof target, "%s%s%s", path && *path ? path : "/", query ? "?" : "",
             query ? query : "");
    snprintf(bare, sizeof bare, "%.*s", (int)strlen(host) - (host[0] == '[' ? 2 : 0),
             host + (host[0] == '['));
    snprintf(hosthdr, sizeof hosthdr, strchr(bare, ':') ? "[%s]:%d" : "%s:%d", bare, port);
    if (tls && (c->tls == NULL || brk_tls_client_bev_new(base, c->tls, bare, &f.diag, &bev) != 0)) {
        snprintf(why, whylen, "cannot set up TLS");
        goto out;
    }
    conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, bare, (unsigned short)port);
    if (conn == NULL) {
        if (bev)
            bufferevent_free(bev);
        snprintf(why, whylen, "cannot connect");
        goto out;
    }
    evhttp_connection_set_timeout(conn, BRK_JWKS_FETCH_TIMEOUT_S);
    evhttp_connection_set_retries(conn, 0);
    evhttp_connection_set_max_body_size(conn, BRK_JWKS_MAX_BYTES);
    evhttp_connection_set_max_headers_size(conn, 16 * 1024);
    req = evhttp_request_new(on_fetched, &f);
    if (req == NULL)
        goto out;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hosthdr);
    evhttp_add_header(h, "Accept", "application/jwk-set+json, application/json");
    evhttp_add_header(h, "Connection", "close");
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, target) != 0) {
        snprintf(why, whylen, "cannot send the request");
        goto out; /* libevent freed req */
    }
    while (!f.done && event_base_loop(base, EVLOOP_ONCE) == 0)
        ;
    if (f.body == NULL) {
        char tlswhy[BRK_TLS_REASON_MAX];
        if (tls && brk_tls_client_failure(NULL, &f.diag, tlswhy, sizeof tlswhy))
            snprintf(why, whylen, "TLS: %s", tlswhy);
        else if (f.status != 0)
            snprintf(why, whylen, "status %d (or a body over %d bytes)", f.status,
                     BRK_JWKS_MAX_BYTES);
        else
            snprintf(why, whylen, "no response within %d s (or larger than %d bytes)",
                     BRK_JWKS_FETCH_TIMEOUT_S, BRK_JWKS_MAX_BYTES);
    }
out:
    if (conn)
        evhttp_connection_free(conn);
    if (uri)
        evhttp_uri_free(uri);
    *len = f.len;
    return f.body;
}

static entry_t *due(brk_jwks_cache_t *c, time_t now)
{
    unsigned min = c->refresh_s < BRK_JWKS_REFETCH_MIN_S ? c->refresh_s : BRK_JWKS_REFETCH_MIN_S;
    for (size_t i = 0; i < BRK_JWKS_CACHE_MAX; i++) {
        entry_t *e = &c->e[i];
        if (!e->used || !e->is_url || e->fetching || now - e->last_used > BRK_JWKS_IDLE_S)
            continue;
        if (e->ks == NULL && (e->attempted_at == 0 || now - e->attempted_at >= BRK_JWKS_RETRY_S ||
                              (e->want && now - e->attempted_at >= (time_t)min)))
            return e;
        if (e->ks != NULL && now - e->fetched_at >= (time_t)c->refresh_s)
            return e;
        if (e->want && now - e->attempted_at >= (time_t)min)
            return e;
    }
    return NULL;
}

static void *fetch_main(void *arg)
{
    brk_jwks_cache_t *c = arg;
    struct event_base *base = event_base_new();
    char url[KEY_MAX], why[256], msg[160];

    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        entry_t *e = base ? due(c, now_s()) : NULL;
        if (e == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            continue;
        }
        e->fetching = 1;
        e->want = 0;
        e->attempted_at = now_s();
        snprintf(url, sizeof url, "%s", e->key);
        pthread_mutex_unlock(&c->mu);

        size_t len = 0;
        brk_jwks_t *ks = NULL;
        char *body = fetch_url(c, base, url, &len, why, sizeof why);
        int rc = body ? brk_jwks_parse(body, len, &ks, msg, sizeof msg) : BRK_EIO;
        free(body);
        if (body == NULL)
            brk_log_warn("jwks fetch failed", "url", url, "reason", why);
        else if (rc != 0)
            brk_log_warn("jwks refused", "url", url, "reason", msg);

        pthread_mutex_lock(&c->mu);
        e->fetching = 0;
        if (ks != NULL) {
            brk_jwks_unref(e->ks);
            e->ks = ks;
            e->fetched_at = now_s();
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (base)
        event_base_free(base);
    return NULL;
}

int brk_jwks_cache_new(unsigned refresh_s, const char *ca_file, brk_jwks_cache_t **out)
{
    brk_jwks_cache_t *c = brk_calloc(1, sizeof *c);
    char err[256];
    pthread_condattr_t ca;

    *out = NULL;
    c->refresh_s = refresh_s ? refresh_s : BRK_JWKS_REFRESH_S;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Without a usable CA store https fetches fail (logged); plain loopback ones still work. */
    if (brk_tls_client_ctx_new(ca_file, &c->tls, err, sizeof err) != 0)
        brk_log_warn("jwks https fetches disabled", "reason", err);
    /* brk_server_run waits for SIGTERM, SIGINT and SIGHUP with sigwait: no other thread may
     * take them; SIGPIPE too, since an identity provider may reset a connection. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&c->thread, NULL, fetch_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        SSL_CTX_free(c->tls);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return BRK_ENOMEM;
    }
    *out = c;
    return 0;
}

void brk_jwks_cache_free(brk_jwks_cache_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (size_t i = 0; i < BRK_JWKS_CACHE_MAX; i++)
        brk_jwks_unref(c->e[i].ks);
    SSL_CTX_free(c->tls);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
