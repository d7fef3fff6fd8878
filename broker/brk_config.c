/*
 * brk_config: reads the broker's configuration from the environment, once, at start.
 *
 * An unset variable and an empty one mean the same thing (the default), so a container
 * template can leave a variable blank. Every number is parsed whole with strtoul and checked
 * against the range named below; a bad value stops the start with a message naming the
 * variable. Values that may hold a secret (GSAP_DATABASE_URL, CHRONICLE_WEBHOOK_URL) are
 * never echoed in a message.
 *
 * String fields point into the environment, so nothing may setenv/unsetenv those variables
 * while the config is in use; only conninfo is a copy, owned by the struct.
 */
#include "brk_config.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_alloc.h"
#include "brk_db.h"
#include "brk_err.h"
#include "brk_jwks.h"
#include "brk_log.h"
#include "brk_peer.h"
#include "banned.h"

#define BRK_CONFIG_DB_CONNS_MAX 64      /* pipelined connections per loop */
#define BRK_CONFIG_DB_QUEUE_MAX 1000000 /* waiting requests per loop */
#define BRK_CONFIG_DB_TIMEOUT_MIN_MS 100
#define BRK_CONFIG_DB_TIMEOUT_MAX_MS 3600000 /* one hour */
#define BRK_CONFIG_BROKER_ID_MAX 128

const char *brk_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

/*
 * parse_uint: the whole of s as a decimal number in [min, max]. strtoul alone would accept
 * leading blanks, a sign ("-1" wraps around) and trailing garbage, so digits are checked first.
 */
static int parse_uint(const char *name, const char *s, unsigned long min, unsigned long max,
                      unsigned long *out, char *err, size_t errlen)
{
    char *end = NULL;
    unsigned long v;
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            goto bad;
    }
    if (i == 0)
        goto bad;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        goto bad;
    *out = v;
    return 0;
bad:
    snprintf(err, errlen, "invalid %s '%s': expected an integer from %lu to %lu", name, s, min,
             max);
    return BRK_EINVAL;
}

int brk_env_uint(const char *name, unsigned long def, unsigned long min, unsigned long max,
                 unsigned *out, char *err, size_t errlen)
{
    const char *v = brk_env(name);
    unsigned long n = def;
    int rc;

    if (v != NULL) {
        rc = parse_uint(name, v, min, max, &n, err, errlen);
        if (rc < 0)
            return rc;
    }
    *out = (unsigned)n;
    return 0;
}

static int host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':' || c == '%';
}

/*
 * parse_listen: "host:port" or "[v6addr]:port" into cfg. An IPv6 address must be in brackets,
 * since its own colons would make the port ambiguous.
 */
static int parse_listen(brk_config_t *cfg, const char *v, char *err, size_t errlen)
{
    const char *host = v, *port = NULL;
    size_t hlen = 0, i;
    unsigned long p = 0;
    char tmp[16];

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':')
            goto bad;
        host = v + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strrchr(v, ':');
        if (colon == NULL || memchr(v, ':', (size_t)(colon - v)) != NULL)
            goto bad;
        hlen = (size_t)(colon - v);
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof cfg->listen_host)
        goto bad;
    for (i = 0; i < hlen; i++) {
        if (!host_char_ok(host[i]))
            goto bad;
    }
    if (strlen(port) >= sizeof tmp ||
        parse_uint("GSAP_LISTEN", port, 1, 65535, &p, tmp, sizeof tmp) < 0)
        goto bad;
    memcpy(cfg->listen_host, host, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (unsigned short)p;
    return 0;
bad:
    snprintf(err, errlen,
             "invalid GSAP_LISTEN '%s': expected host:port (IPv6 as [addr]:port, port 1 to "
             "65535, host under %zu characters)",
             v, sizeof cfg->listen_host);
    return BRK_EINVAL;
}

static int broker_id_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return 0;
    }
    return i > 0 && i <= BRK_CONFIG_BROKER_ID_MAX;
}

/*
 * conninfo_env: checks the libpq connection string in variable name (value, NULL when unset)
 * and copies it into *out. Checked here so a typo stops the start instead of every
 * connection attempt; libpq's message may quote part of the string (a password), so it is
 * not shown.
 */
static int conninfo_env(const char *name, const char *value, char **out, char *err,
                        size_t errlen)
{
    PQconninfoOption *opts;

    if (value == NULL)
        return 0;
    opts = PQconninfoParse(value, NULL);
    if (opts == NULL) {
        snprintf(err, errlen, "invalid %s: not a libpq connection string or postgresql:// uri",
                 name);
        return BRK_EINVAL;
    }
    PQconninfoFree(opts);
    *out = brk_strdup(value);
    return 0;
}

int brk_config_load(brk_config_t *cfg, char *err, size_t errlen)
{
    const char *v;
    long ncpu;
    unsigned long def_threads;
    int rc = 0;

    memset(cfg, 0, sizeof *cfg);
    if (errlen > 0)
        err[0] = '\0';

    rc = parse_listen(cfg, (v = brk_env("GSAP_LISTEN")) != NULL ? v : BRK_DEFAULT_LISTEN, err, errlen);
    if (rc < 0)
        goto out;

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    def_threads = ncpu < 1 ? 1 : ncpu > BRK_MAX_THREADS ? BRK_MAX_THREADS : (unsigned long)ncpu;
    rc = brk_env_uint("GSAP_THREADS", def_threads, 1, BRK_MAX_THREADS, &cfg->threads, err, errlen);
    if (rc < 0)
        goto out;

    cfg->data_dir = (v = brk_env("GSAP_DATA_DIR")) != NULL ? v : BRK_DEFAULT_DATA_DIR;
    cfg->pg_bin = (v = brk_env("GSAP_PG_BIN")) != NULL ? v : BRK_DEFAULT_PG_BIN;
    cfg->migrations_dir = brk_env("GSAP_MIGRATIONS_DIR");

    cfg->tls_cert = brk_env("GSAP_TLS_CERT");
    cfg->tls_key = brk_env("GSAP_TLS_KEY");
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errlen, "%s is set but %s is not: set both or neither",
                 cfg->tls_cert != NULL ? "GSAP_TLS_CERT" : "GSAP_TLS_KEY",
                 cfg->tls_cert != NULL ? "GSAP_TLS_KEY" : "GSAP_TLS_CERT");
        rc = BRK_EINVAL;
        goto out;
    }

    cfg->broker_id = (v = brk_env("GSAP_BROKER_ID")) != NULL ? v : "gsap-broker";
    if (!broker_id_valid(cfg->broker_id)) {
        snprintf(err, errlen,
                 "invalid GSAP_BROKER_ID '%s': expected 1 to %d printable characters without "
                 "spaces",
                 cfg->broker_id, BRK_CONFIG_BROKER_ID_MAX);
        rc = BRK_EINVAL;
        goto out;
    }

    cfg->webhook_url = brk_env("CHRONICLE_WEBHOOK_URL");
    if (cfg->webhook_url != NULL && strncmp(cfg->webhook_url, "http://", 7) != 0 &&
        strncmp(cfg->webhook_url, "https://", 8) != 0) {
        snprintf(err, errlen, "invalid CHRONICLE_WEBHOOK_URL: expected an http:// or https:// url");
        rc = BRK_EINVAL;
        goto out;
    }

    /* Links the broker hands out (session_url) must reach it from where clients are. */
    v = brk_env("GSAP_PUBLIC_URL");
    if (v != NULL && strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        snprintf(err, errlen, "invalid GSAP_PUBLIC_URL: expected an http:// or https:// url");
        rc = BRK_EINVAL;
        goto out;
    }
    if (v != NULL && strlen(v) >= sizeof cfg->public_url) {
        snprintf(err, errlen, "invalid GSAP_PUBLIC_URL: longer than %zu bytes",
                 sizeof cfg->public_url - 1);
        rc = BRK_EINVAL;
        goto out;
    }
    if (v != NULL)
        snprintf(cfg->public_url, sizeof cfg->public_url, "%.*s", (int)(strlen(v) - (v[strlen(v) - 1] == '/')), v);
    else
        snprintf(cfg->public_url, sizeof cfg->public_url, "%s://%s%s%s:%u",
                 cfg->tls_cert ? "https" : "http", strchr(cfg->listen_host, ':') ? "[" : "",
                 cfg->listen_host, strchr(cfg->listen_host, ':') ? "]" : "", cfg->listen_port);

    rc = brk_env_uint("GSAP_DB_CONNS", BRK_DEFAULT_DB_CONNS, 1, BRK_CONFIG_DB_CONNS_MAX, &cfg->db_conns,
                  err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_DB_QUEUE_MAX", BRK_DEFAULT_DB_QUEUE_MAX, 1, BRK_CONFIG_DB_QUEUE_MAX,
                  &cfg->db_queue_max, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_DB_TIMEOUT_MS", BRK_DEFAULT_DB_TIMEOUT_MS, BRK_CONFIG_DB_TIMEOUT_MIN_MS,
                  BRK_CONFIG_DB_TIMEOUT_MAX_MS, &cfg->db_timeout_ms, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_DB_GROUP_MAX", BRK_DEFAULT_DB_GROUP_MAX, 1, BRK_DB_GROUP_MAX_LIMIT,
                      &cfg->db_group_max, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_DB_GROUP_WAIT_MS", BRK_DEFAULT_DB_GROUP_WAIT_MS, 0,
                      BRK_DB_GROUP_WAIT_MAX_MS, &cfg->db_group_wait_ms, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_TIME_SKEW_S", BRK_DEFAULT_TIME_SKEW_S, 0, BRK_TIME_SKEW_MAX_S,
                  &cfg->time_skew_s, err, errlen);
    if (rc < 0)
        goto out;
    v = brk_env("GSAP_PLAINTEXT_BEARERS");
    cfg->plaintext_bearers = brk_plaintext_bearers_parse(v);
    if (cfg->plaintext_bearers < 0) {
        snprintf(err, errlen,
                 "invalid GSAP_PLAINTEXT_BEARERS '%.32s': expected loopback, never or any", v);
        rc = BRK_EINVAL;
        goto out;
    }
    rc = brk_env_uint("GSAP_JWKS_REFRESH_S", BRK_JWKS_REFRESH_S, 1, BRK_JWKS_REFRESH_MAX_S,
                      &cfg->jwks_refresh_s, err, errlen);
    if (rc < 0)
        goto out;
    v = brk_env("GSAP_JWKS_ALLOW_HTTP");
    cfg->jwks_allow_http = v != NULL && strcmp(v, "1") == 0;
    rc = brk_env_uint("GSAP_TLOG_CHECKPOINT_S", BRK_DEFAULT_TLOG_CHECKPOINT_S, 0,
                      BRK_TLOG_CHECKPOINT_MAX_S, &cfg->tlog_checkpoint_s, err, errlen);
    if (rc < 0)
        goto out;

    rc = brk_env_uint("GSAP_RATE_PER_S", BRK_DEFAULT_RATE_PER_S, 1, BRK_CONFIG_RATE_MAX,
                  &cfg->rate_per_s, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_RATE_BURST", BRK_DEFAULT_RATE_BURST, 1, BRK_CONFIG_RATE_MAX,
                  &cfg->rate_burst, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_AUTH_FAIL_MAX", BRK_DEFAULT_AUTH_FAIL_MAX, 1, BRK_CONFIG_RATE_MAX,
                  &cfg->auth_fail_max, err, errlen);
    if (rc < 0)
        goto out;
    rc = brk_env_uint("GSAP_AUTH_FAIL_WINDOW_S", BRK_DEFAULT_AUTH_FAIL_WINDOW_S, 1,
                  BRK_CONFIG_AUTH_FAIL_WINDOW_MAX_S, &cfg->auth_fail_window_s, err, errlen);
    if (rc < 0)
        goto out;

    /* Operator ergonomics: the log's threshold and, for serve, its file. */
    v = brk_env("GSAP_LOG_LEVEL");
    cfg->log_level = v != NULL ? brk_log_level_parse(v) : BRK_LOG_LEVEL_DEFAULT;
    if (cfg->log_level < 0) {
        snprintf(err, errlen, "invalid GSAP_LOG_LEVEL '%.32s': expected error, warn or info", v);
        rc = BRK_EINVAL;
        goto out;
    }
    cfg->log_file = brk_env("GSAP_LOG_FILE");

    cfg->database_url = brk_env("GSAP_DATABASE_URL");
    rc = conninfo_env("GSAP_DATABASE_URL", cfg->database_url, &cfg->conninfo, err, errlen);
    if (rc < 0)
        goto out;
    rc = conninfo_env("GSAP_OWNER_DATABASE_URL", brk_env("GSAP_OWNER_DATABASE_URL"),
                      &cfg->owner_conninfo, err, errlen);
    if (rc < 0)
        goto out;
    if (cfg->owner_conninfo != NULL && cfg->database_url == NULL) {
        snprintf(err, errlen, "GSAP_OWNER_DATABASE_URL needs GSAP_DATABASE_URL (the embedded "
                              "cluster makes its own roles)");
        rc = BRK_EINVAL;
        goto out;
    }
    rc = conninfo_env("GSAP_READ_DATABASE_URL", brk_env("GSAP_READ_DATABASE_URL"),
                      &cfg->read_conninfo, err, errlen);
    if (rc < 0)
        goto out;
    if (cfg->read_conninfo != NULL && cfg->database_url == NULL) {
        snprintf(err, errlen, "GSAP_READ_DATABASE_URL needs GSAP_DATABASE_URL (the embedded "
                              "cluster has no replica)");
        rc = BRK_EINVAL;
        goto out;
    }

out:
    if (rc < 0)
        brk_config_clear(cfg);
    return rc;
}

void brk_config_clear(brk_config_t *cfg)
{
    free(cfg->conninfo);
    cfg->conninfo = NULL;
    free(cfg->owner_conninfo);
    cfg->owner_conninfo = NULL;
    free(cfg->read_conninfo);
    cfg->read_conninfo = NULL;
}
