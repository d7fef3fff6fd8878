/*
 * hnd_authorize: issuing Authorization Contexts, polling them, and deciding elevations.
 *
 * POST /governance/authorize/ runs in two round trips: (1) the accord and, with an
 * Idempotency-Key, an earlier AC under that key; (2) after the policy decision and the
 * signature, one statement that stores the AC (or the denial receipt) together with its
 * outbox event. Two requests racing with the same Idempotency-Key meet at the unique index
 * in gsap_issue, and the loser returns the winner's AC.
 *
 * The signed AC never changes except when an elevation is approved (re-signed with status
 * authorized, once the accord's approvals_required distinct approvers approved). Polling shows
 * the current status over the signed document (docs/protocol.md).
 *
 * Members of the request this broker does not know are not refused (a newer gsh or SK plugin
 * may add some): bounded (HND_UNKNOWN_*), their names go into the signed AC as
 * "unrecognized_fields" (so the AC says what it was issued without acting on), and their
 * values into acs.unrecognized, in the same transaction as the AC.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_server.h"
#include "hnd_access.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

static brk_db_stmt_t q_accord = {
    "gov_accord", "SELECT body::text FROM accords WHERE tenant_id = $1 AND name = $2", 0};
static brk_db_stmt_t q_account = {
    "gov_account", "SELECT 1 FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2", 0};
static brk_db_stmt_t q_idem = {
    "gov_idem",
    "SELECT ac::text, request_hash FROM acs "
    "WHERE tenant_id = $1 AND issuer_key_id = $2 AND idempotency_key = $3",
    0};
static brk_db_stmt_t q_issue = {
    "gov_issue",
    "SELECT inserted, ac::text, request_hash FROM gsap_issue($1, $2, $3, $4, $5::boolean, "
    "$6::bigint, $7, $8, $9, $10, $11, $12::integer, $13::timestamptz, $14::timestamptz, $15, "
    "$16, $17::jsonb, $18, $19, $20, $21::jsonb)",
    0};
/* The unrecognized members of the request, next to the AC gsap_issue just stored. When
 * gsap_issue found an earlier AC under the Idempotency-Key instead, no row has this new
 * context id and nothing changes. */
static brk_db_stmt_t q_unrecognized = {
    "gov_unrecognized",
    "UPDATE acs SET unrecognized = $3::jsonb WHERE tenant_id = $1 AND context_id = $2", 0};
static brk_db_stmt_t q_deny = {
    "gov_deny", "SELECT gsap_deny($1, $2, $3, $4, $5, $6::jsonb, $7)", 0};
static brk_db_stmt_t q_ac_get = {
    "gov_ac_get",
    "SELECT ac::text, status, expires_at < now(), elevation::text, ttl_seconds, issuer_key_id "
    "FROM acs WHERE tenant_id = $1 AND context_id = $2",
    0};
/* Polling reads what hnd_access decides on as well: whether the caller's key decided the
 * elevation (the elevation record's "approver", or an entry of its "approvals" list where
 * several approvals are recorded) and whether it posted a receipt here (crs' primary key
 * starts with tenant and context, so the EXISTS is one index probe). */
static brk_db_stmt_t q_ac_read = {
    "gov_ac_read",
    "SELECT ac::text, status, expires_at < now(), elevation::text, ttl_seconds, issuer_key_id, "
    "(elevation->>'approver' = $3 OR coalesce(elevation->'approvals', '[]'::jsonb) @> "
    "jsonb_build_array(jsonb_build_object('key_id', $3::text))), EXISTS (SELECT 1 FROM crs c WHERE c.tenant_id = $1 AND "
    "c.context_id = $2 AND c.executor_key_id = $3) "
    "FROM acs WHERE tenant_id = $1 AND context_id = $2",
    0};
static brk_db_stmt_t q_approve = {
    "gov_approve",
    "SELECT code, ac::text, status, elevation::text FROM gsap_approve($1, $2, $3, $4, "
    "$5::boolean, $6, $7::timestamptz, $8::integer, $9::jsonb, $10::jsonb, $11, "
    "$12::timestamptz)",
    0};

typedef struct issue_ctx {
    const char *accord, *command, *corpus, *params, *description, *env, *obo, *account, *idem;
    int session;
    long long ttl;
    uint32_t caps;
    char request_hash[65];
    const char *unknown_names;  /* JSON array text, NULL when the request had none */
    const char *unknown_values; /* JSON object text (secret-looking values masked), or NULL */
} issue_ctx_t;

/* ---- the view of a stored AC ---- */

/* The signed document with the current status (and the elevation record) over it. */
json_t *hnd_ac_view(const char *ac_text, const char *status, int expired, const char *elevation)
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

static void reply_ac_text(brk_req_t *r, const char *ac_text)
{
    brk_reply_raw(r, 200, "application/json", ac_text, strlen(ac_text));
}

/* ---- POST /governance/authorize/ ---- */

static void on_issued(brk_req_t *r, const brk_db_result_t *res)
{
    issue_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the AC was not stored");
        return;
    }
    /* Not inserted: a concurrent request with the same Idempotency-Key won the race. */
    if (PQgetvalue(pr, 0, 0)[0] != 't' && strcmp(PQgetvalue(pr, 0, 2), c->request_hash) != 0) {
        brk_reply_error(r, BRK_ECONFLICT, "idempotency_conflict",
                        "this Idempotency-Key was used with another request body");
        return;
    }
    reply_ac_text(r, PQgetvalue(pr, 0, 1));
}

static void on_denied(brk_req_t *r, const brk_db_result_t *res)
{
    const char *reply = r->ctx; /* the 403 body, serialized before the receipt was stored */
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    brk_reply_raw(r, 403, "application/json", reply, strlen(reply));
}

static void deny(brk_req_t *r, issue_ctx_t *c, const hnd_accord_t *a, const hnd_decision_t *d,
                 const char *did)
{
    char id[HND_ID_LEN + 1], now[BRK_TIME_LEN + 1];
    const brk_keyring_t *kr = brk_server_keys(r->server);
    json_t *denial = NULL, *b = NULL;

    hnd_new_id("den_", id);
    brk_time_fmt(time(NULL), now);
    denial = json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s,s:s},s:{s:s,s:s},s:s,s:s}", "denial_id", id,
        "reason_code", d->deny_code, "reason", d->reason, "accord", "template", a->name,
        "accord_hash", a->accord_hash, "operation", "command_hash", c->command,
        "corpus_entry_cid", c->corpus, "parameters_cid", c->params, "principal", "did", did,
        "display_name", r->principal.name, "issued_at", now, "key_id",
        brk_keyring_current_id(kr));
    if (denial == NULL || brk_doc_sign(kr, denial, "denial_cid") != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the denial receipt");
        goto out;
    }
    b = json_pack("{s:{s:s,s:s,s:s},s:O}", "error", "code", "policy_denied", "message", d->reason,
                  "request_id", r->request_id, "denial", denial);
    if (b != NULL && c->unknown_names != NULL)
        json_object_set_new(b, "unrecognized_fields", json_loads(c->unknown_names, 0, NULL));
    r->ctx = (void *)hnd_json_dump(r, b);
    brk_db_op_t op = {&q_deny, 7,
                      {r->principal.tenant, id, d->deny_code, a->name, r->principal.key_id,
                       hnd_json_dump(r, denial),
                       json_string_value(json_object_get(denial, "denial_cid"))}};
    brk_req_db(r, &op, 1, on_denied);
out:
    json_decref(denial);
    json_decref(b);
}

static void issue(brk_req_t *r, issue_ctx_t *c, const hnd_accord_t *a, const hnd_decision_t *d,
                  const char *did)
{
    const brk_config_t *cfg = brk_server_config(r->server);
    const brk_keyring_t *kr = brk_server_keys(r->server);
    char ctx[HND_ID_LEN + 1], issued[BRK_TIME_LEN + 1], expires[BRK_TIME_LEN + 1], caps[11];
    char url[512], ttl[16], capsnum[16];
    time_t now = time(NULL);
    const char *status = d->pending ? "pending" : "authorized";
    json_t *ac = NULL, *elev = NULL;

    hnd_new_id("ctx_", ctx);
    brk_time_fmt(now, issued);
    brk_time_fmt(now + d->ttl, expires);
    hnd_caps_fmt(c->caps, caps);
    snprintf(url, sizeof url, "%s/governance/session/%s/", cfg->public_url, ctx);
    json_t *idp = json_pack("{s:s,s:s,s:s}", "driver", "api-key", "key_id", r->principal.key_id,
                            "tenant", r->principal.tenant);
    if (c->obo != NULL) {
        char own[HND_DID_MAX + 1];
        hnd_principal_did(r, own, sizeof own);
        json_object_set_new(idp, "delegated_by", json_string(own));
    }
    ac = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:s},s:o,s:b,s:s,"
                   "s:i,s:s,s:o,s:s,s:s,s:s,s:s}",
                   "gsap_version", "1.0", "context_id", ctx, "status", status, "issued_at", issued,
                   "expires_at", expires, "principal", "did", did, "display_name",
                   r->principal.name, "accord", "template", a->name, "accord_hash",
                   a->accord_hash, "operation", "command_hash", c->command, "corpus_entry_cid",
                   c->corpus, "parameters_cid", c->params, "identity_proof", idp, "session_mode",
                   c->session, "capability_set", caps, "posture_level", a->posture, "shell_class",
                   a->shell_class, "environment_commitment",
                   c->env ? json_string(c->env) : json_null(), "billing_account",
                   c->account, "tenant", r->principal.tenant, "session_url", url, "key_id",
                   brk_keyring_current_id(kr));
    if (ac != NULL && c->unknown_names != NULL)
        json_object_set_new(ac, "unrecognized_fields", json_loads(c->unknown_names, 0, NULL));
    if (ac != NULL && d->pending) {
        char need[11];
        hnd_caps_fmt(c->caps & a->elevation_required, need);
        elev = json_pack("{s:s,s:s,s:i,s:[]}", "required", need, "status", "pending",
                         "approvals_required", a->approvals_required, "approvals");
        json_object_set(ac, "elevation", elev);
    }
    if (ac == NULL || brk_doc_sign(kr, ac, "ac_cid") != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the AC");
        goto out;
    }
    snprintf(ttl, sizeof ttl, "%ld", d->ttl);
    snprintf(capsnum, sizeof capsnum, "%u", c->caps);
    brk_db_op_t op = {&q_issue, 21,
                      {r->principal.tenant, ctx, status, a->name, c->session ? "true" : "false",
                       capsnum, c->command, c->corpus, c->params, c->env, c->description, ttl,
                       issued, expires, r->principal.key_id, c->account, hnd_json_dump(r, ac),
                       json_string_value(json_object_get(ac, "ac_cid")), c->idem,
                       c->request_hash, elev ? hnd_json_dump(r, elev) : NULL}};
    brk_db_op_t ops[2] = {op, {&q_unrecognized, 3,
                               {r->principal.tenant, ctx, c->unknown_values}}};
    brk_req_db(r, ops, c->unknown_values ? 2 : 1, on_issued);
out:
    json_decref(ac);
    json_decref(elev);
}

static void on_accord(brk_req_t *r, const brk_db_result_t *res)
{
    issue_ctx_t *c = r->ctx;
    hnd_accord_t a;
    hnd_decision_t d;
    const char *code;
    char msg[256], did[HND_DID_MAX + 1];

    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    /* An earlier request under the same Idempotency-Key answers this one. */
    if (res->n > 2 && PQntuples(res->res[2]) == 1) {
        if (strcmp(PQgetvalue(res->res[2], 0, 1), c->request_hash) != 0)
            brk_reply_error(r, BRK_ECONFLICT, "idempotency_conflict",
                            "this Idempotency-Key was used with another request body");
        else
            reply_ac_text(r, PQgetvalue(res->res[2], 0, 0));
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "accord_not_found", "no accord \"%s\"", c->accord);
        return;
    }
    /* An AC names the account that pays for its receipts: it must exist when issued. */
    if (PQntuples(res->res[1]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "account_not_found", "no billing account \"%s\"",
                        c->account);
        return;
    }
    json_t *body = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL);
    if (hnd_accord_parse(body, c->accord, &a, &code, msg, sizeof msg) != 0) {
        json_decref(body);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "accord \"%s\" is not valid: %s", c->accord, msg);
        return;
    }
    hnd_policy_decide(&a, c->session, c->caps, c->corpus, c->env, (long)c->ttl, &d);
    if (c->obo != NULL)
        snprintf(did, sizeof did, "%s", c->obo);
    else
        hnd_principal_did(r, did, sizeof did);
    if (d.deny_code != NULL)
        deny(r, c, &a, &d, did);
    else
        issue(r, c, &a, &d, did);
    hnd_accord_clear(&a);
    json_decref(body);
}

static int valid_idempotency_key(h2o_iovec_t k)
{
    if (k.len == 0 || k.len > HND_IDEMPOTENCY_KEY_MAX)
        return 0;
    for (size_t i = 0; i < k.len; i++)
        if (k.base[i] < 0x21 || k.base[i] > 0x7e)
            return 0;
    return 1;
}

static void authorize(brk_req_t *r)
{
    static const char *const fields[] = {"accord_template", "operation", "session_mode",
                                         "ttl_seconds", "capability_set", "environment_commitment",
                                         "on_behalf_of", "billing_account", NULL};
    static const char *const op_fields[] = {"command_hash", "corpus_entry_cid", "parameters_cid",
                                            "description", NULL};
    issue_ctx_t *c = brk_req_alloc(r, sizeof(*c));
    json_t *b = r->body, *op = json_object_get(b, "operation");
    const char *caps = NULL;
    char *canon = NULL;
    size_t len;
    uint8_t md[BRK_SHA256_LEN];
    json_t *unknown = hnd_collect_unknown(r, b, fields);

    if (unknown == NULL)
        return;
    if (json_array_size(unknown) > 0) {
        json_t *vals = json_object(), *n;
        size_t i;
        json_array_foreach(unknown, i, n)
        {
            const char *k = json_string_value(n);
            json_object_set_new(vals, k, hnd_looks_secret(k) ? json_string("***")
                                                             : json_incref(json_object_get(b, k)));
        }
        c->unknown_names = hnd_json_dump(r, unknown);
        c->unknown_values = hnd_json_dump(r, vals);
        json_decref(vals);
    }
    json_decref(unknown);
    c->ttl = HND_TTL_DEFAULT;
    c->account = "default";
    if (hnd_req_string(r, b, "accord_template", HND_ACCORD_NAME_MAX, &c->accord) != 0)
        return;
    if (!json_is_object(op)) {
        brk_reply_error(r, BRK_EINVAL, op ? "invalid_field" : "missing_field",
                        "\"operation\" must be an object");
        return;
    }
    if (hnd_reject_unknown(r, op, op_fields) != 0 ||
        hnd_req_cid(r, op, "command_hash", &c->command) != 0 ||
        hnd_req_cid(r, op, "corpus_entry_cid", &c->corpus) != 0 ||
        hnd_req_cid(r, op, "parameters_cid", &c->params) != 0 ||
        hnd_opt_string(r, op, "description", HND_DESCRIPTION_MAX, &c->description) != 0 ||
        hnd_opt_bool(r, b, "session_mode", &c->session) != 0 ||
        hnd_opt_int(r, b, "ttl_seconds", 1, HND_TTL_MAX, &c->ttl) != 0 ||
        hnd_opt_string(r, b, "capability_set", HND_CAPS_STR_MAX, &caps) != 0 ||
        hnd_opt_cid(r, b, "environment_commitment", &c->env) != 0 ||
        hnd_opt_string(r, b, "on_behalf_of", HND_DID_MAX, &c->obo) != 0 ||
        hnd_opt_string(r, b, "billing_account", HND_ACCOUNT_MAX, &c->account) != 0)
        return;
    if (c->account == NULL)
        c->account = "default";
    if (caps != NULL && hnd_caps_parse(caps, &c->caps) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field",
                        "\"capability_set\" must be \"0x\" and 1 to 8 hex digits");
        return;
    }
    if (c->obo != NULL) {
        if (strncmp(c->obo, "did:", 4) != 0 || strlen(c->obo) < 7) {
            brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"on_behalf_of\" must be a did: string");
            return;
        }
        if (!r->principal.can_delegate) {
            brk_reply_error(r, BRK_EFORBIDDEN, "delegation_forbidden",
                            "this key may not act on behalf of others");
            return;
        }
    }
    h2o_iovec_t idem = brk_req_header(r, "idempotency-key");
    if (idem.base != NULL) {
        if (!valid_idempotency_key(idem)) {
            brk_reply_error(r, BRK_EINVAL, "invalid_idempotency_key",
                            "Idempotency-Key must be 1 to 128 printable characters");
            return;
        }
        char *k = brk_req_alloc(r, idem.len + 1);
        memcpy(k, idem.base, idem.len);
        c->idem = k;
    }
    /* The request's own fingerprint: the same key with another body is a conflict. */
    if (brk_jcs_canonicalize(b, &canon, &len) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_json", "the body cannot be canonicalized");
        return;
    }
    brk_sha256(canon, len, md);
    brk_hex(md, sizeof md, c->request_hash);
    free(canon);
    r->ctx = c;
    brk_db_op_t ops[3] = {{&q_accord, 2, {r->principal.tenant, c->accord}},
                          {&q_account, 2, {r->principal.tenant, c->account}},
                          {&q_idem, 3, {r->principal.tenant, r->principal.key_id, c->idem}}};
    brk_req_db(r, ops, c->idem ? 3 : 2, on_accord);
}

/* ---- GET /governance/authorize/{context_id}/ ---- */

static void on_poll(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    /* A context the caller may not read is answered exactly as one that does not exist. */
    if (PQntuples(pr) != 1 || !hnd_ctx_row_readable(r, pr, HND_VIEW_POLL)) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return;
    }
    json_t *ac = hnd_ac_view(PQgetvalue(pr, 0, 0), PQgetvalue(pr, 0, 1),
                             PQgetvalue(pr, 0, 2)[0] == 't',
                             PQgetisnull(pr, 0, 3) ? NULL : PQgetvalue(pr, 0, 3));
    if (ac == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        return;
    }
    brk_reply_json(r, 200, ac);
    json_decref(ac);
}

int hnd_context_param(brk_req_t *r, char out[HND_CONTEXT_ID_MAX + 1])
{
    h2o_iovec_t p = brk_req_param(r, 0);
    /* HND_CONTEXT_ID_MAX, not HND_ID_LEN: self-authorized contexts are read here too */
    if (p.len < 5 || p.len > HND_CONTEXT_ID_MAX) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

static void poll_ac(brk_req_t *r)
{
    char *ctx = brk_req_alloc(r, HND_CONTEXT_ID_MAX + 1);
    if (hnd_context_param(r, ctx) != 0)
        return;
    brk_db_op_t op = {&q_ac_read, 3, {r->principal.tenant, ctx, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_poll);
}

/* ---- POST /governance/elevate/ ---- */

/*
 * Every decision is a row of ac_approvals (migrations/0008_approvals.sql) and an entry of
 * the AC's elevation record: {"required", "approvals_required", "approvals": [{"key_id",
 * "principal", "decision", "decided_at", "reason"}], "status", ...}. The AC becomes
 * authorized (and is re-signed, its TTL starting then) only with the approvals_required-th
 * distinct approval; one refusal revokes it. The key that requested the AC, and the
 * principal it was requested for (or by, when delegated), never decide on it.
 *
 * The decision is built here from the AC as read, then gsap_approve re-checks everything
 * under the AC's row lock, including that no other decision was recorded in between (else
 * "stale": read again and rebuild, at most HND_ELEVATE_ATTEMPTS times in all).
 */
#define HND_ELEVATE_ATTEMPTS 3

typedef struct elev_ctx {
    const char *context_id, *reason;
    int approve;
    int attempts;
    char did[HND_DID_MAX + 1]; /* the approver's principal */
} elev_ctx_t;

static void on_elev_ac(brk_req_t *r, const brk_db_result_t *res);

static void elev_read(brk_req_t *r)
{
    elev_ctx_t *c = r->ctx;
    c->attempts++;
    brk_db_op_t op = {&q_ac_get, 2, {r->principal.tenant, c->context_id}};
    brk_req_db(r, &op, 1, on_elev_ac);
}

static void on_elevated(brk_req_t *r, const brk_db_result_t *res)
{
    elev_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    const char *code = PQntuples(pr) == 1 ? PQgetvalue(pr, 0, 0) : "not_found";
    if (strcmp(code, "not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return;
    }
    if (strcmp(code, "decided") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "elevation_decided", "this AC is not pending");
        return;
    }
    if (strcmp(code, "self") == 0) {
        brk_reply_error(r, BRK_EFORBIDDEN, "self_approval_forbidden",
                        "the key or principal that requested this AC cannot decide on it");
        return;
    }
    if (strcmp(code, "duplicate") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "approval_duplicate",
                        "this key has already decided on this AC");
        return;
    }
    if (strcmp(code, "stale") == 0) {
        if (c->attempts < HND_ELEVATE_ATTEMPTS) {
            elev_read(r);
            return;
        }
        brk_reply_error(r, BRK_ECONFLICT, "elevation_conflict",
                        "other decisions on this AC were being recorded at the same time; retry");
        return;
    }
    json_t *ac = hnd_ac_view(PQgetvalue(pr, 0, 1), PQgetvalue(pr, 0, 2), 0,
                             PQgetisnull(pr, 0, 3) ? NULL : PQgetvalue(pr, 0, 3));
    if (ac == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        return;
    }
    brk_reply_json(r, 200, ac);
    json_decref(ac);
}

/* 1 when the approver (key id, DID) is the one that requested ac (issued by issuer_key). */
static int is_requester(const brk_req_t *r, const char *did, const char *issuer_key,
                        const json_t *ac)
{
    const char *pdid = json_string_value(json_object_get(json_object_get(ac, "principal"), "did"));
    const char *by = json_string_value(
        json_object_get(json_object_get(ac, "identity_proof"), "delegated_by"));
    return strcmp(issuer_key, r->principal.key_id) == 0 || (pdid && strcmp(pdid, did) == 0) ||
           (by && strcmp(by, did) == 0);
}

static void on_elev_ac(brk_req_t *r, const brk_db_result_t *res)
{
    elev_ctx_t *c = r->ctx;
    const brk_keyring_t *kr = brk_server_keys(r->server);
    char now[BRK_TIME_LEN + 1], exp[BRK_TIME_LEN + 1];
    json_t *ac = NULL, *el = NULL, *approvals, *e;
    size_t i;

    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return;
    }
    /* Expired (even before the expiry job marked it so) is not pending. */
    if (strcmp(PQgetvalue(pr, 0, 1), "pending") != 0 || PQgetvalue(pr, 0, 2)[0] == 't') {
        brk_reply_error(r, BRK_ECONFLICT, "elevation_decided", "this AC is not pending");
        return;
    }
    time_t t = time(NULL);
    long ttl = strtol(PQgetvalue(pr, 0, 4), NULL, 10);
    brk_time_fmt(t, now);
    brk_time_fmt(t + ttl, exp);
    ac = json_loads(PQgetvalue(pr, 0, 0), 0, NULL);
    el = json_loads(PQgetisnull(pr, 0, 3) ? "{}" : PQgetvalue(pr, 0, 3), 0, NULL);
    if (ac == NULL || !json_is_object(el)) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        goto out;
    }
    if (is_requester(r, c->did, PQgetvalue(pr, 0, 5), ac)) {
        brk_reply_error(r, BRK_EFORBIDDEN, "self_approval_forbidden",
                        "the key or principal that requested this AC cannot decide on it");
        goto out;
    }
    /* An elevation recorded before approvals existed has neither member: one approval. */
    approvals = json_object_get(el, "approvals");
    if (!json_is_array(approvals)) {
        approvals = json_array();
        json_object_set_new(el, "approvals", approvals);
    }
    json_array_foreach(approvals, i, e)
    {
        const char *k = json_string_value(json_object_get(e, "key_id"));
        const char *p = json_string_value(json_object_get(e, "principal"));
        if ((k && strcmp(k, r->principal.key_id) == 0) || (p && strcmp(p, c->did) == 0)) {
            brk_reply_error(r, BRK_ECONFLICT, "approval_duplicate",
                            "this key has already decided on this AC");
            goto out;
        }
    }
    json_int_t required = json_integer_value(json_object_get(el, "approvals_required"));
    if (required < HND_APPROVALS_MIN)
        required = HND_APPROVALS_MIN;
    json_object_set_new(el, "approvals_required", json_integer(required));
    size_t seen = json_array_size(approvals);
    int final = !c->approve || (json_int_t)seen + 1 >= required;
    json_array_append_new(approvals,
                          json_pack("{s:s,s:s,s:s,s:s,s:o}", "key_id", r->principal.key_id,
                                    "principal", c->did, "decision",
                                    c->approve ? "approve" : "refuse", "decided_at", now,
                                    "reason", c->reason ? json_string(c->reason) : json_null()));
    if (final) {
        json_object_set_new(el, "status", json_string(c->approve ? "approved" : "refused"));
        json_object_set_new(el, "decided_at", json_string(now));
        json_object_set_new(el, "approver", json_string(r->principal.key_id));
        json_object_set_new(el, "reason", c->reason ? json_string(c->reason) : json_null());
    }
    int sign = c->approve && final;
    if (sign) {
        /* The last approval issues the AC anew: status authorized, its TTL starting now,
         * with every approval in the signed elevation record. */
        json_object_set_new(ac, "status", json_string("authorized"));
        json_object_set_new(ac, "issued_at", json_string(now));
        json_object_set_new(ac, "expires_at", json_string(exp));
        json_object_set_new(ac, "key_id", json_string(brk_keyring_current_id(kr)));
        json_object_set(ac, "elevation", el);
        if (brk_doc_sign(kr, ac, "ac_cid") != 0) {
            brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the AC");
            goto out;
        }
    }
    char seen_s[24];
    snprintf(seen_s, sizeof seen_s, "%zu", seen);
    brk_db_op_t op = {&q_approve, 12,
                      {r->principal.tenant, c->context_id, r->principal.key_id, c->did,
                       c->approve ? "true" : "false", c->reason, now, seen_s,
                       hnd_json_dump(r, el), sign ? hnd_json_dump(r, ac) : NULL,
                       sign ? json_string_value(json_object_get(ac, "ac_cid")) : NULL, exp}};
    brk_req_db(r, &op, 1, on_elevated);
out:
    json_decref(ac);
    json_decref(el);
}

static void elevate(brk_req_t *r)
{
    static const char *const fields[] = {"context_id", "decision", "reason", NULL};
    static const char *const decisions[] = {"approve", "refuse", NULL};
    elev_ctx_t *c = brk_req_alloc(r, sizeof(*c));
    int d;
    if (hnd_reject_unknown(r, r->body, fields) != 0 ||
        hnd_req_string(r, r->body, "context_id", HND_ID_LEN, &c->context_id) != 0 ||
        hnd_req_enum(r, r->body, "decision", decisions, &d) != 0 ||
        hnd_opt_string(r, r->body, "reason", HND_DESCRIPTION_MAX, &c->reason) != 0)
        return;
    c->approve = d == 0;
    c->attempts = 0;
    hnd_principal_did(r, c->did, sizeof c->did);
    r->ctx = c;
    elev_read(r);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/authorize", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, authorize},
    {"GET", "/governance/authorize/{context_id}",
     BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER | BRK_ROLE_AUDITOR, 0, poll_ac},
    {"POST", "/governance/elevate", BRK_ROLE_APPROVER, BRK_ROUTE_JSON, elevate},
};

int hnd_authorize_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_accord, &q_account, &q_idem,    &q_issue,       &q_deny,
                              &q_ac_get, &q_ac_read, &q_approve, &q_unrecognized};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        if (brk_db_register(stmts[i]) != 0)
            return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
