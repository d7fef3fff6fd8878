/*
 * hnd_mtls: the mtls identity driver's configuration over HTTP (role admin), always of the
 * caller's own tenant: GET and PUT /admin/identity/mtls. The rules are brk_mtls.h's; the
 * request path that uses the configuration is broker/brk_http_mtls.c.
 *
 * PUT replaces the whole configuration (there is one per tenant). "enabled": false turns
 * the driver off without forgetting it; the row keeps its trust domain. A trust domain
 * another tenant holds is 409 trust_domain_taken: that uniqueness is what stops one tenant's
 * certificates from acting in another. Answers never include the PEM, only each CA's
 * subject, SHA-256 fingerprint (of the DER) and expiry.
 */
#include "hnd.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "brk_keys.h"
#include "brk_mtls.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_MTLS_ROLES_MAX 6 /* the six roles; a repeat is ignored */

static brk_db_stmt_t q_mtls_get = {"admin_mtls_get", BRK_MTLS_GET_SQL, 0};
static brk_db_stmt_t q_mtls_put = {"admin_mtls_put", BRK_MTLS_PUT_SQL, 0};

static void on_mtls(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err == BRK_EINVAL && strcmp(res->sqlstate, "23505") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "trust_domain_taken",
                        "another tenant already accepts client certificates of this trust "
                        "domain");
        return;
    }
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "mtls_not_configured",
                        "this tenant has no mtls configuration");
        return;
    }
    json_t *b = brk_mtls_row_json(pr, 0);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void mtls_get(brk_req_t *r)
{
    brk_db_op_t op = {&q_mtls_get, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_mtls);
}

/* roles_field: "roles", a non-empty array of role names, into a comma list in out. */
static int roles_field(brk_req_t *r, char *out, size_t cap)
{
    json_t *roles = json_object_get(r->body, "roles"), *v;
    unsigned mask = 0;
    size_t i, len = 0;

    out[0] = '\0';
    if (!json_is_array(roles) || json_array_size(roles) == 0 ||
        json_array_size(roles) > HND_MTLS_ROLES_MAX) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"roles\" must be a non-empty array");
        return -1;
    }
    json_array_foreach(roles, i, v)
    {
        const char *s = json_string_value(v);
        unsigned bit = s ? brk_role_parse(s, strlen(s)) : 0;
        if (s == NULL) {
            brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"roles\" must hold strings");
            return -1;
        }
        if (bit == 0) {
            brk_reply_error(r, BRK_ERANGE, "invalid_role", "unknown role \"%.32s\"", s);
            return -1;
        }
        if (mask & bit)
            continue;
        mask |= bit;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", len ? "," : "", brk_role_name(bit));
    }
    return 0;
}

static void mtls_put(brk_req_t *r)
{
    static const char *const fields[] = {"ca_pem", "san_uri_prefix", "did_prefix", "roles",
                                         "enabled", NULL};
    const char *pem = NULL, *prefix = NULL, *did_prefix = NULL, *code = NULL;
    char *td = brk_req_alloc(r, BRK_MTLS_URI_MAX + 1), *roles = brk_req_alloc(r, 128);
    char msg[256];
    int enabled = 1;

    if (hnd_reject_unknown(r, r->body, fields) != 0 ||
        hnd_req_string(r, r->body, "ca_pem", BRK_MTLS_CA_PEM_MAX, &pem) != 0 ||
        hnd_req_string(r, r->body, "san_uri_prefix", BRK_MTLS_URI_MAX, &prefix) != 0 ||
        hnd_opt_string(r, r->body, "did_prefix", BRK_MTLS_DID_PREFIX_MAX, &did_prefix) != 0 ||
        hnd_opt_bool(r, r->body, "enabled", &enabled) != 0 || roles_field(r, roles, 128) != 0)
        return;
    if (json_object_get(r->body, "enabled") == NULL)
        enabled = 1;
    if (brk_mtls_config_check(pem, strlen(pem), prefix, did_prefix, td, &code, msg,
                              sizeof msg) != 0) {
        brk_reply_error(r, BRK_EINVAL, code, "%s", msg);
        return;
    }
    brk_db_op_t op = {&q_mtls_put, 7,
                      {r->principal.tenant, enabled ? "true" : "false", pem, td, prefix,
                       did_prefix, roles}};
    brk_req_db(r, &op, 1, on_mtls);
}

static const brk_route_t routes[] = {
    {"GET", "/admin/identity/mtls", BRK_ROLE_ADMIN, 0, mtls_get},
    {"PUT", "/admin/identity/mtls", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, mtls_put},
};

int hnd_mtls_register(void)
{
    int rc = brk_db_register(&q_mtls_get);
    if (rc == 0)
        rc = brk_db_register(&q_mtls_put);
    if (rc != 0)
        return rc;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
