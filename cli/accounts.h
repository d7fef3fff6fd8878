/*
 * accounts: `gsap-broker accounts put --tenant T --account A --file account.json`, the CLI
 * twin of PUT /admin/accounts/{account_id}. The file is an account body,
 * {"currency": "JPY", "rate_card": {...}} (docs/billing.md), validated by the same
 * bill_account_parse as the route. Main thread of a CLI process; blocking.
 */
#ifndef CLI_ACCOUNTS_H
#define CLI_ACCOUNTS_H

/*
 * cli_accounts_put: argv[0] is "put"; argc counts it. Creates the tenant when missing (it
 * then gets its default account), then creates or replaces the account, and prints it as
 * stored (normalized rate card) on stdout. Returns the process exit code: 0 done, 1 the
 * database failed or refused (a currency change on an account with lines), 2 bad usage or
 * an invalid file (nothing changed).
 */
int cli_accounts_put(int argc, char **argv);

#endif
