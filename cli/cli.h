/*
 * cli: shared plumbing of the gsap-broker subcommands (see cli.c). Main thread; blocking.
 */
#ifndef CLI_H
#define CLI_H

#include <libpq-fe.h>

#include "brk_config.h"
#include "brk_pgembed.h"

typedef struct app {
    brk_config_t cfg;
    brk_pgembed_t pe;
    int embedded; /* 1 when cli_app_open started (or reused) the embedded cluster */
} app_t;

/* cli_app_open: loads the configuration from the environment, creates the data directory,
 * and starts the embedded cluster when GSAP_DATABASE_URL is unset. Prints what failed.
 * Returns 0, BRK_EINVAL or BRK_EIO. Release with cli_app_close. */
int cli_app_open(app_t *a);

/* cli_app_close: stops the embedded cluster if this process started it; clears the config. */
void cli_app_close(app_t *a);

/* cli_connect: a blocking connection to the configured database as the schema owner
 * (owner_conninfo when set; caller PQfinish()es), or
 * NULL after printing why. */
PGconn *cli_connect(const app_t *a);

/* cli_migrate: applies pending migrations; prints the error. Returns 0 or BRK_EDB. */
int cli_migrate(const app_t *a, PGconn *c);

/* cli_exec_params: one parameterized statement; prints the error. Returns 0 or BRK_EDB. */
int cli_exec_params(PGconn *c, const char *sql, int n, const char *const *params);

/*
 * One long option of a subcommand, for cli_getopt. A value option (str not NULL) takes an
 * argument, --name VALUE or --name=VALUE, and stores it in *str (pointing into argv); a flag
 * (str NULL) stores val in *flag. Several flags may share one int (--enable / --disable).
 * Written with the macros below; a table ends with CLI_OPT_END.
 */
typedef struct cli_opt {
    const char *name;
    const char **str;
    int *flag;
    int val;
} cli_opt_t;

/* Kept on one line each (clang-format would spread the braces over four). */
/* clang-format off */
#define CLI_OPT_STR(n, p) {.name = (n), .str = (p)}
#define CLI_OPT_FLAG(n, p, v) {.name = (n), .flag = (p), .val = (v)}
#define CLI_OPT_END {.name = NULL}
/* clang-format on */

/* The most options one subcommand takes (the size of cli_getopt's getopt_long table). */
#define CLI_OPTS_MAX 16

/* cli_getopt: parses the long options of argv[1..argc-1] (argv[0] is the subcommand or its
 * verb) with getopt_long, from the start (optind = 1); a later occurrence overrides an earlier
 * one; other arguments are skipped, as getopt_long leaves them. Returns 0, or BRK_EINVAL for an
 * unknown option or a missing argument (getopt_long has printed which) or a table of more than
 * CLI_OPTS_MAX options; the caller then prints its usage. */
int cli_getopt(int argc, char **argv, const cli_opt_t *opts);

/* cli_tenant_ok: 1 when tenant is a valid tenant id, else 0 after printing the rule. */
int cli_tenant_ok(const char *tenant);

#endif
