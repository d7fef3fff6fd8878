/*
 * hnd_passports: the issuers a tenant trusts to countersign agent passports (admin), and the
 * agents' passports themselves (gov/gov_passport.h for the format and the checks).
 *
 *   POST /admin/issuers                       admin      trust {name, public_key}
 *   GET  /admin/issuers                       admin      list them
 *   POST /admin/issuers/{name}/revoke         admin      stop trusting one (its passports stop
 *                                                        counting at once)
 *   POST /agents/passports                    admin, issuer   register an APS signed passport
 *   GET  /agents/passports/{agent_did}        any role   the agent's newest passport, status
 *   POST /agents/passports/{agent_did}/revoke admin      revoke the agent (every passport of it,
 *                                                        for good in this tenant)
 *
 * Registration trusts nothing the caller says: both signatures are verified here and the
 * countersigning key must be one this tenant trusts now, so a key of any role may register
 * (an issuer job enrolling the agents it runs); what an agent may do is still the accords'
 * and ACs' to say. Everything is of the caller's tenant; another tenant's agent is 404.
 */
#include "hnd.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_keys.h"
#include "brk_server.h"
#include "gov_passport.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define ISSUERS_LIST_MAX 256 /* issuers one tenant lists; more is a configuration smell */

#define ISSUER_COLS "name, public_key, " BRK__TS("created_at") ", " BRK__TS("revoked_at")

static brk_db_stmt_t q_issuer_insert = {
    "pp_issuer_insert",
    "WITH t AS (INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING) "
    "INSERT INTO trusted_issuers (tenant_id, name, public_key) VALUES ($1, $2, $3) "
    "ON CONFLICT DO NOTHING RETURNING " ISSUER_COLS,
    0};

static brk_db_stmt_t q_issuer_list = {
    "pp_issuer_list",
    "SELECT " ISSUER_COLS " FROM trusted_issuers WHERE tenant_id = $1 ORDER BY name LIMIT $2",
    0};

static brk_db_stmt_t q_issuer_revoke = {
    "pp_issuer_revoke",
    "UPDATE trusted_issuers SET revoked_at = coalesce(revoked_at, now()) "
    "WHERE tenant_id = $1 AND name = $2 RETURNING " ISSUER_COLS,
    0};

/* One statement: the issuer must be trusted now and the agent never revoked here; the same
 * passport registered twice is the same row. */
static brk_db_stmt_t q_passport_insert = {
    "pp_passport_insert",
    "WITH iss AS (SELECT name FROM trusted_issuers WHERE tenant_id = $1 AND public_key = $2 "
    "AND revoked_at IS NULL), "
    "rev AS (SELECT 1 FROM agent_passports WHERE tenant_id = $1 AND agent_did = $3 "
    "AND revoked_at IS NOT NULL LIMIT 1), "
    "ins AS (INSERT INTO agent_passports (tenant_id, passport_cid, agent_did, public_key, "
    "issuer_name, issuer_public_key, passport, not_before, expires_at, registered_by) "
    "SELECT $1, $4, $3, $5, iss.name, $2, $6::jsonb, to_timestamp($7::double precision / 1e6), "
    "to_timestamp($8::double precision / 1e6), $9 FROM iss WHERE NOT EXISTS (SELECT 1 FROM rev) "
    "ON CONFLICT DO NOTHING RETURNING 1) "
    "SELECT (SELECT name FROM iss), EXISTS (SELECT 1 FROM rev), (SELECT count(*) FROM ins)",
    0};

#define PASSPORT_VIEW_SQL                                                                        \
    "SELECT ap.agent_did, ap.passport_cid, ap.issuer_name, ap.issuer_public_key, "               \
    BRK__TS("ap.not_before") ", " BRK__TS("ap.expires_at") ", " BRK__TS("ap.created_at") ", "    \
    BRK__TS("ap.revoked_at") ", ap.passport::text, "                                             \
    "CASE WHEN ap.revoked_at IS NOT NULL THEN 'revoked' "                                        \
    "WHEN ti.revoked_at IS NOT NULL THEN 'issuer_revoked' "                                      \
    "WHEN now() > ap.expires_at THEN 'expired' "                                                 \
    "WHEN now() < ap.not_before THEN 'not_yet_valid' ELSE 'valid' END "                          \
    "FROM agent_passports ap JOIN trusted_issuers ti ON ti.tenant_id = ap.tenant_id "            \
    "AND ti.name = ap.issuer_name "
enum { PV_DID, PV_CID, PV_ISSUER, PV_ISSUER_KEY, PV_NBF, PV_EXP, PV_CREATED, PV_REVOKED, PV_DOC,
       PV_STATUS };

static brk_db_stmt_t q_passport_get = {
    "pp_passport_get",
    PASSPORT_VIEW_SQL "WHERE ap.tenant_id = $1 AND ap.agent_did = $2 "
                      "ORDER BY ap.created_at DESC LIMIT 1",
    0};

static brk_db_stmt_t q_passport_revoke = {
    "pp_passport_revoke",
    "WITH u AS (UPDATE agent_passports SET revoked_at = now() WHERE tenant_id = $1 "
    "AND agent_did = $2 AND revoked_at IS NULL RETURNING 1) "
    "SELECT (SELECT count(*) FROM u), "
    "EXISTS (SELECT 1 FROM agent_passports WHERE tenant_id = $1 AND agent_did = $2)",
    0};

static json_t *opt_str(const PGresult *p, int row, int col)
{
    return PQgetisnull(p, row, col) ? json_null() : json_string(PQgetvalue(p, row, col));
}

static json_t *issuer_json(const PGresult *p, int row)
{
    return json_pack("{s:s,s:s,s:o,s:o}", "name", PQgetvalue(p, row, 0), "public_key",
                     PQgetvalue(p, row, 1), "created_at", opt_str(p, row, 2), "revoked_at",
                     opt_str(p, row, 3));
}

/* ---- POST /admin/issuers ---- */

static void on_issuer(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ECONFLICT, "issuer_exists",
                        "this tenant already trusts an issuer of that name or key");
        return;
    }
    json_t *b = issuer_json(res->res[0], 0);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void issuer_add(brk_req_t *r)
{
    static const char *const fields[] = {"name", "public_key", NULL};
    const char *name, *key;
    uint8_t pub[BRK_ED25519_PUB_LEN];
    char *hex;
    if (hnd_reject_unknown(r, r->body, fields) != 0 ||
        hnd_req_string(r, r->body, "name", GOV_ISSUER_NAME_MAX, &name) != 0 ||
        hnd_req_string(r, r->body, "public_key", GOV_ED25519_HEX_LEN, &key) != 0)
        return;
    if (!gov_issuer_name_valid(name, strlen(name))) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field",
                        "\"name\" is 1 to %d of letters, digits, '.', '_' and '-'",
                        GOV_ISSUER_NAME_MAX);
        return;
    }
    if (gov_ed25519_hex(key, pub) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field",
                        "\"public_key\" is a raw Ed25519 public key in 64 hex digits, as the "
                        "Agent Passport System writes it");
        return;
    }
    hex = brk_req_alloc(r, GOV_ED25519_HEX_LEN + 1);
    brk_hex(pub, sizeof pub, hex);
    brk_db_op_t op = {&q_issuer_insert, 3, {r->principal.tenant, name, hex}};
    brk_req_db(r, &op, 1, on_issuer);
}

/* ---- GET /admin/issuers ---- */

static void on_issuer_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(p) && i < ISSUERS_LIST_MAX; i++)
        json_array_append_new(a, issuer_json(p, i));
    json_t *b = json_pack("{s:s,s:o,s:b}", "tenant_id", r->principal.tenant, "issuers", a,
                          "truncated", PQntuples(p) > ISSUERS_LIST_MAX);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void issuer_list(brk_req_t *r)
{
    char *lim = brk_req_alloc(r, 16);
    snprintf(lim, 16, "%d", ISSUERS_LIST_MAX + 1);
    brk_db_op_t op = {&q_issuer_list, 2, {r->principal.tenant, lim}};
    brk_req_db(r, &op, 1, on_issuer_list);
}

/* ---- POST /admin/issuers/{name}/revoke ---- */

static void on_issuer_revoked(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "issuer_not_found", "no such issuer in this tenant");
        return;
    }
    json_t *b = issuer_json(res->res[0], 0);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void issuer_revoke(brk_req_t *r)
{
    h2o_iovec_t n = brk_req_param(r, 0);
    if (!gov_issuer_name_valid(n.base, n.len)) {
        brk_reply_error(r, BRK_ENOTFOUND, "issuer_not_found", "no such issuer in this tenant");
        return;
    }
    char *name = brk_req_alloc(r, n.len + 1);
    memcpy(name, n.base, n.len);
    brk_db_op_t op = {&q_issuer_revoke, 2, {r->principal.tenant, name}};
    brk_req_db(r, &op, 1, on_issuer_revoked);
}

/* ---- the passport view ---- */

static json_t *passport_view(const PGresult *p)
{
    json_t *doc = json_loads(PQgetvalue(p, 0, PV_DOC), 0, NULL);
    return json_pack("{s:s,s:s,s:s,s:{s:s,s:s},s:o,s:s,s:s,s:o,s:o}", "agent_did",
                     PQgetvalue(p, 0, PV_DID), "passport_cid", PQgetvalue(p, 0, PV_CID), "status",
                     PQgetvalue(p, 0, PV_STATUS), "issuer", "name", PQgetvalue(p, 0, PV_ISSUER),
                     "public_key", PQgetvalue(p, 0, PV_ISSUER_KEY), "not_before",
                     opt_str(p, 0, PV_NBF), "expires_at", PQgetvalue(p, 0, PV_EXP),
                     "registered_at", PQgetvalue(p, 0, PV_CREATED), "revoked_at",
                     opt_str(p, 0, PV_REVOKED), "signed_passport",
                     doc ? doc : json_null());
}

/* ---- POST /agents/passports ---- */

typedef struct reg_ctx {
    const char *did;
} reg_ctx_t;

static void on_passport_view(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "passport_not_found",
                        "no passport of that agent in this tenant");
        return;
    }
    json_t *b = passport_view(res->res[0]);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_registered(brk_req_t *r, const brk_db_result_t *res)
{
    reg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    if (PQgetisnull(p, 0, 0)) {
        brk_reply_error(r, BRK_EFORBIDDEN, "untrusted_issuer",
                        "the passport's issuer is not one this tenant trusts");
        return;
    }
    if (strcmp(PQgetvalue(p, 0, 1), "t") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "agent_revoked",
                        "this agent was revoked in this tenant");
        return;
    }
    brk_db_op_t op = {&q_passport_get, 2, {r->principal.tenant, c->did}};
    brk_req_db(r, &op, 1, on_passport_view);
}

static void passport_register(brk_req_t *r)
{
    gov_passport_t pp;
    gov_err_t e;
    struct timespec ts;
    char *nbf = brk_req_alloc(r, 24), *exp = brk_req_alloc(r, 24);
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (gov_passport_check(r->body, GOV_PASSPORT_CHECK_TIME, now_us, &pp, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    reg_ctx_t *c = brk_req_alloc(r, sizeof *c);
    char *did = brk_req_alloc(r, sizeof pp.agent_did), *cid = brk_req_alloc(r, sizeof pp.passport_cid);
    char *ipub = brk_req_alloc(r, sizeof pp.issuer_pub_hex), *apub = brk_req_alloc(r, sizeof pp.agent_pub_hex);
    memcpy(did, pp.agent_did, sizeof pp.agent_did);
    memcpy(cid, pp.passport_cid, sizeof pp.passport_cid);
    memcpy(ipub, pp.issuer_pub_hex, sizeof pp.issuer_pub_hex);
    memcpy(apub, pp.agent_pub_hex, sizeof pp.agent_pub_hex);
    snprintf(nbf, 24, "%lld", (long long)pp.not_before_us);
    if (!pp.has_not_before)
        nbf = NULL; /* no lower bound */
    snprintf(exp, 24, "%lld", (long long)pp.expires_us);
    c->did = did;
    r->ctx = c;
    brk_db_op_t op = {&q_passport_insert, 9,
                      {r->principal.tenant, ipub, did, cid, apub, hnd_json_dump(r, pp.stored), nbf,
                       exp, r->principal.key_id}};
    gov_passport_clear(&pp);
    brk_req_db(r, &op, 1, on_registered);
}

/* ---- GET /agents/passports/{agent_did} and its revoke ---- */

/* The {agent_did} parameter in request memory, or NULL after answering 404. */
static const char *did_param(brk_req_t *r)
{
    h2o_iovec_t d = brk_req_param(r, 0);
    char *s = brk_req_alloc(r, d.len + 1);
    memcpy(s, d.base, d.len);
    if (d.len > GOV_AGENT_DID_MAX || memchr(s, '\0', d.len) != NULL || !gov_agent_did_valid(s)) {
        brk_reply_error(r, BRK_ENOTFOUND, "passport_not_found",
                        "no passport of that agent in this tenant");
        return NULL;
    }
    return s;
}

static void passport_get(brk_req_t *r)
{
    const char *did = did_param(r);
    if (did == NULL)
        return;
    brk_db_op_t op = {&q_passport_get, 2, {r->principal.tenant, did}};
    brk_req_db(r, &op, 1, on_passport_view);
}

static void on_passport_revoked(brk_req_t *r, const brk_db_result_t *res)
{
    reg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (strcmp(PQgetvalue(res->res[0], 0, 1), "t") != 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "passport_not_found",
                        "no passport of that agent in this tenant");
        return;
    }
    brk_db_op_t op = {&q_passport_get, 2, {r->principal.tenant, c->did}};
    brk_req_db(r, &op, 1, on_passport_view);
}

static void passport_revoke(brk_req_t *r)
{
    const char *did = did_param(r);
    if (did == NULL)
        return;
    reg_ctx_t *c = brk_req_alloc(r, sizeof *c);
    c->did = did;
    r->ctx = c;
    brk_db_op_t op = {&q_passport_revoke, 2, {r->principal.tenant, did}};
    brk_req_db(r, &op, 1, on_passport_revoked);
}

static const brk_route_t routes[] = {
    {"POST", "/admin/issuers", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, issuer_add},
    {"GET", "/admin/issuers", BRK_ROLE_ADMIN, 0, issuer_list},
    {"POST", "/admin/issuers/{name}/revoke", BRK_ROLE_ADMIN, 0, issuer_revoke},
    {"POST", "/agents/passports", BRK_ROLE_ADMIN | BRK_ROLE_ISSUER, BRK_ROUTE_JSON,
     passport_register},
    {"GET", "/agents/passports/{agent_did}", BRK_ROLE_ALL, 0, passport_get},
    {"POST", "/agents/passports/{agent_did}/revoke", BRK_ROLE_ADMIN, 0, passport_revoke},
};

int hnd_passports_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_issuer_insert,   &q_issuer_list,  &q_issuer_revoke,
                              &q_passport_insert, &q_passport_get, &q_passport_revoke};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        int rc = brk_db_register(stmts[i]);
        if (rc != 0)
            return rc;
    }
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
