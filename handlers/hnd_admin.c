/*
 * hnd_admin: tenant administration over HTTP (role admin), always of the caller's own tenant:
 * API keys (create, list, revoke) and the tenant's rate-limit override. A key is minted here
 * (random id and secret, only the secret's hash stored) and its token returned once, as
 * `gsap-broker keys create` does on the command line. Lists never show a secret or its hash.
 * Another tenant's key is 404, the same answer as a key that does not exist.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_config.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_server.h"
#include "brk_keys.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_ROLES_MAX 6 /* the six roles; a repeat is ignored */

static brk_db_stmt_t q_key_insert = {
    "admin_key_insert",
    "INSERT INTO api_keys (tenant_id, key_id, name, roles, secret_hash, can_delegate, expires_at) "
    "VALUES ($1, $2, $3, string_to_array($4, ','), $5, $6::boolean, "
    "now() + make_interval(secs => $7::bigint)) "
    "RETURNING " BRK__TS("expires_at"),
    0};

static brk_db_stmt_t q_key_list = {"admin_key_list", BRK_KEYS_LIST_SQL, 0};

static brk_db_stmt_t q_key_revoke = {"admin_key_revoke", BRK_KEYS_REVOKE_SQL, 0};

static brk_db_stmt_t q_rate_get = {
    "admin_rate_get", "SELECT rate_per_s, rate_burst FROM tenants WHERE tenant_id = $1", 0};

static brk_db_stmt_t q_rate_put = {
    "admin_rate_put",
    "UPDATE tenants SET rate_per_s = $2::integer, rate_burst = $3::integer "
    "WHERE tenant_id = $1 RETURNING rate_per_s, rate_burst",
    0};

typedef struct key_ctx {
    char key_id[BRK_KEY_ID_HEX + 1];
    char token[BRK_TOKEN_MAX];
    char roles[128];
} key_ctx_t;

static void on_key_inserted(brk_req_t *r, const brk_db_result_t *res)
{
    key_ctx_t *k = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    json_t *exp = PQntuples(pr) == 1 && !PQgetisnull(pr, 0, 0)
                      ? json_string(PQgetvalue(pr, 0, 0))
                      : json_null();
    json_t *b = json_pack("{s:s,s:s,s:s,s:o,s:s}", "tenant_id", r->principal.tenant, "key_id",
                          k->key_id, "roles", k->roles, "expires_at", exp, "token", k->token);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void keys_create(brk_req_t *r)
{
    static const char *const fields[] = {"roles", "name", "can_delegate", "expires_in_seconds",
                                         NULL};
    json_t *roles = json_object_get(r->body, "roles");
    const char *name = NULL;
    int delegate = 0;
    unsigned mask = 0;
    long long expires_in = 0;
    char secret_hash[65], exp[24];
    key_ctx_t *k;
    size_t i, len = 0;
    json_t *v;

    if (hnd_reject_unknown(r, r->body, fields) != 0)
        return;
    if (!json_is_array(roles) || json_array_size(roles) == 0 || json_array_size(roles) > HND_ROLES_MAX) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"roles\" must be a non-empty array");
        return;
    }
    k = brk_req_alloc(r, sizeof(*k));
    json_array_foreach(roles, i, v)
    {
        const char *s = json_string_value(v);
        unsigned bit = s ? brk_role_parse(s, strlen(s)) : 0;
        if (s == NULL) {
            brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"roles\" must hold strings");
            return;
        }
        if (bit == 0) {
            brk_reply_error(r, BRK_ERANGE, "invalid_role", "unknown role \"%.32s\"", s);
            return;
        }
        if (mask & bit)
            continue;
        mask |= bit;
        len += (size_t)snprintf(k->roles + len, sizeof k->roles - len, "%s%s", len ? "," : "", s);
    }
    if (hnd_opt_string(r, r->body, "name", BRK_KEY_NAME_MAX, &name) != 0 ||
        hnd_opt_bool(r, r->body, "can_delegate", &delegate) != 0 ||
        hnd_opt_int(r, r->body, "expires_in_seconds", 1, BRK_KEY_EXPIRES_MAX_S, &expires_in) != 0)
        return;
    snprintf(exp, sizeof exp, "%lld", expires_in);
    if (delegate && !r->principal.can_delegate) {
        brk_reply_error(r, BRK_EFORBIDDEN, "delegation_forbidden",
                        "only a key that may delegate can create one that may");
        return;
    }
    if (brk_keys_mint(r->principal.tenant, k->key_id, secret_hash, k->token, sizeof k->token) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot create a key");
        return;
    }
    r->ctx = k;
    brk_db_op_t op = {&q_key_insert, 7,
                      {r->principal.tenant, k->key_id, name, k->roles, secret_hash,
                       delegate ? "true" : "false", expires_in > 0 ? exp : NULL}};
    brk_req_db(r, &op, 1, on_key_inserted);
}

/* ---- GET /admin/keys ---- */

static void on_key_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    int n = PQntuples(pr);
    json_t *keys = json_array();
    for (int i = 0; i < n && i < BRK_KEYS_LIST_MAX; i++)
        json_array_append_new(keys, brk_keys_row_json(pr, i));
    json_t *b = json_pack("{s:s,s:o,s:b}", "tenant_id", r->principal.tenant, "keys", keys,
                          "truncated", n > BRK_KEYS_LIST_MAX);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void keys_list(brk_req_t *r)
{
    char *lim = brk_req_alloc(r, 16);
    /* One more than shown, to tell a full page from a cut one. */
    snprintf(lim, 16, "%d", BRK_KEYS_LIST_MAX + 1);
    brk_db_op_t op = {&q_key_list, 2, {r->principal.tenant, lim}};
    brk_req_db(r, &op, 1, on_key_list);
}

/* ---- POST /admin/keys/{key_id}/revoke ---- */

static void on_key_revoked(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "key_not_found", "no such key in this tenant");
        return;
    }
    json_t *b = brk_keys_row_json(pr, 0);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void keys_revoke(brk_req_t *r)
{
    h2o_iovec_t id = brk_req_param(r, 0);
    if (!brk_key_id_valid(id.base, id.len)) {
        brk_reply_error(r, BRK_ENOTFOUND, "key_not_found", "no such key in this tenant");
        return;
    }
    char *kid = brk_req_alloc(r, BRK_KEY_ID_HEX + 1);
    memcpy(kid, id.base, BRK_KEY_ID_HEX);
    brk_db_op_t op = {&q_key_revoke, 3, {r->principal.tenant, kid, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_key_revoked);
}

/* ---- GET and PUT /admin/tenant/rate-limit ---- */

static json_t *override_value(const PGresult *pr, int col)
{
    return PQgetisnull(pr, 0, col) ? json_null()
                                   : json_integer(strtoll(PQgetvalue(pr, 0, col), NULL, 10));
}

static void on_rate(brk_req_t *r, const brk_db_result_t *res)
{
    const brk_config_t *cfg = brk_server_config(r->server);
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, NULL, "no such tenant");
        return;
    }
    json_t *rate = override_value(pr, 0), *burst = override_value(pr, 1);
    json_t *b = json_pack(
        "{s:s,s:O,s:O,s:{s:I,s:I}}", "tenant_id", r->principal.tenant, "rate_per_s", rate,
        "burst", burst, "effective", "rate_per_s",
        json_is_null(rate) ? (json_int_t)cfg->rate_per_s : json_integer_value(rate), "burst",
        json_is_null(burst) ? (json_int_t)cfg->rate_burst : json_integer_value(burst));
    json_decref(rate);
    json_decref(burst);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void rate_get(brk_req_t *r)
{
    brk_db_op_t op = {&q_rate_get, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_rate);
}

/* rate_field: an override: absent or null (the broker's setting) or 1..BRK_CONFIG_RATE_MAX;
 * *out gets its text or NULL. */
static int rate_field(brk_req_t *r, const char *key, char *buf, size_t cap, const char **out)
{
    long long v = 0;
    json_t *j = json_object_get(r->body, key);
    *out = NULL;
    if (j == NULL || json_is_null(j))
        return 0;
    if (hnd_opt_int(r, r->body, key, 1, BRK_CONFIG_RATE_MAX, &v) != 0)
        return -1;
    snprintf(buf, cap, "%lld", v);
    *out = buf;
    return 0;
}

static void rate_put(brk_req_t *r)
{
    static const char *const fields[] = {"rate_per_s", "burst", NULL};
    char *rate_buf = brk_req_alloc(r, 24), *burst_buf = brk_req_alloc(r, 24);
    const char *rate, *burst;

    if (hnd_reject_unknown(r, r->body, fields) != 0 ||
        rate_field(r, "rate_per_s", rate_buf, 24, &rate) != 0 ||
        rate_field(r, "burst", burst_buf, 24, &burst) != 0)
        return;
    brk_db_op_t op = {&q_rate_put, 3, {r->principal.tenant, rate, burst}};
    brk_req_db(r, &op, 1, on_rate);
}

static const brk_route_t routes[] = {
    {"POST", "/admin/keys", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, keys_create},
    {"GET", "/admin/keys", BRK_ROLE_ADMIN, 0, keys_list},
    {"POST", "/admin/keys/{key_id}/revoke", BRK_ROLE_ADMIN, 0, keys_revoke},
    {"GET", "/admin/tenant/rate-limit", BRK_ROLE_ADMIN, 0, rate_get},
    {"PUT", "/admin/tenant/rate-limit", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, rate_put},
};

int hnd_admin_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_key_insert, &q_key_list, &q_key_revoke, &q_rate_get,
                              &q_rate_put};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        int rc = brk_db_register(stmts[i]);
        if (rc != 0)
            return rc;
    }
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
