/*
 * export: `gsap-broker export invoice INVOICE_ID` and `gsap-broker export session CONTEXT_ID`,
 * the audit bundle of a finalized invoice (GET /billing/invoices/{id}/bundle) or of a context
 * (GET /governance/session/{id}/bundle) from the broker at GSAP_BROKER_URL with the bearer
 * token in GSAP_TOKEN (never on the command line, where `ps` shows it), written as it arrives
 * to --out FILE or standard output, so a million-line invoice costs a chunk of memory. Main
 * thread of a CLI process.
 */
#ifndef CLI_EXPORT_H
#define CLI_EXPORT_H

/*
 * cli_export: argv[0] "export", then "invoice" or "session", the id, and optionally
 * "--out FILE". Exit code: 0 the whole bundle was written; 1 the broker refused (its error is
 * printed) or the transfer was cut (a partial file is removed); 2 bad usage or configuration.
 */
int cli_export(int argc, char **argv);

#endif
