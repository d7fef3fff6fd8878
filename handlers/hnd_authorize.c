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
 * authorized). Polling shows the current status over the signed document (docs/protocol.md).
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
static brk_db_stmt_t q_elevate = {
    "gov_elevate",
    "SELECT code, ac::text, status, elevation::text FROM gsap_elevate($1, $2, $3::boolean, $4::jsonb, $5::jsonb, "
    "$6, $7::timestamptz, $8::timestamptz)",
    0};

typedef struct issue_ctx {
    const char *accord, *command, *corpus, *params, *description, *env, *obo, *account, *idem;
    int session;
    long long ttl;
    uint32_t caps;
    char request_hash[65];
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
    if (ac != NULL && d->pending) {
        char need[11];
        hnd_caps_fmt(c->caps & a->elevation_required, need);
        elev = json_pack("{s:s,s:s}", "required", need, "status", "pending");
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
    brk_req_db(r, &op, 1, on_issued);
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

    c->ttl = HND_TTL_DEFAULT;
    c->account = "default";
    if (hnd_reject_unknown(r, b, fields) != 0 ||
        hnd_req_string(r, b, "accord_template", HND_ACCORD_NAME_MAX, &c->accord) != 0)
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

int hnd_context_param(brk_req_t *r, char out[HND_ID_LEN + 1])
{
    h2o_iovec_t p = brk_req_param(r, 0);
    if (p.len < 5 || p.len > HND_ID_LEN) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

static void poll_ac(brk_req_t *r)
{
    char *ctx = brk_req_alloc(r, HND_ID_LEN + 1);
    if (hnd_context_param(r, ctx) != 0)
        return;
    brk_db_op_t op = {&q_ac_read, 3, {r->principal.tenant, ctx, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_poll);
}

/* ---- POST /governance/elevate/ ---- */

typedef struct elev_ctx {
    const char *context_id, *reason;
    int approve;
} elev_ctx_t;

/* The one row of an elevation step whose column col reads want, or NULL after answering:
 * 503 (database), 404 (no such context), 409 (already decided). */
static PGresult *elev_row(brk_req_t *r, const brk_db_result_t *res, int col, const char *want)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return NULL;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return NULL;
    }
    if (strcmp(PQgetvalue(pr, 0, col), want) != 0) {
        brk_reply_error(r, BRK_ECONFLICT, "elevation_decided", "this AC is not pending");
        return NULL;
    }
    return pr;
}

static void on_elevated(brk_req_t *r, const brk_db_result_t *res)
{
    PGresult *pr = elev_row(r, res, 0, "ok");
    if (pr == NULL)
        return;
    json_t *ac = hnd_ac_view(PQgetvalue(pr, 0, 1), PQgetvalue(pr, 0, 2), 0,
                             PQgetisnull(pr, 0, 3) ? NULL : PQgetvalue(pr, 0, 3));
    if (ac == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        return;
    }
    brk_reply_json(r, 200, ac);
    json_decref(ac);
}

static void on_elev_ac(brk_req_t *r, const brk_db_result_t *res)
{
    elev_ctx_t *c = r->ctx;
    const brk_keyring_t *kr = brk_server_keys(r->server);
    char now[BRK_TIME_LEN + 1], exp[BRK_TIME_LEN + 1];
    json_t *ac = NULL, *el = NULL;

    PGresult *pr = elev_row(r, res, 1, "pending");
    if (pr == NULL)
        return;
    time_t t = time(NULL);
    long ttl = strtol(PQgetvalue(pr, 0, 4), NULL, 10);
    brk_time_fmt(t, now);
    brk_time_fmt(t + ttl, exp);
    ac = json_loads(PQgetvalue(pr, 0, 0), 0, NULL);
    el = json_loads(PQgetisnull(pr, 0, 3) ? "{}" : PQgetvalue(pr, 0, 3), 0, NULL);
    if (ac == NULL || el == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        goto out;
    }
    json_object_set_new(el, "status", json_string(c->approve ? "approved" : "refused"));
    json_object_set_new(el, "decided_at", json_string(now));
    json_object_set_new(el, "approver", json_string(r->principal.key_id));
    json_object_set_new(el, "reason", c->reason ? json_string(c->reason) : json_null());
    if (c->approve) {
        /* Approval issues the AC anew: status authorized, its TTL starting now. */
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
    brk_db_op_t op = {&q_elevate, 8,
                      {r->principal.tenant, c->context_id, c->approve ? "true" : "false",
                       hnd_json_dump(r, el), hnd_json_dump(r, ac),
                       json_string_value(json_object_get(ac, "ac_cid")), now, exp}};
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
    r->ctx = c;
    brk_db_op_t op = {&q_ac_get, 2, {r->principal.tenant, c->context_id}};
    brk_req_db(r, &op, 1, on_elev_ac);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/authorize", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, authorize},
    {"GET", "/governance/authorize/{context_id}",
     BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER | BRK_ROLE_AUDITOR, 0, poll_ac},
    {"POST", "/governance/elevate", BRK_ROLE_APPROVER, BRK_ROUTE_JSON, elevate},
};

int hnd_authorize_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_accord, &q_account, &q_idem, &q_issue, &q_deny, &q_ac_get, &q_ac_read, &q_elevate};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        if (brk_db_register(stmts[i]) != 0)
            return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
