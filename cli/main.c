/*
 * gsap-broker: the command line.
 *
 *   gsap-broker [serve]                     run the broker (the default)
 *   gsap-broker migrate                     apply pending migrations and exit
 *   gsap-broker keys create --tenant T --role R[,R...] [--name N] [--delegate] [--expires-in S]
 *   gsap-broker keys list --tenant T        the tenant's keys as JSON (never a secret)
 *   gsap-broker keys revoke --tenant T --key-id K
 *   gsap-broker keys rotate-signing         add a new signing key and make it current
 *   gsap-broker backup DIR | restore DIR    online backup (pg_dump and the keys), restore
 *   gsap-broker config check                the effective configuration, secrets masked
 *   gsap-broker version
 *   gsap-broker help [COMMAND | --man]      (every command's help and the man page: help.c)
 *
 * Every command reads the same environment (GSAP_DATA_DIR, GSAP_DATABASE_URL, ...), so a
 * command reaches the database the server uses. Without GSAP_DATABASE_URL the embedded
 * cluster is started when it is not already running, and stopped again by whoever started it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_config.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_keys.h"
#include "brk_log.h"
#include "brk_migrate.h"
#include "brk_pgembed.h"
#include "brk_server.h"
#include "accounts.h"
#include "mtls.h"
#include "drivers.h"
#include "issuers.h"
#include "backup.h"
#include "cli.h"
#include "config.h"
#include "export.h"
#include "exec.h"
#include "help.h"
#include "verify.h"
#include "fn_runtime.h"
#include "hnd.h"
#include "gov_accord.h"
#include "banned.h"

#define CLI_ADMIN_TOKEN_FILE "admin-token" /* under GSAP_DATA_DIR, first start without a tty */


/* The usage lines come from the one table of commands (help.c). */
static int usage(FILE *f)
{
    return cli_help_usage(f);
}

static int cmd_migrate(void)
{
    app_t a = {0};
    PGconn *c = NULL;
    int rc = cli_app_open(&a);
    if (rc == 0 && (c = cli_connect(&a)) == NULL)
        rc = BRK_EDB;
    if (rc == 0)
        rc = cli_migrate(&a, c);
    if (c)
        PQfinish(c);
    cli_app_close(&a);
    return rc == 0 ? 0 : 1;
}

/* parse_seconds: s as a whole number of seconds in 1..BRK_KEY_EXPIRES_MAX_S. */
static int parse_seconds(const char *s, long long *out)
{
    long long v = 0;
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 12)
            return BRK_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || v < 1 || v > BRK_KEY_EXPIRES_MAX_S)
        return BRK_EINVAL;
    *out = v;
    return 0;
}

static int cmd_keys_create(int argc, char **argv)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"delegate", no_argument, NULL, 'd'},
                                         {"expires-in", required_argument, NULL, 'e'},
                                         {NULL, 0, NULL, 0}};
    const char *tenant = NULL, *roles = NULL, *name = NULL, *expires = NULL;
    long long expires_in = 0;
    int delegate = 0, ch, rc;
    unsigned mask;
    app_t a = {0};
    PGconn *c = NULL;
    char token[BRK_TOKEN_MAX];

    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't': tenant = optarg; break;
        case 'r': roles = optarg; break;
        case 'n': name = optarg; break;
        case 'd': delegate = 1; break;
        case 'e': expires = optarg; break;
        default: return usage(stderr);
        }
    }
    if (expires != NULL && parse_seconds(expires, &expires_in) != 0) {
        fprintf(stderr, "gsap-broker: --expires-in must be a number of seconds from 1 to %d\n",
                BRK_KEY_EXPIRES_MAX_S);
        return 2;
    }
    if (tenant == NULL || roles == NULL) {
        fprintf(stderr, "gsap-broker: keys create needs --tenant and --role\n");
        return 2;
    }
    if (!brk_tenant_valid(tenant, strlen(tenant))) {
        fprintf(stderr, "gsap-broker: tenant \"%s\" must match [a-z0-9][a-z0-9-]{0,62}\n", tenant);
        return 2;
    }
    if (brk_roles_parse_list(roles, &mask) != 0) {
        fprintf(stderr, "gsap-broker: unknown role in \"%s\" (issuer, executor, approver, "
                        "finance, auditor, admin)\n", roles);
        return 2;
    }
    if (name != NULL && strlen(name) > BRK_KEY_NAME_MAX) {
        fprintf(stderr, "gsap-broker: --name is longer than %d bytes\n", BRK_KEY_NAME_MAX);
        return 2;
    }
    brk_log_set_quiet(1);
    rc = cli_app_open(&a);
    if (rc == 0 && (c = cli_connect(&a)) == NULL)
        rc = BRK_EDB;
    if (rc == 0)
        rc = cli_migrate(&a, c);
    if (rc == 0 && (rc = brk_keys_create_expiring(c, tenant, mask, name, delegate, expires_in,
                                                  token, sizeof token)) != 0)
        fprintf(stderr, "gsap-broker: cannot create the key: %s\n", brk_strerror(rc));
    if (rc == 0)
        printf("%s\n", token);
    if (c)
        PQfinish(c);
    cli_app_close(&a);
    return rc == 0 ? 0 : 1;
}

/* keys list / keys revoke: --tenant T [--key-id K]; prints JSON on stdout. */
static int cmd_keys_admin(int argc, char **argv, int revoke)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
                                         {"key-id", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    const char *tenant = NULL, *key_id = NULL;
    int ch, rc;
    app_t a = {0};
    PGconn *c = NULL;
    json_t *out = NULL;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't': tenant = optarg; break;
        case 'k': key_id = optarg; break;
        default: return usage(stderr);
        }
    }
    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)) ||
        (revoke && key_id == NULL) || (!revoke && key_id != NULL)) {
        fprintf(stderr, revoke ? "gsap-broker: keys revoke needs --tenant and --key-id\n"
                               : "gsap-broker: keys list needs --tenant (a valid tenant id)\n");
        return 2;
    }
    brk_log_set_quiet(1);
    rc = cli_app_open(&a);
    if (rc == 0 && (c = cli_connect(&a)) == NULL)
        rc = BRK_EDB;
    if (rc == 0)
        rc = cli_migrate(&a, c);
    if (rc == 0)
        rc = revoke ? brk_keys_revoke(c, tenant, key_id, "cli", &out)
                    : brk_keys_list(c, tenant, &out);
    if (rc == BRK_ENOTFOUND)
        fprintf(stderr, "gsap-broker: tenant \"%s\" has no key \"%.64s\"\n", tenant, key_id);
    else if (rc != 0)
        fprintf(stderr, "gsap-broker: cannot %s: %s\n", revoke ? "revoke the key" : "list keys",
                brk_strerror(rc));
    if (rc == 0) {
        json_dumpf(out, stdout, JSON_INDENT(2));
        printf("\n");
    }
    json_decref(out);
    if (c)
        PQfinish(c);
    cli_app_close(&a);
    return rc == 0 ? 0 : 1;
}

static int cmd_accords_put(int argc, char **argv)
{
    static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
                                         {"file", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    const char *tenant = NULL, *file = NULL, *code;
    char msg[256];
    int ch, rc = 0;
    json_t *in = NULL;
    json_error_t jerr;
    gov_accord_t a = {0};
    app_t app = {0};
    PGconn *c = NULL;
    char *text = NULL;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't': tenant = optarg; break;
        case 'f': file = optarg; break;
        default: return usage(stderr);
        }
    }
    if (tenant == NULL || file == NULL || !brk_tenant_valid(tenant, strlen(tenant))) {
        fprintf(stderr, "gsap-broker: accords put needs --tenant (a valid tenant id) and --file\n");
        return 2;
    }
    if ((in = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        fprintf(stderr, "gsap-broker: %s:%d: %s\n", file, jerr.line, jerr.text);
        return 2;
    }
    if (gov_accord_parse(in, NULL, &a, &code, msg, sizeof msg) != 0) {
        fprintf(stderr, "gsap-broker: %s: %s (%s)\n", file, msg, code);
        rc = 2;
        goto out;
    }
    brk_log_set_quiet(1);
    text = json_dumps(a.body, JSON_COMPACT);
    if (cli_app_open(&app) != 0 || (c = cli_connect(&app)) == NULL || cli_migrate(&app, c) != 0) {
        rc = 1;
        goto out;
    }
    const char *p1[] = {tenant};
    const char *p3[] = {tenant, a.name, text};
    if (cli_exec_params(c, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1, p1) ||
        cli_exec_params(c, "INSERT INTO accords (tenant_id, name, body) VALUES ($1, $2, $3::jsonb) "
                       "ON CONFLICT (tenant_id, name) DO UPDATE SET body = EXCLUDED.body, "
                       "updated_at = now()", 3, p3)) {
        rc = 1;
        goto out;
    }
    json_object_set_new(a.body, "accord_hash", json_string(a.accord_hash));
    json_dumpf(a.body, stdout, JSON_INDENT(2));
    printf("\n");
out:
    free(text);
    gov_accord_clear(&a);
    json_decref(in);
    if (c)
        PQfinish(c);
    if (app.cfg.data_dir)
        cli_app_close(&app);
    return rc;
}

static int cmd_rotate(void)
{
    char err[256], dir[600], id[BRK_KEY_ID_LEN + 1];
    brk_config_t cfg;
    if (brk_config_load(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "gsap-broker: %s\n", err);
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/keys", cfg.data_dir);
    int rc = brk_keyring_rotate(dir, id);
    brk_config_clear(&cfg);
    if (rc != 0) {
        fprintf(stderr, "gsap-broker: cannot rotate the signing key: %s\n", brk_strerror(rc));
        return 1;
    }
    printf("%s\n", id);
    return 0;
}

static void on_ready(void *arg)
{
    const brk_config_t *cfg = arg;
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    brk_log_info("listening", "host", cfg->listen_host, "port", port, "tls",
                 cfg->tls_cert ? "on" : "off");
}

/*
 * first_start_token: creates the first admin key of tenant "default" and hands its token to
 * the operator: on the terminal when stdout is one, else (a service manager, a container
 * log, a CI job) into GSAP_DATA_DIR/admin-token, created new (O_EXCL, no symlink followed)
 * with mode 0600, and the log names the file, never the token. Logs are copied to places a
 * token must not go; a file readable only by the broker's user is not.
 */
static int first_start_token(app_t *a, PGconn *c)
{
    char token[BRK_TOKEN_MAX], path[700];
    int rc, fd = -1, tty = isatty(STDOUT_FILENO);

    if (!tty) {
        snprintf(path, sizeof path, "%s/" CLI_ADMIN_TOKEN_FILE, a->cfg.data_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            /* A file already there (an earlier first start whose cluster was removed, or a
             * planted file or symlink) never receives a token: no key is made, the broker
             * starts anyway, and the operator makes a key with the CLI. */
            brk_log_warn("cannot create the admin token file (no admin key was created; make "
                         "one with: gsap-broker keys create --tenant default --role admin)",
                         "path", path, "error", strerror(errno));
            return 0;
        }
    }
    if ((rc = brk_keys_create(c, "default", BRK_ROLE_ALL, "first-start admin", 1, token,
                              sizeof token)) != 0)
        goto out;
    if (tty) {
        printf("gsap-broker: first start; admin token for tenant \"default\" (shown once):\n%s\n",
               token);
        fflush(stdout);
        goto out;
    }
    size_t n = strlen(token);
    token[n] = '\n';
    if (write(fd, token, n + 1) != (ssize_t)(n + 1) || fsync(fd) != 0) {
        brk_log_error("cannot write the admin token file", "path", path, "error",
                      strerror(errno));
        rc = BRK_EIO;
        goto out;
    }
    brk_log_info("first start: admin token for tenant \"default\" written (mode 0600)", "path",
                 path);
out:
    if (fd >= 0)
        close(fd);
    explicit_bzero(token, sizeof token);
    return rc;
}

static int cmd_serve(void)
{
    app_t a = {0};
    PGconn *c = NULL;
    brk_keyring_t *kr = NULL;
    brk_server_t *s = NULL;
    fn_runtime_t *rt = NULL;
    char dir[600], err[256];
    int rc = cli_app_open(&a);

    if (rc != 0)
        goto out;
    /* GSAP_LOG_FILE: from here on the log (and stderr) goes to the file; SIGHUP reopens it */
    if (a.cfg.log_file != NULL && (rc = brk_log_reopen(a.cfg.log_file)) != 0) {
        fprintf(stderr, "gsap-broker: cannot open GSAP_LOG_FILE %s: %s\n", a.cfg.log_file,
                strerror(errno));
        goto out;
    }
    if ((c = cli_connect(&a)) == NULL || (rc = cli_migrate(&a, c)) != 0) {
        rc = BRK_EDB;
        goto out;
    }
    if (a.embedded && a.pe.created && (rc = first_start_token(&a, c)) != 0)
        goto out;
    PQfinish(c);
    c = NULL;
    snprintf(dir, sizeof dir, "%s/keys", a.cfg.data_dir);
    if ((rc = brk_keyring_load(dir, &kr)) != 0) {
        fprintf(stderr, "gsap-broker: cannot load the signing keys in %s\n", dir);
        goto out;
    }
    if ((rc = hnd_register()) != 0) {
        fprintf(stderr, "gsap-broker: cannot register routes: %s\n", brk_strerror(rc));
        goto out;
    }
    /* The runtime starts before the HTTP server (it blocks the stop signals brk_server_run
     * waits for) and stops after the server drained, before the embedded cluster stops. */
    if ((rt = fn_runtime_start(&a.cfg, kr, err, sizeof err)) == NULL) {
        fprintf(stderr, "gsap-broker: cannot start the function runtime: %s\n", err);
        rc = BRK_EINVAL;
        goto out;
    }
    s = brk_server_new(&a.cfg, kr);
    rc = brk_server_run(s, on_ready, &a.cfg);
    fn_runtime_stop(rt);
    rt = NULL;
    brk_log_info("stopped", "status", rc == 0 ? "ok" : brk_strerror(rc));
out:
    fn_runtime_stop(rt);
    if (c)
        PQfinish(c);
    brk_server_free(s);
    brk_keyring_free(kr);
    cli_app_close(&a);
    return rc == 0 ? 0 : 1;
}

/* version: the release, the commit it was built from, the schema version (migrations). */
static int cmd_version(void)
{
    const char *dir = getenv("GSAP_MIGRATIONS_DIR");
    int n = brk_migrate_expected(dir != NULL && dir[0] != '\0' ? dir : NULL);
    if (n < 0) {
        fprintf(stderr, "gsap-broker: cannot read GSAP_MIGRATIONS_DIR %s\n", dir);
        return 1;
    }
    printf("gsap-broker %s (commit %s, schema %d)\n", GSAP_BROKER_VERSION, gsap_build_commit, n);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    /* COMMAND --help (or -h) right after the command's words: that command's help */
    int words = argc > 1 ? cli_help_lookup(argc - 1, argv + 1) : 0;
    if (words > 0 && argc > 1 + words &&
        (strcmp(argv[1 + words], "--help") == 0 || strcmp(argv[1 + words], "-h") == 0))
        return cli_help_command(words, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve();
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate();
    if (strcmp(cmd, "keys") == 0 && argc > 2 && strcmp(argv[2], "create") == 0)
        return cmd_keys_create(argc - 2, argv + 2);
    if (strcmp(cmd, "keys") == 0 && argc > 2 && strcmp(argv[2], "list") == 0)
        return cmd_keys_admin(argc - 2, argv + 2, 0);
    if (strcmp(cmd, "keys") == 0 && argc > 2 && strcmp(argv[2], "revoke") == 0)
        return cmd_keys_admin(argc - 2, argv + 2, 1);
    if (strcmp(cmd, "keys") == 0 && argc > 2 && strcmp(argv[2], "rotate-signing") == 0)
        return cmd_rotate();
    if (strcmp(cmd, "exec") == 0)
        return cli_exec(argc - 1, argv + 1);
    if (strcmp(cmd, "accords") == 0 && argc > 2 && strcmp(argv[2], "put") == 0)
        return cmd_accords_put(argc - 2, argv + 2);
    if (strcmp(cmd, "accounts") == 0 && argc > 2 && strcmp(argv[2], "put") == 0)
        return cli_accounts_put(argc - 2, argv + 2);
    if (strcmp(cmd, "mtls") == 0 && argc > 2)
        return cli_mtls(argc - 2, argv + 2);
    if (strcmp(cmd, "drivers") == 0 && argc > 2 && strcmp(argv[2], "put") == 0)
        return cli_drivers_put(argc - 2, argv + 2);
    if (strcmp(cmd, "drivers") == 0 && argc > 2 && strcmp(argv[2], "list") == 0)
        return cli_drivers_list(argc - 2, argv + 2);
    if (strcmp(cmd, "issuers") == 0 && argc > 2)
        return cli_issuers(argc - 2, argv + 2);
    if (strcmp(cmd, "backup") == 0)
        return cli_backup(argc - 1, argv + 1);
    if (strcmp(cmd, "restore") == 0)
        return cli_restore(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0 && argc > 2)
        return cli_config_check(argc - 2, argv + 2);
    if (strcmp(cmd, "verify") == 0)
        return cli_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0)
        return cli_export(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0)
        return cmd_version();
    if (strcmp(cmd, "help") == 0)
        return cli_help_main(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return usage(stdout);
    fprintf(stderr, "gsap-broker: unknown command \"%s\"\n", cmd);
    return usage(stderr);
}
