/*
 * fuzz_router: libFuzzer target for brk_router_match, which sees every request's method and
 * path before anything else.
 *
 * The route table is a copy of the broker's real patterns (registered once, in
 * LLVMFuzzerInitialize, as brk_router_add allows only before serving). An input is split at
 * its first space into method and path (no space: all method, empty path); the path is
 * copied into a buffer of exactly its size, so a parameter pointing outside it is both a
 * failed check here and an ASan error.
 *
 * Properties checked on every input:
 *   - the result is a route index, BRK_ENOTFOUND or BRK_EMETHOD, nothing else;
 *   - a match has the input's method, as many params as its pattern has {param} segments,
 *     each inside the path buffer, non-empty, at most BRK_PARAM_MAX bytes and free of '/';
 *     and the path's non-empty segments are the pattern's with the params put in (checked by
 *     a walk written independently of the router's);
 *   - BRK_EMETHOD means the same path matches under some other registered method, and
 *     BRK_ENOTFOUND that it matches under none.
 * Any violation abort()s so libFuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_keys.h" /* BRK_ROLE_* */
#include "brk_router.h"
#include "banned.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void route_fn(brk_req_t *r)
{
    (void)r;
}

/* The broker's routes (the route tables in handlers/), in their registration order within each
 * file; the functions are stand-ins, as only method and pattern matter to matching. */
static const brk_route_t routes[] = {
    {"GET", "/healthz", 0, 0, route_fn},
    {"GET", "/readyz", 0, 0, route_fn},
    {"GET", "/metrics", BRK_ROLE_ADMIN, BRK_ROUTE_LOCAL_OK, route_fn},
    {"GET", "/.well-known/gsap-broker.json", 0, 0, route_fn},
    {"POST", "/admin/keys", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, route_fn},
    {"POST", "/governance/authorize", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, route_fn},
    {"GET", "/governance/authorize/{context_id}",
     BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER | BRK_ROLE_AUDITOR, 0, route_fn},
    {"POST", "/governance/elevate", BRK_ROLE_APPROVER, BRK_ROUTE_JSON, route_fn},
    {"POST", "/governance/complete", BRK_ROLE_EXECUTOR, BRK_ROUTE_JSON, route_fn},
    {"GET", "/governance/session/{context_id}",
     BRK_ROLE_AUDITOR | BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER, 0, route_fn},
    {"GET", "/governance/drivers", BRK_ROLE_ALL, 0, route_fn},
    {"PUT", "/admin/accords/{name}", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, route_fn},
    {"GET", "/admin/accords/{name}", BRK_ROLE_ADMIN, 0, route_fn},
    {"GET", "/admin/accords", BRK_ROLE_ADMIN, 0, route_fn},
    {"GET", "/openapi.json", 0, 0, route_fn},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_router: %s\n  input: %.*s\n", what, (int)(size < 512 ? size : 512),
            (const char *)data);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (brk_router_add(routes, NROUTES) != 0 || brk_router_count() != NROUTES) {
        fprintf(stderr, "fuzz_router: cannot register the route table\n");
        abort();
    }
    return 0;
}

/* The next non-empty '/'-separated segment of [*p, end), or length 0 at the end. */
static size_t segment(const char **p, const char *end, const char **seg)
{
    while (*p < end && **p == '/')
        (*p)++;
    *seg = *p;
    while (*p < end && **p != '/')
        (*p)++;
    return (size_t)(*p - *seg);
}

/* 1 when path is pattern with params[0..np) in place of its {param} segments. */
static int rebuilds(const char *pattern, const char *path, size_t plen, const h2o_iovec_t *params,
                    size_t np)
{
    const char *pp = pattern, *pend = pattern + strlen(pattern), *q = path, *qend = path + plen;
    size_t k = 0;
    if (plen == 0 || path[0] != '/')
        return 0;
    for (;;) {
        const char *ps, *qs;
        size_t pl = segment(&pp, pend, &ps), ql = segment(&q, qend, &qs);
        if (pl == 0 || ql == 0)
            return pl == 0 && ql == 0 && k == np;
        if (ps[0] == '{') {
            if (k == np || params[k].base != qs || params[k].len != ql)
                return 0;
            k++;
        } else if (pl != ql || memcmp(ps, qs, pl) != 0) {
            return 0;
        }
    }
}

static size_t count_params(const char *pattern)
{
    size_t n = 0;
    for (const char *s = strstr(pattern, "/{"); s != NULL; s = strstr(s + 1, "/{"))
        n++;
    return n;
}

/* 1 when path matches some route whose method is not (method, mlen). */
static int other_method_matches(const char *method, size_t mlen, const char *path, size_t plen)
{
    for (size_t i = 0; i < NROUTES; i++) {
        const char *m = routes[i].method;
        h2o_iovec_t params[BRK_ROUTE_MAX_PARAMS];
        size_t np = 0;
        if (strlen(m) == mlen && memcmp(m, method, mlen) == 0)
            continue;
        if (brk_router_match(m, strlen(m), path, plen, params, &np) >= 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *sp = memchr(in, ' ', size);
    size_t mlen = sp ? (size_t)(sp - in) : size;
    size_t plen = sp ? size - mlen - 1 : 0;
    char *path = malloc(plen ? plen : 1);
    h2o_iovec_t params[BRK_ROUTE_MAX_PARAMS];
    size_t np = (size_t)-1;
    int ri;

    if (path == NULL)
        return 0;
    if (plen)
        memcpy(path, sp + 1, plen);
    memset(params, 0, sizeof params);
    ri = brk_router_match(in, mlen, path, plen, params, &np);
    if (ri >= 0) {
        if ((size_t)ri >= NROUTES)
            fail("route index out of range", data, size);
        const brk_route_t *rt = brk_router_get((size_t)ri);
        if (rt != &routes[ri])
            fail("route index does not name the registered route", data, size);
        if (strlen(rt->method) != mlen || memcmp(rt->method, in, mlen) != 0)
            fail("matched a route of another method", data, size);
        if (np > BRK_ROUTE_MAX_PARAMS || np != count_params(rt->pattern))
            fail("wrong number of params", data, size);
        for (size_t i = 0; i < np; i++) {
            const h2o_iovec_t *v = &params[i];
            if (v->base == NULL || v->base < path || v->base > path + plen ||
                v->len > (size_t)(path + plen - v->base))
                fail("param outside the path buffer", data, size);
            if (v->len == 0 || v->len > BRK_PARAM_MAX)
                fail("param empty or longer than BRK_PARAM_MAX", data, size);
            if (memchr(v->base, '/', v->len) != NULL)
                fail("param spans a '/'", data, size);
        }
        if (!rebuilds(rt->pattern, path, plen, params, np))
            fail("path is not the pattern with its params", data, size);
    } else if (ri == BRK_EMETHOD) {
        if (!other_method_matches(in, mlen, path, plen))
            fail("405 for a path no route has", data, size);
    } else if (ri == BRK_ENOTFOUND) {
        if (other_method_matches(in, mlen, path, plen))
            fail("404 for a path another method has", data, size);
    } else {
        fail("unexpected result", data, size);
    }
    free(path);
    return 0;
}
