/*
 * mtls: `gsap-broker mtls set` and `gsap-broker mtls show`, the CLI twins of PUT and GET
 * /admin/identity/mtls (the mtls identity driver's configuration of one tenant, checked by
 * the same brk_mtls_config_check and stored by the same statement). Main thread of a CLI
 * process; blocking.
 */
#ifndef CLI_MTLS_H
#define CLI_MTLS_H

/*
 * cli_mtls: argv[0] is "set" or "show"; argc counts it. set creates the tenant when
 * missing, then creates or replaces its configuration and prints it as stored (JSON, as the
 * route answers); show prints it. Returns the process exit code: 0 done, 1 the database
 * failed or refused (a trust domain another tenant holds; show: no configuration), 2 bad
 * usage or an invalid CA file or prefix (nothing changed).
 */
int cli_mtls(int argc, char **argv);

#endif
