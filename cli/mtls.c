/*
 * mtls: `gsap-broker mtls set|show`; see mtls.h. Everything is validated before the
 * database is reached, so an invalid CA file changes nothing.
 */
#include "mtls.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_mtls.h"
#include "brk_pq.h"
#include "cli.h"
#include "banned.h"

static int usage(void)
{
    fprintf(stderr, "usage: gsap-broker mtls set --tenant T --ca FILE --san-prefix P "
                    "--role R[,R...] [--did-prefix D] [--disable]\n"
                    "       gsap-broker mtls show --tenant T\n");
    return 2;
}

/* read_file: the whole of path, at most max bytes (NUL-terminated, caller frees), or NULL
 * after printing why. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    if (f == NULL) {
        fprintf(stderr, "gsap-broker: cannot open %s\n", path);
        return NULL;
    }
    buf = malloc(max + 2);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, max + 1, f);
    fclose(f);
    if (*len > max) {
        fprintf(stderr, "gsap-broker: %s is longer than %zu bytes\n", path, max);
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

int cli_mtls(int argc, char **argv)
{
    const char *tenant = NULL, *ca = NULL, *prefix = NULL, *roles = NULL, *did_prefix = NULL;
    int rc = 0, disable = 0, set;
    const cli_opt_t opts[] = {CLI_OPT_STR("tenant", &tenant),
                              CLI_OPT_STR("ca", &ca),
                              CLI_OPT_STR("san-prefix", &prefix),
                              CLI_OPT_STR("role", &roles),
                              CLI_OPT_STR("did-prefix", &did_prefix),
                              CLI_OPT_FLAG("disable", &disable, 1),
                              CLI_OPT_END};
    const char *code;
    char td[BRK_MTLS_URI_MAX + 1], msg[512], rolelist[128] = "";
    unsigned mask = 0;
    size_t len = 0;
    char *pem = NULL;
    app_t app = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;

    if (argc < 1 || (strcmp(argv[0], "set") != 0 && strcmp(argv[0], "show") != 0))
        return usage();
    set = strcmp(argv[0], "set") == 0;
    if (cli_getopt(argc, argv, opts) != 0)
        return usage();
    if (tenant == NULL || (set && (ca == NULL || prefix == NULL || roles == NULL)))
        return usage();
    if (!cli_tenant_ok(tenant))
        return 2;
    if (set) {
        if (brk_roles_parse_list(roles, &mask) != 0) {
            fprintf(stderr, "gsap-broker: unknown role in \"%s\" (issuer, executor, approver, "
                            "finance, auditor, admin)\n", roles);
            return 2;
        }
        for (unsigned bit = 1; bit <= BRK_ROLE_ADMIN; bit <<= 1)
            if (mask & bit)
                snprintf(rolelist + strlen(rolelist), sizeof rolelist - strlen(rolelist), "%s%s",
                         rolelist[0] ? "," : "", brk_role_name(bit));
        if ((pem = read_file(ca, BRK_MTLS_CA_PEM_MAX, &len)) == NULL)
            return 2;
        if (brk_mtls_config_check(pem, len, prefix, did_prefix, td, &code, msg, sizeof msg) != 0) {
            fprintf(stderr, "gsap-broker: %s (%s)\n", msg, code);
            rc = 2;
            goto out;
        }
    }
    brk_log_set_quiet(1);
    if (cli_app_open(&app) != 0 || (c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0) {
        rc = 1;
        goto out;
    }
    if (set) {
        const char *p1[] = {tenant};
        if (cli_exec_params(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING",
                            1, p1) != 0) {
            rc = 1;
            goto out;
        }
        const char *p7[] = {tenant, disable ? "false" : "true", pem, td, prefix, did_prefix,
                            rolelist};
        res = brk_pq_exec(c, BRK_MTLS_PUT_SQL, 7, p7, msg, sizeof msg);
    } else {
        const char *p1[] = {tenant};
        res = brk_pq_exec(c, BRK_MTLS_GET_SQL, 1, p1, msg, sizeof msg);
    }
    if (res == NULL) {
        if (strstr(msg, "tenant_mtls_trust_domain_key") != NULL)
            fprintf(stderr, "gsap-broker: another tenant already accepts client certificates "
                            "of trust domain %s\n", td);
        else
            fprintf(stderr, "gsap-broker: %s", msg);
        rc = 1;
        goto out;
    }
    if (PQntuples(res) != 1) {
        fprintf(stderr, "gsap-broker: tenant \"%s\" has no mtls configuration\n", tenant);
        rc = 1;
        goto out;
    }
    json_t *shown = brk_mtls_row_json(res, 0);
    json_dumpf(shown, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(shown);
out:
    PQclear(res);
    free(pem);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}
