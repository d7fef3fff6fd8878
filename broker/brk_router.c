/*
 * brk_router: a flat table of routes matched segment by segment.
 *
 * The table is small (tens of routes) and fixed after start-up, so a linear scan is both
 * the simplest and, at this size, as fast as a tree. A pattern segment "{name}" matches any
 * one non-empty segment of at most BRK_PARAM_MAX bytes. A trailing slash on the request path
 * is ignored, so "/x/" and "/x" are the same route, as the reference broker's clients expect.
 */
#include "brk_router.h"

#include <string.h>

#include "brk_err.h"
#include "banned.h"

static const brk_route_t *g_routes[BRK_ROUTE_MAX];
static size_t g_nroutes;

int brk_router_add(const brk_route_t *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (routes[i].pattern[0] != '/' || routes[i].fn == NULL)
            return BRK_EINVAL;
        if (g_nroutes == BRK_ROUTE_MAX)
            return BRK_ENOMEM;
        g_routes[g_nroutes++] = &routes[i];
    }
    return 0;
}

size_t brk_router_count(void)
{
    return g_nroutes;
}

const brk_route_t *brk_router_get(size_t i)
{
    return i < g_nroutes ? g_routes[i] : NULL;
}

/* Splits off the next segment of [*p, end): returns its length, advances *p past it. */
static size_t next_seg(const char **p, const char *end, const char **seg)
{
    while (*p < end && **p == '/')
        (*p)++;
    *seg = *p;
    while (*p < end && **p != '/')
        (*p)++;
    return (size_t)(*p - *seg);
}

static int path_matches(const char *pattern, const char *path, size_t plen, h2o_iovec_t *params,
                        size_t *nparams)
{
    const char *pp = pattern, *pend = pattern + strlen(pattern);
    const char *q = path, *qend = path + plen;
    size_t np = 0;

    if (plen == 0 || path[0] != '/')
        return 0;
    /* Empty segments are skipped, so "//" counts as "/" (h2o's normalized path has none). */
    for (;;) {
        const char *ps, *qs;
        size_t pl = next_seg(&pp, pend, &ps);
        size_t ql = next_seg(&q, qend, &qs);
        if (pl == 0 || ql == 0)
            return pl == 0 && ql == 0;
        if (ps[0] == '{') {
            if (ql > BRK_PARAM_MAX || np == BRK_ROUTE_MAX_PARAMS)
                return 0;
            if (params != NULL)
                params[np] = h2o_iovec_init(qs, ql);
            np++;
        } else if (pl != ql || memcmp(ps, qs, pl) != 0) {
            return 0;
        }
        if (nparams != NULL)
            *nparams = np;
    }
}

int brk_router_match(const char *method, size_t mlen, const char *path, size_t plen,
                     h2o_iovec_t *params, size_t *nparams)
{
    int path_found = 0;
    for (size_t i = 0; i < g_nroutes; i++) {
        size_t np = 0;
        if (!path_matches(g_routes[i]->pattern, path, plen, params, &np))
            continue;
        if (strlen(g_routes[i]->method) == mlen && memcmp(g_routes[i]->method, method, mlen) == 0) {
            *nparams = np;
            return (int)i;
        }
        path_found = 1;
    }
    return path_found ? BRK_EMETHOD : BRK_ENOTFOUND;
}
