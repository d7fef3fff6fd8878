/*
 * unit_config: brk_config_load defaults and refusals (broker/brk_config.h). Each test starts
 * from an environment with every GSAP_* variable unset, then sets what it needs.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_config.h"
#include "brk_db.h"
#include "brk_jwks.h"
#include "brk_peer.h"
#include "brk_err.h"
#include "banned.h"

static const char *const vars[] = {"GSAP_LISTEN",        "GSAP_THREADS",
                                   "GSAP_DATA_DIR",      "GSAP_DATABASE_URL",
                                   "GSAP_TLS_CERT",      "GSAP_TLS_KEY",
                                   "GSAP_PG_BIN",        "GSAP_MIGRATIONS_DIR",
                                   "GSAP_BROKER_ID",     "CHRONICLE_WEBHOOK_URL",
                                   "GSAP_DB_CONNS",      "GSAP_DB_QUEUE_MAX",
                                   "GSAP_DB_TIMEOUT_MS", "GSAP_RATE_PER_S",
                                   "GSAP_RATE_BURST",    "GSAP_AUTH_FAIL_MAX",
                                   "GSAP_AUTH_FAIL_WINDOW_S", "GSAP_OWNER_DATABASE_URL",
                                   "GSAP_TIME_SKEW_S", "GSAP_TLOG_CHECKPOINT_S",
                                   "GSAP_DB_GROUP_MAX", "GSAP_DB_GROUP_WAIT_MS",
                                   "GSAP_PLAINTEXT_BEARERS", "GSAP_JWKS_REFRESH_S",
                                   "GSAP_JWKS_ALLOW_HTTP", NULL};

static void clean_env(void)
{
    size_t i;

    for (i = 0; vars[i] != NULL; i++)
        unsetenv(vars[i]);
}

/* load_ok / load_err: brk_config_load with one variable set. */
static void load_ok(const char *name, const char *value, brk_config_t *cfg)
{
    char err[256] = "";
    int rc;

    clean_env();
    if (name != NULL)
        setenv(name, value, 1);
    rc = brk_config_load(cfg, err, sizeof err);
    ck_assert_msg(rc == 0, "%s='%s' refused: %s", name ? name : "-", value ? value : "", err);
}

static void load_err(const char *name, const char *value, const char *expect_in_msg)
{
    brk_config_t cfg;
    char err[256] = "";
    int rc;

    clean_env();
    setenv(name, value, 1);
    rc = brk_config_load(&cfg, err, sizeof err);
    ck_assert_msg(rc == BRK_EINVAL, "%s='%s' accepted", name, value);
    ck_assert_msg(strstr(err, expect_in_msg) != NULL, "message '%s' does not name '%s'", err,
                  expect_in_msg);
    ck_assert_ptr_null(cfg.conninfo);
}

START_TEST(defaults)
{
    brk_config_t cfg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want = ncpu < 1 ? 1 : ncpu > BRK_MAX_THREADS ? BRK_MAX_THREADS : (unsigned)ncpu;

    load_ok(NULL, NULL, &cfg);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 8080);
    ck_assert_uint_eq(cfg.threads, want);
    ck_assert_str_eq(cfg.data_dir, BRK_DEFAULT_DATA_DIR);
    ck_assert_ptr_null(cfg.database_url);
    ck_assert_ptr_null(cfg.conninfo);
    ck_assert_ptr_null(cfg.tls_cert);
    ck_assert_ptr_null(cfg.tls_key);
    ck_assert_str_eq(cfg.pg_bin, BRK_DEFAULT_PG_BIN);
    ck_assert_ptr_null(cfg.migrations_dir);
    ck_assert_str_eq(cfg.broker_id, "gsap-broker");
    ck_assert_ptr_null(cfg.webhook_url);
    ck_assert_uint_eq(cfg.db_conns, BRK_DEFAULT_DB_CONNS);
    ck_assert_uint_eq(cfg.db_queue_max, BRK_DEFAULT_DB_QUEUE_MAX);
    ck_assert_uint_eq(cfg.db_timeout_ms, BRK_DEFAULT_DB_TIMEOUT_MS);
    ck_assert_uint_eq(cfg.db_group_max, BRK_DEFAULT_DB_GROUP_MAX);
    ck_assert_uint_eq(cfg.db_group_wait_ms, BRK_DEFAULT_DB_GROUP_WAIT_MS);
    ck_assert_uint_eq(cfg.rate_per_s, BRK_DEFAULT_RATE_PER_S);
    ck_assert_uint_eq(cfg.rate_burst, BRK_DEFAULT_RATE_BURST);
    ck_assert_uint_eq(cfg.auth_fail_max, BRK_DEFAULT_AUTH_FAIL_MAX);
    ck_assert_uint_eq(cfg.auth_fail_window_s, BRK_DEFAULT_AUTH_FAIL_WINDOW_S);
    ck_assert_uint_eq(cfg.time_skew_s, BRK_DEFAULT_TIME_SKEW_S);
    ck_assert_uint_eq(cfg.time_skew_s, 30);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(empty_means_unset)
{
    brk_config_t cfg;

    load_ok("GSAP_LISTEN", "", &cfg);
    ck_assert_uint_eq(cfg.listen_port, 8080);
    load_ok("GSAP_DATABASE_URL", "", &cfg);
    ck_assert_ptr_null(cfg.conninfo);
    load_ok("GSAP_TLS_CERT", "", &cfg);
    ck_assert_ptr_null(cfg.tls_cert);
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(strings)
{
    brk_config_t cfg;

    clean_env();
    setenv("GSAP_DATA_DIR", "/srv/gsap", 1);
    setenv("GSAP_PG_BIN", "/opt/pg/bin", 1);
    setenv("GSAP_MIGRATIONS_DIR", "/usr/share/gsap/migrations", 1);
    setenv("GSAP_BROKER_ID", "broker-7", 1);
    setenv("CHRONICLE_WEBHOOK_URL", "https://chronicle.example/hook", 1);
    setenv("GSAP_TLS_CERT", "/etc/gsap/cert.pem", 1);
    setenv("GSAP_TLS_KEY", "/etc/gsap/key.pem", 1);
    ck_assert_int_eq(brk_config_load(&cfg, (char[64]){0}, 64), 0);
    ck_assert_str_eq(cfg.data_dir, "/srv/gsap");
    ck_assert_str_eq(cfg.pg_bin, "/opt/pg/bin");
    ck_assert_str_eq(cfg.migrations_dir, "/usr/share/gsap/migrations");
    ck_assert_str_eq(cfg.broker_id, "broker-7");
    ck_assert_str_eq(cfg.webhook_url, "https://chronicle.example/hook");
    ck_assert_str_eq(cfg.tls_cert, "/etc/gsap/cert.pem");
    ck_assert_str_eq(cfg.tls_key, "/etc/gsap/key.pem");
    brk_config_clear(&cfg);
}
END_TEST

START_TEST(database_url)
{
    brk_config_t cfg;
    const char *url = "postgresql://gsap:pw@127.0.0.1:5433/gsap";

    load_ok("GSAP_DATABASE_URL", url, &cfg);
    ck_assert_str_eq(cfg.database_url, url);
    ck_assert_str_eq(cfg.conninfo, url);
    ck_assert_ptr_ne(cfg.conninfo, cfg.database_url); /* a copy, owned by cfg */
    brk_config_clear(&cfg);
    ck_assert_ptr_null(cfg.conninfo);
    brk_config_clear(&cfg); /* twice is harmless */

    load_ok("GSAP_DATABASE_URL", "host=/run/postgresql dbname=gsap", &cfg);
    ck_assert_str_eq(cfg.conninfo, "host=/run/postgresql dbname=gsap");
    brk_config_clear(&cfg);

    load_err("GSAP_DATABASE_URL", "host=x bogus_option=1", "GSAP_DATABASE_URL");
    load_err("GSAP_DATABASE_URL", "postgresql://u:secretpw@h/db?bogus=1", "GSAP_DATABASE_URL");
}
END_TEST

START_TEST(database_url_secret_not_echoed)
{
    brk_config_t cfg;
    char err[256] = "";

    clean_env();
    setenv("GSAP_DATABASE_URL", "password=hunter2 nonsense", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), BRK_EINVAL);
    ck_assert_ptr_null(strstr(err, "hunter2"));
}
END_TEST

START_TEST(owner_database_url)
{
    brk_config_t cfg;
    char err[256] = "";

    load_ok(NULL, NULL, &cfg);
    ck_assert_ptr_null(cfg.owner_conninfo);
    brk_config_clear(&cfg);

    clean_env();
    setenv("GSAP_DATABASE_URL", "host=/run/postgresql dbname=gsap user=gsap_app", 1);
    setenv("GSAP_OWNER_DATABASE_URL", "host=/run/postgresql dbname=gsap user=gsap_owner", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), 0);
    ck_assert_str_eq(cfg.conninfo, "host=/run/postgresql dbname=gsap user=gsap_app");
    ck_assert_str_eq(cfg.owner_conninfo, "host=/run/postgresql dbname=gsap user=gsap_owner");
    brk_config_clear(&cfg);
    ck_assert_ptr_null(cfg.owner_conninfo);

    /* malformed, and never echoed */
    setenv("GSAP_OWNER_DATABASE_URL", "password=hunter2 nonsense", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), BRK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "GSAP_OWNER_DATABASE_URL"));
    ck_assert_ptr_null(strstr(err, "hunter2"));

    /* the embedded cluster makes its own roles: an owner URL alone is a mistake */
    load_err("GSAP_OWNER_DATABASE_URL", "host=/run/postgresql dbname=gsap",
             "GSAP_OWNER_DATABASE_URL needs GSAP_DATABASE_URL");
}
END_TEST

START_TEST(listen_ok)
{
    brk_config_t cfg;

    load_ok("GSAP_LISTEN", "0.0.0.0:9000", &cfg);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg.listen_port, 9000);
    load_ok("GSAP_LISTEN", "localhost:1", &cfg);
    ck_assert_str_eq(cfg.listen_host, "localhost");
    ck_assert_uint_eq(cfg.listen_port, 1);
    load_ok("GSAP_LISTEN", "[::1]:65535", &cfg);
    ck_assert_str_eq(cfg.listen_host, "::1");
    ck_assert_uint_eq(cfg.listen_port, 65535);
}
END_TEST

START_TEST(listen_host_length)
{
    brk_config_t cfg;
    char v[128];

    /* 63 characters fit listen_host[64]; 64 do not. */
    memset(v, 'h', 63);
    memcpy(v + 63, ":80", 4);
    load_ok("GSAP_LISTEN", v, &cfg);
    ck_assert_uint_eq(strlen(cfg.listen_host), 63);
    memset(v, 'h', 64);
    memcpy(v + 64, ":80", 4);
    load_err("GSAP_LISTEN", v, "GSAP_LISTEN");
}
END_TEST

START_TEST(listen_bad)
{
    static const char *bad[] = {"127.0.0.1",
                                "127.0.0.1:",
                                ":8080",
                                "127.0.0.1:0",
                                "127.0.0.1:65536",
                                "127.0.0.1:80x",
                                "127.0.0.1:-1",
                                "127.0.0.1:+80",
                                "127.0.0.1: 80",
                                "::1:8080",
                                "[::1]8080",
                                "[::1:8080",
                                "[]:80",
                                "bad host:80",
                                "127.0.0.1:99999999999999999999",
                                NULL};
    size_t i;

    for (i = 0; bad[i] != NULL; i++)
        load_err("GSAP_LISTEN", bad[i], "GSAP_LISTEN");
}
END_TEST

START_TEST(threads)
{
    brk_config_t cfg;

    load_ok("GSAP_THREADS", "1", &cfg);
    ck_assert_uint_eq(cfg.threads, 1);
    load_ok("GSAP_THREADS", "64", &cfg);
    ck_assert_uint_eq(cfg.threads, BRK_MAX_THREADS);
    load_err("GSAP_THREADS", "65", "GSAP_THREADS");
    load_err("GSAP_THREADS", "0", "GSAP_THREADS");
    load_err("GSAP_THREADS", "-1", "GSAP_THREADS");
    load_err("GSAP_THREADS", " 4", "GSAP_THREADS");
    load_err("GSAP_THREADS", "4 ", "GSAP_THREADS");
    load_err("GSAP_THREADS", "four", "GSAP_THREADS");
    load_err("GSAP_THREADS", "0x10", "GSAP_THREADS");
    load_err("GSAP_THREADS", "18446744073709551617", "GSAP_THREADS");
}
END_TEST

START_TEST(db_numbers)
{
    brk_config_t cfg;

    load_ok("GSAP_DB_CONNS", "64", &cfg);
    ck_assert_uint_eq(cfg.db_conns, 64);
    load_err("GSAP_DB_CONNS", "65", "GSAP_DB_CONNS");
    load_err("GSAP_DB_CONNS", "0", "GSAP_DB_CONNS");
    load_ok("GSAP_DB_QUEUE_MAX", "1", &cfg);
    ck_assert_uint_eq(cfg.db_queue_max, 1);
    load_ok("GSAP_DB_QUEUE_MAX", "1000000", &cfg);
    ck_assert_uint_eq(cfg.db_queue_max, 1000000);
    load_err("GSAP_DB_QUEUE_MAX", "1000001", "GSAP_DB_QUEUE_MAX");
    load_err("GSAP_DB_QUEUE_MAX", "0", "GSAP_DB_QUEUE_MAX");
    load_ok("GSAP_DB_TIMEOUT_MS", "100", &cfg);
    ck_assert_uint_eq(cfg.db_timeout_ms, 100);
    load_ok("GSAP_DB_TIMEOUT_MS", "3600000", &cfg);
    ck_assert_uint_eq(cfg.db_timeout_ms, 3600000);
    load_err("GSAP_DB_TIMEOUT_MS", "99", "GSAP_DB_TIMEOUT_MS");
    load_err("GSAP_DB_TIMEOUT_MS", "3600001", "GSAP_DB_TIMEOUT_MS");
    load_err("GSAP_DB_TIMEOUT_MS", "1.5", "GSAP_DB_TIMEOUT_MS");
    /* group commit: 1 (off) to BRK_DB_GROUP_MAX_LIMIT batches, 0 to BRK_DB_GROUP_WAIT_MAX_MS */
    load_ok("GSAP_DB_GROUP_MAX", "1", &cfg);
    ck_assert_uint_eq(cfg.db_group_max, 1);
    load_ok("GSAP_DB_GROUP_MAX", "256", &cfg);
    ck_assert_uint_eq(cfg.db_group_max, BRK_DB_GROUP_MAX_LIMIT);
    load_err("GSAP_DB_GROUP_MAX", "257", "GSAP_DB_GROUP_MAX");
    load_err("GSAP_DB_GROUP_MAX", "0", "GSAP_DB_GROUP_MAX");
    load_ok("GSAP_DB_GROUP_WAIT_MS", "0", &cfg);
    ck_assert_uint_eq(cfg.db_group_wait_ms, 0);
    load_ok("GSAP_DB_GROUP_WAIT_MS", "1000", &cfg);
    ck_assert_uint_eq(cfg.db_group_wait_ms, BRK_DB_GROUP_WAIT_MAX_MS);
    load_err("GSAP_DB_GROUP_WAIT_MS", "1001", "GSAP_DB_GROUP_WAIT_MS");
    load_err("GSAP_DB_GROUP_WAIT_MS", "-1", "GSAP_DB_GROUP_WAIT_MS");
}
END_TEST

/* Rate limits: each count from 1 to BRK_CONFIG_RATE_MAX, the window up to one day. */
START_TEST(rate_numbers)
{
    static const char *const counts[] = {"GSAP_RATE_PER_S", "GSAP_RATE_BURST",
                                         "GSAP_AUTH_FAIL_MAX", NULL};
    brk_config_t cfg;
    char max[32], over[32];

    snprintf(max, sizeof max, "%d", BRK_CONFIG_RATE_MAX);
    snprintf(over, sizeof over, "%d", BRK_CONFIG_RATE_MAX + 1);
    for (size_t i = 0; counts[i] != NULL; i++) {
        load_ok(counts[i], "1", &cfg);
        load_ok(counts[i], max, &cfg);
        load_err(counts[i], over, counts[i]);
        load_err(counts[i], "0", counts[i]);
        load_err(counts[i], "-5", counts[i]);
        load_err(counts[i], "2.5", counts[i]);
    }
    load_ok("GSAP_RATE_PER_S", "7", &cfg);
    ck_assert_uint_eq(cfg.rate_per_s, 7);
    load_ok("GSAP_RATE_BURST", max, &cfg);
    ck_assert_uint_eq(cfg.rate_burst, BRK_CONFIG_RATE_MAX);
    load_ok("GSAP_AUTH_FAIL_MAX", "3", &cfg);
    ck_assert_uint_eq(cfg.auth_fail_max, 3);
    load_ok("GSAP_AUTH_FAIL_WINDOW_S", "1", &cfg);
    ck_assert_uint_eq(cfg.auth_fail_window_s, 1);
    load_ok("GSAP_AUTH_FAIL_WINDOW_S", "86400", &cfg);
    ck_assert_uint_eq(cfg.auth_fail_window_s, BRK_CONFIG_AUTH_FAIL_WINDOW_MAX_S);
    load_err("GSAP_AUTH_FAIL_WINDOW_S", "86401", "GSAP_AUTH_FAIL_WINDOW_S");
    load_err("GSAP_AUTH_FAIL_WINDOW_S", "0", "GSAP_AUTH_FAIL_WINDOW_S");
}
END_TEST

/* GSAP_TIME_SKEW_S: 0 (no allowance) .. BRK_TIME_SKEW_MAX_S, at and one past each end */
START_TEST(time_skew)
{
    brk_config_t cfg;

    load_ok("GSAP_TIME_SKEW_S", "0", &cfg);
    ck_assert_uint_eq(cfg.time_skew_s, 0);
    load_ok("GSAP_TIME_SKEW_S", "3600", &cfg);
    ck_assert_uint_eq(cfg.time_skew_s, BRK_TIME_SKEW_MAX_S);
    load_err("GSAP_TIME_SKEW_S", "3601", "GSAP_TIME_SKEW_S");
    load_err("GSAP_TIME_SKEW_S", "-1", "GSAP_TIME_SKEW_S");
    load_err("GSAP_TIME_SKEW_S", "30s", "GSAP_TIME_SKEW_S");
    load_ok("GSAP_TIME_SKEW_S", "", &cfg);
    ck_assert_uint_eq(cfg.time_skew_s, BRK_DEFAULT_TIME_SKEW_S);
}
END_TEST

/* GSAP_TLOG_CHECKPOINT_S: 0 (a checkpoint whenever the log grew) .. BRK_TLOG_CHECKPOINT_MAX_S */
START_TEST(tlog_checkpoint)
{
    brk_config_t cfg;

    load_ok("GSAP_TLOG_CHECKPOINT_S", "0", &cfg);
    ck_assert_uint_eq(cfg.tlog_checkpoint_s, 0);
    load_ok("GSAP_TLOG_CHECKPOINT_S", "86400", &cfg);
    ck_assert_uint_eq(cfg.tlog_checkpoint_s, BRK_TLOG_CHECKPOINT_MAX_S);
    load_err("GSAP_TLOG_CHECKPOINT_S", "86401", "GSAP_TLOG_CHECKPOINT_S");
    load_err("GSAP_TLOG_CHECKPOINT_S", "-1", "GSAP_TLOG_CHECKPOINT_S");
    load_err("GSAP_TLOG_CHECKPOINT_S", "10s", "GSAP_TLOG_CHECKPOINT_S");
    load_ok("GSAP_TLOG_CHECKPOINT_S", "", &cfg);
    ck_assert_uint_eq(cfg.tlog_checkpoint_s, BRK_DEFAULT_TLOG_CHECKPOINT_S);
}
END_TEST

/* GSAP_PLAINTEXT_BEARERS (loopback|never|any), GSAP_JWKS_REFRESH_S (1..BRK_JWKS_REFRESH_MAX_S),
 * GSAP_JWKS_ALLOW_HTTP (exactly "1") */
START_TEST(bearers_and_jwks)
{
    brk_config_t cfg;

    load_ok(NULL, NULL, &cfg);
    ck_assert_int_eq(cfg.plaintext_bearers, BRK_PLAINTEXT_LOOPBACK);
    ck_assert_uint_eq(cfg.jwks_refresh_s, BRK_JWKS_REFRESH_S);
    ck_assert_int_eq(cfg.jwks_allow_http, 0);
    load_ok("GSAP_PLAINTEXT_BEARERS", "never", &cfg);
    ck_assert_int_eq(cfg.plaintext_bearers, BRK_PLAINTEXT_NEVER);
    load_ok("GSAP_PLAINTEXT_BEARERS", "any", &cfg);
    ck_assert_int_eq(cfg.plaintext_bearers, BRK_PLAINTEXT_ANY);
    load_ok("GSAP_PLAINTEXT_BEARERS", "loopback", &cfg);
    ck_assert_int_eq(cfg.plaintext_bearers, BRK_PLAINTEXT_LOOPBACK);
    load_err("GSAP_PLAINTEXT_BEARERS", "yes", "GSAP_PLAINTEXT_BEARERS");
    load_err("GSAP_PLAINTEXT_BEARERS", "Never", "GSAP_PLAINTEXT_BEARERS");
    load_ok("GSAP_JWKS_REFRESH_S", "1", &cfg);
    ck_assert_uint_eq(cfg.jwks_refresh_s, 1);
    load_ok("GSAP_JWKS_REFRESH_S", "86400", &cfg);
    ck_assert_uint_eq(cfg.jwks_refresh_s, BRK_JWKS_REFRESH_MAX_S);
    load_err("GSAP_JWKS_REFRESH_S", "0", "GSAP_JWKS_REFRESH_S");
    load_err("GSAP_JWKS_REFRESH_S", "86401", "GSAP_JWKS_REFRESH_S");
    load_ok("GSAP_JWKS_ALLOW_HTTP", "1", &cfg);
    ck_assert_int_eq(cfg.jwks_allow_http, 1);
    load_ok("GSAP_JWKS_ALLOW_HTTP", "yes", &cfg);
    ck_assert_int_eq(cfg.jwks_allow_http, 0);
}
END_TEST

START_TEST(tls_pair)
{
    brk_config_t cfg;
    char err[256] = "";

    clean_env();
    setenv("GSAP_TLS_CERT", "/c.pem", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), BRK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "GSAP_TLS_KEY"));
    clean_env();
    setenv("GSAP_TLS_KEY", "/k.pem", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), BRK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "GSAP_TLS_CERT"));
}
END_TEST

START_TEST(broker_id_and_webhook)
{
    brk_config_t cfg;
    char id[200];

    memset(id, 'b', 128);
    id[128] = '\0';
    load_ok("GSAP_BROKER_ID", id, &cfg);
    id[128] = 'b';
    id[129] = '\0';
    load_err("GSAP_BROKER_ID", id, "GSAP_BROKER_ID");
    load_err("GSAP_BROKER_ID", "two words", "GSAP_BROKER_ID");
    load_ok("CHRONICLE_WEBHOOK_URL", "http://127.0.0.1:9/x", &cfg);
    load_err("CHRONICLE_WEBHOOK_URL", "ftp://h/x", "CHRONICLE_WEBHOOK_URL");
}
END_TEST

START_TEST(error_message_style)
{
    brk_config_t cfg;
    char err[256] = "";
    size_t n;

    clean_env();
    setenv("GSAP_THREADS", "zero", 1);
    ck_assert_int_eq(brk_config_load(&cfg, err, sizeof err), BRK_EINVAL);
    n = strlen(err);
    ck_assert_uint_gt(n, 0);
    ck_assert_msg(err[n - 1] != '.', "trailing period in '%s'", err);
    ck_assert_ptr_nonnull(strstr(err, "'zero'"));
    /* a tiny buffer is truncated, never overrun */
    ck_assert_int_eq(brk_config_load(&cfg, err, 4), BRK_EINVAL);
    ck_assert_uint_eq(strlen(err), 3);
}
END_TEST

/* brk_env_uint, the one reader of numeric settings (broker and function runtime alike):
 * at and one past each bound, empty as unset, the whole value or nothing. */
START_TEST(env_uint_bounds)
{
    char err[256] = "";
    unsigned v = 7;

    unsetenv("GSAP_TEST_N");
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 5);
    setenv("GSAP_TEST_N", "", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 5);
    setenv("GSAP_TEST_N", "10", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 10);
    setenv("GSAP_TEST_N", "2", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), 0);
    ck_assert_uint_eq(v, 2);
    v = 7;
    setenv("GSAP_TEST_N", "11", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), BRK_EINVAL);
    ck_assert_str_eq(err, "invalid GSAP_TEST_N '11': expected an integer from 2 to 10");
    ck_assert_uint_eq(v, 7);
    setenv("GSAP_TEST_N", "1", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), BRK_EINVAL);
    setenv("GSAP_TEST_N", " 3", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), BRK_EINVAL);
    setenv("GSAP_TEST_N", "3x", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), BRK_EINVAL);
    setenv("GSAP_TEST_N", "99999999999999999999999", 1);
    ck_assert_int_eq(brk_env_uint("GSAP_TEST_N", 5, 2, 10, &v, err, sizeof err), BRK_EINVAL);
    ck_assert_uint_eq(v, 7);
    unsetenv("GSAP_TEST_N");
    ck_assert_ptr_null(brk_env("GSAP_TEST_N"));
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, defaults);
    tcase_add_test(tc, owner_database_url);
    tcase_add_test(tc, empty_means_unset);
    tcase_add_test(tc, strings);
    tcase_add_test(tc, database_url);
    tcase_add_test(tc, database_url_secret_not_echoed);
    tcase_add_test(tc, listen_ok);
    tcase_add_test(tc, listen_host_length);
    tcase_add_test(tc, listen_bad);
    tcase_add_test(tc, threads);
    tcase_add_test(tc, db_numbers);
    tcase_add_test(tc, rate_numbers);
    tcase_add_test(tc, time_skew);
    tcase_add_test(tc, tlog_checkpoint);
    tcase_add_test(tc, bearers_and_jwks);
    tcase_add_test(tc, tls_pair);
    tcase_add_test(tc, broker_id_and_webhook);
    tcase_add_test(tc, error_message_style);
    tcase_add_test(tc, env_uint_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(config_suite());
}
