/*
 * fuzz_json_body: libFuzzer target for brk_json_parse_object, the parser of every JSON
 * request body.
 *
 * Properties checked on every input:
 *   - the result is 0 with an object in *out, or BRK_EINVAL with *out NULL, a known code
 *     ("invalid_json" / "json_too_deep") and a non-empty NUL-terminated message;
 *   - an accepted value nests at most BRK_MAX_JSON_DEPTH levels (walked here independently
 *     of the parser's own check, with a recursion capped one level past the limit, so a
 *     parser bug cannot make the walk itself deep);
 *   - nothing without a NUL byte is refused that jansson alone reads as an object within the
 *     limit (a raw NUL is refused on purpose: jansson would drop some of them silently);
 *   - nothing leaks (ASan/LSan): the value is released with json_decref.
 * libFuzzer hands over a heap copy of exactly size bytes, so a read past n is an ASan error.
 * Any violation abort()s so libFuzzer records the input.
 */
#include "brk_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_json_body: %s\n  input: %.*s\n", what, (int)(size < 512 ? size : 512),
            (const char *)data);
    abort();
}

/* min(depth of v, cap), cap >= 1. Depth counts every node as brk_json does: a scalar or an
 * empty container is 1, a container is 1 + its deepest member. The cap bounds the recursion
 * whatever the parser let through. */
static int depth_of(const json_t *v, int cap)
{
    int best = 0, d;
    if (cap <= 1)
        return 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c) if ((d = depth_of(c, cap - 1)) > best) best = d;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) if ((d = depth_of(c, cap - 1)) > best) best = d;
    }
    return best + 1;
}

/* What *out holds before the call, so that "left untouched" is told apart from NULL. */
static json_t poison;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    json_t *v = &poison; /* the callee must set *out on every path */
    const char *code = NULL;
    char msg[512];
    int rc;

    memset(msg, 'x', sizeof msg);
    rc = brk_json_parse_object(buf, size, &v, &code, msg, sizeof msg);
    if (rc == 0) {
        if (v == NULL || v == &poison || !json_is_object(v))
            fail("accepted a body that is not an object", data, size);
        /* The object itself is level 1; only a kept value beyond the limit is a bug. */
        if (depth_of(v, BRK_MAX_JSON_DEPTH + 1) > BRK_MAX_JSON_DEPTH)
            fail("accepted a body deeper than BRK_MAX_JSON_DEPTH", data, size);
    } else {
        if (rc != BRK_EINVAL)
            fail("unexpected error code", data, size);
        if (v != NULL)
            fail("*out not NULL after a refusal", data, size);
        if (code == NULL ||
            (strcmp(code, "invalid_json") != 0 && strcmp(code, "json_too_deep") != 0))
            fail("unknown refusal code", data, size);
        if (memchr(msg, '\0', sizeof msg) == NULL || msg[0] == '\0')
            fail("message empty or not NUL-terminated", data, size);
        /* No false refusals: what jansson alone reads as an object within the limit must have
         * been accepted (the raw pre-check may only refuse what the exact check would). */
        json_error_t jerr;
        json_t *ref = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerr);
        int within = memchr(buf, '\0', size) == NULL && ref != NULL && json_is_object(ref) &&
                     depth_of(ref, BRK_MAX_JSON_DEPTH + 1) <= BRK_MAX_JSON_DEPTH;
        json_decref(ref);
        if (within)
            fail("refused an object within the depth limit", data, size);
    }
    json_decref(v);
    return 0;
}
