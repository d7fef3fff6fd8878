/* gov_acreq: a request for an AC; see gov_acreq.h. */
#include "gov_acreq.h"

#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_limits.h"
#include "gov_deleg.h"
#include "gov_field.h"
#include "banned.h"

/* The values of the unrecognized members named in names, secret-looking ones masked. */
static json_t *unknown_values(const json_t *body, const json_t *names)
{
    json_t *vals = json_object(), *n;
    size_t i;
    json_array_foreach(names, i, n)
    {
        const char *k = json_string_value(n);
        json_object_set_new(vals, k, gov_looks_secret(k) ? json_string(GOV_REDACTED)
                                                         : json_incref(json_object_get(body, k)));
    }
    return vals;
}

static int check_members(const json_t *b, gov_ac_request_t *q, gov_err_t *e)
{
    static const char *const op_fields[] = {"command_hash", "corpus_entry_cid", "parameters_cid",
                                            "description", NULL};
    const char *caps = NULL;
    json_t *op;
    int rc;

    q->ttl = GOV_TTL_DEFAULT;
    q->account = GOV_DEFAULT_ACCOUNT;
    if ((rc = gov_req_string(b, "accord_template", GOV_ACCORD_NAME_MAX, &q->accord, e)) ||
        (rc = gov_req_object(b, "operation", &op, e)) ||
        (rc = gov_reject_unknown(op, op_fields, e)) ||
        (rc = gov_req_cid(op, "command_hash", &q->command, e)) ||
        (rc = gov_req_cid(op, "corpus_entry_cid", &q->corpus, e)) ||
        (rc = gov_req_cid(op, "parameters_cid", &q->params, e)) ||
        (rc = gov_opt_string(op, "description", GOV_DESCRIPTION_MAX, &q->description, e)) ||
        (rc = gov_opt_bool(b, "session_mode", &q->session, e)) ||
        (rc = gov_opt_int(b, "ttl_seconds", 1, GOV_TTL_MAX, &q->ttl, e)) ||
        (rc = gov_opt_string(b, "capability_set", GOV_CAPS_STR_MAX, &caps, e)) ||
        (rc = gov_opt_cid(b, "environment_commitment", &q->env, e)) ||
        (rc = gov_opt_string(b, "on_behalf_of", GOV_DID_MAX, &q->obo, e)) ||
        (rc = gov_opt_string(b, "billing_account", BRK_ACCOUNT_ID_MAX, &q->account, e)) ||
        (rc = gov_opt_string(b, "delegation_id", GOV_DELEG_ID_LEN, &q->delegation, e)))
        return rc;
    if (q->account == NULL)
        q->account = GOV_DEFAULT_ACCOUNT;
    if (caps != NULL && gov_caps_parse(caps, &q->caps) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_field",
                        "\"capability_set\" must be \"0x\" and 1 to 8 hex digits");
    if (q->delegation != NULL && !gov_deleg_id_valid(q->delegation))
        return gov_fail(e, BRK_EINVAL, "invalid_field",
                        "\"delegation_id\" must be a delegation id (dlg_ and 32 hex digits)");
    if (q->obo != NULL && (strncmp(q->obo, "did:", 4) != 0 || strlen(q->obo) < 7))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"on_behalf_of\" must be a did: string");
    return 0;
}

int gov_ac_request_parse(const json_t *body, gov_ac_request_t *q, gov_err_t *e)
{
    static const char *const fields[] = {"accord_template", "operation", "session_mode",
                                         "ttl_seconds", "capability_set", "environment_commitment",
                                         "on_behalf_of", "billing_account", "delegation_id",
                                         NULL};
    json_t *names = NULL;
    int rc;

    memset(q, 0, sizeof *q);
    if ((rc = gov_collect_unknown(body, fields, &names, e)) != 0)
        return rc;
    if (json_array_size(names) > 0) {
        q->unknown = names;
        q->unknown_values = unknown_values(body, names);
    } else {
        json_decref(names);
    }
    if ((rc = check_members(body, q, e)) != 0)
        gov_ac_request_clear(q);
    return rc;
}

void gov_ac_request_clear(gov_ac_request_t *q)
{
    json_decref(q->unknown);
    json_decref(q->unknown_values);
    q->unknown = q->unknown_values = NULL;
}

int gov_idempotency_key_valid(const char *k, size_t len)
{
    if (len == 0 || len > GOV_IDEMPOTENCY_KEY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return 0;
    return 1;
}

int gov_request_hash(const json_t *body, char out[GOV_REQUEST_HASH_LEN + 1], gov_err_t *e)
{
    char *canon = NULL;
    size_t len;
    uint8_t md[BRK_SHA256_LEN];
    if (brk_jcs_canonicalize(body, &canon, &len) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_json", "the body cannot be canonicalized");
    brk_sha256(canon, len, md);
    brk_hex(md, sizeof md, out);
    free(canon);
    return 0;
}
