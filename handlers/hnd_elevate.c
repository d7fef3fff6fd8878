/*
 * hnd_elevate: POST /governance/elevate/, one approver's decision on a pending elevation.
 *
 * Every decision is a row of ac_approvals (migrations/0008_approvals.sql) and an entry of the
 * AC's elevation record (the rule: gov/gov_elev.h). The decision is built from the AC as read,
 * then gsap_approve re-checks everything under the AC's row lock, including that no other
 * decision was recorded in between (else "stale": read again and rebuild, at most
 * HND_ELEVATE_ATTEMPTS times in all).
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_server.h"
#include "gov_doc.h"
#include "gov_elev.h"
#include "hnd_access.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_ELEVATE_ATTEMPTS 3

/* The first columns of the AC row (hnd_access.h), without the caller's facts. */
static brk_db_stmt_t q_ac_get = {
    "gov_ac_get",
    "SELECT ac::text, status, expires_at < now(), elevation::text, ttl_seconds, issuer_key_id "
    "FROM acs WHERE tenant_id = $1 AND context_id = $2",
    0};

/* gsap_approve's parameters and result columns, by name (the statement's order). */
enum approve_param {
    AP_TENANT,
    AP_CONTEXT,
    AP_KEY,
    AP_DID,
    AP_APPROVE,
    AP_REASON,
    AP_DECIDED,
    AP_SEEN,
    AP_ELEVATION,
    AP_AC,
    AP_AC_CID,
    AP_EXPIRES,
    AP__COUNT
};
enum approve_col { AC_CODE, AC_AC, AC_STATUS, AC_ELEVATION };

static brk_db_stmt_t q_approve = {
    "gov_approve",
    "SELECT code, ac::text, status, elevation::text FROM gsap_approve($1, $2, $3, $4, "
    "$5::boolean, $6, $7::timestamptz, $8::integer, $9::jsonb, $10::jsonb, $11, "
    "$12::timestamptz)",
    0, &hnd_q_wake};

typedef struct elev_ctx {
    const char *context_id, *reason;
    int approve;
    int attempts;
    char did[GOV_DID_MAX + 1]; /* the approver's principal */
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
    const char *code = PQntuples(pr) == 1 ? PQgetvalue(pr, 0, AC_CODE) : "not_found";
    if (strcmp(code, "stale") == 0 && c->attempts < HND_ELEVATE_ATTEMPTS) {
        elev_read(r);
        return;
    }
    if (hnd_reply_result(r, code) != 0)
        return;
    json_t *ac = gov_ac_view(PQgetvalue(pr, 0, AC_AC), PQgetvalue(pr, 0, AC_STATUS), 0,
                             PQgetisnull(pr, 0, AC_ELEVATION) ? NULL
                                                               : PQgetvalue(pr, 0, AC_ELEVATION));
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
    json_t *ac = NULL, *el = NULL;
    gov_err_t e;
    gov_elev_result_t out;

    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        hnd_reply_result(r, "not_found");
        return;
    }
    /* Expired (even before the expiry job marked it so) is not pending. */
    if (strcmp(PQgetvalue(pr, 0, HND_AC_COL_STATUS), "pending") != 0 ||
        PQgetvalue(pr, 0, HND_AC_COL_EXPIRED)[0] == 't') {
        hnd_reply_result(r, "decided");
        return;
    }
    gov_elev_decision_t d = {r->principal.key_id, c->did, c->approve, c->reason, time(NULL),
                             strtol(PQgetvalue(pr, 0, HND_AC_COL_TTL), NULL, 10)};
    ac = json_loads(PQgetvalue(pr, 0, HND_AC_COL_AC), 0, NULL);
    el = json_loads(PQgetisnull(pr, 0, HND_AC_COL_ELEVATION)
                        ? "{}"
                        : PQgetvalue(pr, 0, HND_AC_COL_ELEVATION),
                    0, NULL);
    if (ac == NULL || !json_is_object(el)) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored AC does not parse");
        goto out;
    }
    if (gov_elev_decide(brk_server_keys(r->server), ac, el,
                        PQgetvalue(pr, 0, HND_AC_COL_ISSUER), &d, &out, &e) != 0) {
        hnd_reply_gov(r, &e);
        goto out;
    }
    char seen_s[24];
    snprintf(seen_s, sizeof seen_s, "%zu", out.seen);
    brk_db_op_t op = {&q_approve, AP__COUNT, {
        [AP_TENANT] = r->principal.tenant,
        [AP_CONTEXT] = c->context_id,
        [AP_KEY] = r->principal.key_id,
        [AP_DID] = c->did,
        [AP_APPROVE] = c->approve ? "true" : "false",
        [AP_REASON] = c->reason,
        [AP_DECIDED] = out.decided_at,
        [AP_SEEN] = seen_s,
        [AP_ELEVATION] = hnd_json_dump(r, el),
        [AP_AC] = out.signed_ ? hnd_json_dump(r, ac) : NULL,
        [AP_AC_CID] = out.signed_ ? json_string_value(json_object_get(ac, "ac_cid")) : NULL,
        [AP_EXPIRES] = out.expires_at,
    }};
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
        hnd_req_string(r, r->body, "context_id", GOV_ID_LEN, &c->context_id) != 0 ||
        hnd_req_enum(r, r->body, "decision", decisions, &d) != 0 ||
        hnd_opt_string(r, r->body, "reason", GOV_DESCRIPTION_MAX, &c->reason) != 0)
        return;
    c->approve = d == 0;
    c->attempts = 0;
    hnd_principal_did(r, c->did, sizeof c->did);
    r->ctx = c;
    elev_read(r);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/elevate", BRK_ROLE_APPROVER, BRK_ROUTE_JSON, elevate},
};

int hnd_elevate_register(void)
{
    if (brk_db_register(&q_ac_get) != 0 || brk_db_register(&q_approve) != 0)
        return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
