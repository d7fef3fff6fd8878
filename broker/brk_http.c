/*
 * brk_http: request intake, authentication, replies and the error shape.
 *
 * Lifetime of a request's state: brk_req_t is h2o shared memory that is NOT linked to the
 * request pool; a small sentinel that IS linked to the pool holds its first reference. When
 * h2o disposes the request (answered, or the client left), the sentinel marks r->h2o = NULL
 * and drops that reference. A database batch in flight holds a second reference, so the
 * batch's callback always finds r alive, sees whether the client is still there, and only
 * then lets r go. Nothing is freed inside its own callback.
 *
 * Errors h2o produces itself (413 for an oversized body, 400 for broken chunked encoding)
 * pass through a filter that rewrites them into the same JSON shape as ours.
 */
#include "brk_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_json.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "brk_server_int.h"
#include "brk_uri.h"
#include "banned.h"

#define ERR_MESSAGE_MAX 512

#define XSTR(x) #x
#define STR(x) XSTR(x)

/*
 * The key, its tenant's rate override and whether last_used_at is due, in one statement that
 * also refuses revoked and expired keys. Nothing about keys is cached in the broker, so a
 * revocation or an expiry takes effect on the next request on every worker of every broker.
 */
static brk_db_stmt_t q_auth = {
    "brk_auth",
    "SELECT k.secret_hash, array_to_string(k.roles, ','), k.can_delegate, "
    "coalesce(k.name, k.key_id), t.rate_per_s, t.rate_burst, "
    "k.last_used_at IS NULL OR k.last_used_at < now() - interval '"
    STR(BRK_KEY_TOUCH_INTERVAL_S) " seconds' "
    "FROM api_keys k JOIN tenants t ON t.tenant_id = k.tenant_id "
    "WHERE k.tenant_id = $1 AND k.key_id = $2 AND k.revoked_at IS NULL "
    "AND (k.expires_at IS NULL OR k.expires_at > now())",
    0};

/* Conditional, so workers and brokers that all saw the key as due write it once. */
static brk_db_stmt_t q_touch = {
    "brk_key_touch",
    "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = $1 AND key_id = $2 "
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '"
    STR(BRK_KEY_TOUCH_INTERVAL_S) " seconds')",
    0};

static int m_limited_key = -1, m_limited_auth = -1, m_auth_failures = -1;

int brk__http_register_stmts(void)
{
    int rc = brk_db_register(&q_auth);
    if (rc == 0)
        rc = brk_db_register(&q_touch);
    m_limited_key = brk_metrics_counter("gsap_rate_limited_total{reason=\"key\"}",
                                        "Requests answered 429: over the key's rate, or from an "
                                        "address over its failed-authentication limit.");
    m_limited_auth = brk_metrics_counter("gsap_rate_limited_total{reason=\"auth_failures\"}",
                                         "Requests answered 429: over the key's rate, or from "
                                         "an address over its failed-authentication limit.");
    m_auth_failures = brk_metrics_counter("gsap_auth_failures_total",
                                          "Requests with an invalid, unknown, revoked or expired "
                                          "bearer token.");
    return rc;
}

/* ---- the one error table ---- */

int brk_err_status(int err, const char **code)
{
    static const struct {
        int err, status;
        const char *code;
    } table[] = {
        {BRK_EINVAL, 400, "invalid_request"},  {BRK_EAUTH, 401, "unauthorized"},
        {BRK_EFORBIDDEN, 403, "forbidden"},    {BRK_ENOTFOUND, 404, "not_found"},
        {BRK_EMETHOD, 405, "method_not_allowed"}, {BRK_ECONFLICT, 409, "conflict"},
        {BRK_ETOOBIG, 413, "payload_too_large"}, {BRK_EMEDIA, 415, "unsupported_media_type"},
        {BRK_ERANGE, 422, "invalid_value"},    {BRK_ELIMIT, 429, "rate_limited"},
        {BRK_EDB, 503, "database_unavailable"}, {BRK_EAGAIN, 503, "overloaded"},
        {BRK_ETIMEDOUT, 503, "database_timeout"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].err == err) {
            if (code)
                *code = table[i].code;
            return table[i].status;
        }
    }
    if (code)
        *code = "internal";
    return 500;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- request state ---- */

typedef struct req_sentinel {
    brk_req_t *r;
} req_sentinel_t;

static void req_dispose(void *p)
{
    brk_req_t *r = p;
    if (r->body != NULL)
        json_decref(r->body);
    r->worker->inflight--;
}

static void sentinel_dispose(void *p)
{
    req_sentinel_t *s = p;
    s->r->h2o = NULL;
    h2o_mem_release_shared(s->r);
}

void *brk_req_alloc(brk_req_t *r, size_t n)
{
    void *p = h2o_mem_alloc_pool(&r->h2o->pool, n);
    memset(p, 0, n);
    return p;
}

h2o_iovec_t brk_req_param(const brk_req_t *r, size_t i)
{
    return i < r->nparams ? r->params[i] : h2o_iovec_init(NULL, 0);
}

int brk_req_query(const brk_req_t *r, const char *name, char *out, size_t cap, size_t *len)
{
    const h2o_req_t *q = r->h2o;
    if (q->query_at == SIZE_MAX) {
        if (cap > 0)
            out[0] = '\0';
        *len = 0;
        return BRK_ENOTFOUND;
    }
    return brk_query_get(q->path.base + q->query_at + 1, q->path.len - q->query_at - 1, name,
                         out, cap, len);
}

h2o_iovec_t brk_req_header(const brk_req_t *r, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->h2o->headers.size; i++) {
        const h2o_header_t *h = &r->h2o->headers.entries[i];
        if (h->name->len == nl && h2o_lcstris(h->name->base, nl, name, nl))
            return h->value;
    }
    return h2o_iovec_init(NULL, 0);
}

int brk_req_accepts_html(const brk_req_t *r)
{
    h2o_iovec_t a = brk_req_header(r, "accept");
    if (a.base == NULL)
        return 0;
    size_t html = h2o_strstr(a.base, a.len, H2O_STRLIT("text/html"));
    size_t json = h2o_strstr(a.base, a.len, H2O_STRLIT("application/json"));
    return html != SIZE_MAX && (json == SIZE_MAX || html < json);
}

int brk_req_is_local(const brk_req_t *r)
{
    struct sockaddr_storage ss;
    socklen_t len = r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss);
    if (len == 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)&ss;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return ss.ss_family == AF_UNIX;
}

/* ---- replies ---- */

static void log_request(brk_req_t *r, int status)
{
    char st[8], dur[32];
    uint64_t ns = mono_ns() - r->started_ns;
    snprintf(st, sizeof st, "%d", status);
    snprintf(dur, sizeof dur, "%.3f", (double)ns / 1e6);
    char method[16], path[256];
    h2o_req_t *q = r->h2o;
    snprintf(method, sizeof method, "%.*s", (int)(q->method.len < 15 ? q->method.len : 15),
             q->method.base);
    size_t pl = q->path.len;
    for (size_t i = 0; i < q->path.len; i++)
        if (q->path.base[i] == '?') {
            pl = i; /* a query string may carry what the log must not */
            break;
        }
    snprintf(path, sizeof path, "%.*s", (int)brk_utf8_cut(q->path.base, pl, 255), q->path.base);
    brk_utf8_scrub(path); /* a refused path's raw bytes must not make the log line ill-formed */
    brk_log_kv("info", "request", "method", method, "path", path, "status", st, "duration_ms", dur,
               "request_id", r->request_id, "tenant",
               r->principal.authenticated ? r->principal.tenant : NULL, (const char *)NULL);
    brk_metrics_observe(r->route_index, status, ns);
}

void brk_reply_add_header(brk_req_t *r, const char *name, const char *value)
{
    if (r->h2o == NULL || r->replied)
        return;
    h2o_req_t *q = r->h2o;
    h2o_iovec_t n = h2o_strdup(&q->pool, name, SIZE_MAX);
    h2o_iovec_t v = h2o_strdup(&q->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&q->pool, &q->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

void brk_reply_raw(brk_req_t *r, int status, const char *content_type, const char *body,
                   size_t len)
{
    if (r->h2o == NULL || r->replied)
        return;
    h2o_req_t *q = r->h2o;
    r->replied = 1;
    q->res.status = status;
    q->res.reason = reason_of(status);
    q->res.content_length = len;
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header_by_str(&q->pool, &q->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          r->request_id, strlen(r->request_id));
    h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    log_request(r, status);
    h2o_iovec_t copy = h2o_strdup(&q->pool, body, len);
    h2o_send_inline(q, copy.base, copy.len);
}

void brk_reply_json(brk_req_t *r, int status, json_t *body)
{
    if (r->h2o == NULL || r->replied)
        return;
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot serialize the response");
        return;
    }
    brk_reply_raw(r, status, "application/json", s, strlen(s));
    free(s);
}

static void reply_error_v(brk_req_t *r, int status, const char *code, const char *fmt, va_list ap)
{
    char msg[ERR_MESSAGE_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    /* A message may quote what the client sent ("%.64s" of a field name, a path): cut to
     * the buffer or to a precision, that can end inside a character, and json_pack would
     * then refuse the whole reply. Cut at a character boundary, and neutralize anything
     * ill-formed or a control character, so an error reply is always the error asked for. */
    if (n >= (int)sizeof msg)
        msg[brk_utf8_cut(msg, sizeof msg - 1, sizeof msg - 1 - 3)] = '\0';
    brk_utf8_scrub(msg);
    json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg,
                             "request_id", r->request_id);
    if (status == 503)
        brk_reply_add_header(r, "retry-after", BRK_RETRY_AFTER_S);
    brk_reply_json(r, status, body);
    json_decref(body);
}

void brk_reply_error(brk_req_t *r, int err, const char *code, const char *fmt, ...)
{
    const char *def;
    int status = brk_err_status(err, &def);
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code ? code : def, fmt, ap);
    va_end(ap);
}

void brk_reply_error_status(brk_req_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, code, fmt, ap);
    va_end(ap);
}

void brk_reply_db_error(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err == BRK_EINVAL) {
        brk_log_error("statement failed", "request_id", r->request_id, "sqlstate", res->sqlstate,
                      "error", res->message);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the database refused the request");
        return;
    }
    brk_reply_error(r, res->err, NULL, "%s", brk_strerror(res->err));
}

/* ---- database continuations ---- */

static void on_db_done(void *arg, const brk_db_result_t *res)
{
    brk_req_t *r = arg;
    brk_db_cont cont = r->cont;
    r->cont = NULL;
    if (r->h2o != NULL)
        cont(r, res);
    h2o_mem_release_shared(r);
}

int brk_req_db(brk_req_t *r, const brk_db_op_t *ops, size_t n, brk_db_cont cont)
{
    int rc;
    r->cont = cont;
    h2o_mem_addref_shared(r);
    if ((rc = brk_db_submit(r->worker->db, ops, n, on_db_done, r)) != 0) {
        r->cont = NULL;
        h2o_mem_release_shared(r);
        if (rc == BRK_EINVAL)
            brk_reply_error(r, BRK_EINTERNAL, NULL, "request too large for the database");
        else
            brk_reply_error(r, rc, NULL, "%s", brk_strerror(rc));
    }
    return rc;
}

/* ---- authentication ---- */

static int parse_body(brk_req_t *r);

/* run_route: the handler, once the caller may call it. The body is parsed only then, so a
 * caller without a valid token or role learns nothing from it and costs no parsing. */
static void run_route(brk_req_t *r)
{
    if (r->route->roles != 0 && r->principal.authenticated &&
        (r->principal.roles & r->route->roles) == 0) {
        brk_reply_error(r, BRK_EFORBIDDEN, NULL, "this key's roles do not allow %s %s",
                        r->route->method, r->route->pattern);
        return;
    }
    if ((r->route->flags & BRK_ROUTE_JSON) && parse_body(r) != 0)
        return;
    r->route->fn(r);
}

/*
 * peer_key: the client address as a rate-table key: the IPv4 address, or the /64 prefix of an
 * IPv6 address (one host usually owns a whole /64, so counting single addresses would let it
 * rotate through 2^64 of them). Returns the key's length.
 */
static size_t peer_key(const brk_req_t *r, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss);
    const uint8_t *b = NULL;
    int n;

    if (len != 0 && ss.ss_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)&ss)->sin_addr;
        n = snprintf(buf, cap, "4:%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    } else if (len != 0 && ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)&ss)->sin6_addr;
        b = a->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            n = snprintf(buf, cap, "4:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        else
            n = snprintf(buf, cap, "6:%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", b[0], b[1],
                         b[2], b[3], b[4], b[5], b[6], b[7]);
    } else {
        n = snprintf(buf, cap, "local");
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* auth_failed: counts a failed authentication against the client's address, then 401. */
static void auth_failed(brk_req_t *r)
{
    const brk_config_t *cfg = r->server->cfg;
    char addr[64];
    size_t alen = peer_key(r, addr, sizeof addr);
    brk_rate_fail_record(r->server->rate_fail, addr, alen, cfg->auth_fail_window_s, mono_ns());
    brk_metrics_add(m_auth_failures, 1);
    brk_reply_error(r, BRK_EAUTH, "invalid_token", "the bearer token is not valid");
}

static void reply_limited(brk_req_t *r, uint32_t retry_after_s, const char *what)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_after_s);
    brk_reply_add_header(r, "retry-after", ra);
    brk_reply_error(r, BRK_ELIMIT, "rate_limited", "%s; retry after %u s", what, retry_after_s);
}

static void on_touched(void *arg, const brk_db_result_t *res)
{
    (void)arg;
    (void)res; /* last_used_at is advisory: a failed write is retried by the next request */
}

/*
 * rate_check: takes a token from the key's bucket and adds the RateLimit-Policy and
 * RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10, policy "key"). Returns 0, or
 * BRK_ELIMIT after answering 429.
 */
static int rate_check(brk_req_t *r, PGresult *pr)
{
    const brk_config_t *cfg = r->server->cfg;
    uint32_t rate = cfg->rate_per_s, burst = cfg->rate_burst;
    char key[BRK_TENANT_MAX + BRK_KEY_ID_HEX + 2], policy[64], state[64];
    brk_rate_verdict_t v;

    /* The tenant's override (the table's CHECK keeps it in 1..BRK_CONFIG_RATE_MAX). */
    if (!PQgetisnull(pr, 0, 4))
        rate = (uint32_t)strtoul(PQgetvalue(pr, 0, 4), NULL, 10);
    if (!PQgetisnull(pr, 0, 5))
        burst = (uint32_t)strtoul(PQgetvalue(pr, 0, 5), NULL, 10);
    int n = snprintf(key, sizeof key, "%s/%s", r->principal.tenant, r->principal.key_id);
    brk_rate_take(r->server->rate_keys, key, (size_t)n, rate, burst, mono_ns(), &v);
    snprintf(policy, sizeof policy, "\"key\";q=%u;w=%u", burst, (burst + rate - 1) / rate);
    snprintf(state, sizeof state, "\"key\";r=%u;t=%u", v.remaining,
             v.allowed ? v.reset_s : v.retry_after_s);
    brk_reply_add_header(r, "ratelimit-policy", policy);
    brk_reply_add_header(r, "ratelimit", state);
    if (!v.allowed) {
        brk_metrics_add(m_limited_key, 1);
        reply_limited(r, v.retry_after_s, "this key is over its rate limit");
        return BRK_ELIMIT;
    }
    return 0;
}

static void on_auth(brk_req_t *r, const brk_db_result_t *res)
{
    const char *secret_hash = r->ctx;
    r->ctx = NULL;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1 || PQgetlength(pr, 0, 0) != 64 ||
        !brk_ct_equal(PQgetvalue(pr, 0, 0), secret_hash, 64)) {
        auth_failed(r);
        return;
    }
    char *roles = PQgetvalue(pr, 0, 1);
    unsigned mask = 0;
    brk_roles_parse_list(roles, &mask);
    r->principal.roles = mask;
    r->principal.can_delegate = PQgetvalue(pr, 0, 2)[0] == 't';
    snprintf(r->principal.name, sizeof r->principal.name, "%s", PQgetvalue(pr, 0, 3));
    r->principal.authenticated = 1;
    /* Every authenticated request counts, refused ones (403) included. */
    if (rate_check(r, pr) != 0)
        return;
    /* A caller may name the tenant it means to act in; a key acts only in its own. */
    h2o_iovec_t t = brk_req_header(r, "x-gsap-tenant");
    if (t.base != NULL &&
        (t.len != strlen(r->principal.tenant) || memcmp(t.base, r->principal.tenant, t.len) != 0)) {
        brk_reply_error(r, BRK_EFORBIDDEN, "tenant_forbidden",
                        "this key does not belong to the tenant named in X-GSAP-Tenant");
        return;
    }
    /* Due by the database's clock, and not yet sent by another worker of this broker. */
    char key[BRK_TENANT_MAX + BRK_KEY_ID_HEX + 2];
    int kn = snprintf(key, sizeof key, "%s/%s", r->principal.tenant, r->principal.key_id);
    if (PQgetvalue(pr, 0, 6)[0] == 't' &&
        brk_rate_once(r->server->rate_keys, key, (size_t)kn,
                      (uint64_t)BRK_KEY_TOUCH_INTERVAL_S * 1000000000u, mono_ns())) {
        /* Its own batch, not waited for: the route does not pay for it. */
        brk_db_op_t op = {&q_touch, 2, {r->principal.tenant, r->principal.key_id}};
        brk_db_submit(r->worker->db, &op, 1, on_touched, NULL);
    }
    run_route(r);
}

static void authenticate(brk_req_t *r)
{
    const brk_config_t *cfg = r->server->cfg;
    h2o_iovec_t a = brk_req_header(r, "authorization");
    brk_token_t tok;
    char addr[64];
    uint32_t retry_after = 0;

    if (a.base == NULL) {
        if ((r->route->flags & BRK_ROUTE_LOCAL_OK) && brk_req_is_local(r)) {
            run_route(r);
            return;
        }
        brk_reply_error(r, BRK_EAUTH, "missing_token", "an Authorization: Bearer token is required");
        return;
    }
    /* An address that failed too often is refused before its token is looked at, so a
     * token cannot be guessed online faster than GSAP_AUTH_FAIL_MAX per window. */
    size_t alen = peer_key(r, addr, sizeof addr);
    if (brk_rate_fail_blocked(r->server->rate_fail, addr, alen, cfg->auth_fail_max,
                              cfg->auth_fail_window_s, mono_ns(), &retry_after)) {
        brk_metrics_add(m_limited_auth, 1);
        reply_limited(r, retry_after, "too many failed authentications from this address");
        return;
    }
    if (a.len < 7 || !h2o_lcstris(a.base, 7, "bearer ", 7) || a.len - 7 > BRK_TOKEN_MAX ||
        brk_token_parse(a.base + 7, a.len - 7, &tok) != 0) {
        auth_failed(r);
        return;
    }
    memcpy(r->principal.tenant, tok.tenant, sizeof tok.tenant);
    memcpy(r->principal.key_id, tok.key_id, sizeof tok.key_id);
    char *hash = brk_req_alloc(r, sizeof tok.secret_hash);
    memcpy(hash, tok.secret_hash, sizeof tok.secret_hash);
    r->ctx = hash;
    brk_db_op_t op = {&q_auth, 2, {r->principal.tenant, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_auth);
}

/* ---- intake ---- */

static int parse_body(brk_req_t *r)
{
    h2o_req_t *q = r->h2o;
    h2o_iovec_t ct = brk_req_header(r, "content-type");
    const char *code = NULL;
    char msg[ERR_MESSAGE_MAX];
    if (ct.base != NULL && h2o_strstr(ct.base, ct.len, H2O_STRLIT("json")) == SIZE_MAX) {
        brk_reply_error(r, BRK_EMEDIA, NULL, "the body must be application/json");
        return -1;
    }
    if (q->entity.len > BRK_MAX_BODY) {
        brk_reply_error(r, BRK_ETOOBIG, NULL, "the body is larger than %d bytes", BRK_MAX_BODY);
        return -1;
    }
    if (q->entity.base == NULL || q->entity.len == 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_json", "a JSON object body is required");
        return -1;
    }
    /* The pure part (depth, syntax, duplicates, object) lives in brk_json, where it is fuzzed. */
    if (brk_json_parse_object(q->entity.base, q->entity.len, &r->body, &code, msg,
                              sizeof msg) != 0) {
        brk_reply_error(r, BRK_EINVAL, code, "%s", msg);
        return -1;
    }
    return 0;
}

static int request_id_ok(const char *p, size_t n)
{
    if (n == 0 || n > BRK_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static void allow_header(brk_req_t *r, const char *path, size_t plen)
{
    char allow[128] = "";
    size_t len = 0;
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        h2o_iovec_t p[BRK_ROUTE_MAX_PARAMS];
        size_t np;
        if (brk_router_match(rt->method, strlen(rt->method), path, plen, p, &np) >= 0 &&
            strstr(allow, rt->method) == NULL && len + strlen(rt->method) + 3 < sizeof allow)
            len += (size_t)snprintf(allow + len, sizeof allow - len, "%s%s", len ? ", " : "",
                                    rt->method);
    }
    brk_reply_add_header(r, "allow", allow);
}

static int on_req(h2o_handler_t *self, h2o_req_t *q)
{
    struct brk_worker *w = H2O_STRUCT_FROM_MEMBER(struct brk_worker, ctx, q->conn->ctx);
    brk_req_t *r = h2o_mem_alloc_shared(NULL, sizeof(*r), req_dispose);
    req_sentinel_t *sen = h2o_mem_alloc_shared(&q->pool, sizeof(*sen), sentinel_dispose);
    size_t hbytes = 0, plen;
    const char *path;
    int ri;

    memset(r, 0, sizeof(*r));
    r->h2o = q;
    r->worker = w;
    r->server = w->server;
    r->started_ns = mono_ns();
    r->route_index = -1;
    sen->r = r;
    w->inflight++;

    h2o_iovec_t rid = brk_req_header(r, "x-request-id");
    if (rid.base != NULL && request_id_ok(rid.base, rid.len))
        snprintf(r->request_id, sizeof r->request_id, "%.*s", (int)rid.len, rid.base);
    else
        snprintf(r->request_id, sizeof r->request_id, "%s-%u-%llu", w->server->boot_id, w->index,
                 (unsigned long long)++w->seq);

    /* h2o lifts Host (or :authority) out of the header list; it counts as one here. */
    size_t hcount = q->headers.size + (q->authority.len ? 1 : 0);
    hbytes = q->authority.len;
    for (size_t i = 0; i < q->headers.size; i++)
        hbytes += q->headers.entries[i].name->len + q->headers.entries[i].value.len;
    if (hcount > BRK_MAX_HEADERS || hbytes > BRK_MAX_HEADER_BYTES) {
        brk_reply_error_status(r, 431, "headers_too_large",
                               "at most %d headers and %d header bytes are accepted",
                               BRK_MAX_HEADERS, BRK_MAX_HEADER_BYTES);
        return 0;
    }
    path = q->path_normalized.base;
    plen = q->path_normalized.len;
    if (q->path.len > BRK_MAX_PATH) {
        brk_reply_error_status(r, 414, "path_too_long", "the path is longer than %d bytes",
                               BRK_MAX_PATH);
        return 0;
    }
    /* h2o has percent-decoded the path (%00 and %2F too), and the {param} values the router
     * hands to handlers are slices of it: one check here keeps NUL, ill-formed UTF-8 and
     * control characters away from every handler, C string and SQL parameter. */
    if (!brk_utf8_text_ok(path, plen)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_path",
                        "the path must be UTF-8 text without control characters once "
                        "percent-decoded");
        return 0;
    }
    if (q->query_at != SIZE_MAX &&
        brk_query_check(q->path.base + q->query_at + 1, q->path.len - q->query_at - 1) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query",
                        "the query string must be name=value pairs (at most %d) of UTF-8 text "
                        "without control characters, with valid percent escapes",
                        BRK_QUERY_MAX_PARAMS);
        return 0;
    }
    ri = brk_router_match(q->method.base, q->method.len, path, plen, r->params, &r->nparams);
    if (ri == BRK_ENOTFOUND) {
        brk_reply_error(r, BRK_ENOTFOUND, NULL, "no route for \"%.*s\"",
                        (int)brk_utf8_cut(path, plen, 200), path);
        return 0;
    }
    if (ri == BRK_EMETHOD) {
        allow_header(r, path, plen);
        brk_reply_error(r, BRK_EMETHOD, NULL, "method %.*s is not allowed here",
                        (int)(q->method.len < 16 ? q->method.len : 16), q->method.base);
        return 0;
    }
    r->route_index = ri;
    r->route = brk_router_get((size_t)ri);
    if (r->route->roles == 0)
        run_route(r);
    else
        authenticate(r);
    return 0;
}

/* ---- h2o's own errors, reshaped ---- */

typedef struct err_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
} err_ostream_t;

static void err_do_send(h2o_ostream_t *self, h2o_req_t *q, h2o_iovec_t *bufs, size_t n,
                        h2o_send_state_t state)
{
    err_ostream_t *o = (void *)self;
    h2o_iovec_t out = o->body;
    if (o->sent)
        out.len = 0;
    o->sent = 1;
    h2o_ostream_send_next(&o->super, q, &out, out.len ? 1 : 0, state);
}

static void err_setup_ostream(h2o_filter_t *self, h2o_req_t *q, h2o_ostream_t **slot)
{
    /* Our own replies carry x-request-id; anything else >= 400 was produced by h2o. */
    if (q->res.status >= 400 &&
        h2o_find_header_by_str(&q->res.headers, H2O_STRLIT("x-request-id"), -1) == -1) {
        char buf[300], rid[17];
        uint8_t rnd[8];
        const char *code = q->res.status == 413 ? "payload_too_large" : "invalid_request";
        brk_random(rnd, sizeof rnd);
        brk_hex(rnd, sizeof rnd, rid);
        int n = q->res.status == 413
                    ? snprintf(buf, sizeof buf,
                               "{\"error\":{\"code\":\"%s\",\"message\":\"the body is larger "
                               "than %d bytes\",\"request_id\":\"%s\"}}",
                               code, BRK_MAX_BODY, rid)
                    : snprintf(buf, sizeof buf,
                               "{\"error\":{\"code\":\"%s\",\"message\":\"the request could "
                               "not be read\",\"request_id\":\"%s\"}}",
                               code, rid);
        err_ostream_t *o = (void *)h2o_add_ostream(q, sizeof(*o), slot);
        o->super.do_send = err_do_send;
        o->body = h2o_strdup(&q->pool, buf, (size_t)n);
        o->sent = 0;
        memset(&q->res.headers, 0, sizeof(q->res.headers));
        h2o_add_header(&q->pool, &q->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        h2o_iovec_t ridv = h2o_strdup(&q->pool, rid, SIZE_MAX);
        h2o_add_header_by_str(&q->pool, &q->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                              ridv.base, ridv.len);
        q->res.content_length = (size_t)n;
        brk_metrics_observe(-1, q->res.status, 0);
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(q, slot);
}

void brk__http_register(brk_server_t *s)
{
    h2o_pathconf_t *pc = h2o_config_register_path(s->hostconf, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
    h->on_req = on_req;
    h2o_filter_t *f = h2o_create_filter(pc, sizeof(*f));
    f->on_setup_ostream = err_setup_ostream;
    f = h2o_create_filter(&s->hostconf->fallback_path, sizeof(*f));
    f->on_setup_ostream = err_setup_ostream;
}
