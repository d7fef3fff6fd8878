/* hnd_util: the shared field validators; see hnd_util.h. */
#include "hnd_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "banned.h"

int hnd_reject_unknown(brk_req_t *r, json_t *obj, const char *const *fields)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        size_t i;
        for (i = 0; fields[i] != NULL && strcmp(fields[i], k) != 0; i++)
            ;
        if (fields[i] == NULL) {
            brk_reply_error(r, BRK_EINVAL, "unknown_field", "unknown field \"%.64s\"", k);
            return -1;
        }
    }
    return 0;
}

/* The nesting of v: 0 for a scalar, 1 + the deepest child for an array or object. Stops
 * counting past limit (the body parser already bounds the recursion, BRK_MAX_JSON_DEPTH). */
static int json_depth(const json_t *v, int limit)
{
    int d = 0;
    size_t i;
    const char *k;
    json_t *c;
    if (limit < 0)
        return 1;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, c)
        {
            int cd = json_depth(c, limit - 1);
            d = cd > d ? cd : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            int cd = json_depth(c, limit - 1);
            d = cd > d ? cd : d;
        }
        return d + 1;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int hnd_unknown_names(const json_t *obj, const char *const *fields, json_t **names, char *msg,
                      size_t mlen)
{
    const char *k, *found[HND_UNKNOWN_MAX];
    json_t *v;
    size_t n = 0, bytes = 0;

    *names = NULL;
    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        for (i = 0; fields[i] != NULL && strcmp(fields[i], k) != 0; i++)
            ;
        if (fields[i] != NULL)
            continue;
        if (n == HND_UNKNOWN_MAX) {
            snprintf(msg, mlen, "at most %d unrecognized fields are kept", HND_UNKNOWN_MAX);
            return BRK_EINVAL;
        }
        if (strlen(k) > HND_UNKNOWN_KEY_MAX) {
            snprintf(msg, mlen, "an unrecognized field's name is longer than %d bytes",
                     HND_UNKNOWN_KEY_MAX);
            return BRK_EINVAL;
        }
        if (json_depth(v, HND_UNKNOWN_DEPTH_MAX) > HND_UNKNOWN_DEPTH_MAX) {
            snprintf(msg, mlen, "unrecognized field \"%s\" is nested deeper than %d levels", k,
                     HND_UNKNOWN_DEPTH_MAX);
            return BRK_EINVAL;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        bytes += strlen(k) + (s ? strlen(s) : 0);
        free(s);
        if (bytes > HND_UNKNOWN_BYTES_MAX) {
            snprintf(msg, mlen, "unrecognized fields hold more than %d bytes",
                     HND_UNKNOWN_BYTES_MAX);
            return BRK_EINVAL;
        }
        found[n++] = k;
    }
    qsort(found, n, sizeof found[0], cmp_names);
    *names = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(*names, json_string(found[i]));
    return 0;
}

json_t *hnd_collect_unknown(brk_req_t *r, json_t *obj, const char *const *fields)
{
    json_t *names;
    char msg[160];
    if (hnd_unknown_names(obj, fields, &names, msg, sizeof msg) != 0) {
        brk_reply_error(r, BRK_EINVAL, "unrecognized_fields_over_limit", "%s", msg);
        return NULL;
    }
    return names;
}

int hnd_looks_secret(const char *k)
{
    static const char *const words[] = {"token", "password", "passwd", "secret", "key",
                                        "authorization", "auth", "credential", "cookie",
                                        "private", "signature", NULL};
    for (int i = 0; words[i]; i++) {
        size_t wl = strlen(words[i]);
        for (const char *p = k; *p; p++)
            if (strncasecmp(p, words[i], wl) == 0)
                return 1;
    }
    return 0;
}

static int get_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out,
                      int required)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required)) {
        if (!required)
            return 0;
        brk_reply_error(r, BRK_EINVAL, "missing_field", "\"%s\" is required", key);
        return -1;
    }
    if (!json_is_string(v)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"%s\" must be a string", key);
        return -1;
    }
    if (json_string_length(v) > max) {
        brk_reply_error(r, BRK_EINVAL, "field_too_long", "\"%s\" is longer than %zu bytes", key,
                        max);
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"%s\" must not contain NUL", key);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int hnd_opt_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out)
{
    return get_string(r, obj, key, max, out, 0);
}

int hnd_req_string(brk_req_t *r, json_t *obj, const char *key, size_t max, const char **out)
{
    return get_string(r, obj, key, max, out, 1);
}

int hnd_opt_bool(brk_req_t *r, json_t *obj, const char *key, int *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"%s\" must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int hnd_opt_int(brk_req_t *r, json_t *obj, const char *key, long long lo, long long hi,
                long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"%s\" must be an integer", key);
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        brk_reply_error(r, BRK_ERANGE, "out_of_range", "\"%s\" must be between %lld and %lld",
                        key, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_cid(brk_req_t *r, json_t *obj, const char *key, const char **out, int required)
{
    if (get_string(r, obj, key, HND_CID_FIELD_MAX, out, required) != 0)
        return -1;
    if (*out != NULL && !brk_cid_valid(*out)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_cid",
                        "\"%s\" must be \"sha256:\" and 64 lowercase hex digits", key);
        return -1;
    }
    return 0;
}

int hnd_req_cid(brk_req_t *r, json_t *obj, const char *key, const char **out)
{
    return get_cid(r, obj, key, out, 1);
}

int hnd_opt_cid(brk_req_t *r, json_t *obj, const char *key, const char **out)
{
    return get_cid(r, obj, key, out, 0);
}

int hnd_req_enum(brk_req_t *r, json_t *obj, const char *key, const char *const *values, int *idx)
{
    const char *s;
    if (get_string(r, obj, key, HND_ENUM_STR_MAX, &s, 1) != 0)
        return -1;
    for (int i = 0; values[i] != NULL; i++) {
        if (strcmp(values[i], s) == 0) {
            *idx = i;
            return 0;
        }
    }
    brk_reply_error(r, BRK_ERANGE, "invalid_enum", "\"%s\" has no value \"%.64s\"", key, s);
    return -1;
}
