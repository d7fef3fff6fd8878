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

#endif
