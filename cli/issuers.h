/*
 * issuers: `gsap-broker issuers add|list|revoke --tenant T ...`, the CLI twin of
 * /admin/issuers (handlers/hnd_passports.c): the issuers a tenant trusts to countersign agent
 * passports (gov/gov_passport.h). Main thread of a CLI process; blocking.
 */
#ifndef CLI_ISSUERS_H
#define CLI_ISSUERS_H

/*
 * cli_issuers: argv[0] is "add", "list" or "revoke"; argc counts it. add: --name N
 * --public-key HEX (64 hex digits, the SDK's issuerPublicKey) trusts an issuer (the tenant is
 * created when missing); list prints the tenant's issuers; revoke: --name N stops trusting
 * one. Prints the result as JSON on stdout. Returns the process exit code: 0 done, 1 the
 * database failed or refused (a name or key already trusted, no such issuer), 2 bad usage.
 */
int cli_issuers(int argc, char **argv);

#endif
