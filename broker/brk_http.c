/*
 * brk_http: request intake, request state and routing (public API in brk_http.h).
 *
 * Owns: the h2o handler (on_req): header and path limits, request text checks, the request
 * id, route matching, then authentication (brk_http_auth.c) or the route directly. Replies
 * and the error table live in brk_http_reply.c, h2o's own errors in brk_http_errfilter.c.
 *
 * Lifetime of a request's state: brk_req_t is h2o shared memory that is NOT linked to the
 * request pool; a small sentinel that IS linked to the pool holds its first reference. When
 * h2o disposes the request (answered, or the client left), the sentinel marks r->h2o = NULL
 * and drops that reference. A database batch in flight holds a second reference, so the
 * batch's callback always finds r alive, sees whether the client is still there, and only
 * then lets r go. Nothing is freed inside its own callback.
 */
#include "brk_http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_json.h"
#include "brk_log.h"
#include "brk_peer.h"
#include "brk_server_int.h"
#include "brk_uri.h"
#include "banned.h"

uint64_t brk__http_mono_ns(void)
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
    return brk_sockaddr_is_loopback((const struct sockaddr *)&ss, len);
}

int brk_req_is_tls(const brk_req_t *r)
{
    h2o_conn_t *c = r->h2o->conn;
    h2o_socket_t *sock = c->callbacks->get_socket != NULL ? c->callbacks->get_socket(c) : NULL;
    return sock != NULL && sock->ssl != NULL;
}

int brk_req_read_db_up(const brk_req_t *r)
{
    return r->worker->db_read == NULL || brk_db_is_up(r->worker->db_read);
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

/* req_db: submits on the pool the route asks for (REPLICA_OK: the read replica; OPS: the
 * loop's ops pool), or on the primary pool when primary is set: authentication, whatever the
 * route, always reads the primary, so a lagging replica never lets a revoked key in. */
static int req_db(brk_req_t *r, const brk_db_op_t *ops, size_t n, const char *key, int grouped,
                  int primary, brk_db_cont cont)
{
    int rc;
    brk_db_t *db = r->worker->db;
    unsigned flags = r->route != NULL && !primary ? r->route->flags : 0;
    if (r->worker->db_read != NULL && (flags & BRK_ROUTE_REPLICA_OK))
        db = r->worker->db_read;
    if (r->worker->db_ops != NULL && (flags & BRK_ROUTE_OPS))
        db = r->worker->db_ops;
    r->cont = cont;
    h2o_mem_addref_shared(r);
    rc = grouped ? brk_db_submit_grouped(db, ops, n, key, on_db_done, r)
                 : brk_db_submit(db, ops, n, on_db_done, r);
    if (rc != 0) {
        r->cont = NULL;
        h2o_mem_release_shared(r);
        if (flags & BRK_ROUTE_OPS) {
            brk_db_result_t failed = {.err = rc, .sqlstate = "", .message = "", .failed_op = -1};
            cont(r, &failed);
            return rc;
        }
        if (rc == BRK_EINVAL)
            brk_reply_error(r, BRK_EINTERNAL, NULL, "request too large for the database");
        else
            brk_reply_error(r, rc, NULL, "%s", brk_strerror(rc));
    }
    return rc;
}

int brk__http_db_primary(brk_req_t *r, const brk_db_op_t *ops, size_t n, brk_db_cont cont)
{
    return req_db(r, ops, n, NULL, 0, 1, cont);
}

int brk_req_db(brk_req_t *r, const brk_db_op_t *ops, size_t n, brk_db_cont cont)
{
    return req_db(r, ops, n, NULL, 0, 0, cont);
}

int brk_req_db_grouped(brk_req_t *r, const brk_db_op_t *ops, size_t n, const char *key,
                       brk_db_cont cont)
{
    return req_db(r, ops, n, key, 1, 0, cont);
}

static int parse_body(brk_req_t *r);

/* brk__http_run_route: the handler, once the caller may call it. The body is parsed only then, so a
 * caller without a valid token or role learns nothing from it and costs no parsing. */
void brk__http_run_route(brk_req_t *r)
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

/* ---- intake ---- */

static int parse_body(brk_req_t *r)
{
    h2o_req_t *q = r->h2o;
    h2o_iovec_t ct = brk_req_header(r, "content-type");
    const char *code = NULL;
    char msg[BRK_HTTP_ERR_MESSAGE_MAX];
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
    r->started_ns = brk__http_mono_ns();
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
        brk__http_run_route(r);
    else
        brk__http_authenticate(r);
    return 0;
}

void brk__http_register(brk_server_t *s)
{
    h2o_pathconf_t *pc = h2o_config_register_path(s->hostconf, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
    h->on_req = on_req;
    brk__http_errfilter_add(pc);
    brk__http_errfilter_add(&s->hostconf->fallback_path);
}
