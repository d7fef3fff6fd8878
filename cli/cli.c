/*
 * cli: what the command-line subcommands share: loading the configuration, reaching the
 * database (starting the embedded cluster when GSAP_DATABASE_URL is unset), migrations and
 * blocking statements. Blocking by design: the CLI is not on an HTTP loop. Main thread.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "brk_err.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_migrate.h"
#include "brk_pgroles.h"
#include "brk_pq.h"
#include "banned.h"

/* Loads the configuration and makes the database reachable (starting the embedded one). */
int cli_app_open(app_t *a)
{
    char err[256];
    if (brk_config_load(&a->cfg, err, sizeof err) != 0) {
        fprintf(stderr, "gsap-broker: %s\n", err);
        return BRK_EINVAL;
    }
    brk_log_set_level(a->cfg.log_level);
    /* The data directory holds the signing keys even when the database is elsewhere. */
    if (mkdir(a->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "gsap-broker: cannot create the data directory \"%s\": %s\n",
                a->cfg.data_dir, strerror(errno));
        return BRK_EIO;
    }
    if (a->cfg.database_url == NULL) {
        a->embedded = 1;
        if (brk_pgembed_start(&a->pe, &a->cfg) != 0) {
            fprintf(stderr, "gsap-broker: cannot start the embedded PostgreSQL (see %s)\n",
                    a->pe.logfile);
            return BRK_EIO;
        }
    }
    return 0;
}

void cli_app_close(app_t *a)
{
    if (a->embedded)
        brk_pgembed_stop(&a->pe, &a->cfg);
    brk_config_clear(&a->cfg);
}

PGconn *cli_connect(const app_t *a)
{
    /* the operator's commands and the migrations run as the schema's owner */
    PGconn *c = PQconnectdb(a->cfg.owner_conninfo ? a->cfg.owner_conninfo : a->cfg.conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "gsap-broker: cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int cli_migrate(const app_t *a, PGconn *c)
{
    char err[1024];
    if (brk_migrate_run(c, a->cfg.migrations_dir, err, sizeof err) != 0) {
        fprintf(stderr, "gsap-broker: %s\n", err);
        return BRK_EDB;
    }
    /* with two roles, the runtime one gets its privileges on whatever the migrations made */
    if (a->cfg.owner_conninfo != NULL &&
        brk_pgroles_grant_runtime(c, a->cfg.conninfo, err, sizeof err) != 0) {
        fprintf(stderr, "gsap-broker: %s\n", err);
        return BRK_EDB;
    }
    return 0;
}

/* Runs one parameterized statement on a blocking connection; prints the error. */
int cli_exec_params(PGconn *c, const char *sql, int n, const char *const *params)
{
    char msg[512];
    int rc = brk_pq_cmd(c, sql, n, params, NULL, msg, sizeof msg);

    if (rc < 0)
        fprintf(stderr, "gsap-broker: %s", msg);
    return rc;
}

/* getopt_long's val for opts[i]: above every character, so never '?' or ':'. */
#define CLI_OPT_VAL0 256

int cli_getopt(int argc, char **argv, const cli_opt_t *opts)
{
    struct option lo[CLI_OPTS_MAX + 1];
    size_t n = 0;
    int ch;

    for (; opts[n].name != NULL; n++) {
        if (n == CLI_OPTS_MAX)
            return BRK_EINVAL;
        lo[n] = (struct option){opts[n].name, opts[n].str ? required_argument : no_argument, NULL,
                                CLI_OPT_VAL0 + (int)n};
    }
    lo[n] = (struct option){NULL, 0, NULL, 0};
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch < CLI_OPT_VAL0 || ch >= CLI_OPT_VAL0 + (int)n)
            return BRK_EINVAL;
        const cli_opt_t *o = &opts[ch - CLI_OPT_VAL0];
        if (o->str)
            *o->str = optarg;
        else
            *o->flag = o->val;
    }
    return 0;
}

int cli_tenant_ok(const char *tenant)
{
    if (brk_tenant_valid(tenant, strlen(tenant)))
        return 1;
    fprintf(stderr, "gsap-broker: tenant \"%s\" must match [a-z0-9][a-z0-9-]{0,62}\n", tenant);
    return 0;
}
