/*
 * fuzz_uri: libFuzzer target for the request-text checks of intake (broker/brk_uri.h) over
 * path parameters and query strings, the way brk_http's on_req applies them.
 *
 * An input is a raw request target ("/governance/authorize/ctx%00?after=%ff"). It goes
 * through what intake does with it: h2o_url_normalize_path (which percent-decodes the path
 * and finds the query), brk_utf8_text_ok on the decoded path, brk_query_check on the query,
 * then brk_router_match. When intake would accept, the properties below must hold for every
 * {param} the router hands out and every query value brk_query_get returns:
 *   - well-formed UTF-8 (checked by a decoder written independently of brk_uri's: code
 *     points computed from the bits, then the shortest form and the range compared);
 *   - no NUL and no other C0 control, DEL or C1 control;
 *   - a brk_query_get value's length is strlen of it (nothing cut by a NUL).
 * Also, on any input: brk_utf8_cut never splits a character of well-formed text, and
 * brk_utf8_scrub leaves text that the independent decoder accepts (controls besides C1
 * replaced). Any violation abort()s so libFuzzer records the input.
 */
#include "brk_http.h"
#include "brk_uri.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void route_fn(brk_req_t *r)
{
    (void)r;
}

/* The broker's routes that take a {param} (handlers/), plus one with two params so that a
 * param between two others is exercised. */
static const brk_route_t routes[] = {
    {"GET", "/governance/authorize/{context_id}", 1, 0, route_fn},
    {"GET", "/governance/session/{context_id}", 1, 0, route_fn},
    {"GET", "/admin/accords/{name}", 1, 0, route_fn},
    {"GET", "/admin/accounts/{account_id}", 1, 0, route_fn},
    {"GET", "/billing/invoices/{invoice_id}", 1, 0, route_fn},
    {"GET", "/billing/invoices/{invoice_id}/lines.csv", 1, 0, route_fn},
    {"GET", "/x/{a}/y/{b}", 1, 0, route_fn},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* The query parameter names the handlers read, and a few that are not. */
static const char *const names[] = {"after", "cursor", "limit", "a", "", "%00", NULL};

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_uri: %s\n  input (%zu bytes): ", what, size);
    for (size_t i = 0; i < size && i < 256; i++)
        fprintf(stderr, "%02x", data[i]);
    fprintf(stderr, "\n");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (brk_router_add(routes, NROUTES) != 0) {
        fprintf(stderr, "fuzz_uri: cannot register the route table\n");
        abort();
    }
    return 0;
}

/* Independent check: 1 when [p, p+n) decodes to code points each in its shortest form, not
 * a surrogate, at most U+10FFFF, and (when no_controls) none below U+0020 or in 7F..9F. */
static int clean(const unsigned char *p, size_t n, int no_controls)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = p[i], len, cp;
        if (b < 0x80) {
            len = 1;
            cp = b;
        } else if ((b >> 5) == 0x6) {
            len = 2;
            cp = b & 0x1f;
        } else if ((b >> 4) == 0xe) {
            len = 3;
            cp = b & 0xf;
        } else if ((b >> 3) == 0x1e) {
            len = 4;
            cp = b & 0x7;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((p[i + k] >> 6) != 0x2)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        unsigned shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (shortest != len || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        if (no_controls && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;
    size_t query_at = SIZE_MAX, *norm = NULL;
    char *target = malloc(size + 1);

    if (target == NULL)
        return 0;
    memcpy(target, data, size);
    target[size] = '\0';

    /* The cut and scrub helpers, on the raw bytes. */
    if (clean(data, size, 0)) {
        for (size_t max = 0; max <= size && max < 16; max++) {
            size_t c = brk_utf8_cut(target, size, max);
            if (c > max || !clean(data, c, 0))
                fail("brk_utf8_cut split a character", data, size);
        }
    }
    if (memchr(data, '\0', size) == NULL) {
        char *s = strdup(target);
        size_t n = strlen(s);
        brk_utf8_scrub(s);
        if (strlen(s) != n || !clean((const unsigned char *)s, n, 0))
            fail("brk_utf8_scrub left ill-formed text", data, size);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                fail("brk_utf8_scrub left a control character", data, size);
        free(s);
    }

    /* Intake, as on_req does it. */
    if (size == 0 || data[0] != '/')
        goto out;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t path = h2o_url_normalize_path(&pool, target, size, &query_at, &norm);
    int path_ok = brk_utf8_text_ok(path.base, path.len);
    if (path_ok != clean((const unsigned char *)path.base, path.len, 1))
        fail("brk_utf8_text_ok disagrees with the independent decoder", data, size);
    const char *q = query_at != SIZE_MAX ? target + query_at + 1 : NULL;
    size_t qn = q ? size - query_at - 1 : 0;
    int query_ok = q == NULL || brk_query_check(q, qn) == 0;
    if (path_ok && query_ok) {
        h2o_iovec_t params[BRK_ROUTE_MAX_PARAMS];
        size_t np = 0;
        if (brk_router_match("GET", 3, path.base, path.len, params, &np) >= 0) {
            for (size_t i = 0; i < np; i++) {
                if (memchr(params[i].base, '\0', params[i].len) != NULL)
                    fail("a path parameter holds a NUL", data, size);
                if (!clean((const unsigned char *)params[i].base, params[i].len, 1))
                    fail("a path parameter is not clean text", data, size);
            }
        }
        for (size_t k = 0; q != NULL && names[k] != NULL; k++) {
            char out[256];
            size_t len = 0;
            int rc = brk_query_get(q, qn, names[k], out, sizeof out, &len);
            if (rc == 0) {
                if (strlen(out) != len)
                    fail("a query value is cut by a NUL", data, size);
                if (!clean((const unsigned char *)out, len, 1))
                    fail("a query value is not clean text", data, size);
            } else if (rc != BRK_ENOTFOUND && rc != BRK_ETOOBIG) {
                fail("brk_query_get refused a value of an accepted query", data, size);
            } else if (out[0] != '\0' || len != 0) {
                fail("brk_query_get failed but left a value", data, size);
            }
        }
    }
    h2o_mem_clear_pool(&pool);
out:
    free(target);
    return 0;
}
