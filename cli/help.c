/*
 * help: the tables of commands, options and environment variables, and the three ways they
 * are printed (usage, one command's help, the man page). See help.h.
 *
 * Text in the tables is plain: no roff, no terminal formatting. The man page writer escapes
 * what roff would read as requests or escapes (a leading "." or "'", a backslash, a hyphen).
 */
#include "help.h"

#include <stdio.h>
#include <string.h>

#include "banned.h"

#define HELP_OPTS_MAX 8
#define HELP_WRAP 80 /* --help text is wrapped to this many columns */

typedef struct help_opt {
    const char *flag; /* "--tenant T" */
    const char *text;
} help_opt_t;

typedef struct help_cmd {
    const char *name; /* the words after the program name: "keys create" */
    const char *args; /* the synopsis after the name */
    const char *summary;
    const char *text; /* what it does; paragraphs separated by "\n\n" */
    help_opt_t opts[HELP_OPTS_MAX];
    const char *exit; /* the exit statuses, or NULL for 0 done / 1 failed / 2 bad usage */
} help_cmd_t;

static const help_cmd_t k_cmds[] = {
    {"serve", "",
     "run the broker (the default command)",
     "Applies pending migrations, starts the embedded PostgreSQL cluster when GSAP_DATABASE_URL "
     "is unset (on its first start it creates an admin key for tenant \"default\": shown on a "
     "terminal, else written to GSAP_DATA_DIR/admin-token, mode 0600), loads the signing keys "
     "from GSAP_DATA_DIR/keys, and serves HTTP (HTTPS with HTTP/2 when GSAP_TLS_CERT is set) on "
     "GSAP_LISTEN until SIGTERM or SIGINT, then drains the requests in flight.\n\n"
     "SIGHUP reopens GSAP_LOG_FILE and reloads the TLS certificate and key; a certificate that "
     "cannot be loaded is logged and the previous one stays in use.",
     {{NULL, NULL}},
     "0 stopped cleanly; 1 could not start (configuration, database, keys, address in use)"},
    {"migrate", "",
     "apply pending migrations and exit",
     "Applies the migrations this binary carries (or GSAP_MIGRATIONS_DIR) to the configured "
     "database as the schema owner, once each, under an advisory lock, then grants the runtime "
     "role its privileges. serve does the same at start.",
     {{NULL, NULL}},
     "0 the schema is current; 1 a migration failed or an applied one changed"},
    {"keys create", "--tenant T --role R[,R...] [--name N] [--delegate] [--expires-in SECONDS]",
     "create an API key and print its token",
     "Creates a key of tenant T (created when missing) with the given roles and prints its "
     "token, gsap.<tenant>.<key_id>.<secret>, once, on stdout. Only a hash of the secret is "
     "stored.",
     {{"--tenant T", "the tenant: [a-z0-9][a-z0-9-]{0,62}"},
      {"--role R[,R...]", "one or more of issuer, executor, approver, finance, auditor, admin"},
      {"--name N", "a name for people (shown in key lists and as the principal's display name)"},
      {"--delegate", "the key may create root delegations (POST /delegations/)"},
      {"--expires-in SECONDS", "the key stops working after this many seconds"},
      {NULL, NULL}},
     NULL},
    {"keys list", "--tenant T",
     "list a tenant's API keys as JSON",
     "Prints the tenant's keys (id, name, roles, created, last used, expiry, revocation) as "
     "JSON. Never a secret.",
     {{"--tenant T", "the tenant"}, {NULL, NULL}},
     NULL},
    {"keys revoke", "--tenant T --key-id K",
     "revoke an API key",
     "Revokes key K of tenant T at once and prints it as JSON; its token stops working.",
     {{"--tenant T", "the tenant"}, {"--key-id K", "the key's id (16 lowercase hex digits)"},
      {NULL, NULL}},
     "0 revoked; 1 no such key, or the database failed; 2 bad usage"},
    {"keys rotate-signing", "",
     "add a new signing key and make it current",
     "Creates a new Ed25519 signing key in GSAP_DATA_DIR/keys and makes it the one new ACs, "
     "receipts and invoices are signed with; prints its id. The old keys stay published at "
     "/.well-known/gsap-broker.json so what they signed still verifies. Restart the broker to "
     "use it.",
     {{NULL, NULL}},
     NULL},
    {"accords put", "--tenant T --file accord.json",
     "create or replace an accord",
     "Validates the accord in the file as PUT /admin/accords/{name} does, stores it for tenant "
     "T (created when missing) and prints it with its accord_hash.",
     {{"--tenant T", "the tenant"}, {"--file F", "the accord, a JSON object with its name"},
      {NULL, NULL}},
     NULL},
    {"accounts put", "--tenant T --account A --file account.json",
     "create or replace a billing account",
     "Validates the account (currency and rate card, docs/billing.md) as PUT "
     "/admin/accounts/{account_id} does, stores it for tenant T (created when missing) and "
     "prints it as stored.",
     {{"--tenant T", "the tenant"}, {"--account A", "the account's id"},
      {"--file F", "the account, {\"currency\": ..., \"rate_card\": {...}}"}, {NULL, NULL}},
     "0 stored; 1 the database failed or refused it (a currency change on an account with "
     "lines); 2 bad usage or an invalid file"},
    {"mtls set", "--tenant T --ca FILE --san-prefix P --role R[,R...] [--did-prefix D] [--disable]",
     "configure client-certificate authentication for a tenant",
     "Checks and stores the mtls identity driver's configuration of tenant T (created when "
     "missing), as PUT /admin/identity/mtls does, and prints it as stored. A request over TLS "
     "with a client certificate and no Authorization header is then authenticated when the "
     "chain verifies against the CA certificates of FILE, and the certificate's one URI "
     "subjectAltName starts with P. The trust domain of P (scheme://authority) finds the "
     "tenant, so it can belong to one tenant only.",
     {{"--tenant T", "the tenant"},
      {"--ca FILE", "PEM CA certificates (1 to 16, at most 65536 bytes): the trust anchors"},
      {"--san-prefix P", "the URI prefix a certificate's SAN must start with, ending in '/' "
                         "(spiffe://example.org/ci/)"},
      {"--role R[,R...]", "the roles every certificate principal of the tenant gets"},
      {"--did-prefix D", "the principal DID is D then the URI after P, '/' as ':'; default "
                         "did:web of the URI (did:web:example.org:ci:runner)"},
      {"--disable", "store the configuration switched off"},
      {NULL, NULL}},
     "0 stored; 1 the database failed or refused it (a trust domain another tenant holds); "
     "2 bad usage, an invalid CA file or prefix"},
    {"mtls show", "--tenant T",
     "print a tenant's client-certificate configuration",
     "Prints the mtls configuration of tenant T as GET /admin/identity/mtls answers it: the "
     "CA certificates as subject, SHA-256 fingerprint and expiry, never the PEM.",
     {{"--tenant T", "the tenant"}, {NULL, NULL}},
     "0 printed; 1 no configuration, or the database failed; 2 bad usage"},
    {"drivers put", "--tenant T --driver D (--enable|--disable) [--settings FILE] [--jwks-file FILE]",
     "enable, disable or configure an identity driver of a tenant",
     "Stores whether identity driver D (api-key or jwt) of tenant T (created when missing) is "
     "enabled, and its settings, as PUT /admin/drivers/{driver} does; prints the stored row as "
     "JSON. The settings are checked first, so invalid ones change nothing. For jwt the "
     "settings file holds issuer, audience, jwks_url (or the JWKS itself, see --jwks-file), "
     "subject_claim, did_template, roles_claim and role_map (docs/protocol.md, \"Identity "
     "drivers\"); the issuer must not be another tenant's. Without --settings the stored "
     "settings are kept (enabling jwt needs them).",
     {{"--tenant T", "the tenant"},
      {"--driver D", "api-key or jwt"},
      {"--enable, --disable", "turn the driver on or off"},
      {"--settings FILE", "the driver's settings, a JSON object"},
      {"--jwks-file FILE", "a JWKS read here and stored inline as the settings' jwks"},
      {NULL, NULL}},
     "0 stored; 1 the database failed or refused it (the issuer is another tenant's); 2 bad "
     "usage or invalid settings"},
    {"drivers list", "--tenant T",
     "list a tenant's identity drivers and their settings as JSON",
     "Prints every identity driver of tenant T with whether it is enabled and its settings.",
     {{"--tenant T", "the tenant"}, {NULL, NULL}},
     NULL},
    {"issuers add", "--tenant T --name N --public-key HEX",
     "trust an issuer of agent passports",
     "Adds an issuer whose Ed25519 countersignature (the Agent Passport System SDK's "
     "countersignPassport) makes an agent's passport count in tenant T (created when missing), "
     "as POST /admin/issuers does, and prints it. A name and a key are each trusted once per "
     "tenant.",
     {{"--tenant T", "the tenant"}, {"--name N", "the tenant's name for the issuer, 1 to 64 of "
       "letters, digits, '.', '_' and '-'"},
      {"--public-key HEX", "the issuer's raw Ed25519 public key, 64 hex digits"}, {NULL, NULL}},
     "0 trusted; 1 the database failed, or the name or key is already trusted; 2 bad usage"},
    {"issuers list", "--tenant T",
     "list the issuers a tenant trusts, as JSON",
     "Prints the tenant's trusted issuers (name, public key, created, revoked), as GET "
     "/admin/issuers does.",
     {{"--tenant T", "the tenant"}, {NULL, NULL}},
     NULL},
    {"issuers revoke", "--tenant T --name N",
     "stop trusting an issuer",
     "Revokes the issuer, as POST /admin/issuers/{name}/revoke does: from the next receipt on, "
     "no passport it countersigned vouches for its agent in the tenant, and it countersigns no "
     "new passport there.",
     {{"--tenant T", "the tenant"}, {"--name N", "the issuer's name"}, {NULL, NULL}},
     "0 revoked (or already); 1 the database failed or the tenant has no such issuer; 2 bad "
     "usage"},
    {"exec", "[--json] [--dry-run] [--ac FILE] --exec COMMAND | [--json] --flush-spool",
     "run a command under governance (a gsh-compatible client)",
     "Obtains an Authorization Context from the broker at GSAP_BROKER_URL (or takes the one in "
     "GSAP_AC or --ac FILE, as JSON or base64), checks its signature against the broker's "
     "published keys, runs COMMAND with sh -c (with no GSAP_ or CHRONICLE_ variable and no "
     "descriptor but 0, 1 and 2) and posts the Completion Receipt. https is verified against the "
     "system store or GSAP_CA_FILE; a token goes over plain http to loopback only, unless "
     "GSAP_INSECURE=1. With GSAP_SELF_AUTH=1 an unreachable broker does not stop the command: "
     "its receipt is spooled (0600) under GSAP_SPOOL_DIR and posted later by --flush-spool. "
     "Configured from the environment as gsh is: GSAP_BROKER_URL, GSAP_TOKEN, GSAP_CORPUS_CID, "
     "GSAP_AC, GSAP_ACCORD_TEMPLATE, GSAP_PARAMETERS_CID, GSAP_CAPABILITY_SET, "
     "GSAP_ELEVATION_WAIT_S, GSAP_CA_FILE, GSAP_INSECURE, GSAP_SELF_AUTH, GSAP_SPOOL_DIR, "
     "CHRONICLE_SESSION_ID, CHRONICLE_BEHAVIOR_STATE, CHRONICLE_MERKLE_ROOT.",
     {{"--exec COMMAND", "the command line to run"},
      {"--ac FILE", "the AC to use, JSON or base64 (as GSAP_AC)"},
      {"--json", "print one JSON summary in gsh's shape (success, exit_code, output, "
                 "lineage_cid, session_url, and the context and receipt ids) instead of the "
                 "command's output"},
      {"--dry-run", "obtain and check the AC and print it; run nothing, post nothing"},
      {"--flush-spool", "post every spooled self-authorized receipt; each is removed after "
                        "the broker's 200, renamed .rejected after a definitive refusal"},
      {NULL, NULL}},
     "0 ok; 1 the command failed (or a flush left receipts); 2 authorization failure; 3 "
     "governance violation; 4 broker unreachable (connection refused or timed out); 125 "
     "internal, configuration or TLS error"},
    {"export", "invoice|session ID [--out FILE]",
     "write an audit bundle from the broker",
     "Fetches the audit bundle of a finalized invoice (GET /billing/invoices/{invoice_id}/bundle, "
     "roles finance or auditor) or of a governance context (GET "
     "/governance/session/{context_id}/bundle) from the broker at GSAP_BROKER_URL with the bearer "
     "token in GSAP_TOKEN, and writes it as it arrives to FILE or standard output, so a bundle "
     "of any size costs little memory. Check it with gsap-broker verify. A refused or cut "
     "transfer leaves no file. Environment: GSAP_BROKER_URL, GSAP_TOKEN, GSAP_CA_FILE, "
     "GSAP_INSECURE (as for exec).",
     {{"--out FILE", "write the bundle to FILE instead of standard output"}, {NULL, NULL}},
     "0 the whole bundle was written; 1 the broker refused or the transfer was cut; 2 bad "
     "usage or configuration"},
    {"verify", "[--keys GSAP-BROKER.json] BUNDLE.json",
     "check an audit bundle offline",
     "Checks the audit bundle BUNDLE.json (GET /governance/session/{context_id}/bundle or GET "
     "/billing/invoices/{invoice_id}/bundle, see gsap-broker export; \"-\" reads standard input) "
     "without a database, a network or a configuration: the AC's "
     "signature and CID, each receipt's cr_cid and chronicle_cid recomputed from the stored CR, "
     "the lineage chain, each lineage CID's inclusion proof against the checkpoint, the "
     "checkpoint's note signature, all with the broker public keys the bundle carries (compare "
     "them with the broker's /.well-known/gsap-broker.json, or pin them with --keys). For an "
     "invoice bundle also the invoice's signature, each line's amount recomputed from the "
     "rate-card version that priced it, the line count, the total and the invoice's Merkle root. "
     "An invoice bundle is read one line at a time (no size limit); everything else at most "
     "64 MiB. Prints one line per check (one per invoice line when all of its checks hold), "
     "PASS or FAIL, and the first check that failed.",
     {{"--keys FILE", "the broker's published key document (/.well-known/gsap-broker.json), "
                      "kept apart from the bundle: the bundle's broker id and keys must be its"},
      {NULL, NULL}},
     "0 every check holds; 1 a check failed (or the file is no bundle); 2 bad usage or an "
     "unreadable file"},
    {"backup", "DIR",
     "take a consistent online backup: the database and the signing keys",
     "Writes into DIR (new or empty; mode 0700) a pg_dump of the database in custom format, "
     "taken in one snapshot while the broker keeps serving, the signing keys (private: keep "
     "the backup as secret as GSAP_DATA_DIR), and MANIFEST.json with the SHA-256 of every file. "
     "The embedded cluster is used as it runs, or started for the backup. pg_dump, not "
     "pg_basebackup: no replication connection is needed, it works the same on "
     "GSAP_DATABASE_URL, and it restores into a newer PostgreSQL.",
     {{NULL, NULL}},
     "0 done; 1 failed (no MANIFEST.json is written); 2 bad usage or DIR not empty"},
    {"restore", "DIR",
     "bring a backup back into an empty data directory",
     "Checks DIR's manifest and the SHA-256 of every file, then, into an empty GSAP_DATA_DIR "
     "(and an empty database): copies the signing keys, creates the embedded cluster (or uses "
     "GSAP_DATABASE_URL), restores the dump in one transaction as the schema owner, applies "
     "newer migrations and grants the runtime role. API keys, accords, contexts, receipts and "
     "invoices come back as they were; serve then starts on it.",
     {{NULL, NULL}},
     "0 done; 1 failed; 2 bad usage, a damaged backup, or a data directory or database not empty"},
    {"config check", "",
     "print the effective configuration and check it",
     "Prints every setting as the broker would use it, NAME=value, \"(default)\" where the "
     "environment left it unset, with secrets masked (a connection string's password, a "
     "webhook URL's user info and query). Then checks what serve would refuse: every range, "
     "the TLS certificate and key, the embedded cluster's binaries, the migrations directory, "
     "the log file. Starts and connects to nothing.",
     {{NULL, NULL}},
     "0 valid; 1 an invalid setting (each named on stderr); 2 bad usage"},
    {"version", "",
     "print the version, the build's commit and the schema version",
     "Prints the release, the git commit the binary was built from (\"unknown\" outside a git "
     "checkout; \"-dirty\" with uncommitted changes) and the schema version, the number of "
     "migrations it carries (or finds in GSAP_MIGRATIONS_DIR).",
     {{NULL, NULL}},
     NULL},
    {"help", "[COMMAND | --man]",
     "print this help, a command's help, or the man page",
     "Without an argument, the synopsis of every command. With a command, its help (the same "
     "as COMMAND --help). With --man, this manual in roff (man -l -).",
     {{"--man", "the man page, gsap-broker(1)"}, {NULL, NULL}},
     NULL},
};
#define NCMDS (sizeof k_cmds / sizeof k_cmds[0])

typedef struct help_env {
    const char *name, *dflt, *text;
} help_env_t;

/* The broker's settings (README.md, "Configuration", says more about each). */
static const help_env_t k_env[] = {
    {"GSAP_LISTEN", "127.0.0.1:8080", "address and port to serve on"},
    {"GSAP_THREADS", "the number of cores", "HTTP worker threads, 1 to 64"},
    {"GSAP_DATA_DIR", "./var", "signing keys and the embedded cluster"},
    {"GSAP_DATABASE_URL", "unset: the embedded cluster",
     "libpq connection string of the runtime role"},
    {"GSAP_OWNER_DATABASE_URL", "unset", "the same database as the schema owner"},
    {"GSAP_TLS_CERT, GSAP_TLS_KEY", "unset: plain HTTP",
     "PEM certificate chain and key; reloaded on SIGHUP"},
    {"GSAP_PG_BIN", "/usr/lib/postgresql/15/bin", "the embedded cluster's server binaries"},
    {"GSAP_MIGRATIONS_DIR", "unset: compiled in", "migrations to apply instead"},
    {"GSAP_BROKER_ID", "gsap-broker", "the id published at /.well-known/gsap-broker.json"},
    {"GSAP_PUBLIC_URL", "http(s)://GSAP_LISTEN", "base of the links the broker hands out"},
    {"GSAP_DB_CONNS", "1", "PostgreSQL connections per worker, 1 to 64"},
    {"GSAP_DB_QUEUE_MAX", "1024", "batches waiting for a connection per worker"},
    {"GSAP_DB_TIMEOUT_MS", "10000", "a batch older than this fails with 503"},
    {"GSAP_TIME_SKEW_S", "30", "clock skew allowed in a receipt's times, 0 to 3600"},
    {"CHRONICLE_WEBHOOK_URL", "unset", "where the Chronicle emitter posts CloudEvents"},
    {"GSAP_FN_POLL_MS", "1000", "function runtime: claim timer (besides NOTIFY)"},
    {"GSAP_FN_BATCH", "256", "function runtime: pairs claimed per pass"},
    {"GSAP_FN_WORKERS", "1", "function runtime: worker threads, 1 to 16"},
    {"GSAP_FN_BACKOFF_MS", "500", "function runtime: first retry delay"},
    {"GSAP_FN_MAX_ATTEMPTS", "8", "function runtime: attempts before a dead letter"},
    {"GSAP_RATE_PER_S", "100", "requests per second per API key"},
    {"GSAP_RATE_BURST", "1000", "requests an API key may send at once"},
    {"GSAP_AUTH_FAIL_MAX", "20", "failed authentications per address before 429"},
    {"GSAP_AUTH_FAIL_WINDOW_S", "60", "... within this many seconds"},
    {"GSAP_PLAINTEXT_BEARERS", "loopback",
     "bearer tokens over plain HTTP: loopback (only from loopback peers), never, or any"},
    {"GSAP_JWKS_REFRESH_S", "300", "jwt driver: how often a jwks_url is fetched again"},
    {"GSAP_JWKS_ALLOW_HTTP", "unset", "1: a jwks_url may be plain http to a loopback host"},
    {"GSAP_LOG_LEVEL", "info", "error, warn or info"},
    {"GSAP_LOG_FILE", "unset: stderr", "serve's log file, reopened on SIGHUP"},
};
#define NENV (sizeof k_env / sizeof k_env[0])

static const help_cmd_t *find(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < NCMDS; i++) {
        const char *p = k_cmds[i].name;
        int w = 0;
        for (; w < argc; w++) {
            size_t len = strlen(argv[w]);
            if (strncmp(p, argv[w], len) != 0 || (p[len] != ' ' && p[len] != '\0'))
                break;
            p += len;
            if (*p == '\0') {
                *words = w + 1;
                return &k_cmds[i];
            }
            p++;
        }
    }
    *words = 0;
    return NULL;
}

int cli_help_lookup(int argc, char **argv)
{
    int words;
    find(argc, argv, &words);
    return words;
}

/* Writes text to f wrapped at HELP_WRAP columns, each line indented by indent spaces. */
static void wrap(FILE *f, const char *text, int indent)
{
    const char *p = text;
    while (*p) {
        int col = indent;
        fprintf(f, "%*s", indent, "");
        for (;;) {
            size_t word = strcspn(p, " \n");
            if (col > indent && col + 1 + (int)word > HELP_WRAP)
                break;
            if (col > indent) {
                fputc(' ', f);
                col++;
            }
            fwrite(p, 1, word, f);
            col += (int)word;
            p += word;
            if (*p == ' ') {
                p++;
                continue;
            }
            break;
        }
        fputc('\n', f);
        if (*p == '\n') {
            /* a paragraph break */
            while (*p == '\n')
                p++;
            fputc('\n', f);
        } else if (*p == ' ') {
            p++;
        }
    }
}

int cli_help_usage(FILE *f)
{
    fprintf(f, "usage:");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "%s gsap-broker %s%s%s\n", i == 0 ? "" : "      ", k_cmds[i].name,
                k_cmds[i].args[0] ? " " : "", k_cmds[i].args);
    fprintf(f, "\ncommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  %-20s %s\n", k_cmds[i].name, k_cmds[i].summary);
    fprintf(f, "\n\"gsap-broker help COMMAND\" or \"gsap-broker COMMAND --help\" for a command; "
               "\"gsap-broker help --man\" for the manual.\n");
    return f == stderr ? 2 : 0;
}

static void command_help(FILE *f, const help_cmd_t *c)
{
    fprintf(f, "usage: gsap-broker %s%s%s\n\n", c->name, c->args[0] ? " " : "", c->args);
    wrap(f, c->text, 2);
    if (c->opts[0].flag != NULL) {
        fprintf(f, "\noptions:\n");
        for (const help_opt_t *o = c->opts; o->flag != NULL; o++) {
            fprintf(f, "  %s\n", o->flag);
            wrap(f, o->text, 6);
        }
    }
    fprintf(f, "\nexit status:\n");
    wrap(f, c->exit ? c->exit : "0 done; 1 failed (the database, a refusal); 2 bad usage", 2);
}

int cli_help_print(FILE *f, const char *name)
{
    char *argv[] = {(char *)name};
    int words;
    const help_cmd_t *c = find(1, argv, &words);

    if (c == NULL || words != 1)
        return 2;
    command_help(f, c);
    return 0;
}

int cli_help_command(int argc, char **argv)
{
    int words;
    const help_cmd_t *c = find(argc, argv, &words);
    if (c == NULL || words != argc) {
        fprintf(stderr, "gsap-broker: no command \"");
        for (int i = 0; i < argc; i++)
            fprintf(stderr, "%s%s", i ? " " : "", argv[i]);
        fprintf(stderr, "\" (gsap-broker help lists them)\n");
        return 2;
    }
    command_help(stdout, c);
    return 0;
}

/* roff-safe text: backslashes and hyphens escaped, a line never starting with . or '. */
static void roff(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((p == s || p[-1] == '\n') && (*p == '.' || *p == '\''))
            fputs("\\&", f);
        if (*p == '\\')
            fputs("\\e", f);
        else if (*p == '-')
            fputs("\\-", f);
        else
            fputc(*p, f);
    }
}

/* text with its "\n\n" paragraph breaks as .PP */
static void roff_paragraphs(FILE *f, const char *text)
{
    const char *p = text;
    for (;;) {
        const char *brk = strstr(p, "\n\n");
        char buf[2048];
        size_t n = brk ? (size_t)(brk - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s", (int)n, p);
        roff(f, buf);
        fputc('\n', f);
        if (brk == NULL)
            break;
        fputs(".PP\n", f);
        p = brk + 2;
    }
}

static void man_page(FILE *f)
{
    fprintf(f, ".\\\" generated by gsap-broker help --man (cli/help.c); do not edit\n");
    fprintf(f, ".TH GSAP\\-BROKER 1 \"\" \"gsap\\-broker %s\" \"User Commands\"\n",
            GSAP_BROKER_VERSION);
    fprintf(f, ".SH NAME\ngsap\\-broker \\- GSAP broker: Authorization Contexts, Completion "
               "Receipts, billing\n");
    fprintf(f, ".SH SYNOPSIS\n");
    for (size_t i = 0; i < NCMDS; i++) {
        fprintf(f, ".B gsap\\-broker %s\n", k_cmds[i].name);
        if (k_cmds[i].args[0]) {
            roff(f, k_cmds[i].args);
            fputc('\n', f);
        }
        fputs(".br\n", f);
    }
    fprintf(f, ".SH DESCRIPTION\n");
    roff_paragraphs(f, "gsap-broker is the server side of GSAP, the governed-shell authorization "
                       "protocol: callers ask it for an Authorization Context before a governed "
                       "command runs, and the shell that ran it posts a Completion Receipt "
                       "afterwards; receipts are billed into signed invoices. Every command "
                       "reads the same environment, so the command line reaches the database "
                       "the server uses.");
    fprintf(f, ".SH COMMANDS\n");
    for (size_t i = 0; i < NCMDS; i++) {
        const help_cmd_t *c = &k_cmds[i];
        fprintf(f, ".SS \"%s\"\n", c->name);
        fprintf(f, ".B gsap\\-broker %s\n", c->name);
        if (c->args[0]) {
            roff(f, c->args);
            fputc('\n', f);
        }
        fputs(".PP\n", f);
        roff_paragraphs(f, c->text);
        for (const help_opt_t *o = c->opts; o->flag != NULL; o++) {
            fputs(".TP\n.B ", f);
            roff(f, o->flag);
            fputc('\n', f);
            roff(f, o->text);
            fputc('\n', f);
        }
        fputs(".PP\nExit status: ", f);
        roff(f, c->exit ? c->exit : "0 done; 1 failed (the database, a refusal); 2 bad usage");
        fputs(".\n", f);
    }
    fprintf(f, ".SH ENVIRONMENT\n");
    for (size_t i = 0; i < NENV; i++) {
        fputs(".TP\n.B ", f);
        roff(f, k_env[i].name);
        fputc('\n', f);
        roff(f, k_env[i].text);
        fputs(" (default: ", f);
        roff(f, k_env[i].dflt);
        fputs(").\n", f);
    }
    fprintf(f, ".SH SIGNALS\n.TP\n.B SIGTERM, SIGINT\n");
    roff(f, "stop: stop accepting, finish the requests in flight, exit.");
    fprintf(f, "\n.TP\n.B SIGHUP\n");
    roff(f, "reopen GSAP_LOG_FILE and reload the TLS certificate and key.");
    fprintf(f, "\n.SH FILES\n.TP\n.I GSAP_DATA_DIR/keys\n");
    roff(f, "the Ed25519 signing keys (mode 0600).");
    fprintf(f, "\n.TP\n.I GSAP_DATA_DIR/pg\n");
    roff(f, "the embedded PostgreSQL cluster.");
    fprintf(f, "\n.TP\n.I GSAP_DATA_DIR/admin\\-token\n");
    roff(f, "the first admin token, when the first start had no terminal.");
    fprintf(f, "\n.SH SEE ALSO\n");
    roff(f, "README.md, docs/protocol.md, docs/access.md, docs/billing.md, docs/clients.md "
            "and docs/openapi.json in the source tree.");
    fputc('\n', f);
}

int cli_help_main(int argc, char **argv)
{
    if (argc == 1)
        return cli_help_usage(stdout);
    if (argc == 2 && strcmp(argv[1], "--man") == 0) {
        man_page(stdout);
        return 0;
    }
    return cli_help_command(argc - 1, argv + 1);
}
