/* gov_accord: accord parsing and the policy decision; see gov_accord.h. */
#include "gov_accord.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"


static int fail(const char **code, char *msg, size_t mlen, const char *c, int rc, const char *m,
                const char *field)
{
    *code = c;
    snprintf(msg, mlen, m, field);
    return rc;
}

int gov_accord_parse(const json_t *in, const char *name_hint, gov_accord_t *a, const char **code,
                     char *msg, size_t mlen)
{
    static const char *const fields[] = {"name", "ttl_max_seconds", "session_mode_allowed",
                                         "capability_mask", "elevation_required", "corpus_allow",
                                         "environment_commitment", "posture_level", "shell_class",
                                         "signed_receipts", "approvals_required",
                                         "self_authorized_allowed", NULL};
    const char *k, *name;
    json_t *v, *body = NULL;
    int rc = 0;

    memset(a, 0, sizeof(*a));
    if (!json_is_object(in))
        return fail(code, msg, mlen, "invalid_accord", BRK_EINVAL, "an accord is a JSON object%s", "");
    json_object_foreach((json_t *)in, k, v)
    {
        size_t i;
        for (i = 0; fields[i] && strcmp(fields[i], k) != 0; i++)
            ;
        if (!fields[i])
            return fail(code, msg, mlen, "unknown_field", BRK_EINVAL, "unknown field \"%.64s\"", k);
    }
    v = json_object_get(in, "name");
    name = json_string_value(v);
    if (v != NULL && name == NULL)
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be a string", "name");
    if (name == NULL)
        name = name_hint;
    if (name == NULL || (name_hint != NULL && strcmp(name, name_hint) != 0))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                    "\"name\" is required and must match the accord addressed%s", "");
    size_t nl = strlen(name);
    if (nl == 0 || nl > GOV_ACCORD_NAME_MAX)
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be 1 to 64 characters", "name");
    for (size_t i = 0; i < nl; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '.' || c == '_' || c == '-'))))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                        "\"%s\" may hold letters, digits, '.', '_' and '-'", "name");
    }
    memcpy(a->name, name, nl + 1);

    a->ttl_max = GOV_ACCORD_TTL_DEFAULT;
    a->session_allowed = 1;
    a->cap_mask = GOV_ACCORD_MASK_DEFAULT;
    a->posture = GOV_ACCORD_POSTURE_DEFAULT;
    a->shell_class = GOV_ACCORD_SHELL_DEFAULT;
    a->approvals_required = GOV_APPROVALS_MIN;
    if ((v = json_object_get(in, "approvals_required")) != NULL) {
        if (!json_is_integer(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an integer", "approvals_required");
        if (json_integer_value(v) < GOV_APPROVALS_MIN || json_integer_value(v) > GOV_APPROVALS_MAX)
            return fail(code, msg, mlen, "out_of_range", BRK_ERANGE, "\"%s\" must be 1..5", "approvals_required");
        a->approvals_required = (int)json_integer_value(v);
    }
    if ((v = json_object_get(in, "ttl_max_seconds")) != NULL) {
        if (!json_is_integer(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an integer", "ttl_max_seconds");
        a->ttl_max = (long)json_integer_value(v);
        if (a->ttl_max < 1 || a->ttl_max > GOV_TTL_MAX)
            return fail(code, msg, mlen, "out_of_range", BRK_ERANGE, "\"%s\" must be 1..86400", "ttl_max_seconds");
    }
    if ((v = json_object_get(in, "session_mode_allowed")) != NULL) {
        if (!json_is_boolean(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be a boolean", "session_mode_allowed");
        a->session_allowed = json_is_true(v);
    }
    if ((v = json_object_get(in, "signed_receipts")) != NULL) {
        if (!json_is_boolean(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be a boolean", "signed_receipts");
        a->signed_receipts = json_is_true(v);
    }
    if ((v = json_object_get(in, "self_authorized_allowed")) != NULL) {
        if (!json_is_boolean(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be a boolean", "self_authorized_allowed");
        a->self_authorized_allowed = json_is_true(v);
    }
    const char *caps_fields[2] = {"capability_mask", "elevation_required"};
    uint32_t *caps_out[2] = {&a->cap_mask, &a->elevation_required};
    for (int i = 0; i < 2; i++) {
        if ((v = json_object_get(in, caps_fields[i])) == NULL)
            continue;
        if (!json_is_string(v) || gov_caps_parse(json_string_value(v), caps_out[i]) != 0)
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL,
                        "\"%s\" must be \"0x\" and 1 to 8 hex digits", caps_fields[i]);
    }
    if ((v = json_object_get(in, "posture_level")) != NULL) {
        if (!json_is_integer(v))
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an integer", "posture_level");
        a->posture = (int)json_integer_value(v);
        if (json_integer_value(v) < GOV_POSTURE_MIN || json_integer_value(v) > GOV_POSTURE_MAX)
            return fail(code, msg, mlen, "out_of_range", BRK_ERANGE, "\"%s\" must be 1..5", "posture_level");
    }
    if ((v = json_object_get(in, "shell_class")) != NULL) {
        const char *sc = json_string_value(v);
        if (sc == NULL || strlen(sc) == 0 || strlen(sc) > GOV_SHELL_CLASS_MAX)
            return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be a string of 1 to 32 characters", "shell_class");
        for (const char *p = sc; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
                return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" may hold letters, digits, '-' and '_'", "shell_class");
        a->shell_class = sc;
    }
    v = json_object_get(in, "environment_commitment");
    if (v != NULL && !json_is_null(v) && (!json_is_string(v) || !brk_cid_valid(json_string_value(v))))
        return fail(code, msg, mlen, "invalid_cid", BRK_EINVAL, "\"%s\" must be a CID or null", "environment_commitment");
    v = json_object_get(in, "corpus_allow");
    if (v != NULL && !json_is_array(v))
        return fail(code, msg, mlen, "invalid_field", BRK_EINVAL, "\"%s\" must be an array of CIDs", "corpus_allow");
    if (v != NULL && json_array_size(v) > GOV_CORPUS_ALLOW_MAX)
        return fail(code, msg, mlen, "out_of_range", BRK_ERANGE, "\"%s\" holds at most 1024 CIDs", "corpus_allow");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e) || !brk_cid_valid(json_string_value(e)))
        return fail(code, msg, mlen, "invalid_cid", BRK_EINVAL, "\"%s\" must hold CIDs only", "corpus_allow");

    char mask[GOV_CAPS_STR_MAX + 1], elev[GOV_CAPS_STR_MAX + 1];
    gov_caps_fmt(a->cap_mask, mask);
    gov_caps_fmt(a->elevation_required, elev);
    json_t *env = json_object_get(in, "environment_commitment");
    body = json_pack("{s:s,s:I,s:b,s:s,s:s,s:o,s:o,s:i,s:s,s:b}", "name", a->name,
                     "ttl_max_seconds", (json_int_t)a->ttl_max, "session_mode_allowed",
                     a->session_allowed, "capability_mask", mask, "elevation_required", elev,
                     "corpus_allow", v ? json_incref(v) : json_array(), "environment_commitment",
                     env ? json_incref(env) : json_null(), "posture_level", a->posture, "shell_class",
                     a->shell_class, "signed_receipts", a->signed_receipts);
    if (body == NULL)
        return fail(code, msg, mlen, "internal", BRK_EINTERNAL, "cannot build the accord%s", "");
    /* Left out at its default, so existing accords keep their hash (see gov_accord.h). */
    if (a->approvals_required != GOV_APPROVALS_MIN)
        json_object_set_new(body, "approvals_required", json_integer(a->approvals_required));
    /* Present only when true, so the normalized form (and accord_hash) of every accord that
     * does not use it is the same as before the setting existed. */
    if (a->self_authorized_allowed)
        json_object_set_new(body, "self_authorized_allowed", json_true());
    a->body = body;
    a->corpus_allow = json_object_get(body, "corpus_allow");
    a->env_commitment = json_string_value(json_object_get(body, "environment_commitment"));
    a->shell_class = json_string_value(json_object_get(body, "shell_class"));
    if ((rc = brk_jcs_cid(body, a->accord_hash)) != 0) {
        gov_accord_clear(a);
        return fail(code, msg, mlen, "invalid_accord", BRK_EINVAL, "the accord cannot be canonicalized%s", "");
    }
    return 0;
}

void gov_accord_clear(gov_accord_t *a)
{
    if (a->body)
        json_decref(a->body);
    a->body = NULL;
}

void gov_policy_decide(const gov_accord_t *a, int session, uint32_t caps, const char *corpus,
                       const char *env, long ttl, gov_decision_t *d)
{
    memset(d, 0, sizeof(*d));
    d->ttl = ttl > a->ttl_max ? a->ttl_max : ttl;
    if (session && !a->session_allowed) {
        d->deny_code = "session_mode_not_allowed";
        snprintf(d->reason, sizeof d->reason, "accord \"%s\" does not allow session ACs", a->name);
        return;
    }
    if (caps & ~a->cap_mask) {
        d->deny_code = "capability_not_allowed";
        snprintf(d->reason, sizeof d->reason,
                 "capabilities 0x%08x are outside accord \"%s\"'s mask 0x%08x", caps & ~a->cap_mask,
                 a->name, a->cap_mask);
        return;
    }
    if (json_array_size(a->corpus_allow) > 0) {
        size_t i;
        json_t *e;
        int found = 0;
        json_array_foreach(a->corpus_allow, i, e) if (corpus && strcmp(json_string_value(e), corpus) == 0)
            found = 1;
        if (!found) {
            d->deny_code = "corpus_not_allowed";
            snprintf(d->reason, sizeof d->reason,
                     "the corpus entry is not in accord \"%s\"'s allow-list", a->name);
            return;
        }
    }
    if (a->env_commitment != NULL && (env == NULL || strcmp(env, a->env_commitment) != 0)) {
        d->deny_code = "environment_mismatch";
        snprintf(d->reason, sizeof d->reason,
                 "the environment commitment differs from accord \"%s\"'s", a->name);
        return;
    }
    d->pending = (caps & a->elevation_required) != 0;
}
