/*
 * accounts: `gsap-broker accounts put`; see accounts.h. The account is validated before the
 * database is reached, so an invalid file changes nothing, and stored through
 * bill_put_account, the statement the admin route uses, so the currency lock holds here too.
 */
#include "accounts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill_rate.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "cli.h"
#include "banned.h"

static int usage(void)
{
    fprintf(stderr, "usage: gsap-broker accounts put --tenant T --account A --file account.json\n");
    return 2;
}

int cli_accounts_put(int argc, char **argv)
{
    const char *tenant = NULL, *account = NULL, *file = NULL, *code;
    const cli_opt_t opts[] = {CLI_OPT_STR("tenant", &tenant), CLI_OPT_STR("account", &account),
                              CLI_OPT_STR("file", &file), CLI_OPT_END};
    char msg[BILL_MSG_MAX], exponent[4];
    int rc = 0;
    json_t *in = NULL, *card = NULL;
    json_error_t jerr;
    bill_account_t acct;
    app_t app = {0};
    PGconn *c = NULL;
    PGresult *res = NULL;
    char *card_text = NULL;

    if (cli_getopt(argc, argv, opts) != 0)
        return usage();
    if (tenant == NULL || account == NULL || file == NULL)
        return usage();
    if (!cli_tenant_ok(tenant))
        return 2;
    if (!bill_account_id_valid(account)) {
        fprintf(stderr,
                "gsap-broker: account \"%s\" must be 1 to 64 of letters, digits, '.', "
                "'_' and '-'\n",
                account);
        return 2;
    }
    if ((in = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        fprintf(stderr, "gsap-broker: %s:%d: %s\n", file, jerr.line, jerr.text);
        return 2;
    }
    if (bill_account_parse(in, &acct, &code, msg, sizeof msg) != 0) {
        fprintf(stderr, "gsap-broker: %s: %s (%s)\n", file, msg, code);
        rc = 2;
        goto out;
    }
    card = bill_ratecard_json(&acct.card);
    card_text = json_dumps(card, JSON_COMPACT);
    snprintf(exponent, sizeof exponent, "%d", acct.currency->exponent);
    brk_log_set_quiet(1);
    if (cli_app_open(&app) != 0 || (c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0) {
        rc = 1;
        goto out;
    }
    const char *p1[] = {tenant};
    if (cli_exec_params(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                        p1) != 0) {
        rc = 1;
        goto out;
    }
    const char *p5[] = {tenant, account, acct.currency->code, exponent, card_text};
    res = brk_pq_exec(c, "SELECT code FROM bill_put_account($1, $2, $3, $4::smallint, $5::jsonb)",
                      5, p5, msg, sizeof msg);
    if (res == NULL) {
        fprintf(stderr, "gsap-broker: %s", msg);
        rc = 1;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "currency_locked") == 0) {
        fprintf(stderr,
                "gsap-broker: account \"%s\" already has invoice lines: its currency "
                "cannot change\n",
                account);
        rc = 1;
        goto out;
    }
    json_t *shown =
        json_pack("{s:s,s:s,s:i,s:O}", "account_id", account, "currency", acct.currency->code,
                  "exponent", acct.currency->exponent, "rate_card", card);
    json_dumpf(shown, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(shown);
out:
    PQclear(res);
    free(card_text);
    json_decref(card);
    json_decref(in);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}
