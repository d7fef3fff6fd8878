/*
 * config: `gsap-broker config check` (see config.h).
 *
 * Values come from the loaded configuration (brk_config_load, fn_runtime_settings), so what is
 * printed is what the broker would use, defaults included. A connection string is printed from
 * libpq's own parse of it (PQconninfoParse), one option at a time, never as the raw text: an
 * option libpq marks as secret (dispchar "*": password, sslpassword) is written as ***, wherever
 * the string had it (a keyword, the URI's user info, a URI parameter).
 */
#include "config.h"

#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brk_config.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_peer.h"
#include "brk_tls.h"
#include "fn_runtime.h"
#include "banned.h"

#define CONFIG_LINE_MAX 2048 /* a printed value longer than this is cut, and says so */

/* Appends s to out (cap) at *len; 0, or -1 when it did not fit (out stays terminated). */
static int append(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap)
        return -1;
    memcpy(out + *len, s, n + 1);
    *len += n;
    return 0;
}

int cli_mask_conninfo(const char *conninfo, char *out, size_t cap)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL), *o;
    size_t len = 0;
    int rc = 0;

    out[0] = '\0';
    if (opts == NULL) {
        snprintf(out, cap, "(not a libpq connection string)");
        return -1;
    }
    for (o = opts; o->keyword != NULL && rc == 0; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (len > 0)
            rc |= append(out, cap, &len, " ");
        rc |= append(out, cap, &len, o->keyword);
        rc |= append(out, cap, &len, "=");
        if (o->dispchar[0] == '*') {
            rc |= append(out, cap, &len, "***");
            continue;
        }
        /* libpq's quoting: a value with a space or a quote, or an empty one, in '...' */
        int quote = strpbrk(o->val, " '\\\t\n") != NULL;
        if (quote)
            rc |= append(out, cap, &len, "'");
        for (const char *p = o->val; *p && rc == 0; p++) {
            char ch[3] = {0};
            if (*p == '\'' || *p == '\\')
                ch[0] = '\\', ch[1] = *p;
            else
                ch[0] = *p;
            rc |= append(out, cap, &len, ch);
        }
        if (quote)
            rc |= append(out, cap, &len, "'");
    }
    PQconninfoFree(opts);
    if (rc != 0)
        snprintf(out + (len < cap - 8 ? len : cap - 8), 8, " ...");
    return 0;
}

/* url without its user info and query (either may hold a token): "***@" and "?***" instead. */
static void mask_url(const char *url, char *out, size_t cap)
{
    const char *scheme_end = strstr(url, "://");
    const char *auth = scheme_end ? scheme_end + 3 : url;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    const char *host = at ? at + 1 : auth;
    size_t rest_len = strcspn(host, "?#");
    snprintf(out, cap, "%.*s%s%.*s%s", (int)(auth - url), url, at ? "***@" : "", (int)rest_len,
             host, host[rest_len] == '?' ? "?***" : host[rest_len] == '#' ? "#***" : "");
}

static void line(const char *name, const char *value)
{
    const char *raw = getenv(name);
    /* "(unset: ...)" says it already */
    int dflt = (raw == NULL || raw[0] == '\0') && value[0] != '(';
    printf("%s=%s%s\n", name, value, dflt ? "  (default)" : "");
}

static void line_uint(const char *name, unsigned v)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%u", v);
    line(name, buf);
}

static int problem(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "gsap-broker: config: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* 1 when path names an executable regular file. */
static int executable(const char *dir, const char *prog)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, prog);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The checks brk_config_load leaves to the start: files and directories the settings name. */
static int check_files(const brk_config_t *cfg)
{
    char err[512], dir[PATH_MAX];
    struct stat st;
    int bad = 0;

    if (cfg->tls_cert != NULL) {
        brk_tls_t *t = brk_tls_new(cfg->tls_cert, cfg->tls_key, err, sizeof err);
        if (t == NULL)
            bad |= problem("invalid TLS setting: %s%s", err, "");
        brk_tls_free(t);
    }
    if (cfg->database_url == NULL) {
        static const char *const progs[] = {"initdb", "pg_ctl", "postgres"};
        for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++)
            if (!executable(cfg->pg_bin, progs[i]))
                bad |= problem("invalid GSAP_PG_BIN '%s': no executable %s there (the embedded "
                               "cluster needs it, since GSAP_DATABASE_URL is unset)",
                               cfg->pg_bin, progs[i]);
    }
    if (cfg->migrations_dir != NULL &&
        (stat(cfg->migrations_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        bad |= problem("invalid GSAP_MIGRATIONS_DIR '%s': not a directory%s",
                       cfg->migrations_dir, "");
    if (cfg->log_file != NULL) {
        const char *slash = strrchr(cfg->log_file, '/');
        if (slash == NULL)
            snprintf(dir, sizeof dir, ".");
        else
            snprintf(dir, sizeof dir, "%.*s", (int)(slash == cfg->log_file ? 1 : slash - cfg->log_file),
                     cfg->log_file);
        if (stat(cfg->log_file, &st) == 0 ? (S_ISDIR(st.st_mode) || access(cfg->log_file, W_OK) != 0)
                                          : access(dir, W_OK) != 0)
            bad |= problem("invalid GSAP_LOG_FILE '%s': cannot be written%s", cfg->log_file, "");
    }
    return bad;
}

int cli_config_check(int argc, char **argv)
{
    brk_config_t cfg;
    fn_settings_t fn;
    char err[512], buf[CONFIG_LINE_MAX];
    int bad = 0;

    if (argc != 1 || strcmp(argv[0], "check") != 0) {
        fprintf(stderr, "usage: gsap-broker config check\n");
        return 2;
    }
    if (brk_config_load(&cfg, err, sizeof err) != 0)
        return problem("%s%s", err, "");
    if (fn_runtime_settings(&fn, err, sizeof err) != 0) {
        brk_config_clear(&cfg);
        return problem("%s%s", err, "");
    }

    printf("# gsap-broker: effective configuration (secrets masked)\n");
    snprintf(buf, sizeof buf, "%s%s%s:%u", strchr(cfg.listen_host, ':') ? "[" : "",
             cfg.listen_host, strchr(cfg.listen_host, ':') ? "]" : "", cfg.listen_port);
    line("GSAP_LISTEN", buf);
    line_uint("GSAP_THREADS", cfg.threads);
    line("GSAP_DATA_DIR", cfg.data_dir);
    if (cfg.database_url != NULL)
        cli_mask_conninfo(cfg.database_url, buf, sizeof buf);
    line("GSAP_DATABASE_URL", cfg.database_url ? buf : "(unset: the embedded cluster)");
    if (cfg.owner_conninfo != NULL)
        cli_mask_conninfo(cfg.owner_conninfo, buf, sizeof buf);
    line("GSAP_OWNER_DATABASE_URL",
         cfg.owner_conninfo ? buf : "(unset: GSAP_DATABASE_URL or the embedded cluster's owner)");
    line("GSAP_TLS_CERT", cfg.tls_cert ? cfg.tls_cert : "(unset: plain HTTP)");
    line("GSAP_TLS_KEY", cfg.tls_key ? cfg.tls_key : "(unset)");
    line("GSAP_PG_BIN", cfg.pg_bin);
    line("GSAP_MIGRATIONS_DIR", cfg.migrations_dir ? cfg.migrations_dir : "(unset: compiled in)");
    line("GSAP_BROKER_ID", cfg.broker_id);
    line("GSAP_PUBLIC_URL", cfg.public_url);
    line_uint("GSAP_DB_CONNS", cfg.db_conns);
    line_uint("GSAP_DB_QUEUE_MAX", cfg.db_queue_max);
    line_uint("GSAP_DB_TIMEOUT_MS", cfg.db_timeout_ms);
    line_uint("GSAP_TIME_SKEW_S", cfg.time_skew_s);
    if (cfg.webhook_url != NULL)
        mask_url(cfg.webhook_url, buf, sizeof buf);
    line("CHRONICLE_WEBHOOK_URL", cfg.webhook_url ? buf : "(unset: the emitter is off)");
    line_uint("GSAP_FN_POLL_MS", fn.poll_ms);
    line_uint("GSAP_FN_BATCH", fn.batch);
    line_uint("GSAP_FN_WORKERS", fn.workers);
    line_uint("GSAP_FN_BACKOFF_MS", fn.backoff_ms);
    line_uint("GSAP_FN_MAX_ATTEMPTS", fn.max_attempts);
    line_uint("GSAP_RATE_PER_S", cfg.rate_per_s);
    line_uint("GSAP_RATE_BURST", cfg.rate_burst);
    line_uint("GSAP_AUTH_FAIL_MAX", cfg.auth_fail_max);
    line_uint("GSAP_AUTH_FAIL_WINDOW_S", cfg.auth_fail_window_s);
    line("GSAP_PLAINTEXT_BEARERS", cfg.plaintext_bearers == BRK_PLAINTEXT_NEVER ? "never"
                                   : cfg.plaintext_bearers == BRK_PLAINTEXT_ANY ? "any"
                                                                                : "loopback");
    line_uint("GSAP_JWKS_REFRESH_S", cfg.jwks_refresh_s);
    line("GSAP_JWKS_ALLOW_HTTP", cfg.jwks_allow_http ? "1" : "(unset: https only)");
    line("GSAP_LOG_LEVEL", brk_log_level_name(cfg.log_level));
    line("GSAP_LOG_FILE", cfg.log_file ? cfg.log_file : "(unset: stderr)");
    fflush(stdout);

    bad |= check_files(&cfg);
    brk_config_clear(&cfg);
    return bad ? 1 : 0;
}
