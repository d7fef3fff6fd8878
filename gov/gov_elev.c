/* gov_elev: an approver's decision on an elevation; see gov_elev.h. */
#include "gov_elev.h"

#include <string.h>

#include "brk_err.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "gov_result.h"
#include "banned.h"

/* 1 when the approver (key id, DID) is the one that requested ac (issued by issuer_key). */
static int is_requester(const char *key_id, const char *did, const char *issuer_key,
                        const json_t *ac)
{
    const char *pdid = json_string_value(json_object_get(json_object_get(ac, "principal"), "did"));
    const char *by = json_string_value(
        json_object_get(json_object_get(ac, "identity_proof"), "delegated_by"));
    return strcmp(issuer_key, key_id) == 0 || (pdid && strcmp(pdid, did) == 0) ||
           (by && strcmp(by, did) == 0);
}

int gov_elev_decide(const brk_keyring_t *kr, json_t *ac, json_t *el, const char *issuer_key,
                    const gov_elev_decision_t *d, gov_elev_result_t *out, gov_err_t *e)
{
    json_t *approvals, *x;
    size_t i;

    memset(out, 0, sizeof *out);
    brk_time_fmt(d->now, out->decided_at);
    brk_time_fmt(d->now + d->ttl, out->expires_at);
    if (is_requester(d->key_id, d->did, issuer_key, ac))
        return gov_result_fail("self", e);
    /* An elevation recorded before approvals existed has neither member: one approval. */
    approvals = json_object_get(el, "approvals");
    if (!json_is_array(approvals)) {
        approvals = json_array();
        json_object_set_new(el, "approvals", approvals);
    }
    json_array_foreach(approvals, i, x)
    {
        const char *k = json_string_value(json_object_get(x, "key_id"));
        const char *p = json_string_value(json_object_get(x, "principal"));
        if ((k && strcmp(k, d->key_id) == 0) || (p && strcmp(p, d->did) == 0))
            return gov_result_fail("duplicate", e);
    }
    json_int_t required = json_integer_value(json_object_get(el, "approvals_required"));
    if (required < GOV_APPROVALS_MIN)
        required = GOV_APPROVALS_MIN;
    json_object_set_new(el, "approvals_required", json_integer(required));
    out->seen = json_array_size(approvals);
    int final = !d->approve || (json_int_t)out->seen + 1 >= required;
    json_array_append_new(approvals,
                          json_pack("{s:s,s:s,s:s,s:s,s:o}", "key_id", d->key_id, "principal",
                                    d->did, "decision", d->approve ? "approve" : "refuse",
                                    "decided_at", out->decided_at, "reason",
                                    d->reason ? json_string(d->reason) : json_null()));
    if (final) {
        json_object_set_new(el, "status", json_string(d->approve ? "approved" : "refused"));
        json_object_set_new(el, "decided_at", json_string(out->decided_at));
        json_object_set_new(el, "approver", json_string(d->key_id));
        json_object_set_new(el, "reason", d->reason ? json_string(d->reason) : json_null());
    }
    if (d->approve && final) {
        /* The last approval issues the AC anew: status authorized, its TTL starting now,
         * with every approval in the signed elevation record. */
        json_object_set_new(ac, "status", json_string("authorized"));
        json_object_set_new(ac, "issued_at", json_string(out->decided_at));
        json_object_set_new(ac, "expires_at", json_string(out->expires_at));
        json_object_set_new(ac, "key_id", json_string(brk_keyring_current_id(kr)));
        json_object_set(ac, "elevation", el);
        if (brk_doc_sign(kr, ac, "ac_cid") != 0)
            return gov_fail(e, BRK_EINTERNAL, NULL, "cannot sign the AC");
        out->signed_ = 1;
    }
    return 0;
}
