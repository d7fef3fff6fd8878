/*
 * drivers: `gsap-broker drivers put` and `drivers list`, the command-line form of
 * PUT /admin/drivers/{driver} and GET /admin/drivers. Settings are validated by the driver's
 * own check (brk_drivers.h) before the database is reached, and stored by the same statement
 * shape as the route (a jwt issuer another tenant uses is refused). A JWKS file is read here,
 * on the operator's machine, and stored inline: the broker never reads files a tenant names.
 * Main thread of a CLI process; blocking.
 */
#ifndef CLI_DRIVERS_H
#define CLI_DRIVERS_H

/*
 * cli_drivers_put: argv[0] is "put". Creates the tenant when missing, stores the driver's
 * switch and settings, prints the stored row as JSON. Returns the exit code: 0 stored, 1 the
 * database failed or refused (issuer_taken), 2 bad usage or invalid settings (nothing changed).
 */
int cli_drivers_put(int argc, char **argv);

/* cli_drivers_list: argv[0] is "list". Prints every driver of the tenant with its settings
 * as JSON. Returns 0, 1 (database) or 2 (usage). */
int cli_drivers_list(int argc, char **argv);

#endif
