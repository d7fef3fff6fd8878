/*
 * brk_config: the broker's configuration, read once from the environment at start.
 *
 * A plain value struct: filled by brk_config_load on the main thread before any worker
 * starts, then read-only and shared by every thread. Strings point into the environment or
 * into storage owned by the struct (brk_config_clear releases it).
 */
#ifndef BRK_CONFIG_H
#define BRK_CONFIG_H

#include <stddef.h>

#define BRK_DEFAULT_LISTEN "127.0.0.1:8080"
#define BRK_DEFAULT_DATA_DIR "./var"
#define BRK_DEFAULT_PG_BIN "/usr/lib/postgresql/15/bin"
#define BRK_DEFAULT_DB_QUEUE_MAX 1024   /* requests waiting for a connection, per loop */
#define BRK_DEFAULT_DB_TIMEOUT_MS 10000 /* a statement batch that takes longer fails with 503 */
#define BRK_DEFAULT_DB_CONNS 1          /* pipelined connections per loop */
/* Group commit (brk_db.h): receipts and AC issues that arrive together share one transaction.
 * GSAP_DB_GROUP_MAX batches at most (1 = off); a batch waits for its group at most
 * GSAP_DB_GROUP_WAIT_MS, and only while another group is in flight (a lone request never
 * waits). The wait is short next to a commit with fsync, so a group grows with the load. */
#define BRK_DEFAULT_DB_GROUP_MAX 64
#define BRK_DEFAULT_DB_GROUP_WAIT_MS 2
#define BRK_MAX_THREADS 64
/* Rate limits (broker/brk_rate.h): per API key, shared by all workers of one broker. */
#define BRK_DEFAULT_RATE_PER_S 100       /* GSAP_RATE_PER_S: sustained requests per second per key */
#define BRK_DEFAULT_RATE_BURST 1000      /* GSAP_RATE_BURST: requests a key may send at once (a spool flush, a bulk import) */
#define BRK_DEFAULT_AUTH_FAIL_MAX 20     /* GSAP_AUTH_FAIL_MAX: failed authentications per address */
#define BRK_DEFAULT_AUTH_FAIL_WINDOW_S 60 /* GSAP_AUTH_FAIL_WINDOW_S: ... within this window */
#define BRK_CONFIG_RATE_MAX 1000000      /* upper bound of the three counts above */
#define BRK_CONFIG_AUTH_FAIL_WINDOW_MAX_S 86400 /* one day */
/* Clock skew allowed between an executor and the broker when a CR's started_at/completed_at
 * are checked against the AC's issued_at and the received time (migrations/0007). */
#define BRK_DEFAULT_TIME_SKEW_S 30
#define BRK_TIME_SKEW_MAX_S 3600 /* more than an hour is not skew but a wrong clock */
/* GSAP_TLOG_CHECKPOINT_S: a new transparency-log checkpoint is signed at most this often
 * (on request, when the log grew; finalizing an invoice signs one besides). */
#define BRK_DEFAULT_TLOG_CHECKPOINT_S 10
#define BRK_TLOG_CHECKPOINT_MAX_S 86400

typedef struct brk_config {
    char listen_host[64];     /* GSAP_LISTEN host part */
    unsigned short listen_port; /* GSAP_LISTEN port part */
    unsigned threads;         /* GSAP_THREADS, default: number of cores */
    const char *data_dir;     /* GSAP_DATA_DIR, default ./var */
    const char *database_url; /* GSAP_DATABASE_URL, NULL: embedded cluster */
    const char *tls_cert;     /* GSAP_TLS_CERT (PEM chain), NULL: plain HTTP */
    const char *tls_key;      /* GSAP_TLS_KEY */
    const char *pg_bin;       /* GSAP_PG_BIN, PostgreSQL server binaries */
    const char *migrations_dir; /* GSAP_MIGRATIONS_DIR, NULL: the embedded migrations */
    const char *broker_id;    /* GSAP_BROKER_ID, default "gsap-broker" */
    const char *webhook_url;  /* CHRONICLE_WEBHOOK_URL, NULL: emitter disabled */
    unsigned db_conns;        /* GSAP_DB_CONNS per loop */
    unsigned db_queue_max;    /* GSAP_DB_QUEUE_MAX per loop */
    unsigned db_timeout_ms;   /* GSAP_DB_TIMEOUT_MS */
    unsigned db_group_max;    /* GSAP_DB_GROUP_MAX (1..BRK_DB_GROUP_MAX_LIMIT) */
    unsigned db_group_wait_ms; /* GSAP_DB_GROUP_WAIT_MS (0..BRK_DB_GROUP_WAIT_MAX_MS) */
    unsigned rate_per_s;      /* GSAP_RATE_PER_S (1..BRK_CONFIG_RATE_MAX) */
    unsigned rate_burst;      /* GSAP_RATE_BURST (1..BRK_CONFIG_RATE_MAX) */
    unsigned auth_fail_max;   /* GSAP_AUTH_FAIL_MAX (1..BRK_CONFIG_RATE_MAX) */
    unsigned auth_fail_window_s; /* GSAP_AUTH_FAIL_WINDOW_S (1..BRK_CONFIG_AUTH_FAIL_WINDOW_MAX_S) */
    unsigned time_skew_s;     /* GSAP_TIME_SKEW_S, 0..BRK_TIME_SKEW_MAX_S */
    int plaintext_bearers;    /* GSAP_PLAINTEXT_BEARERS: enum brk_plaintext_bearers (brk_peer.h) */
    unsigned jwks_refresh_s;  /* GSAP_JWKS_REFRESH_S, 1..BRK_JWKS_REFRESH_MAX_S (brk_jwks.h) */
    int jwks_allow_http;      /* GSAP_JWKS_ALLOW_HTTP=1: jwks_url may be http to a loopback host */
    unsigned tlog_checkpoint_s; /* GSAP_TLOG_CHECKPOINT_S, 0..BRK_TLOG_CHECKPOINT_MAX_S */
    int log_level;            /* GSAP_LOG_LEVEL: enum brk_log_level, default info */
    const char *log_file;     /* GSAP_LOG_FILE (serve only; reopened on SIGHUP), NULL: stderr */
    char public_url[256];     /* GSAP_PUBLIC_URL, default http(s)://GSAP_LISTEN, no trailing / */
    char *conninfo;           /* resolved libpq conninfo of the runtime role (owned) */
    char *owner_conninfo;     /* the schema owner's (GSAP_OWNER_DATABASE_URL or the embedded
                               * cluster's owner role), for migrations and the CLI; NULL:
                               * conninfo does both (owned) */
    char *read_conninfo;      /* GSAP_READ_DATABASE_URL (a read replica of the same database)
                               * for routes flagged BRK_ROUTE_REPLICA_OK; NULL: the primary
                               * serves them too (owned) */
} brk_config_t;

/*
 * brk_config_load: fills cfg from the environment. Returns 0 or BRK_EINVAL with a message
 * (naming the variable) in err. Main thread, before workers start.
 */
int brk_config_load(brk_config_t *cfg, char *err, size_t errlen);

/*
 * brk_env: the value of environment variable name, or NULL when it is unset or empty (the
 * one reader of the environment: every setting treats empty as unset). The string belongs
 * to the environment. Main thread, before other threads run (getenv).
 */
const char *brk_env(const char *name);

/*
 * brk_env_uint: variable name as a decimal in [min, max] into *out (the whole value: no sign,
 * blanks or trailing characters), or def when it is unset or empty. Returns 0, or BRK_EINVAL
 * with "invalid NAME 'value': expected an integer from MIN to MAX" in err (cap errlen) and
 * *out unchanged. Same thread rule as brk_env.
 */
int brk_env_uint(const char *name, unsigned long def, unsigned long min, unsigned long max,
                 unsigned *out, char *err, size_t errlen);

/* brk_config_clear: releases what brk_config_load allocated. */
void brk_config_clear(brk_config_t *cfg);

#endif
