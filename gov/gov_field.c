/* gov_field: the shared field checks; see gov_field.h. */
#include "gov_field.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "banned.h"

static int listed(const char *const *fields, const char *k)
{
    for (size_t i = 0; fields[i] != NULL; i++)
        if (strcmp(fields[i], k) == 0)
            return 1;
    return 0;
}

int gov_reject_unknown(const json_t *obj, const char *const *fields, gov_err_t *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!listed(fields, k))
            return gov_fail(e, BRK_EINVAL, "unknown_field", "unknown field \"%.64s\"", k);
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

int gov_unknown_names(const json_t *obj, const char *const *fields, json_t **names, char *msg,
                      size_t mlen)
{
    const char *k, *found[GOV_UNKNOWN_MAX];
    json_t *v;
    size_t n = 0, bytes = 0;

    *names = NULL;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (listed(fields, k))
            continue;
        if (n == GOV_UNKNOWN_MAX) {
            snprintf(msg, mlen, "at most %d unrecognized fields are kept", GOV_UNKNOWN_MAX);
            return BRK_EINVAL;
        }
        if (strlen(k) > GOV_UNKNOWN_KEY_MAX) {
            snprintf(msg, mlen, "an unrecognized field's name is longer than %d bytes",
                     GOV_UNKNOWN_KEY_MAX);
            return BRK_EINVAL;
        }
        if (json_depth(v, GOV_UNKNOWN_DEPTH_MAX) > GOV_UNKNOWN_DEPTH_MAX) {
            snprintf(msg, mlen, "unrecognized field \"%s\" is nested deeper than %d levels", k,
                     GOV_UNKNOWN_DEPTH_MAX);
            return BRK_EINVAL;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        bytes += strlen(k) + (s ? strlen(s) : 0);
        free(s);
        if (bytes > GOV_UNKNOWN_BYTES_MAX) {
            snprintf(msg, mlen, "unrecognized fields hold more than %d bytes",
                     GOV_UNKNOWN_BYTES_MAX);
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

int gov_collect_unknown(const json_t *obj, const char *const *fields, json_t **names,
                        gov_err_t *e)
{
    char msg[160];
    if (gov_unknown_names(obj, fields, names, msg, sizeof msg) != 0)
        return gov_fail(e, BRK_EINVAL, "unrecognized_fields_over_limit", "%s", msg);
    return 0;
}

int gov_looks_secret(const char *k)
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

static int get_string(const json_t *obj, const char *key, size_t max, const char **out,
                      int required, gov_err_t *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required)) {
        if (!required)
            return 0;
        return gov_fail(e, BRK_EINVAL, "missing_field", "\"%s\" is required", key);
    }
    if (!json_is_string(v))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be a string", key);
    if (json_string_length(v) > max)
        return gov_fail(e, BRK_EINVAL, "field_too_long", "\"%s\" is longer than %zu bytes", key,
                        max);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must not contain NUL", key);
    *out = json_string_value(v);
    return 0;
}

int gov_opt_string(const json_t *obj, const char *key, size_t max, const char **out,
                   gov_err_t *e)
{
    return get_string(obj, key, max, out, 0, e);
}

int gov_req_string(const json_t *obj, const char *key, size_t max, const char **out,
                   gov_err_t *e)
{
    return get_string(obj, key, max, out, 1, e);
}

int gov_opt_bool(const json_t *obj, const char *key, int *out, gov_err_t *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

int gov_opt_int(const json_t *obj, const char *key, long long lo, long long hi, long long *out,
                gov_err_t *e)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be an integer", key);
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return gov_fail(e, BRK_ERANGE, "out_of_range", "\"%s\" must be between %lld and %lld",
                        key, lo, hi);
    *out = x;
    return 0;
}

static int get_cid(const json_t *obj, const char *key, const char **out, int required,
                   gov_err_t *e)
{
    int rc = get_string(obj, key, GOV_CID_FIELD_MAX, out, required, e);
    if (rc != 0)
        return rc;
    if (*out != NULL && !brk_cid_valid(*out))
        return gov_fail(e, BRK_EINVAL, "invalid_cid",
                        "\"%s\" must be \"sha256:\" and 64 lowercase hex digits", key);
    return 0;
}

int gov_req_cid(const json_t *obj, const char *key, const char **out, gov_err_t *e)
{
    return get_cid(obj, key, out, 1, e);
}

int gov_opt_cid(const json_t *obj, const char *key, const char **out, gov_err_t *e)
{
    return get_cid(obj, key, out, 0, e);
}

int gov_req_enum(const json_t *obj, const char *key, const char *const *values, int *idx,
                 gov_err_t *e)
{
    const char *s;
    int rc = get_string(obj, key, GOV_ENUM_STR_MAX, &s, 1, e);
    if (rc != 0)
        return rc;
    for (int i = 0; values[i] != NULL; i++) {
        if (strcmp(values[i], s) == 0) {
            *idx = i;
            return 0;
        }
    }
    return gov_fail(e, BRK_ERANGE, "invalid_enum", "\"%s\" has no value \"%.64s\"", key, s);
}

int gov_req_object(const json_t *obj, const char *key, json_t **out, gov_err_t *e)
{
    json_t *v = json_object_get(obj, key);
    *out = v;
    if (!json_is_object(v))
        return gov_fail(e, BRK_EINVAL, v ? "invalid_field" : "missing_field",
                        "\"%s\" must be an object", key);
    return 0;
}
