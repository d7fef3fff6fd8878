/*
 * hnd_admin: tenant administration over HTTP (role admin): API keys for the caller's own
 * tenant. A key is minted here (random id and secret, only the secret's hash stored) and its
 * token returned once, as `gsap-broker keys create` does on the command line.
 */
#include "hnd.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "brk_keys.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_ROLES_MAX 6 /* the six roles; a repeat is ignored */

static brk_db_stmt_t q_key_insert = {
    "admin_key_insert",
    "INSERT INTO api_keys (tenant_id, key_id, name, roles, secret_hash, can_delegate) "
    "VALUES ($1, $2, $3, string_to_array($4, ','), $5, $6::boolean)",
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
    json_t *b = json_pack("{s:s,s:s,s:s,s:s}", "tenant_id", r->principal.tenant, "key_id",
                          k->key_id, "roles", k->roles, "token", k->token);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void keys_create(brk_req_t *r)
{
    static const char *const fields[] = {"roles", "name", "can_delegate", NULL};
    json_t *roles = json_object_get(r->body, "roles");
    const char *name = NULL;
    int delegate = 0;
    unsigned mask = 0;
    char secret_hash[65];
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
        hnd_opt_bool(r, r->body, "can_delegate", &delegate) != 0)
        return;
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
    brk_db_op_t op = {&q_key_insert, 6,
                      {r->principal.tenant, k->key_id, name, k->roles, secret_hash,
                       delegate ? "true" : "false"}};
    brk_req_db(r, &op, 1, on_key_inserted);
}

static const brk_route_t routes[] = {
    {"POST", "/admin/keys", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, keys_create},
};

int hnd_admin_register(void)
{
    int rc = brk_db_register(&q_key_insert);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
