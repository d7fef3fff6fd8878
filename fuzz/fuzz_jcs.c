/*
 * fuzz_jcs: libFuzzer target for brk_jcs_canonicalize.
 *
 * Properties checked on every input jansson accepts:
 *   - canonicalization succeeds, or refuses with BRK_EINVAL (too deep), never anything else;
 *   - the canonical text parses again, and canonicalizing that gives the same bytes
 *     (canonical form is a fixed point);
 *   - numbers read as doubles (JSON_DECODE_INT_AS_REAL, as JavaScript reads them) and as
 *     jansson integers give the same canonical text, since integers go through double;
 *   - the output is NUL-terminated at the reported length.
 * Any violation abort()s so libFuzzer records the input.
 *
 * Parsing depth: jansson 2.14 has no run-time depth flag; its parser stops at the compiled-in
 * JSON_PARSER_MAX_DEPTH (2048), which bounds the recursion in jansson's own parse and free.
 * The canonicalizer's own limit, BRK_JCS_MAX_DEPTH, is far below that.
 */
#include "brk_jcs.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

#define FUZZ_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *a, size_t alen, const char *b, size_t blen)
{
    fprintf(stderr, "fuzz_jcs: %s\n  first:  %.*s\n  second: %.*s\n", what, (int)alen,
            a ? a : "", (int)blen, b ? b : "");
    abort();
}

/* Canonicalizes data parsed with flags. Returns the canonical text (caller frees) or NULL
 * when jansson or the canonicalizer (for depth) refuses the input. */
static char *canon_of(const uint8_t *data, size_t size, size_t flags, size_t *len)
{
    json_error_t err;
    json_t *v = json_loadb((const char *)data, size, flags, &err);
    char *out = NULL;
    int rc;

    if (v == NULL)
        return NULL;
    rc = brk_jcs_canonicalize(v, &out, len);
    json_decref(v);
    if (rc != 0) {
        if (rc != BRK_EINVAL || out != NULL)
            fail("unexpected error from brk_jcs_canonicalize", NULL, 0, NULL, 0);
        return NULL;
    }
    if (out == NULL || out[*len] != '\0' || strlen(out) > *len)
        fail("output not NUL-terminated at its length", out, *len, NULL, 0);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *c1 = NULL, *c2 = NULL, *ci = NULL;
    size_t l1 = 0, l2 = 0, li = 0;

    c1 = canon_of(data, size, FUZZ_FLAGS | JSON_DECODE_INT_AS_REAL, &l1);
    if (c1 == NULL)
        goto out;

    c2 = canon_of((const uint8_t *)c1, l1, FUZZ_FLAGS | JSON_DECODE_INT_AS_REAL, &l2);
    if (c2 == NULL)
        fail("canonical text does not parse or canonicalize again", c1, l1, NULL, 0);
    if (l1 != l2 || memcmp(c1, c2, l1) != 0)
        fail("canonical form is not a fixed point", c1, l1, c2, l2);

    /* Integers kept as json_int_t (when they fit) must print as the same double would. */
    ci = canon_of(data, size, FUZZ_FLAGS, &li);
    if (ci != NULL && (li != l1 || memcmp(ci, c1, l1) != 0))
        fail("integer and real readings differ", c1, l1, ci, li);
out:
    free(c1);
    free(c2);
    free(ci);
    return 0;
}
