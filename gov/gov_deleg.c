/* gov_deleg: delegation scopes, narrowing and the SDK delegation check; see gov_deleg.h. */
#include "gov_deleg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "gov_field.h"
#include "banned.h"

void gov_deleg_scope_clear(gov_deleg_scope_t *s)
{
    json_decref(s->accords);
    json_decref(s->corpus);
    json_decref(s->prohibited);
    s->accords = s->corpus = s->prohibited = NULL;
}

void gov_deleg_request_clear(gov_deleg_request_t *q)
{
    gov_deleg_scope_clear(&q->s);
}

static int hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int gov_deleg_id_valid(const char *s)
{
    return s != NULL && strlen(s) == GOV_DELEG_ID_LEN && memcmp(s, "dlg_", 4) == 0 &&
           hex_lower(s + 4, GOV_DELEG_ID_LEN - 4);
}

static int did_ok(const char *s)
{
    return s != NULL && strncmp(s, "did:", 4) == 0 && strlen(s) >= 7 && strlen(s) <= GOV_DID_MAX;
}

/* An array of distinct strings, each valid by kind (0: accord name, 1: CID), at most
 * GOV_DELEG_LIST_MAX; a new reference in *out (sorted copy so documents are stable). */
static int string_list(const json_t *v, const char *key, int cids, json_t **out, gov_err_t *e)
{
    size_t i;
    json_t *x;
    *out = NULL;
    if (!json_is_array(v))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be an array of strings", key);
    if (json_array_size(v) > GOV_DELEG_LIST_MAX)
        return gov_fail(e, BRK_ETOOBIG, "field_too_long", "\"%s\" has more than %d entries", key,
                        GOV_DELEG_LIST_MAX);
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        if (s == NULL || strlen(s) != json_string_length(x))
            return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be an array of strings",
                            key);
        if (cids ? !brk_cid_valid(s) : (strlen(s) == 0 || strlen(s) > GOV_ACCORD_NAME_MAX))
            return gov_fail(e, BRK_EINVAL, cids ? "invalid_cid" : "invalid_field",
                            "\"%s\" has an invalid entry \"%.80s\"", key, s);
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_array_get(v, j)), s) == 0)
                return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" lists \"%.80s\" twice", key,
                                s);
    }
    *out = json_deep_copy(v);
    return 0;
}

static int list_has(const json_t *list, const char *s)
{
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) if (strcmp(json_string_value(x), s) == 0) return 1;
    return 0;
}

/* 1 when every entry of a is in b. */
static int list_subset(const json_t *a, const json_t *b)
{
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x) if (!list_has(b, json_string_value(x))) return 0;
    return 1;
}

int gov_deleg_request_parse(const json_t *body, gov_deleg_request_t *q, gov_err_t *e)
{
    static const char *const fields[] = {"agent_did",
                                         "parent_id",
                                         "capability_set",
                                         "accords",
                                         "corpus_cids",
                                         "prohibited_command_hashes",
                                         "ttl_seconds",
                                         "expires_at",
                                         "max_commands",
                                         "spend_limit_minor",
                                         "max_delegation_depth",
                                         "aps_delegation",
                                         NULL};
    const char *caps = NULL, *exp = NULL;
    json_t *v;
    long long n;
    int rc;

    memset(q, 0, sizeof *q);
    q->aps_depth = -1;
    if ((rc = gov_reject_unknown(body, fields, e)) != 0)
        goto out;
    q->aps = json_object_get(body, "aps_delegation");
    if (q->aps != NULL && !json_is_object(q->aps)) {
        rc = gov_fail(e, BRK_EINVAL, "invalid_field", "\"aps_delegation\" must be an object");
        goto out;
    }
    if ((rc = gov_opt_string(body, "parent_id", GOV_DELEG_ID_LEN, &q->parent_id, e)) != 0)
        goto out;
    if (q->parent_id != NULL && !gov_deleg_id_valid(q->parent_id)) {
        rc = gov_fail(e, BRK_EINVAL, "invalid_field",
                      "\"parent_id\" must be a delegation id (dlg_ and 32 hex digits)");
        goto out;
    }
    if (q->aps != NULL) {
        /* The signed object is the whole scope: fields beside it would be unsigned. */
        for (int i = 0; fields[i]; i++)
            if (strcmp(fields[i], "aps_delegation") != 0 && strcmp(fields[i], "parent_id") != 0 &&
                json_object_get(body, fields[i]) != NULL) {
                rc = gov_fail(e, BRK_EINVAL, "invalid_field",
                              "\"%s\" cannot be given with \"aps_delegation\"", fields[i]);
                goto out;
            }
        return 0;
    }
    if ((rc = gov_req_string(body, "agent_did", GOV_DID_MAX, &q->agent_did, e)) != 0)
        goto out;
    if (!did_ok(q->agent_did)) {
        rc = gov_fail(e, BRK_EINVAL, "invalid_field", "\"agent_did\" must be a did: string");
        goto out;
    }
    if ((rc = gov_opt_string(body, "capability_set", GOV_CAPS_STR_MAX, &caps, e)) != 0)
        goto out;
    if (caps != NULL) {
        if (gov_caps_parse(caps, &q->s.caps) != 0) {
            rc = gov_fail(e, BRK_EINVAL, "invalid_field",
                          "\"capability_set\" must be \"0x\" and 1 to 8 hex digits");
            goto out;
        }
        q->has_caps = 1;
    }
    /* Absent: as the parent (a root: any). null: any, which narrows nothing. */
    q->any_accords = json_is_null(json_object_get(body, "accords"));
    q->any_corpus = json_is_null(json_object_get(body, "corpus_cids"));
    if ((v = json_object_get(body, "accords")) != NULL && !json_is_null(v) &&
        (rc = string_list(v, "accords", 0, &q->s.accords, e)) != 0)
        goto out;
    if ((v = json_object_get(body, "corpus_cids")) != NULL && !json_is_null(v) &&
        (rc = string_list(v, "corpus_cids", 1, &q->s.corpus, e)) != 0)
        goto out;
    if ((v = json_object_get(body, "prohibited_command_hashes")) != NULL) {
        if ((rc = string_list(v, "prohibited_command_hashes", 1, &q->s.prohibited, e)) != 0)
            goto out;
        q->has_prohibited = 1;
    }
    if ((rc = gov_opt_int(body, "ttl_seconds", 1, GOV_DELEG_TTL_MAX, &q->ttl, e)) != 0 ||
        (rc = gov_opt_string(body, "expires_at", GOV_TIME_STR_MAX, &exp, e)) != 0)
        goto out;
    if (exp != NULL) {
        int64_t us;
        if (q->ttl != 0) {
            rc = gov_fail(e, BRK_EINVAL, "invalid_field",
                          "give \"ttl_seconds\" or \"expires_at\", not both");
            goto out;
        }
        if (brk_time_parse_us(exp, &us) != 0) {
            rc = gov_fail(e, BRK_EINVAL, "invalid_field", "\"expires_at\" must be RFC 3339");
            goto out;
        }
        q->s.expires = us / 1000000;
        q->has_expires = 1;
    }
    n = -2;
    if ((rc = gov_opt_int(body, "max_commands", 0, GOV_DELEG_COMMANDS_MAX, &n, e)) != 0)
        goto out;
    if (n != -2) {
        q->s.max_commands = n;
        q->has_commands = 1;
    }
    n = -2;
    if ((rc = gov_opt_int(body, "spend_limit_minor", 0, GOV_JSON_INT_MAX, &n, e)) != 0)
        goto out;
    if (n != -2) {
        q->s.spend_limit = n;
        q->has_spend = 1;
    }
    n = -2;
    if ((rc = gov_opt_int(body, "max_delegation_depth", 0, GOV_DELEG_DEPTH_MAX, &n, e)) != 0)
        goto out;
    if (n != -2) {
        q->s.max_depth = (int)n;
        q->has_depth = 1;
    }
    return 0;
out:
    gov_deleg_request_clear(q);
    return rc;
}

/* ---- the SDK delegation ---- */

/* A copy of v without null members of objects (at any depth): the SDK's canonical form drops
 * them, RFC 8785 keeps them. */
static json_t *strip_nulls(const json_t *v)
{
    if (json_is_object(v)) {
        json_t *o = json_object(), *x;
        const char *k;
        json_object_foreach((json_t *)v, k, x) if (!json_is_null(x))
            json_object_set_new(o, k, strip_nulls(x));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array(), *x;
        size_t i;
        json_array_foreach(v, i, x) json_array_append_new(a, strip_nulls(x));
        return a;
    }
    return json_deep_copy(v);
}

static const char *aps_str(const json_t *aps, const char *k)
{
    const char *s = json_string_value(json_object_get(aps, k));
    return s != NULL && strlen(s) <= GOV_DELEG_APS_STR_MAX ? s : NULL;
}

static int aps_signature_ok(const json_t *aps, const char *signer_hex, gov_err_t *e)
{
    const char *by = aps_str(aps, "delegatedBy"), *sig = aps_str(aps, "signature");
    uint8_t pub[BRK_ED25519_PUB_LEN], sg[BRK_ED25519_SIG_LEN];
    char *canon = NULL;
    size_t len;
    int ok = 0;

    if (by == NULL || sig == NULL || strlen(by) != GOV_DELEG_PUBHEX_LEN ||
        strlen(sig) != GOV_DELEG_SIGHEX_LEN || brk_unhex(by, strlen(by), pub, sizeof pub) != 0 ||
        brk_unhex(sig, strlen(sig), sg, sizeof sg) != 0)
        return gov_fail(e, BRK_EFORBIDDEN, "aps_signature_invalid",
                        "\"delegatedBy\" and \"signature\" must be an Ed25519 key and signature in "
                        "hex");
    /* The key the tenant knows for this delegator, compared before anything is verified. */
    if (signer_hex == NULL || strcmp(by, signer_hex) != 0)
        return gov_fail(e, BRK_EFORBIDDEN, "aps_signer_unknown",
                        "\"delegatedBy\" is not the delegator's registered signing key");
    json_t *unsigned_ = strip_nulls(aps);
    json_object_del(unsigned_, "signature");
    if (brk_jcs_canonicalize(unsigned_, &canon, &len) == 0 && len <= GOV_DELEG_APS_BYTES_MAX)
        ok = brk_ed25519_verify(pub, canon, len, sg);
    free(canon);
    json_decref(unsigned_);
    return ok ? 0
              : gov_fail(e, BRK_EFORBIDDEN, "aps_signature_invalid",
                         "the delegation's signature does not verify");
}

static int aps_time(const json_t *aps, const char *k, int required, int64_t *out, gov_err_t *e)
{
    json_t *v = json_object_get(aps, k);
    int64_t us;
    if (v == NULL || json_is_null(v)) {
        if (required)
            return gov_fail(e, BRK_EINVAL, "missing_field", "\"%s\" is required", k);
        *out = -1;
        return 0;
    }
    if (!json_is_string(v) || brk_time_parse_us(json_string_value(v), &us) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"%s\" must be RFC 3339", k);
    *out = us / 1000000;
    return 0;
}

static int aps_int(const json_t *aps, const char *k, long long lo, long long hi, long long *out,
                   gov_err_t *e)
{
    json_t *v = json_object_get(aps, k);
    if (v == NULL || json_is_null(v))
        return 1; /* absent */
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return gov_fail(e, BRK_ERANGE, "out_of_range",
                        "\"%s\" must be an integer between %lld and %lld", k, lo, hi);
    *out = json_integer_value(v);
    return 0;
}

/* One scope entry into q. */
static int aps_scope_entry(const char *s, gov_deleg_request_t *q, gov_err_t *e)
{
    static const char cap[] = "gsap:cap:", accord[] = "gsap:accord:", corpus[] = "gsap:corpus:",
                      prohibit[] = "gsap:prohibit:", commands[] = "gsap:commands:";
    json_t **list = NULL;
    const char *val = NULL;
    int cid = 0;

    /* One entry per capability bit, so that the SDK's own narrowing (a child's scope is a
     * subset of its parent's entries) drops bits. */
    if (strncmp(s, cap, sizeof cap - 1) == 0) {
        const char *d = s + sizeof cap - 1;
        int bit = -1;
        if (d[0] >= '0' && d[0] <= '9' &&
            (d[1] == '\0' || (d[0] != '0' && d[1] >= '0' && d[1] <= '9' && d[2] == '\0')))
            bit = d[1] ? (d[0] - '0') * 10 + (d[1] - '0') : d[0] - '0';
        if (bit < 0 || bit > 31 || (q->s.caps & (1u << bit)) != 0)
            return gov_fail(e, BRK_ERANGE, "aps_scope_invalid", "bad scope entry \"%.80s\"", s);
        q->s.caps |= 1u << bit;
        q->has_caps = 1;
        return 0;
    }
    if (strncmp(s, commands, sizeof commands - 1) == 0) {
        char *end;
        const char *d = s + sizeof commands - 1;
        errno = 0;
        long long n = (*d >= '0' && *d <= '9') ? strtoll(d, &end, 10) : -1;
        if (q->has_commands || n < 0 || n > GOV_DELEG_COMMANDS_MAX || errno != 0 || *end != '\0')
            return gov_fail(e, BRK_ERANGE, "aps_scope_invalid", "bad scope entry \"%.80s\"", s);
        q->s.max_commands = n;
        q->has_commands = 1;
        return 0;
    }
    if (strncmp(s, accord, sizeof accord - 1) == 0) {
        list = &q->s.accords;
        val = s + sizeof accord - 1;
    } else if (strncmp(s, corpus, sizeof corpus - 1) == 0) {
        list = &q->s.corpus;
        val = s + sizeof corpus - 1;
        cid = 1;
    } else if (strncmp(s, prohibit, sizeof prohibit - 1) == 0) {
        list = &q->s.prohibited;
        val = s + sizeof prohibit - 1;
        cid = 1;
        q->has_prohibited = 1;
    } else {
        return gov_fail(e, BRK_ERANGE, "aps_scope_invalid",
                        "scope entry \"%.80s\" has no meaning here (gsap:cap:, gsap:accord:, "
                        "gsap:corpus:, gsap:prohibit:, gsap:commands:)",
                        s);
    }
    if (cid ? !brk_cid_valid(val) : (strlen(val) == 0 || strlen(val) > GOV_ACCORD_NAME_MAX))
        return gov_fail(e, BRK_ERANGE, "aps_scope_invalid", "bad scope entry \"%.80s\"", s);
    if (*list == NULL)
        *list = json_array();
    if (list_has(*list, val))
        return gov_fail(e, BRK_ERANGE, "aps_scope_invalid", "scope entry \"%.80s\" twice", s);
    if (json_array_size(*list) >= GOV_DELEG_LIST_MAX)
        return gov_fail(e, BRK_ETOOBIG, "aps_scope_invalid", "too many scope entries");
    json_array_append_new(*list, json_string(val));
    return 0;
}

int gov_deleg_aps_parse(const json_t *aps, const char *signer_hex, time_t now,
                        gov_deleg_request_t *q, gov_err_t *e)
{
    const char *to = aps_str(aps, "delegatedTo"), *unit;
    json_t *scope = json_object_get(aps, "scope"), *x;
    int64_t nb, exp;
    long long n;
    size_t i;
    int rc;

    if (!json_is_object(aps) || aps_str(aps, "delegationId") == NULL || to == NULL ||
        !json_is_array(scope) || json_array_size(scope) > GOV_DELEG_APS_SCOPE_MAX)
        return gov_fail(e, BRK_EINVAL, "invalid_field",
                        "\"aps_delegation\" must be a delegation made by the SDK");
    /* Nothing is read as authority before the signature verifies. */
    if ((rc = aps_signature_ok(aps, signer_hex, e)) != 0)
        return rc;
    if ((rc = aps_time(aps, "expiresAt", 1, &exp, e)) != 0 ||
        (rc = aps_time(aps, "notBefore", 0, &nb, e)) != 0)
        goto out;
    if (exp <= now) {
        rc = gov_fail(e, BRK_EFORBIDDEN, "delegation_expired", "the delegation has expired");
        goto out;
    }
    if (nb > now) {
        rc = gov_fail(e, BRK_EFORBIDDEN, "delegation_not_yet_valid",
                      "the delegation is not valid before its notBefore");
        goto out;
    }
    q->s.expires = exp;
    q->has_expires = 1;
    if (strncmp(to, "did:", 4) == 0) {
        if (!did_ok(to)) {
            rc = gov_fail(e, BRK_EINVAL, "invalid_field", "\"delegatedTo\" is not a DID");
            goto out;
        }
        q->agent_did = to;
    } else {
        /* A bare Ed25519 key (the SDK's usual agent id) names the agent as its did:key. */
        uint8_t pub[BRK_ED25519_PUB_LEN];
        if (strlen(to) != GOV_DELEG_PUBHEX_LEN || brk_unhex(to, strlen(to), pub, sizeof pub) != 0) {
            rc = gov_fail(e, BRK_EINVAL, "invalid_field",
                          "\"delegatedTo\" must be a DID or an Ed25519 key in hex");
            goto out;
        }
        gov_deleg_did_key(pub, q->agent_buf, sizeof q->agent_buf);
        q->agent_did = q->agent_buf;
    }
    json_array_foreach(scope, i, x)
    {
        const char *s = json_string_value(x);
        if (s == NULL || strlen(s) > GOV_DELEG_APS_STR_MAX) {
            rc = gov_fail(e, BRK_EINVAL, "aps_scope_invalid", "scope entries must be strings");
            goto out;
        }
        if ((rc = aps_scope_entry(s, q, e)) != 0)
            goto out;
    }
    unit = json_string_value(json_object_get(aps, "spendLimitUnit"));
    if (json_object_get(aps, "spendLimitUnit") != NULL &&
        (unit == NULL || strcmp(unit, "currency") != 0)) {
        rc = gov_fail(e, BRK_ERANGE, "aps_scope_invalid",
                      "\"spendLimitUnit\" must be \"currency\" (minor units)");
        goto out;
    }
    if ((rc = aps_int(aps, "spendLimit", 0, GOV_JSON_INT_MAX, &n, e)) < 0)
        goto out;
    if (rc == 0) {
        q->s.spend_limit = n;
        q->has_spend = 1;
    }
    if ((rc = aps_int(aps, "maxDepth", 0, GOV_DELEG_DEPTH_MAX, &n, e)) < 0)
        goto out;
    if (rc == 0) {
        q->s.max_depth = (int)n;
        q->has_depth = 1;
    }
    n = 0;
    if ((rc = aps_int(aps, "currentDepth", 0, GOV_DELEG_DEPTH_MAX, &n, e)) < 0)
        goto out;
    q->aps_depth = (int)n;
    /* The SDK's spentAmount is what it had counted when it signed: this broker counts its
     * own (billed lines), so only a fresh delegation is taken. */
    if ((rc = aps_int(aps, "spentAmount", 0, 0, &n, e)) < 0)
        goto out;
    return 0;
out:
    gov_deleg_request_clear(q);
    return rc;
}

/* ---- scopes ---- */

int gov_deleg_resolve(const gov_deleg_request_t *q, const gov_deleg_parent_t *p, time_t now,
                      gov_deleg_scope_t *o)
{
    memset(o, 0, sizeof *o);
    /* A root without a mask passes on every capability its accords grant the delegator. */
    o->caps = q->has_caps ? q->s.caps : p ? p->s.caps : GOV_DELEG_CAPS_ALL;
    o->accords = q->s.accords                           ? json_deep_copy(q->s.accords)
                 : !q->any_accords && p && p->s.accords ? json_deep_copy(p->s.accords)
                                                        : NULL;
    o->corpus = q->s.corpus                          ? json_deep_copy(q->s.corpus)
                : !q->any_corpus && p && p->s.corpus ? json_deep_copy(p->s.corpus)
                                                     : NULL;
    o->prohibited = q->has_prohibited ? json_deep_copy(q->s.prohibited)
                    : p               ? json_deep_copy(p->s.prohibited)
                                      : json_array();
    if (q->has_expires)
        o->expires = q->s.expires;
    else if (q->ttl > 0)
        o->expires = (int64_t)now + q->ttl;
    else if (p)
        o->expires = p->s.expires;
    else
        o->expires = (int64_t)now + GOV_DELEG_TTL_DEFAULT;
    o->max_commands =
        q->has_commands ? q->s.max_commands
        : p ? (p->s.max_commands - p->acs_issued > 0 ? p->s.max_commands - p->acs_issued : 0)
            : GOV_DELEG_COMMANDS_DEFAULT;
    o->spend_limit = q->has_spend ? q->s.spend_limit : p ? p->s.spend_limit : -1;
    o->max_depth = q->has_depth ? q->s.max_depth : p ? p->s.max_depth : GOV_DELEG_DEPTH_DEFAULT;
    if (o->prohibited == NULL)
        return BRK_ENOMEM;
    return 0;
}

static json_t *row_list(const json_t *row, const char *k)
{
    json_t *v = json_object_get(row, k);
    return json_is_array(v) ? json_deep_copy(v) : NULL;
}

int gov_deleg_parent_from_row(const json_t *row, gov_deleg_parent_t *p)
{
    memset(p, 0, sizeof *p);
    json_t *spend = json_object_get(row, "spend_limit_minor");
    if (!json_is_integer(json_object_get(row, "capability_set")) ||
        !json_is_integer(json_object_get(row, "expires_epoch")) ||
        !json_is_integer(json_object_get(row, "max_commands")) ||
        !json_is_integer(json_object_get(row, "acs_issued")) ||
        !json_is_integer(json_object_get(row, "max_depth")) ||
        !json_is_integer(json_object_get(row, "depth")) ||
        !json_is_array(json_object_get(row, "prohibited")))
        return BRK_EINVAL;
    p->s.caps = (uint32_t)json_integer_value(json_object_get(row, "capability_set"));
    p->s.accords = row_list(row, "accords");
    p->s.corpus = row_list(row, "corpus");
    p->s.prohibited = row_list(row, "prohibited");
    p->s.expires = json_integer_value(json_object_get(row, "expires_epoch"));
    p->s.max_commands = json_integer_value(json_object_get(row, "max_commands"));
    p->s.spend_limit = json_is_integer(spend) ? json_integer_value(spend) : -1;
    p->s.max_depth = (int)json_integer_value(json_object_get(row, "max_depth"));
    p->depth = (int)json_integer_value(json_object_get(row, "depth"));
    p->acs_issued = json_integer_value(json_object_get(row, "acs_issued"));
    return 0;
}

int gov_deleg_root_check(const gov_deleg_scope_t *s, time_t now, gov_err_t *e)
{
    if (s->expires <= (int64_t)now)
        return gov_fail(e, BRK_ERANGE, "out_of_range", "the delegation would already be expired");
    if (s->expires > (int64_t)now + GOV_DELEG_TTL_MAX)
        return gov_fail(e, BRK_ERANGE, "out_of_range", "a delegation lives at most %d seconds",
                        GOV_DELEG_TTL_MAX);
    return 0;
}

static int violation(gov_err_t *e, const char *field, const char *why)
{
    return gov_fail(e, BRK_EFORBIDDEN, "narrowing_violation",
                    "\"%s\" %s: a sub-delegation can only narrow its parent", field, why);
}

int gov_deleg_narrow(const gov_deleg_scope_t *c, const gov_deleg_parent_t *p, gov_err_t *e)
{
    if (p->depth + 1 > p->s.max_depth)
        return gov_fail(e, BRK_EFORBIDDEN, "delegation_depth_exceeded",
                        "a delegation at depth %d cannot be sub-delegated (max_delegation_depth "
                        "%d)",
                        p->depth, p->s.max_depth);
    if ((c->caps & ~p->s.caps) != 0)
        return violation(e, "capability_set", "asks for capabilities its parent lacks");
    if (p->s.accords != NULL && (c->accords == NULL || !list_subset(c->accords, p->s.accords)))
        return violation(e, "accords", "names accords its parent does not");
    if (p->s.corpus != NULL && (c->corpus == NULL || !list_subset(c->corpus, p->s.corpus)))
        return violation(e, "corpus_cids", "names corpus entries its parent does not");
    if (!list_subset(p->s.prohibited, c->prohibited))
        return violation(e, "prohibited_command_hashes", "drops a hash its parent prohibits");
    if (c->expires > p->s.expires)
        return violation(e, "expires_at", "is later than its parent's");
    if (c->max_commands > p->s.max_commands - p->acs_issued)
        return violation(e, "max_commands", "is more than its parent has left");
    if (p->s.spend_limit >= 0 && (c->spend_limit < 0 || c->spend_limit > p->s.spend_limit))
        return violation(e, "spend_limit_minor", "is more than its parent's");
    if (c->max_depth > p->s.max_depth)
        return violation(e, "max_delegation_depth", "is more than its parent's");
    return 0;
}

int gov_deleg_allows(const gov_deleg_scope_t *s, const gov_deleg_use_t *u, gov_err_t *e)
{
    const char *field = NULL;
    if ((u->caps & ~s->caps) != 0)
        field = "capability_set";
    else if (s->accords != NULL && !list_has(s->accords, u->accord))
        field = "accord_template";
    else if (s->corpus != NULL && !list_has(s->corpus, u->corpus))
        field = "corpus_entry_cid";
    else if (list_has(s->prohibited, u->command_hash))
        field = "command_hash";
    else if (u->expires > s->expires)
        field = "ttl_seconds";
    if (field == NULL)
        return 0;
    return gov_fail(e, BRK_EFORBIDDEN, "delegation_scope_exceeded",
                    "\"%s\" is outside the delegation's scope", field);
}

/* ---- documents ---- */

json_t *gov_deleg_doc(const brk_keyring_t *kr, const gov_deleg_doc_args_t *a,
                      const gov_deleg_scope_t *s)
{
    char caps[GOV_CAPS_STR_MAX + 1], issued[BRK_TIME_LEN + 1], expires[BRK_TIME_LEN + 1];
    gov_caps_fmt(s->caps, caps);
    brk_time_fmt(a->issued, issued);
    brk_time_fmt((time_t)s->expires, expires);
    json_t *doc = json_pack(
        "{s:s,s:s,s:o,s:O,s:i,s:i,s:{s:s,s:s},s:s,s:s,s:{s:s,s:o,s:o,s:O,s:I,s:o},s:s,s:s}",
        "gsap_version", "1.0", "delegation_id", a->id, "parent_id",
        a->parent_id ? json_string(a->parent_id) : json_null(), "chain", a->chain, "depth",
        a->depth, "max_delegation_depth", s->max_depth, "delegator", "did", a->delegator_did,
        "key_id", a->delegator_key_id, "agent_did", a->agent_did, "tenant", a->tenant, "scope",
        "capability_set", caps, "accords", s->accords ? json_deep_copy(s->accords) : json_null(),
        "corpus_cids", s->corpus ? json_deep_copy(s->corpus) : json_null(),
        "prohibited_command_hashes", s->prohibited, "max_commands", (json_int_t)s->max_commands,
        "spend_limit_minor", s->spend_limit >= 0 ? json_integer(s->spend_limit) : json_null(),
        "issued_at", issued, "expires_at", expires);
    if (doc != NULL && a->aps != NULL)
        json_object_set_new(doc, "aps",
                            json_pack("{s:O?,s:O?,s:O?}", "delegationId",
                                      json_object_get(a->aps, "delegationId"), "delegatedBy",
                                      json_object_get(a->aps, "delegatedBy"), "signature",
                                      json_object_get(a->aps, "signature")));
    if (doc == NULL || brk_doc_sign(kr, doc, "delegation_cid") != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int gov_deleg_key_proof_ok(const char *pub_hex, const char *sig_hex, const char *did)
{
    uint8_t pub[BRK_ED25519_PUB_LEN], sig[BRK_ED25519_SIG_LEN];
    char msg[sizeof GOV_DELEG_KEY_PROOF_PREFIX + GOV_DID_MAX];
    if (pub_hex == NULL || sig_hex == NULL || strlen(pub_hex) != GOV_DELEG_PUBHEX_LEN ||
        strlen(sig_hex) != GOV_DELEG_SIGHEX_LEN || !hex_lower(pub_hex, GOV_DELEG_PUBHEX_LEN) ||
        brk_unhex(pub_hex, GOV_DELEG_PUBHEX_LEN, pub, sizeof pub) != 0 ||
        brk_unhex(sig_hex, GOV_DELEG_SIGHEX_LEN, sig, sizeof sig) != 0)
        return 0;
    int n = snprintf(msg, sizeof msg, "%s%s", GOV_DELEG_KEY_PROOF_PREFIX, did);
    if (n < 0 || (size_t)n >= sizeof msg)
        return 0;
    return brk_ed25519_verify(pub, msg, (size_t)n, sig);
}

void gov_deleg_did_key(const uint8_t pub[BRK_ED25519_PUB_LEN], char *out, size_t cap)
{
    static const char b58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    uint8_t in[2 + BRK_ED25519_PUB_LEN], digits[64];
    size_t nd = 0, zeros = 0, o = 0;
    in[0] = 0xed; /* the multicodec of an Ed25519 public key, as a varint */
    in[1] = 0x01;
    memcpy(in + 2, pub, BRK_ED25519_PUB_LEN);
    while (zeros < sizeof in && in[zeros] == 0)
        zeros++;
    for (size_t i = zeros; i < sizeof in; i++) {
        unsigned carry = in[i];
        for (size_t j = 0; j < nd; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % 58);
            carry /= 58;
        }
        while (carry > 0) {
            digits[nd++] = (uint8_t)(carry % 58);
            carry /= 58;
        }
    }
    int n = snprintf(out, cap, "did:key:z");
    o = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < zeros && o + 1 < cap; i++)
        out[o++] = '1';
    for (size_t i = nd; i > 0 && o + 1 < cap; i--)
        out[o++] = b58[digits[i - 1]];
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
}
