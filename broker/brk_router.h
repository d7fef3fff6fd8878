/*
 * brk_router: the route table of the HTTP front (brk_http), matched segment by segment.
 *
 * A route is a method, a pattern of literal and {param} segments, the roles that may call
 * it, flags, and its function. Routes are registered once, on the main thread before
 * brk_server_run, from static storage (the table keeps the pointers); after that the table
 * is read-only and brk_router_match is pure, so every loop thread may match.
 */
#ifndef BRK_ROUTER_H
#define BRK_ROUTER_H

#include <stddef.h>

#include <h2o/memory.h> /* h2o_iovec_t */

#define BRK_ROUTE_MAX_PARAMS 4
#define BRK_ROUTE_MAX 128
#define BRK_PARAM_MAX 128 /* bytes of one {param} segment (404 above) */

typedef struct brk_req brk_req_t; /* brk_http.h */
typedef void (*brk_route_fn)(brk_req_t *r);

enum brk_route_flags {
    BRK_ROUTE_JSON = 1 << 0,     /* body must be a JSON object; parsed into r->body */
    BRK_ROUTE_LOCAL_OK = 1 << 1, /* callers on a loopback address need no credentials */
    /* a request without an Authorization header reaches the handler unauthenticated
     * (principal.authenticated 0): the handler itself must check another proof (a signed
     * view link, hnd_session.c) and answer 401 without one. GET routes only. */
    BRK_ROUTE_VIEW_OK = 1 << 2,
    /* the route only reads, and what it reads may be a moment old: with
     * GSAP_READ_DATABASE_URL set (a read replica) its statements go there instead of the
     * primary. Finance and auditor reads only, never a read that a write or an
     * authorization decision depends on (a replica lags). */
    BRK_ROUTE_REPLICA_OK = 1 << 3,
    /* an operator's route (/metrics): its statements use the loop's own small pool, so a
     * scrape never waits behind request traffic or a saturated pool; when that pool cannot
     * take it either, the continuation still runs, with the error in its result (the
     * handler answers what it can without the database) instead of a 503. */
    BRK_ROUTE_OPS = 1 << 4,
    /* the route's own transaction checks again that the caller's API key is live and that
     * its tenant accepts API keys (gsap_complete's p_api_key), and refuses with 401 through
     * brk_req_key_refused: so its callers may be authenticated from what the worker verified
     * in the database within the last BRK_AUTH_MEMO_TTL_MS, without a lookup of their own,
     * and a revocation still takes effect on the next request. */
    BRK_ROUTE_KEY_RECHECK = 1 << 5,
};

typedef struct brk_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/governance/authorize/{context_id}" (no trailing slash) */
    unsigned roles;      /* enum brk_role bits any of which grants access; 0: public */
    unsigned flags;      /* enum brk_route_flags */
    brk_route_fn fn;
} brk_route_t;

/* brk_router_add: registers routes (static storage, kept by pointer). Main thread, before
 * brk_server_run. Returns 0 or BRK_ENOMEM (over BRK_ROUTE_MAX) / BRK_EINVAL (bad pattern). */
int brk_router_add(const brk_route_t *routes, size_t n);

/* brk_router_match: finds the route for (method, path) without a query string. Returns the
 * route index (>= 0) with params filled (pointing into path; at most BRK_ROUTE_MAX_PARAMS),
 * BRK_ENOTFOUND (no such path) or BRK_EMETHOD (path exists with another method). Pure; any
 * thread after registration. */
int brk_router_match(const char *method, size_t mlen, const char *path, size_t plen,
                     h2o_iovec_t *params, size_t *nparams);

/* brk_router_count / brk_router_get: the registered routes, for metrics and OpenAPI tests.
 * The route belongs to the table (static storage). Any thread after registration. */
size_t brk_router_count(void);
const brk_route_t *brk_router_get(size_t i);

#endif
