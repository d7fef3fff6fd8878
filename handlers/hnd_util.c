/* hnd_util: the shared field validators; see hnd_util.h. */
#include "hnd_util.h"

#include <string.h>

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
