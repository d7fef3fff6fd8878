/*
 * issuers: `gsap-broker issuers add|list|revoke`; see issuers.h. The statements are those of
 * the admin routes (handlers/hnd_passports.c), with the same checks before the database.
 */
#include "issuers.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "cli.h"
#include "gov_passport.h"
#include "banned.h"

#define ISSUER_COLS "name, public_key, " BRK__TS("created_at") ", " BRK__TS("revoked_at")

static int usage(void)
{
    fprintf(stderr, "usage: gsap-broker issuers add --tenant T --name N --public-key HEX\n"
                    "       gsap-broker issuers list --tenant T\n"
                    "       gsap-broker issuers revoke --tenant T --name N\n");
    return 2;
}

static json_t *rows_json(const PGresult *res)
{
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:o,s:o}", "name", PQgetvalue(res, i, 0), "public_key",
                         PQgetvalue(res, i, 1), "created_at",
                         PQgetisnull(res, i, 2) ? json_null() : json_string(PQgetvalue(res, i, 2)),
                         "revoked_at",
                         PQgetisnull(res, i, 3) ? json_null() : json_string(PQgetvalue(res, i, 3))));
    return a;
}

int cli_issuers(int argc, char **argv)
{
    const char *verb = argc > 0 ? argv[0] : "", *tenant = NULL, *name = NULL, *key = NULL;
    const cli_opt_t opts[] = {CLI_OPT_STR("tenant", &tenant), CLI_OPT_STR("name", &name),
                              CLI_OPT_STR("public-key", &key), CLI_OPT_END};
    char hex[GOV_ED25519_HEX_LEN + 1], msg[256];
    uint8_t pub[BRK_ED25519_PUB_LEN];
    int rc = 1, add = strcmp(verb, "add") == 0, list = strcmp(verb, "list") == 0,
        revoke = strcmp(verb, "revoke") == 0;
    app_t app = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;
    json_t *out = NULL;

    if (cli_getopt(argc, argv, opts) != 0)
        return usage();
    if (!(add || list || revoke) || tenant == NULL || (list && (name || key)) ||
        (!list && name == NULL) || (add != (key != NULL)))
        return usage();
    if (!cli_tenant_ok(tenant))
        return 2;
    if (name && !gov_issuer_name_valid(name, strlen(name))) {
        fprintf(stderr, "gsap-broker: issuer name \"%.80s\" must be 1 to %d of letters, digits, "
                        "'.', '_' and '-'\n", name, GOV_ISSUER_NAME_MAX);
        return 2;
    }
    if (key && gov_ed25519_hex(key, pub) != 0) {
        fprintf(stderr, "gsap-broker: --public-key is a raw Ed25519 public key in 64 hex digits\n");
        return 2;
    }
    if (key)
        brk_hex(pub, sizeof pub, hex);
    brk_log_set_quiet(1);
    if (cli_app_open(&app) != 0 || (c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0)
        goto out;
    if (add) {
        const char *p1[] = {tenant};
        if (cli_exec_params(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
                            1, p1) != 0)
            goto out;
        const char *p3[] = {tenant, name, hex};
        res = brk_pq_exec(c, "INSERT INTO trusted_issuers (tenant_id, name, public_key) VALUES "
                             "($1, $2, $3) ON CONFLICT DO NOTHING RETURNING " ISSUER_COLS,
                          3, p3, msg, sizeof msg);
    } else if (revoke) {
        const char *p2[] = {tenant, name};
        res = brk_pq_exec(c, "UPDATE trusted_issuers SET revoked_at = coalesce(revoked_at, now()) "
                             "WHERE tenant_id = $1 AND name = $2 RETURNING " ISSUER_COLS,
                          2, p2, msg, sizeof msg);
    } else {
        const char *p1[] = {tenant};
        res = brk_pq_exec(c, "SELECT " ISSUER_COLS " FROM trusted_issuers WHERE tenant_id = $1 "
                             "ORDER BY name",
                          1, p1, msg, sizeof msg);
    }
    if (res == NULL) {
        fprintf(stderr, "gsap-broker: %s", msg);
        goto out;
    }
    if (!list && PQntuples(res) != 1) {
        fprintf(stderr, add ? "gsap-broker: tenant \"%s\" already trusts an issuer named \"%s\" "
                              "or with that key\n"
                            : "gsap-broker: tenant \"%s\" has no issuer \"%s\"\n",
                tenant, name);
        goto out;
    }
    json_t *rows = rows_json(res);
    out = list ? json_pack("{s:s,s:O}", "tenant_id", tenant, "issuers", rows)
               : json_incref(json_array_get(rows, 0));
    json_decref(rows);
    json_dumpf(out, stdout, JSON_INDENT(2));
    printf("\n");
    rc = 0;
out:
    json_decref(out);
    PQclear(res);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}
