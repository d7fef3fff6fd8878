/*
 * hnd_complete: POST /governance/complete/, accepting Completion Receipts.
 *
 * Everything that depends only on the request (validation, redaction, cr_cid, chronicle_cid:
 * gov/gov_cr.h) happens before the database; everything that depends on the AC's state
 * happens in one statement, gsap_complete (latest: migrations/0008_approvals.sql), under the
 * context's row lock: the single-use check, identical-retry detection, flags, the time check
 * against the AC's stored issued_at and the database clock, the lineage link, the CR row, the
 * AC's new status and the GSAP_CR_RECEIVED outbox event commit together or not at all. So 64
 * concurrent posts on one AC serialize on the lock and exactly one wins.
 *
 * Group commit: the statement goes out with brk_req_db_grouped, so receipts that arrive
 * together share one transaction (brk_db.h). gsap_complete answers every refusal with a code
 * and never raises for one, so a refused CR leaves its group's transaction intact; anything
 * that does raise rolls the group back and each member is re-run alone. Members are ordered
 * by "tenant/context id", the row each locks first, so groups of two workers lock in one order.
 *
 * Self-authorized receipts (gsh ran the command while the broker was unreachable): with
 * "self_authorized": true on a "self-..." context id the broker has never seen, the handler
 * builds the context document (gov_self_context_doc: unsigned, the broker did not issue it)
 * and gsap_complete creates the context in the same transaction as the CR.
 *
 * The caller's API key is checked again by gsap_complete, in the receipt's transaction
 * (BRK_ROUTE_KEY_RECHECK): the broker may have authenticated it from what the worker verified
 * in the database a moment ago, without a lookup of its own, and a key revoked or expired
 * since (or its tenant's api-key driver turned off) gets 401 with nothing written.
 *
 * Signed receipts (gov/gov_passport.h): a CR naming an agent_did first looks up that agent's
 * newest passport that counts in this tenant (not revoked, issuer trusted, inside its window)
 * and verifies agent_signature with its key here (the database has no Ed25519); gsap_complete
 * gets the verdict and re-checks, under the lock, that the passport still counts.
 */
#include "hnd.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_server.h"
#include "gov_cr.h"
#include "gov_doc.h"
#include "gov_passport.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

/* gsap_complete's parameters, by name: the statement below numbers them in this order. */
enum complete_param {
    CP_TENANT,
    CP_CONTEXT,
    CP_CR_ID,
    CP_CR,
    CP_CR_CID,
    CP_CHRONICLE_CID,
    CP_MERKLE_ROOT,
    CP_OUTCOME,
    CP_BEHAVIOR,
    CP_COMMAND,
    CP_CORPUS,
    CP_PARAMS,
    CP_ENV,
    CP_SELF_AUTHORIZED,
    CP_EXIT_CODE,
    CP_STARTED,
    CP_COMPLETED,
    CP_EXECUTOR,
    CP_SKEW_S,
    CP_SELF_DOC,
    CP_SELF_AC_CID,
    CP_ACCORD,
    CP_SELF_WINDOW_S,
    CP_AGENT_DID,
    CP_AGENT_CHECK,
    CP_AGENT_PASSPORT_CID,
    CP_API_KEY,
    CP__COUNT
};

/* Its result columns, by name: the SELECT list below, in this order. */
enum complete_col {
    CC_CODE,
    CC_CR_ID,
    CC_SEQUENCE,
    CC_LINEAGE_CID,
    CC_PREV_LINEAGE_CID,
    CC_AC_STATUS,
    CC_FLAGS,
    CC_EFFECTIVE_OUTCOME,
    CC_CR_CID,
    CC_CHRONICLE_CID,
    CC_AC_CID,
    CC_OUTCOME,
};

static brk_db_stmt_t q_complete = {
    "gov_complete",
    "SELECT code, cr_id, sequence, lineage_cid, prev_lineage_cid, ac_status, "
    "array_to_json(flags)::text, effective_outcome, cr_cid, chronicle_cid, ac_cid, outcome "
    "FROM gsap_complete($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14::boolean, $15::integer, $16::timestamptz, $17::timestamptz, $18, $19::integer, "
    "$20::jsonb, $21, $22, $23::integer, $24, $25, $26, $27::boolean)",
    0, &hnd_q_wake};

/* The newest passport of an agent that counts now in the caller's tenant. */
static brk_db_stmt_t q_agent_passport = {
    "gov_agent_passport",
    "SELECT ap.passport_cid, ap.public_key FROM agent_passports ap JOIN trusted_issuers ti "
    "ON ti.tenant_id = ap.tenant_id AND ti.name = ap.issuer_name "
    "AND ti.public_key = ap.issuer_public_key AND ti.revoked_at IS NULL "
    "WHERE ap.tenant_id = $1 AND ap.agent_did = $2 AND ap.revoked_at IS NULL "
    "AND (ap.not_before IS NULL OR now() >= ap.not_before) AND now() <= ap.expires_at "
    "ORDER BY ap.created_at DESC LIMIT 1",
    0};

/* What the response needs besides the database's answer, in request memory (no jansson
 * value outlives the handler, so a client that leaves cannot leak one). */
typedef struct complete_ctx {
    const char *context_id;
    const char *unknown; /* the unrecognized members' names, a JSON array */
    brk_db_op_t op;      /* gsap_complete, its parameters in request memory */
} complete_ctx_t;

static void on_completed(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    if (brk_req_key_refused(r, PQgetvalue(p, 0, CC_CODE)) ||
        hnd_reply_result(r, PQgetvalue(p, 0, CC_CODE)) != 0)
        return;
    const complete_ctx_t *c = r->ctx;
    char url[GOV_URL_MAX];
    hnd_session_url(r, c->context_id, url);
    gov_receipt_t x = {
        .cr_id = PQgetvalue(p, 0, CC_CR_ID),
        .context_id = c->context_id,
        .sequence = PQgetvalue(p, 0, CC_SEQUENCE),
        .cr_cid = PQgetvalue(p, 0, CC_CR_CID),
        .chronicle_cid = PQgetvalue(p, 0, CC_CHRONICLE_CID),
        .lineage_cid = PQgetvalue(p, 0, CC_LINEAGE_CID),
        .prev_lineage_cid =
            PQgetisnull(p, 0, CC_PREV_LINEAGE_CID) ? NULL : PQgetvalue(p, 0, CC_PREV_LINEAGE_CID),
        .ac_cid = PQgetvalue(p, 0, CC_AC_CID),
        .ac_status = PQgetvalue(p, 0, CC_AC_STATUS),
        .outcome = PQgetvalue(p, 0, CC_OUTCOME),
        .effective_outcome = PQgetvalue(p, 0, CC_EFFECTIVE_OUTCOME),
        .flags = PQgetvalue(p, 0, CC_FLAGS),
        .unknown = c->unknown,
        .session_url = url,
    };
    json_t *b = gov_receipt_doc(&x);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

/* The context a self-authorized receipt creates, or NULL after answering. */
static json_t *self_context(brk_req_t *r, const gov_cr_t *cr)
{
    char did[GOV_DID_MAX + 1], url[GOV_URL_MAX];
    hnd_principal_did(r, did, sizeof did);
    hnd_session_url(r, cr->context_id, url);
    gov_principal_t p = {did, did, r->principal.name, r->principal.key_id, r->principal.tenant,
                         r->principal.driver};
    json_t *doc = gov_self_context_doc(&p, cr->context_id, cr->accord_template, cr->command_hash,
                                       cr->corpus_entry_cid, cr->parameters_cid, url);
    if (doc == NULL)
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot build the self-authorized context");
    return doc;
}

static const char *req_strdup(brk_req_t *r, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *p = brk_req_alloc(r, n + 1);
    memcpy(p, s, n + 1);
    return p;
}

/* The agent's passport (or none): verify the signature over the CR as stored, then store. */
/* Group commit: this receipt may share a transaction with others arriving together, ordered
 * by the context row it locks first. */
static void submit(brk_req_t *r, complete_ctx_t *c)
{
    char key[BRK_DB_GROUP_KEY_MAX];
    snprintf(key, sizeof key, "%s/%s", r->principal.tenant, c->context_id);
    brk_req_db_grouped(r, &c->op, 1, key, on_completed);
}

static void on_agent_passport(brk_req_t *r, const brk_db_result_t *res)
{
    complete_ctx_t *c = r->ctx;
    uint8_t pub[BRK_ED25519_PUB_LEN];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    if (PQntuples(p) != 1 || gov_ed25519_hex(PQgetvalue(p, 0, 1), pub) != 0) {
        c->op.params[CP_AGENT_CHECK] = "no_passport";
    } else {
        json_t *cr = json_loads(c->op.params[CP_CR], 0, NULL);
        int ok = cr != NULL && gov_agent_sig_verify(cr, pub);
        json_decref(cr);
        c->op.params[CP_AGENT_CHECK] = ok ? "ok" : "bad_signature";
        c->op.params[CP_AGENT_PASSPORT_CID] = req_strdup(r, PQgetvalue(p, 0, 0));
    }
    submit(r, c);
}

static void complete(brk_req_t *r)
{
    gov_cr_t cr;
    gov_err_t e;
    json_t *self_doc = NULL;
    char cr_id[GOV_ID_LEN + 1], ec[16], skew[16], window[16];

    if (gov_cr_check(r->body, &cr, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    if (cr.creates_context && (self_doc = self_context(r, &cr)) == NULL)
        goto out;
    gov_new_id("cr_", cr_id);
    snprintf(ec, sizeof ec, "%lld", cr.exit_code);
    snprintf(skew, sizeof skew, "%u", brk_server_config(r->server)->time_skew_s);
    snprintf(window, sizeof window, "%d", GOV_CR_SELF_AUTH_WINDOW_S);
    complete_ctx_t *c = brk_req_alloc(r, sizeof *c);
    c->context_id = req_strdup(r, cr.context_id);
    c->unknown = hnd_json_dump(r, cr.unknown);
    r->ctx = c;
    /* every parameter lives in request memory: the statement may be sent from a callback */
    c->op = (brk_db_op_t){&q_complete, CP__COUNT, {
        [CP_TENANT] = r->principal.tenant,
        [CP_CONTEXT] = cr.context_id,
        [CP_CR_ID] = req_strdup(r, cr_id),
        [CP_CR] = hnd_json_dump(r, cr.stored),
        [CP_CR_CID] = req_strdup(r, cr.cr_cid),
        [CP_CHRONICLE_CID] = req_strdup(r, cr.chronicle_cid),
        [CP_MERKLE_ROOT] = cr.merkle_root,
        [CP_OUTCOME] = gov_outcome_names[cr.outcome],
        [CP_BEHAVIOR] = gov_behavior_names[cr.behavior],
        [CP_COMMAND] = cr.command_hash,
        [CP_CORPUS] = cr.corpus_entry_cid,
        [CP_PARAMS] = cr.parameters_cid,
        [CP_ENV] = cr.environment_commitment,
        [CP_SELF_AUTHORIZED] = cr.self_authorized ? "true" : "false",
        [CP_EXIT_CODE] = cr.has_exit_code ? req_strdup(r, ec) : NULL,
        [CP_STARTED] = cr.started_at,
        [CP_COMPLETED] = cr.completed_at,
        [CP_EXECUTOR] = r->principal.key_id,
        [CP_SKEW_S] = req_strdup(r, skew),
        [CP_SELF_DOC] = self_doc ? hnd_json_dump(r, self_doc) : NULL,
        [CP_SELF_AC_CID] =
            self_doc ? req_strdup(r, json_string_value(json_object_get(self_doc, "ac_cid"))) : NULL,
        [CP_ACCORD] = cr.accord_template ? cr.accord_template : GOV_DEFAULT_ACCORD,
        [CP_SELF_WINDOW_S] = req_strdup(r, window),
        [CP_AGENT_DID] = cr.agent_did,
        [CP_AGENT_CHECK] = NULL,
        [CP_AGENT_PASSPORT_CID] = NULL,
        /* an API key is checked again in the transaction (BRK_ROUTE_KEY_RECHECK below) */
        [CP_API_KEY] = r->principal.driver == NULL || strcmp(r->principal.driver, "api-key") == 0
                           ? "true" : "false",
    }};
    if (cr.agent_did != NULL) {
        brk_db_op_t look = {&q_agent_passport, 2, {r->principal.tenant, cr.agent_did}};
        brk_req_db(r, &look, 1, on_agent_passport);
    } else {
        submit(r, c);
    }
out:
    gov_cr_clear(&cr);
    json_decref(self_doc);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/complete", BRK_ROLE_EXECUTOR, BRK_ROUTE_JSON | BRK_ROUTE_KEY_RECHECK,
     complete},
};

int hnd_complete_register(void)
{
    int rc = brk_db_register(&q_complete);
    if (rc == 0)
        rc = brk_db_register(&q_agent_passport);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
