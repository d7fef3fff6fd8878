/*
 * exec_http: the broker client of `gsap-broker exec` (see exec_http.h).
 *
 * One connection and one event_base per request, "Connection: close". With https the
 * connection is an OpenSSL bufferevent from broker/brk_tls_client, so the certificate chain
 * and the host name are checked before evhttp writes the request (and the token).
 */
#include "exec_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_json.h"
#include "brk_tls_client.h"
#include "banned.h"

#define CLI_HTTP_USER_AGENT "gsap-broker-exec/1"
#define CLI_HTTP_AUTH_MAX (CLI_HTTP_TOKEN_MAX + 16)

void cli_http_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int cli_http_init(cli_http_t *h, const char *url, const char *token, const char *ca_file,
                  int insecure, char *err, size_t errlen)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme, *host, *path;
    size_t hl, pl;
    int port, rc = BRK_EINVAL;

    memset(h, 0, sizeof *h);
    h->url = url;
    h->token = token;
    if (u == NULL) {
        snprintf(err, errlen, "GSAP_BROKER_URL \"%s\" is not a URL", url);
        goto out;
    }
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    path = evhttp_uri_get_path(u);
    port = evhttp_uri_get_port(u);
    if (scheme == NULL || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "GSAP_BROKER_URL \"%s\": only http:// and https:// are supported",
                 url);
        goto out;
    }
    h->tls = strcasecmp(scheme, "https") == 0;
    if (host == NULL || (hl = strlen(host)) == 0 || hl >= sizeof h->host ||
        evhttp_uri_get_userinfo(u) != NULL || port == 0 || port > 65535) {
        snprintf(err, errlen,
                 "GSAP_BROKER_URL \"%s\" needs a host, an optional port and no user "
                 "info",
                 url);
        goto out;
    }
    h->port = (unsigned short)(port < 0 ? (h->tls ? 443 : 80) : port);
    /* evhttp_uri keeps an IPv6 literal in its brackets; connect() and TLS want it bare. */
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']')
        snprintf(h->host, sizeof h->host, "%.*s", (int)(hl - 2), host + 1);
    else
        snprintf(h->host, sizeof h->host, "%s", host);
    snprintf(h->host_header, sizeof h->host_header, "%s:%u", host, h->port);
    pl = path ? strlen(path) : 0;
    while (pl > 0 && path[pl - 1] == '/')
        pl--;
    if (pl >= sizeof h->prefix) {
        snprintf(err, errlen, "GSAP_BROKER_URL: the path is longer than %d bytes",
                 CLI_HTTP_PREFIX_MAX - 1);
        goto out;
    }
    snprintf(h->prefix, sizeof h->prefix, "%.*s", (int)pl, pl ? path : "");
    /* A bearer token in clear text is readable by everyone on the path; on loopback the path
     * is this machine (the SandboxExec rule). */
    if (!h->tls && token != NULL && !insecure && !brk_host_is_loopback(h->host)) {
        snprintf(err, errlen,
                 "GSAP_BROKER_URL \"%s\": refusing to send GSAP_TOKEN over plain http to a host "
                 "that is not loopback (use https://, or set GSAP_INSECURE=1)",
                 url);
        rc = BRK_EFORBIDDEN;
        goto out;
    }
    if (h->tls && (rc = brk_tls_client_ctx_new(ca_file, &h->tls_ctx, err, errlen)) != 0)
        goto out;
    rc = 0;
out:
    if (u)
        evhttp_uri_free(u);
    return rc;
}

void cli_http_clear(cli_http_t *h)
{
    SSL_CTX_free(h->tls_ctx);
    h->tls_ctx = NULL;
}

typedef struct http_call {
    struct event_base *base;
    cli_http_resp_t *out;
    int err; /* 0, or how the transfer failed */
} http_call_t;

void cli_http_resp_clear(cli_http_resp_t *r)
{
    free(r->body);
    if (r->json)
        json_decref(r->json);
    memset(r, 0, sizeof *r);
}

int cli_http_unreachable(int rc)
{
    return rc == BRK_EIO || rc == BRK_ETIMEDOUT;
}

/* Called before http_on_done when the transfer fails; keeps the most telling reason. */
static void http_on_error(enum evhttp_request_error e, void *arg)
{
    http_call_t *c = arg;
    c->err = e == EVREQ_HTTP_DATA_TOO_LONG ? BRK_ETOOBIG
             : e == EVREQ_HTTP_TIMEOUT     ? BRK_ETIMEDOUT
                                           : BRK_EIO;
}

static void http_on_done(struct evhttp_request *req, void *arg)
{
    http_call_t *c = arg;
    struct evbuffer *in;
    size_t n;

    /* One request per base: whatever happened, this dispatch is over. */
    event_base_loopbreak(c->base);
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        if (c->err == 0)
            c->err = BRK_EIO;
        return;
    }
    in = evhttp_request_get_input_buffer(req);
    n = evbuffer_get_length(in);
    if (n > CLI_HTTP_MAX_RESPONSE) {
        c->err = BRK_ETOOBIG;
        return;
    }
    c->out->status = evhttp_request_get_response_code(req);
    if (n > 0) {
        c->out->body = brk_malloc(n + 1);
        if (evbuffer_remove(in, c->out->body, n) != (int)n) {
            c->err = BRK_EIO;
            return;
        }
        c->out->body[n] = '\0';
        c->out->len = n;
    }
}

static void http_add_headers(const cli_http_t *h, struct evhttp_request *req, const char *path,
                             int has_body, const char *idempotency_key)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    char auth[CLI_HTTP_AUTH_MAX];

    evhttp_add_header(hd, "Host", h->host_header);
    evhttp_add_header(hd, "Accept", "application/json");
    evhttp_add_header(hd, "User-Agent", CLI_HTTP_USER_AGENT);
    evhttp_add_header(hd, "Connection", "close");
    /* The token goes only where a role is needed, not to the public key document. */
    if (h->token && strncmp(path, "/.well-known/", 13) != 0) {
        snprintf(auth, sizeof auth, "Bearer %s", h->token);
        evhttp_add_header(hd, "Authorization", auth);
    }
    if (has_body)
        evhttp_add_header(hd, "Content-Type", "application/json");
    if (idempotency_key)
        evhttp_add_header(hd, "Idempotency-Key", idempotency_key);
}

int cli_http_once(cli_http_t *h, enum evhttp_cmd_type method, const char *path, const char *body,
                  const char *idempotency_key, cli_http_resp_t *out)
{
    struct event_base *base = NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req = NULL;
    struct bufferevent *bev = NULL;
    brk_tls_diag_t diag = {{0}};
    http_call_t call = {0};
    char uri[CLI_HTTP_PREFIX_MAX + 256];
    int rc = BRK_ENOMEM;

    memset(out, 0, sizeof *out);
    h->tls_error[0] = '\0';
    snprintf(uri, sizeof uri, "%s%s", h->prefix, path);
    if ((base = event_base_new()) == NULL)
        goto out;
    if (h->tls) {
        if ((rc = brk_tls_client_bev_new(base, h->tls_ctx, h->host, &diag, &bev)) != 0)
            goto out;
        rc = BRK_ENOMEM;
    }
    /* The connection owns bev from here (and frees it), also when this fails. */
    if ((conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, h->host, h->port)) == NULL)
        goto out;
    evhttp_connection_set_timeout(conn, CLI_HTTP_TIMEOUT_S);
    evhttp_connection_set_max_body_size(conn, CLI_HTTP_MAX_RESPONSE);
    call.base = base;
    call.out = out;
    if ((req = evhttp_request_new(http_on_done, &call)) == NULL)
        goto out;
    evhttp_request_set_error_cb(req, http_on_error);
    http_add_headers(h, req, path, body != NULL, idempotency_key);
    if (body && evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body)) != 0) {
        evhttp_request_free(req);
        goto out;
    }
    /* The connection owns the request from here, also when this fails. */
    if (evhttp_make_request(conn, req, method, uri) != 0) {
        rc = BRK_EIO;
        goto out;
    }
    event_base_dispatch(base);
    rc = call.err;
    if (rc == 0 && out->status == 0)
        rc = BRK_EIO;
    if (rc != 0 && h->tls &&
        brk_tls_client_failure(evhttp_connection_get_bufferevent(conn), &diag, h->tls_error,
                               sizeof h->tls_error))
        rc = BRK_ECRYPTO;
    if (rc == 0 && out->len > 0) {
        const char *code;
        /* Not an object (or not JSON): json stays NULL and callers judge by status. */
        brk_json_parse_object(out->body, out->len, &out->json, &code, NULL, 0);
    }
out:
    if (conn)
        evhttp_connection_free(conn);
    else if (bev)
        bufferevent_free(bev);
    if (base)
        event_base_free(base);
    if (rc != 0)
        cli_http_resp_clear(out);
    return rc;
}

/* cli_http_stream's state: the sink for a 200's body, the error body otherwise. */
typedef struct stream_call {
    http_call_t call;
    FILE *sink;
    int write_err;
} stream_call_t;

/* Each chunk of the body as it arrives: a 200's goes to the sink at once (nothing of it is
 * held); another status's stays in the buffer, read whole by http_on_done (bounded). */
static void http_on_chunk(struct evhttp_request *req, void *arg)
{
    stream_call_t *sc = arg;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    if (evhttp_request_get_response_code(req) != 200) {
        if (evbuffer_get_length(in) > CLI_HTTP_MAX_RESPONSE)
            evbuffer_drain(in, evbuffer_get_length(in)); /* an error body is never that long */
        return;
    }
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        if (!sc->write_err && fwrite(v.iov_base, 1, v.iov_len, sc->sink) != v.iov_len)
            sc->write_err = 1;
        evbuffer_drain(in, v.iov_len);
    }
}

int cli_http_stream(cli_http_t *h, const char *path, FILE *sink, cli_http_resp_t *out)
{
    struct event_base *base = NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req = NULL;
    struct bufferevent *bev = NULL;
    brk_tls_diag_t diag = {{0}};
    stream_call_t sc = {{0}, sink, 0};
    char uri[CLI_HTTP_PREFIX_MAX + 256];
    int rc = BRK_ENOMEM;

    memset(out, 0, sizeof *out);
    h->tls_error[0] = '\0';
    snprintf(uri, sizeof uri, "%s%s", h->prefix, path);
    if ((base = event_base_new()) == NULL)
        goto out;
    if (h->tls) {
        if ((rc = brk_tls_client_bev_new(base, h->tls_ctx, h->host, &diag, &bev)) != 0)
            goto out;
        rc = BRK_ENOMEM;
    }
    if ((conn = evhttp_connection_base_bufferevent_new(base, NULL, bev, h->host, h->port)) == NULL)
        goto out;
    /* no body size cap: the body goes to the sink as it comes; the timeout is per read */
    evhttp_connection_set_timeout(conn, CLI_HTTP_TIMEOUT_S);
    sc.call.base = base;
    sc.call.out = out;
    if ((req = evhttp_request_new(http_on_done, &sc.call)) == NULL)
        goto out;
    evhttp_request_set_error_cb(req, http_on_error);
    evhttp_request_set_chunked_cb(req, http_on_chunk);
    http_add_headers(h, req, path, 0, NULL);
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, uri) != 0) {
        rc = BRK_EIO;
        goto out;
    }
    event_base_dispatch(base);
    rc = sc.call.err;
    if (rc == 0 && out->status == 0)
        rc = BRK_EIO;
    if (rc == 0 && sc.write_err)
        rc = BRK_EIO;
    if (rc != 0 && h->tls &&
        brk_tls_client_failure(evhttp_connection_get_bufferevent(conn), &diag, h->tls_error,
                               sizeof h->tls_error))
        rc = BRK_ECRYPTO;
    if (rc == 0 && out->len > 0) {
        const char *code;
        brk_json_parse_object(out->body, out->len, &out->json, &code, NULL, 0);
    }
out:
    if (conn)
        evhttp_connection_free(conn);
    else if (bev)
        bufferevent_free(bev);
    if (base)
        event_base_free(base);
    if (rc != 0)
        cli_http_resp_clear(out);
    return rc;
}

int cli_http_retry(cli_http_t *h, enum evhttp_cmd_type method, const char *path, const char *body,
                   const char *idempotency_key, cli_http_resp_t *out)
{
    long pause = CLI_HTTP_BACKOFF_MS;
    for (int attempt = 0;; attempt++) {
        int rc = cli_http_once(h, method, path, body, idempotency_key, out);
        int transient = cli_http_unreachable(rc) || (rc == 0 && out->status >= 500);
        if (!transient || attempt == CLI_HTTP_RETRIES)
            return rc;
        cli_http_resp_clear(out);
        cli_http_sleep_ms(pause);
        pause *= 2;
    }
}
