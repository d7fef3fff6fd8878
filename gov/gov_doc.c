/* gov_doc: the AC, the denial receipt and the self-authorized context; see gov_doc.h. */
#include "gov_doc.h"

#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "banned.h"

int gov_ac_issue(const brk_keyring_t *kr, const gov_principal_t *p, const gov_ac_req_t *req,
                 const gov_accord_t *a, const gov_decision_t *d, const char *ctx, time_t now,
                 const char *url, json_t **ac_out, json_t **elev_out)
{
    char issued[BRK_TIME_LEN + 1], expires[BRK_TIME_LEN + 1], caps[GOV_CAPS_STR_MAX + 1];
    const char *status = d->pending ? "pending" : "authorized";
    json_t *ac = NULL, *elev = NULL;
    int rc = BRK_EINTERNAL;

    *ac_out = *elev_out = NULL;
    brk_time_fmt(now, issued);
    brk_time_fmt(now + d->ttl, expires);
    gov_caps_fmt(req->caps, caps);
    json_t *idp = json_pack("{s:s,s:s,s:s}", "driver", p->driver ? p->driver : "api-key",
                            "key_id", p->key_id, "tenant", p->tenant);
    if (req->delegated)
        json_object_set_new(idp, "delegated_by", json_string(p->own_did));
    ac = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:s},s:o,s:b,s:s,"
                   "s:i,s:s,s:o,s:s,s:s,s:s,s:s}",
                   "gsap_version", "1.0", "context_id", ctx, "status", status, "issued_at", issued,
                   "expires_at", expires, "principal", "did", p->did, "display_name", p->name,
                   "accord", "template", a->name, "accord_hash", a->accord_hash, "operation",
                   "command_hash", req->command_hash, "corpus_entry_cid", req->corpus_entry_cid,
                   "parameters_cid", req->parameters_cid, "identity_proof", idp, "session_mode",
                   req->session_mode, "capability_set", caps, "posture_level", a->posture,
                   "shell_class", a->shell_class, "environment_commitment",
                   req->environment_commitment ? json_string(req->environment_commitment)
                                               : json_null(),
                   "billing_account", req->billing_account, "tenant", p->tenant, "session_url",
                   url, "key_id", brk_keyring_current_id(kr));
    if (ac != NULL && req->unknown != NULL)
        json_object_set_new(ac, "unrecognized_fields", json_deep_copy(req->unknown));
    if (ac != NULL && req->delegation != NULL)
        json_object_set_new(ac, "delegation", json_deep_copy(req->delegation));
    if (ac != NULL && d->pending) {
        char need[GOV_CAPS_STR_MAX + 1];
        gov_caps_fmt(req->caps & a->elevation_required, need);
        elev = json_pack("{s:s,s:s,s:i,s:[]}", "required", need, "status", "pending",
                         "approvals_required", a->approvals_required, "approvals");
        json_object_set(ac, "elevation", elev);
    }
    if (ac == NULL || (rc = brk_doc_sign(kr, ac, "ac_cid")) != 0) {
        json_decref(ac);
        json_decref(elev);
        return rc ? rc : BRK_EINTERNAL;
    }
    *ac_out = ac;
    *elev_out = elev;
    return 0;
}

json_t *gov_denial_issue(const brk_keyring_t *kr, const gov_principal_t *p,
                         const gov_ac_req_t *req, const gov_accord_t *a,
                         const gov_decision_t *d, const char *denial_id, time_t now)
{
    char issued[BRK_TIME_LEN + 1];
    brk_time_fmt(now, issued);
    json_t *denial = json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s},s:{s:s,s:s},s:s,s:s}", "denial_id",
        denial_id, "reason_code", d->deny_code, "reason", d->reason, "accord", "template",
        a->name, "accord_hash", a->accord_hash, "operation", "command_hash", req->command_hash,
        "corpus_entry_cid", req->corpus_entry_cid, "parameters_cid", req->parameters_cid,
        "principal", "did", p->did, "display_name", p->name, "issued_at", issued, "key_id",
        brk_keyring_current_id(kr));
    if (denial == NULL || brk_doc_sign(kr, denial, "denial_cid") != 0) {
        json_decref(denial);
        return NULL;
    }
    return denial;
}

json_t *gov_denial_body(const json_t *denial, const char *reason, const char *request_id,
                        const json_t *unknown)
{
    json_t *b = json_pack("{s:{s:s,s:s,s:s},s:O}", "error", "code", "policy_denied", "message",
                          reason, "request_id", request_id, "denial", denial);
    if (b != NULL && unknown != NULL)
        json_object_set_new(b, "unrecognized_fields", json_deep_copy(unknown));
    return b;
}

json_t *gov_self_context_doc(const gov_principal_t *p, const char *ctx, const char *accord,
                             const char *command, const char *corpus, const char *params,
                             const char *url)
{
    char cid[BRK_CID_LEN + 1];
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:b,s:{s:s,s:s},s:{s:s},s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:b,s:s,s:n,"
        "s:s,s:s,s:s}",
        "gsap_version", "1.0", "context_id", ctx, "status", "authorized", "self_authorized", 1,
        "principal", "did", p->did, "display_name", p->name, "accord", "template", accord,
        "operation", "command_hash", command, "corpus_entry_cid", corpus, "parameters_cid",
        params, "identity_proof", "driver", p->driver ? p->driver : "api-key", "key_id",
        p->key_id, "tenant", p->tenant,
        "session_mode", 0, "capability_set", "0x00000000", "environment_commitment",
        "billing_account", GOV_DEFAULT_ACCOUNT, "tenant", p->tenant, "session_url", url);
    if (doc == NULL || brk_jcs_cid(doc, cid) != 0) {
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "ac_cid", json_string(cid));
    json_object_set_new(doc, "signature", json_null());
    return doc;
}

json_t *gov_ac_view(const char *ac_text, const char *status, int expired, const char *elevation)
{
    json_t *ac = json_loads(ac_text, 0, NULL);
    if (ac == NULL)
        return NULL;
    const char *shown = status;
    if (expired && (strcmp(status, "pending") == 0 || strcmp(status, "authorized") == 0 ||
                    strcmp(status, "active") == 0))
        shown = "expired";
    json_object_set_new(ac, "status", json_string(shown));
    if (elevation != NULL) {
        json_t *el = json_loads(elevation, 0, NULL);
        if (el != NULL)
            json_object_set_new(ac, "elevation", el);
    }
    return ac;
}

json_t *gov_receipt_doc(const gov_receipt_t *x)
{
    json_t *flags = json_loads(x->flags, 0, NULL);
    json_t *unknown = json_loads(x->unknown, 0, NULL);
    return json_pack(
        "{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:o,s:s,s:o}", "receipt_id", x->cr_id,
        "cr_id", x->cr_id, "context_id", x->context_id, "sequence",
        (int)strtol(x->sequence, NULL, 10), "cr_cid", x->cr_cid, "chronicle_cid",
        x->chronicle_cid, "lineage_cid", x->lineage_cid, "prev_lineage_cid",
        x->prev_lineage_cid ? json_string(x->prev_lineage_cid) : json_null(), "ac_cid",
        x->ac_cid, "ac_status", x->ac_status, "outcome", x->outcome, "effective_outcome",
        x->effective_outcome, "flags", flags ? flags : json_array(), "session_url",
        x->session_url, "unrecognized_fields", unknown ? unknown : json_array());
}

json_t *gov_accord_doc(const char *body_text)
{
    json_t *b = json_loads(body_text, 0, NULL);
    char cid[BRK_CID_LEN + 1];
    if (b == NULL || brk_jcs_cid(b, cid) != 0) {
        json_decref(b);
        return NULL;
    }
    json_object_set_new(b, "accord_hash", json_string(cid));
    return b;
}
