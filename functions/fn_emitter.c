/*
 * fn_emitter: the Chronicle emitter, an asynchronous function that POSTs every event to
 * CHRONICLE_WEBHOOK_URL as a CloudEvents 1.0 structured-mode JSON document
 * (Content-Type: application/cloudevents+json):
 *
 *   {"specversion": "1.0", "id": <event CID>, "source": <GSAP_PUBLIC_URL>,
 *    "type": "dev.gsap." + the type without "GSAP_", lowercase, '_' -> '.'
 *            (GSAP_CR_RECEIVED -> dev.gsap.cr.received),
 *    "time": <created_at, RFC 3339 UTC with microseconds>, "subject": <context id, omitted
 *    when the event has none>, "datacontenttype": "application/json", "data": <payload>,
 *    "gsaptenant": <tenant>}
 *
 * A 2xx answer is success; any other status, a connection error or FN_EMIT_TIMEOUT_S
 * without progress fails the run, and the runtime retries it with backoff. Delivery is
 * at-least-once: the id is the event's CID, stable across retries, so receivers dedupe.
 *
 * http:// or https://: with https the connection is an OpenSSL bufferevent from
 * broker/brk_tls_client, verifying the receiver's certificate and host name against the
 * system store or GSAP_CA_FILE (the same rule as `gsap-broker exec`). The TLS context is made
 * once, when the function is enabled, and kept for the life of the process; a CA file that
 * does not load disables the emitter with an error at start.
 *
 * Caveats: the host name is resolved with a
 * blocking getaddrinfo on the runtime thread (no evdns base): fine for an IP address or a
 * local name, slow for a remote name whose DNS is down.
 *
 * Ownership: one emit_t per POST holds the evhttp connection. libevent calls on_response
 * from inside the connection's own machinery (in 2.1.12 a refused connection is even
 * reported before a self-freeing connection would free itself), so the connection is freed
 * from a separate zero-delay event, and only then is the run reported finished; a stop
 * that waits for the run therefore also waits for its connection to be released.
 * Runtime thread only.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_event.h"
#include "brk_log.h"
#include "brk_tls_client.h"
#include "fn.h"
#include "banned.h"

#define FN_EMIT_TIMEOUT_S 5     /* connect, send and each read; the runtime's lease is 30 s */
#define FN_EMIT_TARGET_MAX 2048 /* path and query of the webhook URL */
#define FN_EMIT_HOST_MAX 300
#define FN_EMIT_MAX_RESPONSE (64 * 1024) /* the answer's body is ignored; cap what is read */
#define FN_EMIT_MAX_RESPONSE_HEADERS (16 * 1024)
#define FN_EMIT_TYPE_MAX 96
#define FN_EMIT_CONTENT_TYPE "application/cloudevents+json"
#define FN_EMIT_USER_AGENT "gsap-broker-chronicle-emitter"
#define FN_EMIT_TYPE_PREFIX "dev.gsap."
#define FN_EMIT_ERR_MAX 320

/* The https client context: made by emit_enabled, read by emit_start (runtime thread). */
static pthread_mutex_t emit_tls_mu = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *emit_tls_ctx;

typedef struct emit {
    fn_async_t *job;
    struct event_base *base;
    struct evhttp_connection *conn;
    int in_make;  /* inside evhttp_make_request: start() finishes the run itself */
    int answered; /* on_response ran */
    int tls;
    brk_tls_diag_t diag; /* outlives the connection's SSL: freed with e, after conn */
    char err[FN_EMIT_ERR_MAX];
} emit_t;

static const char *const emit_types[] = {
    "GSAP_AC_ISSUED",
    "GSAP_AC_PENDING",
    "GSAP_AC_DENIED",
    "GSAP_ELEVATION_APPROVAL_RECORDED",
    "GSAP_ELEVATION_APPROVED",
    "GSAP_ELEVATION_REFUSED",
    "GSAP_CR_RECEIVED",
    "GSAP_CR_REFUSED",
    BRK_EV_DELEGATION_CREATED,
    BRK_EV_DELEGATION_REVOKED,
    NULL,
};

/* The CloudEvents type of an event type: GSAP_CR_RECEIVED -> dev.gsap.cr.received. */
static void ce_type(const char *type, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "%s", FN_EMIT_TYPE_PREFIX);
    if (strncmp(type, "GSAP_", 5) == 0)
        type += 5;
    for (; *type && len + 1 < cap; type++)
        buf[len++] = *type == '_' ? '.' : (char)tolower((unsigned char)*type);
    buf[len] = '\0';
}

/* finish: releases the connection and reports the run. Never inside a libevent callback of
 * the connection itself. */
static void finish(emit_t *e)
{
    fn_async_t *job = e->job;
    char err[sizeof e->err];
    int ok = e->err[0] == '\0';
    memcpy(err, e->err, sizeof err);
    if (e->conn)
        evhttp_connection_free(e->conn);
    free(e);
    fn_async_done(job, ok ? NULL : err);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    finish(arg);
}

static void on_error(enum evhttp_request_error error, void *arg)
{
    emit_t *e = arg;
    static const char *const names[] = {
        [EVREQ_HTTP_TIMEOUT] = "timed out",
        [EVREQ_HTTP_EOF] = "closed the connection",
        [EVREQ_HTTP_INVALID_HEADER] = "sent a malformed response",
        [EVREQ_HTTP_BUFFER_ERROR] = "connection failed",
        [EVREQ_HTTP_REQUEST_CANCEL] = "request cancelled",
        [EVREQ_HTTP_DATA_TOO_LONG] = "response too large",
    };
    size_t i = (size_t)error;
    snprintf(e->err, sizeof e->err, "webhook %s",
             i < sizeof names / sizeof names[0] && names[i] ? names[i] : "error");
}

static void on_response(struct evhttp_request *req, void *arg)
{
    emit_t *e = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    struct timeval now = {0, 0};

    if (e->answered)
        return;
    e->answered = 1;
    if (code >= 200 && code < 300) {
        e->err[0] = '\0';
    } else if (code != 0) {
        snprintf(e->err, sizeof e->err, "webhook answered %d", code);
    } else if (e->tls) {
        char why[BRK_TLS_REASON_MAX + 64];
        if (brk_tls_client_failure(evhttp_connection_get_bufferevent(e->conn), &e->diag, why,
                                   sizeof why))
            snprintf(e->err, sizeof e->err, "webhook %s", why);
    }
    if (code == 0 && e->err[0] == '\0')
        snprintf(e->err, sizeof e->err, "webhook connection failed");
    if (e->in_make)
        return;
    if (event_base_once(e->base, -1, EV_TIMEOUT, on_deferred, e, &now) != 0) {
        /* Out of memory for a timer: report the run now and leave the connection. */
        e->conn = NULL;
        finish(e);
    }
}

/* The CloudEvent for ev as compact JSON (malloc'd, caller frees), or NULL. */
static char *cloudevent(const fn_env_t *env, const fn_event_t *ev)
{
    char type[FN_EMIT_TYPE_MAX];
    json_t *ce;
    char *s = NULL;

    ce_type(ev->type, type, sizeof type);
    ce = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:s}", "specversion", "1.0", "id", ev->cid,
                   "source", env->cfg->public_url, "type", type, "time", ev->created_at,
                   "datacontenttype", "application/json", "data", ev->payload, "gsaptenant",
                   ev->tenant);
    if (ce != NULL && ev->context_id != NULL)
        json_object_set_new(ce, "subject", json_string(ev->context_id));
    if (ce != NULL)
        s = json_dumps(ce, JSON_COMPACT);
    json_decref(ce);
    return s;
}

static int emit_start(const fn_env_t *env, const fn_event_t *ev, fn_async_t *job, char *err,
                      size_t errlen)
{
    struct evhttp_uri *uri = NULL;
    struct evhttp_request *req = NULL;
    emit_t *e = NULL;
    char *body = NULL, target[FN_EMIT_TARGET_MAX], hosthdr[FN_EMIT_HOST_MAX];
    const char *host, *path, *query;
    char bare[FN_EMIT_HOST_MAX];
    struct bufferevent *bev = NULL;
    int port, tls, rc = BRK_EIO;

    if ((uri = evhttp_uri_parse(env->cfg->webhook_url)) == NULL ||
        (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0') {
        snprintf(err, errlen, "CHRONICLE_WEBHOOK_URL does not parse");
        rc = BRK_EINVAL;
        goto out;
    }
    tls = evhttp_uri_get_scheme(uri) && strcasecmp(evhttp_uri_get_scheme(uri), "https") == 0;
    port = evhttp_uri_get_port(uri) < 0 ? (tls ? 443 : 80) : evhttp_uri_get_port(uri);
    path = evhttp_uri_get_path(uri);
    query = evhttp_uri_get_query(uri);
    if ((size_t)snprintf(target, sizeof target, "%s%s%s", path && *path ? path : "/",
                         query ? "?" : "", query ? query : "") >= sizeof target ||
        (size_t)snprintf(hosthdr, sizeof hosthdr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                         port) >= sizeof hosthdr) {
        snprintf(err, errlen, "CHRONICLE_WEBHOOK_URL is too long");
        rc = BRK_EINVAL;
        goto out;
    }
    if ((body = cloudevent(env, ev)) == NULL) {
        snprintf(err, errlen, "cannot build the CloudEvent");
        rc = BRK_EINTERNAL;
        goto out;
    }
    e = brk_calloc(1, sizeof *e);
    e->job = job;
    e->base = env->base;
    e->tls = tls;
    /* The TLS name check wants an IPv6 literal without its brackets. */
    snprintf(bare, sizeof bare, "%.*s", (int)strlen(host) - (host[0] == '[' ? 2 : 0),
             host + (host[0] == '['));
    if (tls && (emit_tls_ctx == NULL ||
                brk_tls_client_bev_new(env->base, emit_tls_ctx, bare, &e->diag, &bev) != 0)) {
        snprintf(err, errlen, "cannot set up TLS for the webhook");
        goto out;
    }
    /* The connection owns bev from here (NULL: a plain socket it makes itself). */
    e->conn =
        evhttp_connection_base_bufferevent_new(env->base, NULL, bev, bare, (unsigned short)port);
    if (e->conn == NULL && bev)
        bufferevent_free(bev);
    if (e->conn == NULL || (req = evhttp_request_new(on_response, e)) == NULL) {
        snprintf(err, errlen, "cannot create the webhook request");
        goto out;
    }
    evhttp_connection_set_timeout(e->conn, FN_EMIT_TIMEOUT_S);
    evhttp_connection_set_retries(e->conn, 0); /* the runtime retries, with backoff */
    evhttp_connection_set_max_body_size(e->conn, FN_EMIT_MAX_RESPONSE);
    evhttp_connection_set_max_headers_size(e->conn, FN_EMIT_MAX_RESPONSE_HEADERS);
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hosthdr);
    evhttp_add_header(h, "Content-Type", FN_EMIT_CONTENT_TYPE);
    evhttp_add_header(h, "User-Agent", FN_EMIT_USER_AGENT);
    evhttp_add_header(h, "Connection", "close");
    if (evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body)) != 0) {
        evhttp_request_free(req);
        snprintf(err, errlen, "cannot queue the webhook body");
        goto out;
    }
    e->in_make = 1;
    rc = evhttp_make_request(e->conn, req, EVHTTP_REQ_POST, target);
    e->in_make = 0;
    if (e->answered) { /* failed (and was reported to us) before make_request returned */
        finish(e);
        e = NULL;
        rc = 0;
    } else if (rc != 0) {
        /* libevent either freed the request or left it unqueued; it cannot be told which,
         * so it is not touched: a leak in a path that needs an allocation failure. */
        snprintf(err, errlen, "cannot send the webhook request");
        rc = BRK_EIO;
    } else {
        e = NULL; /* on_response owns it now */
    }
out:
    if (e != NULL) {
        if (e->conn)
            evhttp_connection_free(e->conn);
        free(e);
    }
    free(body);
    if (uri)
        evhttp_uri_free(uri);
    return rc;
}

static int emit_enabled(const fn_env_t *env)
{
    const char *url = env->cfg->webhook_url;
    char err[FN_EMIT_ERR_MAX];
    int ok = 1;

    if (url == NULL)
        return 0;
    if (strncasecmp(url, "https://", 8) == 0) {
        /* Once per process; kept for its life (every later POST uses it). */
        pthread_mutex_lock(&emit_tls_mu);
        if (emit_tls_ctx == NULL &&
            brk_tls_client_ctx_new(getenv(BRK_TLS_CA_ENV), &emit_tls_ctx, err, sizeof err) != 0) {
            brk_log_error("chronicle emitter disabled: no TLS client context", "error", err);
            ok = 0;
        }
        pthread_mutex_unlock(&emit_tls_mu);
        return ok;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        brk_log_error("chronicle emitter disabled: the webhook url is not http:// or https://",
                      "variable", "CHRONICLE_WEBHOOK_URL");
        return 0;
    }
    return 1;
}

const fn_def_t fn_emitter = {
    .name = "chronicle_emitter",
    .event_types = emit_types,
    .start = emit_start,
    .enabled = emit_enabled,
};
