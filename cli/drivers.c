/* drivers: `gsap-broker drivers put|list`; see drivers.h. */
#include "drivers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_drivers.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "cli.h"
#include "banned.h"

static int usage(void)
{
    fprintf(stderr, "usage: gsap-broker drivers put --tenant T --driver D (--enable|--disable) "
                    "[--settings FILE] [--jwks-file FILE]\n"
                    "       gsap-broker drivers list --tenant T\n");
    return 2;
}

static const char *k_put_sql =
    "INSERT INTO auth_drivers AS d (tenant_id, driver, enabled, settings) "
    "SELECT $1, $2, $3::boolean, coalesce($4::jsonb, '{}'::jsonb) "
    "WHERE NOT EXISTS (SELECT 1 FROM auth_drivers o WHERE $2 = 'jwt' AND o.driver = 'jwt' "
    "AND o.tenant_id <> $1 AND o.settings->>'issuer' = coalesce($4::jsonb->>'issuer', "
    "(SELECT s.settings->>'issuer' FROM auth_drivers s WHERE s.tenant_id = $1 AND s.driver = $2))) "
    "ON CONFLICT (tenant_id, driver) DO UPDATE SET enabled = EXCLUDED.enabled, "
    "settings = coalesce($4::jsonb, d.settings), updated_at = now() "
    "RETURNING json_build_object('name', driver, 'enabled', enabled, 'settings', settings)::text";

int cli_drivers_put(int argc, char **argv)
{
    const char *tenant = NULL, *dname = NULL, *sfile = NULL, *jfile = NULL;
    int enabled = -1, rc = 0;
    const cli_opt_t opts[] = {CLI_OPT_STR("tenant", &tenant),
                              CLI_OPT_STR("driver", &dname),
                              CLI_OPT_FLAG("enable", &enabled, 1),
                              CLI_OPT_FLAG("disable", &enabled, 0),
                              CLI_OPT_STR("settings", &sfile),
                              CLI_OPT_STR("jwks-file", &jfile),
                              CLI_OPT_END};
    const brk_driver_t *d;
    json_t *settings = NULL, *jwks = NULL;
    json_error_t jerr;
    char msg[256], *text = NULL;
    app_t app = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;

    if (cli_getopt(argc, argv, opts) != 0)
        return usage();
    if (tenant == NULL || dname == NULL || enabled < 0)
        return usage();
    if (!cli_tenant_ok(tenant))
        return 2;
    if ((d = brk_driver_find(dname)) == NULL) {
        fprintf(stderr, "gsap-broker: no identity driver \"%s\"\n", dname);
        return 2;
    }
    if (sfile != NULL &&
        (settings = json_load_file(sfile, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        fprintf(stderr, "gsap-broker: %s:%d: %s\n", sfile, jerr.line, jerr.text);
        return 2;
    }
    if (jfile != NULL) {
        if ((jwks = json_load_file(jfile, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
            fprintf(stderr, "gsap-broker: %s:%d: %s\n", jfile, jerr.line, jerr.text);
            rc = 2;
            goto out;
        }
        if (settings == NULL)
            settings = json_object();
        json_object_set(settings, "jwks", jwks);
    }
    if (settings == NULL && enabled && d->settings_check != NULL) {
        fprintf(stderr, "gsap-broker: enabling the %s driver needs --settings\n", d->name);
        rc = 2;
        goto out;
    }
    if (cli_app_open(&app) != 0) {
        rc = 1;
        goto out;
    }
    if (settings != NULL) {
        brk_driver_scope_t scope = {app.cfg.broker_id, tenant, app.cfg.jwks_allow_http};
        if (brk_driver_settings_check(d, settings, &scope, msg, sizeof msg) != 0) {
            fprintf(stderr, "gsap-broker: %s settings: %s\n", d->name, msg);
            rc = 2;
            goto out;
        }
        text = json_dumps(settings, JSON_COMPACT);
        if (text == NULL || strlen(text) > BRK_DRIVER_SETTINGS_MAX) {
            fprintf(stderr, "gsap-broker: the settings are larger than %d bytes\n",
                    BRK_DRIVER_SETTINGS_MAX);
            rc = 2;
            goto out;
        }
    }
    brk_log_set_quiet(1);
    if ((c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0) {
        rc = 1;
        goto out;
    }
    const char *p1[] = {tenant};
    if (cli_exec_params(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                        p1) != 0) {
        rc = 1;
        goto out;
    }
    const char *p4[] = {tenant, d->name, enabled ? "true" : "false", text};
    res = brk_pq_exec(c, k_put_sql, 4, p4, msg, sizeof msg);
    if (res == NULL) {
        fprintf(stderr, "gsap-broker: %s", msg);
        rc = 1;
        goto out;
    }
    if (PQntuples(res) != 1) {
        fprintf(stderr, "gsap-broker: another tenant's jwt driver already uses this issuer\n");
        rc = 1;
        goto out;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
out:
    PQclear(res);
    free(text);
    json_decref(jwks);
    json_decref(settings);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}

int cli_drivers_list(int argc, char **argv)
{
    const char *tenant = NULL;
    const cli_opt_t opts[] = {CLI_OPT_STR("tenant", &tenant), CLI_OPT_END};
    int rc = 0;
    char msg[256];
    app_t app = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;

    if (cli_getopt(argc, argv, opts) != 0)
        return usage();
    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)))
        return usage();
    brk_log_set_quiet(1);
    if (cli_app_open(&app) != 0 || (c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0) {
        rc = 1;
        goto out;
    }
    const char *p1[] = {tenant};
    res = brk_pq_exec(c,
                      "SELECT driver, enabled, settings::text FROM auth_drivers "
                      "WHERE tenant_id = $1",
                      1, p1, msg, sizeof msg);
    if (res == NULL) {
        fprintf(stderr, "gsap-broker: %s", msg);
        rc = 1;
        goto out;
    }
    json_t *list = json_array();
    const brk_driver_t *d;
    for (size_t i = 0; (d = brk_driver_at(i)) != NULL; i++) {
        int row = -1;
        for (int r = 0; r < PQntuples(res); r++)
            if (strcmp(PQgetvalue(res, r, 0), d->name) == 0)
                row = r;
        json_t *st = row >= 0 ? json_loads(PQgetvalue(res, row, 2), 0, NULL) : NULL;
        json_array_append_new(
            list, json_pack("{s:s,s:b,s:o}", "name", d->name, "enabled",
                            row >= 0 ? PQgetvalue(res, row, 1)[0] == 't' : d->default_enabled,
                            "settings", st ? st : json_object()));
    }
    json_t *out = json_pack("{s:s,s:o}", "tenant_id", tenant, "drivers", list);
    json_dumpf(out, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(out);
out:
    PQclear(res);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}
