/*
 * hnd_authorize: issuing Authorization Contexts and polling them (elevations: hnd_elevate.c).
 *
 * POST /governance/authorize/ runs in two round trips: (1) the accord and, with an
 * Idempotency-Key, an earlier AC under that key; (2) after the policy decision and the
 * signature, one statement that stores the AC (or the denial receipt) together with its
 * outbox event. Two requests racing with the same Idempotency-Key meet at the unique index
 * in gsap_issue, and the loser returns the winner's AC. The second round trip is
 * group-committed (brk_req_db_grouped) with the other ACs issued at the same time.
 *
 * The signed AC never changes except when an elevation is approved (re-signed with status
 * authorized, once the accord's approvals_required distinct approvers approved). Polling shows
 * the current status over the signed document (docs/protocol.md).
 *
 * Members of the request this broker does not know are not refused (a newer gsh or SK plugin
 * may add some): bounded (GOV_UNKNOWN_*), their names go into the signed AC as
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
#include "brk_time.h"
#include "gov_accord.h"
#include "gov_acreq.h"
#include "gov_doc.h"
#include "gov_deleg.h"
#include "hnd_access.h"
#include "hnd_deleg.h"
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
/* gsap_issue's parameters and result columns, by name (the statement's order). */
enum issue_param {
    IS_TENANT,
    IS_CONTEXT,
    IS_STATUS,
    IS_ACCORD,
    IS_SESSION,
    IS_CAPS,
    IS_COMMAND,
    IS_CORPUS,
    IS_PARAMS,
    IS_ENV,
    IS_DESCRIPTION,
    IS_TTL,
    IS_ISSUED,
    IS_EXPIRES,
    IS_ISSUER,
    IS_ACCOUNT,
    IS_AC,
    IS_AC_CID,
    IS_IDEMPOTENCY_KEY,
    IS_REQUEST_HASH,
    IS_ELEVATION,
    IS_DELEGATION,
    IS__COUNT
};
enum issue_col { IC_INSERTED, IC_AC, IC_REQUEST_HASH, IC_REFUSAL };
static brk_db_stmt_t q_issue = {
    "gov_issue",
    "SELECT inserted, ac::text, request_hash, refusal FROM gsap_issue($1, $2, $3, $4, "
    "$5::boolean, $6::bigint, $7, $8, $9, $10, $11, $12::integer, $13::timestamptz, "
    "$14::timestamptz, $15, $16, $17::jsonb, $18, $19, $20, $21::jsonb, $22)",
    0, &hnd_q_wake};
/* The unrecognized members of the request, next to the AC gsap_issue just stored. When
 * gsap_issue found an earlier AC under the Idempotency-Key instead, no row has this new
 * context id and nothing changes. */
static brk_db_stmt_t q_unrecognized = {
    "gov_unrecognized",
    "UPDATE acs SET unrecognized = $3::jsonb WHERE tenant_id = $1 AND context_id = $2", 0};
/* The delegation an AC is asked under (0012): its scope, chain and parties. */
static brk_db_stmt_t q_deleg = {
    "gov_deleg",
    "SELECT " HND_DELEG_ROW_JSON "::text FROM delegations d "
    "WHERE d.tenant_id = $1 AND d.delegation_id = $2",
    0};
/* The results of the first round trip, in the order authorize() sends them (the delegation
 * and the idempotency lookups only when asked: issue_ctx_t.ar_deleg / ar_idem), and the
 * columns of q_idem. */
enum { AR_ACCORD, AR_ACCOUNT };
enum idem_col { ID_AC, ID_REQUEST_HASH };
enum deny_param {
    DP_TENANT,
    DP_DENIAL_ID,
    DP_REASON_CODE,
    DP_ACCORD,
    DP_ISSUER,
    DP_DENIAL,
    DP_DENIAL_CID,
    DP__COUNT
};
static brk_db_stmt_t q_deny = {
    "gov_deny", "SELECT gsap_deny($1, $2, $3, $4, $5, $6::jsonb, $7)", 0, &hnd_q_wake};
/* Polling reads the AC row with what hnd_access decides on (hnd_access.h). */
static brk_db_stmt_t q_ac_read = {
    "gov_ac_read", HND_AC_ROW_SELECT " FROM acs WHERE tenant_id = $1 AND context_id = $2", 0};

typedef struct issue_ctx {
    const char *accord, *command, *corpus, *params, *description, *env, *obo, *account, *idem;
    const char *delegation;     /* delegation_id, or NULL */
    const char *deleg_doc;      /* the AC's "delegation" member (JSON text), or NULL */
    int ar_deleg, ar_idem;      /* their results' index in the first round trip, or -1 */
    int session;
    long long ttl;
    uint32_t caps;
    char request_hash[GOV_REQUEST_HASH_LEN + 1];
    const char *unknown_names;  /* JSON array text, NULL when the request had none */
    const char *unknown_values; /* JSON object text (secret-looking values masked), or NULL */
} issue_ctx_t;

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
    /* Refused under the delegation's row lock: revoked, expired, exhausted, spent. */
    if (!PQgetisnull(pr, 0, IC_REFUSAL)) {
        hnd_reply_result(r, PQgetvalue(pr, 0, IC_REFUSAL));
        return;
    }
    /* Not inserted: a concurrent request with the same Idempotency-Key won the race. */
    if (PQgetvalue(pr, 0, IC_INSERTED)[0] != 't' &&
        strcmp(PQgetvalue(pr, 0, IC_REQUEST_HASH), c->request_hash) != 0) {
        brk_reply_error(r, BRK_ECONFLICT, "idempotency_conflict",
                        "this Idempotency-Key was used with another request body");
        return;
    }
    reply_ac_text(r, PQgetvalue(pr, 0, IC_AC));
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

/* The request as gov_doc sees it; unknown and deleg are the caller's to release. */
static gov_ac_req_t ac_req(const issue_ctx_t *c, json_t **unknown, json_t **deleg)
{
    *unknown = c->unknown_names ? json_loads(c->unknown_names, 0, NULL) : NULL;
    *deleg = c->deleg_doc ? json_loads(c->deleg_doc, 0, NULL) : NULL;
    gov_ac_req_t q = {c->command, c->corpus, c->params, c->env, c->account,
                      c->session, c->caps, c->delegation != NULL, *unknown, *deleg};
    return q;
}

static void deny(brk_req_t *r, issue_ctx_t *c, const gov_accord_t *a, const gov_decision_t *d,
                 const gov_principal_t *p)
{
    char id[GOV_ID_LEN + 1];
    json_t *unknown, *deleg, *denial = NULL, *b = NULL;
    gov_ac_req_t q = ac_req(c, &unknown, &deleg);

    gov_new_id("den_", id);
    denial = gov_denial_issue(brk_server_keys(r->server), p, &q, a, d, id, time(NULL));
    if (denial == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the denial receipt");
        goto out;
    }
    b = gov_denial_body(denial, d->reason, r->request_id, unknown);
    r->ctx = (void *)hnd_json_dump(r, b);
    brk_db_op_t op = {&q_deny, DP__COUNT, {
        [DP_TENANT] = r->principal.tenant,
        [DP_DENIAL_ID] = id,
        [DP_REASON_CODE] = d->deny_code,
        [DP_ACCORD] = a->name,
        [DP_ISSUER] = r->principal.key_id,
        [DP_DENIAL] = hnd_json_dump(r, denial),
        [DP_DENIAL_CID] = json_string_value(json_object_get(denial, "denial_cid")),
    }};
    brk_req_db(r, &op, 1, on_denied);
out:
    json_decref(unknown);
    json_decref(deleg);
    json_decref(denial);
    json_decref(b);
}

static void issue(brk_req_t *r, issue_ctx_t *c, const gov_accord_t *a, const gov_decision_t *d,
                  const gov_principal_t *p)
{
    char ctx[GOV_ID_LEN + 1], issued[BRK_TIME_LEN + 1], expires[BRK_TIME_LEN + 1];
    char url[GOV_URL_MAX], ttl[16], capsnum[16];
    time_t now = time(NULL);
    json_t *unknown, *deleg, *ac = NULL, *elev = NULL;
    gov_ac_req_t q = ac_req(c, &unknown, &deleg);

    gov_new_id("ctx_", ctx);
    hnd_session_url(r, ctx, url);
    if (gov_ac_issue(brk_server_keys(r->server), p, &q, a, d, ctx, now, url, &ac, &elev) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the AC");
        goto out;
    }
    brk_time_fmt(now, issued);
    brk_time_fmt(now + d->ttl, expires);
    snprintf(ttl, sizeof ttl, "%ld", d->ttl);
    snprintf(capsnum, sizeof capsnum, "%u", c->caps);
    brk_db_op_t ops[2] = {
        {&q_issue, IS__COUNT, {
            [IS_TENANT] = r->principal.tenant,
            [IS_CONTEXT] = ctx,
            [IS_STATUS] = d->pending ? "pending" : "authorized",
            [IS_ACCORD] = a->name,
            [IS_SESSION] = c->session ? "true" : "false",
            [IS_CAPS] = capsnum,
            [IS_COMMAND] = c->command,
            [IS_CORPUS] = c->corpus,
            [IS_PARAMS] = c->params,
            [IS_ENV] = c->env,
            [IS_DESCRIPTION] = c->description,
            [IS_TTL] = ttl,
            [IS_ISSUED] = issued,
            [IS_EXPIRES] = expires,
            [IS_ISSUER] = r->principal.key_id,
            [IS_ACCOUNT] = c->account,
            [IS_AC] = hnd_json_dump(r, ac),
            [IS_AC_CID] = json_string_value(json_object_get(ac, "ac_cid")),
            [IS_IDEMPOTENCY_KEY] = c->idem,
            [IS_REQUEST_HASH] = c->request_hash,
            [IS_ELEVATION] = elev ? hnd_json_dump(r, elev) : NULL,
            [IS_DELEGATION] = c->delegation,
        }},
        {&q_unrecognized, 3, {r->principal.tenant, ctx, c->unknown_values}},
    };
    /* Group commit: the AC may share a transaction with others issued together, ordered by
     * the one key two of them can contend for: (tenant, issuer key, Idempotency-Key). */
    char key[BRK_DB_GROUP_KEY_MAX];
    snprintf(key, sizeof key, "%s/%s/%s", r->principal.tenant, r->principal.key_id,
             c->idem ? c->idem : "");
    brk_req_db_grouped(r, ops, c->unknown_values ? 2 : 1, key, on_issued);
out:
    json_decref(unknown);
    json_decref(deleg);
    json_decref(ac);
    json_decref(elev);
}

/*
 * under_delegation: an AC asked under a delegation (delegation_id). The caller is either the
 * delegation's agent (the AC's principal is the caller, delegated_by the delegator) or its
 * delegator or the key that owns the chain asking for its agent (the principal is the agent,
 * delegated_by the caller; on_behalf_of, when given, must name it); anyone else is answered
 * as if the delegation did not exist. The request must stay
 * inside the delegation's scope; the AC's TTL is cut to the delegation's remaining life. The
 * counters (max commands, spend, revocation) are checked again under the row lock by
 * gsap_issue. Fills did / by (the AC's principal and its delegated_by) and c->deleg_doc.
 * Returns 0, or -1 after replying.
 */
static int under_delegation(brk_req_t *r, issue_ctx_t *c, PGresult *pr, const gov_accord_t *a,
                            gov_decision_t *d, const char *own, char did[GOV_DID_MAX + 1],
                            char by[GOV_DID_MAX + 1])
{
    gov_deleg_parent_t g;
    gov_err_t e;
    json_t *row = PQntuples(pr) == 1 ? json_loads(PQgetvalue(pr, 0, 0), 0, NULL) : NULL;
    int rc = -1;

    memset(&g, 0, sizeof g);
    const char *agent = json_string_value(json_object_get(row, "agent_did"));
    const char *delegator = json_string_value(json_object_get(row, "delegator_did"));
    const char *owner = json_string_value(json_object_get(row, "owner_key_id"));
    /* The key that owns the chain (its root's delegator) may ask for any agent of it: every
     * link only narrows that key's own authority. It is how an agent without a key of its
     * own (an SDK agent, a did:key) gets ACs. */
    int for_agent = delegator != NULL && (strcmp(delegator, own) == 0 ||
                                          (owner && strcmp(owner, r->principal.key_id) == 0));
    if (row == NULL || agent == NULL || delegator == NULL ||
        (strcmp(agent, own) != 0 && !for_agent)) {
        brk_reply_error(r, BRK_ENOTFOUND, "delegation_not_found", "no such delegation");
        goto out;
    }
    if (c->obo != NULL && strcmp(c->obo, agent) != 0) {
        brk_reply_error(r, BRK_EFORBIDDEN, "delegation_forbidden",
                        "\"on_behalf_of\" must be the delegation's agent");
        goto out;
    }
    if (strcmp(json_string_value(json_object_get(row, "status")), "active") != 0) {
        hnd_reply_result(r, "delegation_revoked");
        goto out;
    }
    if (json_is_true(json_object_get(row, "expired"))) {
        hnd_reply_result(r, "delegation_expired");
        goto out;
    }
    if (gov_deleg_parent_from_row(row, &g) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored delegation does not parse");
        goto out;
    }
    time_t now = time(NULL);
    if ((int64_t)now + d->ttl > g.s.expires)
        d->ttl = (long)(g.s.expires - (int64_t)now);
    gov_deleg_use_t u = {a->name, c->command, c->corpus, c->caps, (int64_t)now + d->ttl};
    if (d->ttl <= 0) {
        hnd_reply_result(r, "delegation_expired");
        goto out;
    }
    if (gov_deleg_allows(&g.s, &u, &e) != 0) {
        hnd_reply_gov(r, &e);
        goto out;
    }
    if (strcmp(agent, own) == 0 && !for_agent) {
        snprintf(did, GOV_DID_MAX + 1, "%s", own);
        snprintf(by, GOV_DID_MAX + 1, "%s", delegator);
    } else {
        snprintf(did, GOV_DID_MAX + 1, "%s", agent);
        snprintf(by, GOV_DID_MAX + 1, "%s", own);
    }
    json_t *doc = json_pack("{s:O,s:O,s:O,s:s,s:s}", "delegation_id",
                            json_object_get(row, "delegation_id"), "chain",
                            json_object_get(row, "chain"), "delegation_cid",
                            json_object_get(row, "delegation_cid"), "delegator_did", delegator,
                            "agent_did", agent);
    c->deleg_doc = doc ? hnd_json_dump(r, doc) : NULL;
    json_decref(doc);
    rc = c->deleg_doc ? 0 : -1;
    if (rc != 0)
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot describe the delegation");
out:
    gov_deleg_scope_clear(&g.s);
    json_decref(row);
    return rc;
}

static void on_accord(brk_req_t *r, const brk_db_result_t *res)
{
    issue_ctx_t *c = r->ctx;
    gov_accord_t a;
    gov_decision_t d;
    const char *code;
    char msg[GOV_MSG_MAX], did[GOV_DID_MAX + 1], own[GOV_DID_MAX + 1], by[GOV_DID_MAX + 1];

    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    /* An earlier request under the same Idempotency-Key answers this one. */
    if (c->ar_idem >= 0 && PQntuples(res->res[c->ar_idem]) == 1) {
        if (strcmp(PQgetvalue(res->res[c->ar_idem], 0, ID_REQUEST_HASH), c->request_hash) != 0)
            brk_reply_error(r, BRK_ECONFLICT, "idempotency_conflict",
                            "this Idempotency-Key was used with another request body");
        else
            reply_ac_text(r, PQgetvalue(res->res[c->ar_idem], 0, ID_AC));
        return;
    }
    if (PQntuples(res->res[AR_ACCORD]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "accord_not_found", "no accord \"%s\"", c->accord);
        return;
    }
    /* An AC names the account that pays for its receipts: it must exist when issued. */
    if (PQntuples(res->res[AR_ACCOUNT]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "account_not_found", "no billing account \"%s\"",
                        c->account);
        return;
    }
    json_t *body = json_loads(PQgetvalue(res->res[AR_ACCORD], 0, 0), 0, NULL);
    if (gov_accord_parse(body, c->accord, &a, &code, msg, sizeof msg) != 0) {
        json_decref(body);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "accord \"%s\" is not valid: %s", c->accord, msg);
        return;
    }
    gov_policy_decide(&a, c->session, c->caps, c->corpus, c->env, (long)c->ttl, &d);
    hnd_principal_did(r, own, sizeof own);
    snprintf(did, sizeof did, "%s", own);
    snprintf(by, sizeof by, "%s", own);
    if (c->delegation != NULL &&
        under_delegation(r, c, res->res[c->ar_deleg], &a, &d, own, did, by) != 0)
        goto out;
    gov_principal_t p = {did, by, r->principal.name, r->principal.key_id, r->principal.tenant,
                         r->principal.driver};
    if (d.deny_code != NULL)
        deny(r, c, &a, &d, &p);
    else
        issue(r, c, &a, &d, &p);
out:
    gov_accord_clear(&a);
    json_decref(body);
}

static void authorize(brk_req_t *r)
{
    issue_ctx_t *c = brk_req_alloc(r, sizeof(*c));
    gov_ac_request_t q;
    gov_err_t e;

    if (gov_ac_request_parse(r->body, &q, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    c->accord = q.accord;
    c->command = q.command;
    c->corpus = q.corpus;
    c->params = q.params;
    c->description = q.description;
    c->env = q.env;
    c->obo = q.obo;
    c->delegation = q.delegation;
    c->account = q.account;
    c->session = q.session;
    c->ttl = q.ttl;
    c->caps = q.caps;
    if (q.unknown != NULL) {
        c->unknown_names = hnd_json_dump(r, q.unknown);
        c->unknown_values = hnd_json_dump(r, q.unknown_values);
    }
    gov_ac_request_clear(&q);
    /* Acting for another principal is what a delegation grants, and only that: the agent
     * is the delegation's, never any did: the caller names. */
    if (c->obo != NULL && c->delegation == NULL) {
        brk_reply_error(r, BRK_EFORBIDDEN, "delegation_forbidden",
                        "\"on_behalf_of\" needs a \"delegation_id\" whose agent it names");
        return;
    }
    h2o_iovec_t idem = brk_req_header(r, "idempotency-key");
    if (idem.base != NULL) {
        if (!gov_idempotency_key_valid(idem.base, idem.len)) {
            brk_reply_error(r, BRK_EINVAL, "invalid_idempotency_key",
                            "Idempotency-Key must be 1 to 128 printable characters");
            return;
        }
        char *k = brk_req_alloc(r, idem.len + 1);
        memcpy(k, idem.base, idem.len);
        c->idem = k;
    }
    if (gov_request_hash(r->body, c->request_hash, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    r->ctx = c;
    brk_db_op_t ops[4] = {[AR_ACCORD] = {&q_accord, 2, {r->principal.tenant, c->accord}},
                          [AR_ACCOUNT] = {&q_account, 2, {r->principal.tenant, c->account}}};
    size_t n = AR_ACCOUNT + 1;
    c->ar_deleg = c->ar_idem = -1;
    if (c->delegation != NULL) {
        c->ar_deleg = (int)n;
        ops[n++] = (brk_db_op_t){&q_deleg, 2, {r->principal.tenant, c->delegation}};
    }
    if (c->idem != NULL) {
        c->ar_idem = (int)n;
        ops[n++] = (brk_db_op_t){&q_idem, 3, {r->principal.tenant, r->principal.key_id, c->idem}};
    }
    brk_req_db(r, ops, n, on_accord);
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
        hnd_reply_result(r, "not_found");
        return;
    }
    json_t *ac = hnd_ac_row_view(pr);
    if (ac == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        return;
    }
    brk_reply_json(r, 200, ac);
    json_decref(ac);
}

static void poll_ac(brk_req_t *r)
{
    char *ctx = brk_req_alloc(r, GOV_CONTEXT_ID_MAX + 1);
    if (hnd_context_param(r, ctx) != 0)
        return;
    brk_db_op_t op = {&q_ac_read, 3, {r->principal.tenant, ctx, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_poll);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/authorize", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, authorize},
    {"GET", "/governance/authorize/{context_id}",
     BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER | BRK_ROLE_AUDITOR, 0, poll_ac},
};

int hnd_authorize_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_accord,  &q_account,      &q_idem,  &q_issue,
                              &q_deny,    &q_ac_read,      &q_unrecognized, &q_deleg};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        if (brk_db_register(stmts[i]) != 0)
            return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
