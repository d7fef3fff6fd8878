/*
 * hnd_drivers: the identity drivers of the caller's tenant: which are enabled
 * (GET /governance/drivers/, any role; no settings but the issuer and audience a client needs),
 * and their configuration (GET /admin/drivers, PUT /admin/drivers/{driver}, role admin).
 * Settings are validated by the driver's own check (brk_drivers.h) before anything is stored,
 * so an invalid body changes nothing; a jwt issuer already used by another tenant is 409
 * issuer_taken (a token's issuer names its tenant, brk_http_auth.c).
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_config.h"
#include "brk_drivers.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_server.h"
#include "hnd_util.h"
#include "banned.h"

static brk_db_stmt_t q_drivers = {
    "drivers_list",
    "SELECT driver, enabled, settings::text, " BRK__TS("updated_at") " FROM auth_drivers "
    "WHERE tenant_id = $1 AND driver <> 'mtls' UNION ALL "
    "SELECT 'mtls', enabled, jsonb_build_object('trust_domain', trust_domain, "
    "'san_uri_prefix', san_uri_prefix)::text, " BRK__TS("updated_at") " FROM tenant_mtls "
    "WHERE tenant_id = $1 ORDER BY 1",
    0};

/* Creates or updates the row; settings NULL keeps the stored ones. Nothing when another
 * tenant's jwt driver has this issuer (the unique index would refuse it too). */
static brk_db_stmt_t q_driver_put = {
    "drivers_put",
    "INSERT INTO auth_drivers AS d (tenant_id, driver, enabled, settings) "
    "SELECT $1, $2, $3::boolean, coalesce($4::jsonb, '{}'::jsonb) "
    "WHERE NOT EXISTS (SELECT 1 FROM auth_drivers o WHERE $2 = 'jwt' AND o.driver = 'jwt' "
    "AND o.tenant_id <> $1 AND o.settings->>'issuer' = coalesce($4::jsonb->>'issuer', "
    "(SELECT s.settings->>'issuer' FROM auth_drivers s WHERE s.tenant_id = $1 AND s.driver = $2))) "
    "ON CONFLICT (tenant_id, driver) DO UPDATE SET enabled = EXCLUDED.enabled, "
    "settings = coalesce($4::jsonb, d.settings), updated_at = now() "
    "RETURNING driver, enabled, settings::text, " BRK__TS("updated_at"),
    0};

/* The row of driver name in pr, or -1. */
static int row_of(const PGresult *pr, const char *name)
{
    for (int i = 0; i < PQntuples(pr); i++)
        if (strcmp(PQgetvalue(pr, i, 0), name) == 0)
            return i;
    return -1;
}

static void on_public(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    json_t *list = json_array();
    const brk_driver_t *d;
    for (size_t i = 0; (d = brk_driver_at(i)) != NULL; i++) {
        int row = row_of(pr, d->name);
        int enabled = row >= 0 ? PQgetvalue(pr, row, 1)[0] == 't' : d->default_enabled;
        json_t *o = json_pack("{s:s,s:b}", "name", d->name, "enabled", enabled);
        if (enabled && row >= 0 && d->settings_summary != NULL) {
            json_t *st = json_loads(PQgetvalue(pr, row, 2), 0, NULL);
            json_t *sum = st ? d->settings_summary(st) : NULL;
            if (sum != NULL)
                json_object_update(o, sum);
            json_decref(sum);
            json_decref(st);
        }
        json_array_append_new(list, o);
    }
    json_t *b = json_pack("{s:o}", "drivers", list);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void drivers_public(brk_req_t *r)
{
    brk_db_op_t op = {&q_drivers, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_public);
}

static json_t *admin_entry(const brk_driver_t *d, const PGresult *pr, int row)
{
    json_t *st = row >= 0 ? json_loads(PQgetvalue(pr, row, 2), 0, NULL) : NULL;
    return json_pack("{s:s,s:b,s:o,s:o}", "name", d->name, "enabled",
                     row >= 0 ? PQgetvalue(pr, row, 1)[0] == 't' : d->default_enabled, "settings",
                     st ? st : json_object(), "updated_at",
                     row >= 0 ? json_string(PQgetvalue(pr, row, 3)) : json_null());
}

static void on_admin_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *list = json_array();
    const brk_driver_t *d;
    for (size_t i = 0; (d = brk_driver_at(i)) != NULL; i++)
        json_array_append_new(list, admin_entry(d, res->res[0], row_of(res->res[0], d->name)));
    json_t *b = json_pack("{s:s,s:o}", "tenant_id", r->principal.tenant, "drivers", list);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void drivers_admin_list(brk_req_t *r)
{
    brk_db_op_t op = {&q_drivers, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_admin_list);
}

static void on_put(brk_req_t *r, const brk_db_result_t *res)
{
    const brk_driver_t *d = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ECONFLICT, "issuer_taken",
                        "another tenant's jwt driver already uses this issuer");
        return;
    }
    json_t *b = admin_entry(d, res->res[0], 0);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void driver_put(brk_req_t *r)
{
    static const char *const fields[] = {"enabled", "settings", NULL};
    const brk_config_t *cfg = brk_server_config(r->server);
    h2o_iovec_t p = brk_req_param(r, 0);
    char name[BRK_DRIVER_NAME_MAX + 1], msg[256];
    const brk_driver_t *d = NULL;
    json_t *settings = json_object_get(r->body, "settings");
    int enabled = -1;

    if (p.len > 0 && p.len <= BRK_DRIVER_NAME_MAX) {
        memcpy(name, p.base, p.len);
        name[p.len] = '\0';
        d = brk_driver_find(name);
    }
    if (d == NULL) {
        brk_reply_error(r, BRK_ENOTFOUND, "driver_not_found", "no identity driver \"%.*s\"",
                        (int)(p.len < 32 ? p.len : 32), p.base);
        return;
    }
    if (d->own_route) { /* mtls: PUT /admin/identity/mtls (its CA certificates, its domain) */
        brk_reply_error(r, BRK_EINVAL, "driver_has_own_route",
                        "the %s driver is configured with PUT /admin/identity/%s", d->name,
                        d->name);
        return;
    }
    if (hnd_reject_unknown(r, r->body, fields) != 0 ||
        hnd_opt_bool(r, r->body, "enabled", &enabled) != 0)
        return;
    if (enabled < 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"enabled\" (a boolean) is required");
        return;
    }
    if (settings != NULL && json_is_null(settings))
        settings = NULL;
    /* Enabling a driver that needs settings takes them in the same request, so an enabled
     * driver always has settings its check accepted. */
    if (settings == NULL && enabled && d->settings_check != NULL) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field",
                        "enabling the %s driver needs its \"settings\"", d->name);
        return;
    }
    char *text = NULL;
    if (settings != NULL) {
        brk_driver_scope_t scope = {cfg->broker_id, r->principal.tenant, cfg->jwks_allow_http};
        int rc = brk_driver_settings_check(d, settings, &scope, msg, sizeof msg);
        if (rc != 0) {
            brk_reply_error(r, rc, rc == BRK_ERANGE ? "invalid_role" : "invalid_settings", "%s",
                            msg);
            return;
        }
        char *s = json_dumps(settings, JSON_COMPACT);
        size_t n = s ? strlen(s) : 0;
        if (s == NULL || n > BRK_DRIVER_SETTINGS_MAX) {
            free(s);
            brk_reply_error(r, BRK_ETOOBIG, "settings_too_large",
                            "the settings are larger than %d bytes", BRK_DRIVER_SETTINGS_MAX);
            return;
        }
        text = brk_req_alloc(r, n + 1);
        memcpy(text, s, n);
        free(s);
    }
    r->ctx = (void *)d;
    brk_db_op_t op = {
        &q_driver_put, 4, {r->principal.tenant, d->name, enabled ? "true" : "false", text}};
    brk_req_db(r, &op, 1, on_put);
}

static const brk_route_t routes[] = {
    {"GET", "/governance/drivers", BRK_ROLE_ALL, 0, drivers_public},
    {"GET", "/admin/drivers", BRK_ROLE_ADMIN, 0, drivers_admin_list},
    {"PUT", "/admin/drivers/{driver}", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, driver_put},
};

int hnd_drivers_register(void)
{
    int rc = brk_db_register(&q_drivers);
    if (rc == 0)
        rc = brk_db_register(&q_driver_put);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
