/*
 * brk_json: the JSON body parser of the HTTP front (moved out of brk_http.c unchanged, so the
 * HTTP replies keep their codes and messages byte for byte).
 *
 * The raw pre-check allows one level more than the limit: its job is only to keep jansson's
 * recursion shallow, and the parsed-value check below gives the exact answer.
 */
#include "brk_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

static int json_depth_ok(const json_t *v, int depth)
{
    if (depth > BRK_MAX_JSON_DEPTH)
        return 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        /* jansson's iteration macro takes a non-const object; it does not modify it. */
        json_object_foreach((json_t *)v, k, c) if (!json_depth_ok(c, depth + 1)) return 0;
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) if (!json_depth_ok(c, depth + 1)) return 0;
    }
    return 1;
}

/* Cheap pre-check so a hostile "[[[[..." never reaches jansson's recursive parser deeply.
 * Brackets inside strings do not count; a backslash skips the byte after it. */
static int raw_depth_ok(const char *p, size_t n)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > BRK_MAX_JSON_DEPTH + 1)
                return 0;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 1;
}

static int refuse(const char **code, const char *c, char *msg, size_t msglen, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

static int refuse(const char **code, const char *c, char *msg, size_t msglen, const char *fmt,
                  ...)
{
    va_list ap;
    *code = c;
    if (msg != NULL && msglen > 0) {
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return BRK_EINVAL;
}

int brk_json_parse_object(const char *p, size_t n, json_t **out, const char **code, char *msg,
                          size_t msglen)
{
    json_error_t jerr;
    json_t *v = NULL;
    int rc;

    *out = NULL;
    /* A raw NUL is never valid JSON, and jansson 2.14 silently drops one that its number or
     * literal lexer reads ahead and puts back ({"a":1<NUL>}): refuse them all up front. */
    if (memchr(p, '\0', n) != NULL) {
        rc = refuse(code, "invalid_json", msg, msglen, "the body contains a NUL byte");
        goto out;
    }
    if (!raw_depth_ok(p, n)) {
        rc = refuse(code, "json_too_deep", msg, msglen, "the body nests deeper than %d levels",
                    BRK_MAX_JSON_DEPTH);
        goto out;
    }
    v = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        rc = refuse(code, "invalid_json", msg, msglen, "malformed JSON at line %d column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(v)) {
        rc = refuse(code, "invalid_json", msg, msglen, "the body must be a JSON object");
        goto out;
    }
    if (!json_depth_ok(v, 1)) {
        rc = refuse(code, "json_too_deep", msg, msglen, "the body nests deeper than %d levels",
                    BRK_MAX_JSON_DEPTH);
        goto out;
    }
    *out = v;
    v = NULL;
    rc = 0;
out:
    json_decref(v);
    return rc;
}
