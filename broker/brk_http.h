/*
 * brk_http: the HTTP front of the broker on libh2o.
 *
 * One h2o evloop per worker thread, each with its own SO_REUSEPORT listener, h2o context
 * and brk_db pool. Every request goes through one handler: limits (header count and size,
 * body size), request text (the decoded path and the query string are UTF-8 without NUL or
 * other control characters, else 400 invalid_path / invalid_query; see brk_uri.h), routing
 * (literal and {param} segments, with or without a trailing slash), a
 * request id, bearer authentication (an async key lookup on the loop's pool), then the
 * route's function. Errors leave through brk_reply_error, so every route answers them in
 * the spec's shape: {"error":{"code","message","request_id"}}.
 *
 * A brk_req_t lives as long as the h2o request, plus as long as a database batch it started
 * is in flight: when the client goes away mid-batch, the batch finishes, its continuation is
 * skipped, and only then is the request's state released. A route function must therefore
 * reach the database only through brk_req_db.
 *
 * Threads: route registration (brk_router_add) on the main thread before brk_server_run;
 * everything taking a brk_req_t on that request's loop thread only.
 */
#ifndef BRK_HTTP_H
#define BRK_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "brk_db.h"
#include "brk_json.h" /* BRK_MAX_JSON_DEPTH, the body nesting limit */
#include "brk_keys.h"
#include "brk_router.h" /* brk_route_t, brk_req_t, the route table */

#define BRK_MAX_BODY (1024 * 1024)      /* request body bytes (413 above) */
#define BRK_MAX_HEADERS 64              /* request header count (431 above) */
#define BRK_MAX_HEADER_BYTES (16 * 1024)  /* names + values of all headers (431 above) */
#define BRK_MAX_PATH 2048               /* request path bytes (414 above) */
#define BRK_REQUEST_ID_MAX 64
#define BRK_RETRY_AFTER_S "1"
#define BRK_PRINCIPAL_DID_MAX 256       /* bytes of a driver-given principal DID (GOV_DID_MAX) */

typedef struct brk_server brk_server_t;
typedef void (*brk_db_cont)(brk_req_t *r, const brk_db_result_t *res);

typedef struct brk_principal {
    char tenant[BRK_TENANT_MAX + 1];
    char key_id[BRK_KEY_ID_HEX + 1];
    char name[BRK_KEY_NAME_MAX + 1]; /* the key's name, or its id */
    unsigned roles;
    int can_delegate;
    int authenticated; /* 0 for public routes and local callers without a token */
    const char *driver; /* the identity driver that authenticated it: "api-key", "jwt",
                         * "mtls"; NULL counts as "api-key" */
    /* The principal's DID when the driver maps one (jwt: from its claims; mtls: from the
     * certificate's SAN URI), else "": the broker then derives it from tenant and key_id
     * (hnd_principal_did). Never in another tenant's namespace. */
    char did[BRK_PRINCIPAL_DID_MAX + 1];
} brk_principal_t;

struct brk_req {
    h2o_req_t *h2o;            /* NULL once the client went away */
    brk_server_t *server;      /* shared, read-only */
    struct brk_worker *worker; /* this loop's state */
    const brk_route_t *route;
    h2o_iovec_t params[BRK_ROUTE_MAX_PARAMS]; /* {param} values, in pattern order */
    size_t nparams;
    brk_principal_t principal;
    char request_id[BRK_REQUEST_ID_MAX + 1];
    json_t *body;              /* BRK_ROUTE_JSON routes: the parsed object (owned by r) */
    void *ctx;                 /* the route's own state, from brk_req_alloc */
    brk_db_cont cont;          /* continuation of the batch in flight */
    uint64_t started_ns;
    int route_index;
    int replied;
};

/* brk_req_alloc: request-lifetime memory (released when r is), zeroed. Never NULL. */
void *brk_req_alloc(brk_req_t *r, size_t n);

/* brk_req_param: the {param} named name, or an empty iovec. */
h2o_iovec_t brk_req_param(const brk_req_t *r, size_t i);

/* brk_req_query: the percent-decoded value of query parameter name, as brk_query_get
 * (brk_uri.h): 0, BRK_ENOTFOUND, BRK_ETOOBIG or BRK_EINVAL. Intake has already refused a
 * query that is not request text (400 invalid_query), so a value found here is clean. */
int brk_req_query(const brk_req_t *r, const char *name, char *out, size_t cap, size_t *len);

/* brk_req_header: the first request header named name (lowercase), or {NULL, 0}. */
h2o_iovec_t brk_req_header(const brk_req_t *r, const char *name);

/* brk_req_accepts_html: 1 when the Accept header prefers text/html over JSON. */
int brk_req_accepts_html(const brk_req_t *r);

/* brk_req_is_local: 1 when the peer is on a loopback address (brk_sockaddr_is_loopback). */
int brk_req_is_local(const brk_req_t *r);

/* brk_req_read_db_up: 1 when this loop has no read pool (GSAP_READ_DATABASE_URL unset) or
 * at least one of its connections is ready. */
int brk_req_read_db_up(const brk_req_t *r);
/* brk_req_is_tls: 1 when r arrived over TLS (HTTPS, HTTP/2 over TLS). */
int brk_req_is_tls(const brk_req_t *r);

/*
 * brk_req_db: submits a batch on this loop's pool; cont runs later with the result, unless
 * the client went away first. On a submit failure the request is answered (503 / 400) here
 * and cont never runs. Returns 0 or the submit error.
 */
int brk_req_db(brk_req_t *r, const brk_db_op_t *ops, size_t n, brk_db_cont cont);

/* brk_req_db_grouped: brk_req_db for a batch that may share its transaction with other
 * requests' (brk_db_submit_grouped: group commit); key orders the batches of a group (the
 * row each batch locks first, e.g. tenant and context id). */
int brk_req_db_grouped(brk_req_t *r, const brk_db_op_t *ops, size_t n, const char *key,
                       brk_db_cont cont);

/*
 * brk_req_key_refused: for a BRK_ROUTE_KEY_RECHECK route whose transaction found the caller's
 * API key no longer live (sql_code "key_invalid": revoked, expired, gone) or its tenant's
 * api-key driver off ("driver_disabled"): forgets what this worker remembered of the key,
 * counts a failed authentication against the address (as a refused lookup does) and answers
 * 401 with the code a lookup would have answered. Returns 1 when sql_code was one of the two
 * (r answered), else 0 (nothing done).
 */
int brk_req_key_refused(brk_req_t *r, const char *sql_code);

/* brk_reply_json: answers status with body (a reference is taken; the caller keeps its own)
 * serialized compactly. A request answers once; later calls are ignored. */
void brk_reply_json(brk_req_t *r, int status, json_t *body);

/* brk_reply_raw: answers status with content type and bytes (copied). */
void brk_reply_raw(brk_req_t *r, int status, const char *content_type, const char *body,
                   size_t len);

/* brk_reply_add_header: adds a response header before replying (name lowercase; both
 * copied into the request pool). */
void brk_reply_add_header(brk_req_t *r, const char *name, const char *value);

/*
 * brk_reply_error: answers with the error shape. err is an enum brk_err that picks the
 * status from the one table (brk_err_status); code is the stable error code, or NULL for the
 * table's default; fmt the message (lowercase, printf-style).
 */
void brk_reply_error(brk_req_t *r, int err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* brk_reply_error_status: the same with an explicit status (for 405, 414, 431, ...). */
void brk_reply_error_status(brk_req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* brk_reply_db_error: answers a failed batch: 503 + Retry-After for connection trouble,
 * 500 for a statement failure (logged with its sqlstate). */
void brk_reply_db_error(brk_req_t *r, const brk_db_result_t *res);

/* brk_err_status: the HTTP status and default code of err (the one table). */
int brk_err_status(int err, const char **code);

#endif
