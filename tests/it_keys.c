/*
 * it_keys: API key life cycle and rate limits against the real binary: listing (never a
 * secret), revocation seen at once by every worker of two brokers on one database, expiry,
 * per-key token buckets with the RateLimit fields, the tenant override, the failed-
 * authentication limit per client address, and their metrics.
 *
 * Timing: nothing here asserts an upper bound on how fast the machine is. Rates are small
 * (burst 5, 1 per second) and the assertions allow for requests that take a second each.
 */
#include <check.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_config.h"
#include "brk_keys.h"
#include "tst_broker.h"
#include "tst_pg.h"

#define DB "it_keys"

static tst_broker_t B, B2;
static char *ADMIN, *ISSUER;

static void start(const char *const *env)
{
    const char *ci = tst_pg_createdb(DB);
    ck_assert_int_eq(tst_broker_start(&B, ci, env), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
    ISSUER = tst_keys_create(&B, "acme", "issuer");
}

static void setup(void)
{
    static const char *const env[] = {"GSAP_THREADS=4", NULL};
    start(env);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    tst_broker_clear(&B2);
    free(ADMIN);
    free(ISSUER);
    ADMIN = ISSUER = NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* key_id_of: the key id part of a token, into out[17]. */
static void key_id_of(const char *token, char *out)
{
    const char *p = strchr(token + 5, '.') + 1;
    memcpy(out, p, 16);
    out[16] = '\0';
}

static int status_of(unsigned short port, const char *method, const char *path, const char *token)
{
    tst_resp_t r;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(tst_http(port, method, path, hdr, NULL, 0, &r), 0);
    int st = r.status;
    tst_resp_clear(&r);
    return st;
}

static void assert_error(const tst_resp_t *r, int status, const char *code)
{
    ck_assert_msg(r->status == status, "expected %d, got %d: %s", status, r->status, r->body);
    json_t *e = json_object_get(r->json, "error");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
}

/* metric: the value of the first sample line starting with name (exactly), or -1. */
static long metric(unsigned short port, const char *name)
{
    tst_resp_t r;
    long v = -1;
    ck_assert_int_eq(tst_get(port, "/metrics", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    for (const char *p = r.body; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, name, strlen(name)) == 0 && p[strlen(name)] == ' ') {
            v = strtol(p + strlen(name) + 1, NULL, 10);
            break;
        }
    }
    tst_resp_clear(&r);
    return v;
}

/* ---- revocation ---- */

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

/* new_ac: a fresh AC issued with token; its context id (malloc'd). */
static char *new_ac(const char *token)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", token,
                                   "{\"accord_template\":\"default\",\"operation\":{"
                                   "\"command_hash\":\"" H("1") "\",\"corpus_entry_cid\":\""
                                   H("2") "\",\"parameters_cid\":\"" H("3") "\"}}", &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(json_string_value(json_object_get(r.json, "context_id")));
    tst_resp_clear(&r);
    return ctx;
}

/* post_cr: POSTs a completed CR for ctx with token to port; the response in *r. */
static void post_cr(unsigned short port, const char *token, const char *ctx, tst_resp_t *r)
{
    char body[1024], now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof body,
             "{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
             "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"" H("1") "\","
             "\"corpus_entry_cid\":\"" H("2") "\",\"parameters_cid\":\"" H("3") "\","
             "\"stdout_hash\":\"" H("4") "\",\"output_bytes\":1,\"chronicle\":{"
             "\"session_id\":\"c\",\"behavior_state\":\"verified\",\"merkle_root\":\""
             H("4") "\"}}",
             ctx, now, now);
    ck_assert_int_eq(tst_post_json(port, "/governance/complete/", token, body, r), 0);
}

/* written_for: CR rows plus events of ctx, and whether its AC is still authorized (1/0). */
static long written_for(PGconn *c, const char *ctx, int *authorized)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM crs WHERE context_id = '%s') + "
             "(SELECT count(*) FROM events WHERE context_id = '%s' AND type LIKE 'GSAP_CR%%')",
             ctx, ctx);
    long n = tst_pg_long(c, sql);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM acs WHERE context_id = '%s' AND status = 'authorized'", ctx);
    *authorized = (int)tst_pg_long(c, sql);
    return n;
}

/*
 * The receipt route may authenticate a key from what the worker verified in the database a
 * moment ago (BRK_ROUTE_KEY_RECHECK): its transaction checks the key again, so a revocation,
 * an expiry or a disabled api-key driver refuses the very next receipt on every worker of
 * every broker, with 401 and nothing written, and a wrong secret is refused from the memo.
 */
START_TEST(receipt_route_rechecks_key)
{
    enum { N = 16 };
    /* every refusal below counts against 127.0.0.1: keep it under the address's limit */
    static const char *const env[] = {"GSAP_THREADS=4", "GSAP_AUTH_FAIL_MAX=1000", NULL};
    tst_broker_clear(&B);
    free(ADMIN);
    free(ISSUER);
    start(env);
    ck_assert_int_eq(tst_broker_start(&B2, B.conninfo, env), 0);
    char *victim = tst_keys_create(&B, "acme", "issuer,executor");
    char *other = tst_keys_create(&B, "acme", "issuer,executor");
    char *ctx[4 * N + 4], kid[17], path[128], hdr[512], sql[256];
    PGconn *c = tst_pg_connect(DB);
    tst_resp_t r;
    int authorized;
    for (int i = 0; i < 4 * N + 4; i++)
        ctx[i] = new_ac(i < 4 * N ? victim : other);
    /* accepted on every worker of both brokers (each request a new connection) */
    for (int i = 0; i < 2 * N; i++) {
        post_cr(i % 2 ? B2.port : B.port, victim, ctx[i], &r);
        ck_assert_msg(r.status == 200, "CR %d: %d %s", i, r.status, r.body);
        tst_resp_clear(&r);
    }
    /* a wrong secret for the remembered key id: 401, counted, nothing written */
    long failures = metric(B.port, "gsap_auth_failures_total");
    char forged[256];
    snprintf(forged, sizeof forged, "%s", victim);
    char *last = strrchr(forged, '.') + 1;
    last[0] = last[0] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 4; i++) {
        post_cr(B.port, forged, ctx[2 * N + i], &r);
        assert_error(&r, 401, "invalid_token");
        tst_resp_clear(&r);
        ck_assert_int_eq(written_for(c, ctx[2 * N + i], &authorized), 0);
        ck_assert_int_eq(authorized, 1);
    }
    ck_assert_int_eq(metric(B.port, "gsap_auth_failures_total") - failures, 4);

    /* revoked: the next receipt is refused everywhere, although the ACs are valid */
    key_id_of(victim, kid);
    snprintf(path, sizeof path, "/admin/keys/%s/revoke", kid);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    for (int i = 2 * N; i < 4 * N; i++) {
        post_cr(i % 2 ? B2.port : B.port, victim, ctx[i], &r);
        assert_error(&r, 401, "invalid_token");
        tst_resp_clear(&r);
        ck_assert_int_eq(written_for(c, ctx[i], &authorized), 0);
        ck_assert_int_eq(authorized, 1);
    }

    /* expired: the same, as soon as expires_at is in the past */
    key_id_of(other, kid);
    post_cr(B.port, other, ctx[4 * N], &r);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    snprintf(sql, sizeof sql,
             "UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE key_id = '%s' "
             "RETURNING 1", kid);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    post_cr(B.port, other, ctx[4 * N + 1], &r);
    assert_error(&r, 401, "invalid_token");
    tst_resp_clear(&r);
    ck_assert_int_eq(written_for(c, ctx[4 * N + 1], &authorized), 0);
    ck_assert_int_eq(authorized, 1);

    /* the tenant turns its api-key driver off: driver_disabled, nothing written */
    snprintf(sql, sizeof sql,
             "UPDATE api_keys SET expires_at = NULL WHERE key_id = '%s' RETURNING 1", kid);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    post_cr(B.port, other, ctx[4 * N + 2], &r);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_pg_long(c, "INSERT INTO auth_drivers (tenant_id, driver, enabled) "
                                    "VALUES ('acme', 'api-key', false) RETURNING 1"), 1);
    post_cr(B.port, other, ctx[4 * N + 3], &r);
    assert_error(&r, 401, "driver_disabled");
    tst_resp_clear(&r);
    ck_assert_int_eq(written_for(c, ctx[4 * N + 3], &authorized), 0);
    ck_assert_int_eq(authorized, 1);

    PQfinish(c);
    for (int i = 0; i < 4 * N + 4; i++)
        free(ctx[i]);
    free(victim);
    free(other);
    ck_assert_int_eq(tst_broker_stop(&B2), 0);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

START_TEST(revoke_refused_at_once_on_every_worker_and_broker)
{
    /* a second broker, its own 4 workers, on the same database */
    static const char *const env[] = {"GSAP_THREADS=4", NULL};
    ck_assert_int_eq(tst_broker_start(&B2, B.conninfo, env), 0);
    char *victim = tst_keys_create(&B, "acme", "issuer,executor");
    char kid[17], path[128];
    key_id_of(victim, kid);
    /* each request is a new connection, spread over the workers by SO_REUSEPORT */
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", victim), 200);
        ck_assert_int_eq(status_of(B2.port, "GET", "/governance/drivers/", victim), 200);
    }
    tst_resp_t r;
    snprintf(path, sizeof path, "/admin/keys/%s/revoke", kid);
    ck_assert_int_eq(tst_http(B.port, "POST", path,
                              "Authorization: Bearer placeholder\r\n", NULL, 0, &r), 0);
    assert_error(&r, 401, "invalid_token"); /* (a bad token first: it changes nothing) */
    tst_resp_clear(&r);
    ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", victim), 200);
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "revoked");
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "key_id")), kid);
    char *revoked_at = strdup(json_string_value(json_object_get(r.json, "revoked_at")));
    tst_resp_clear(&r);
    /* from the very next request on, on every worker of both brokers: no cache to expire */
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", victim), 401);
        ck_assert_int_eq(status_of(B2.port, "GET", "/governance/drivers/", victim), 401);
    }
    /* idempotent: the first revocation's time stays */
    ck_assert_int_eq(tst_http(B2.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "revoked_at")), revoked_at);
    tst_resp_clear(&r);
    /* an auditor can see who revoked it, once */
    PGconn *c = tst_pg_connect(DB);
    char sql[512], admin_kid[17];
    key_id_of(ADMIN, admin_kid);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM events WHERE tenant_id = 'acme' AND type = 'GSAP_KEY_REVOKED' "
             "AND payload->>'key_id' = '%s' AND payload->>'revoked_by' = '%s'",
             kid, admin_kid);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    PQfinish(c);
    free(revoked_at);
    free(victim);
    /* a clean stop: under the sanitizers, a leak or an error is a nonzero exit */
    ck_assert_int_eq(tst_broker_stop(&B2), 0);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

START_TEST(revoke_scope_and_cli)
{
    char *other = tst_keys_create(&B, "other", "admin");
    char kid[17], path[128], hdr[512];
    tst_resp_t r;
    key_id_of(other, kid);
    /* another tenant's key is 404, like a key that does not exist, and still works */
    snprintf(path, sizeof path, "/admin/keys/%s/revoke", kid);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    assert_error(&r, 404, "key_not_found");
    tst_resp_clear(&r);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", other), 200);
    ck_assert_int_eq(tst_http(B.port, "POST", "/admin/keys/0123456789abcdef/revoke", hdr, NULL, 0, &r), 0);
    assert_error(&r, 404, "key_not_found");
    tst_resp_clear(&r);
    /* a malformed id: 15 and 17 digits, upper case */
    ck_assert_int_eq(status_of(B.port, "POST", "/admin/keys/0123456789abcde/revoke", ADMIN), 404);
    ck_assert_int_eq(status_of(B.port, "POST", "/admin/keys/0123456789abcdef0/revoke", ADMIN), 404);
    ck_assert_int_eq(status_of(B.port, "POST", "/admin/keys/0123456789ABCDEF/revoke", ADMIN), 404);
    /* only admins revoke */
    char ikid[17];
    key_id_of(ISSUER, ikid);
    snprintf(path, sizeof path, "/admin/keys/%s/revoke", ikid);
    ck_assert_int_eq(status_of(B.port, "POST", path, ISSUER), 403);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", ISSUER), 403);

    /* the CLI: revoke by tenant and id; the wrong tenant is refused */
    int st = 0;
    char *out = tst_broker_cli(&B, &st, "keys", "revoke", "--tenant", "acme", "--key-id", kid, NULL);
    ck_assert_int_eq(st, 1);
    free(out);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", other), 200);
    out = tst_broker_cli(&B, &st, "keys", "revoke", "--tenant", "other", "--key-id", kid, NULL);
    ck_assert_int_eq(st, 0);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "revoked");
    json_decref(j);
    free(out);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", other), 401);
    out = tst_broker_cli(&B, &st, "keys", "revoke", "--tenant", "other", NULL);
    ck_assert_int_eq(st, 2);
    free(out);
    PGconn *c = tst_pg_connect(DB);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT revoked_by FROM api_keys WHERE key_id = '%s'", kid);
    char *by = tst_pg_scalar(c, sql);
    ck_assert_str_eq(by, "cli");
    free(by);
    PQfinish(c);
    free(other);
}
END_TEST

/* ---- listing ---- */

static void assert_key_shape(json_t *k)
{
    static const char *const want[] = {"key_id",       "name",       "roles",
                                       "can_delegate", "created_at", "last_used_at",
                                       "expires_at",   "revoked_at", "status"};
    ck_assert_uint_eq(json_object_size(k), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(json_object_get(k, want[i]) != NULL, "no \"%s\"", want[i]);
    ck_assert(json_is_array(json_object_get(k, "roles")));
}

/* find: the listed key with id kid, or NULL. */
static json_t *find(json_t *list, const char *kid)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(list, "keys"), i, k)
    {
        if (strcmp(json_string_value(json_object_get(k, "key_id")), kid) == 0)
            return k;
    }
    return NULL;
}

START_TEST(list_shows_no_secret)
{
    char *other = tst_keys_create(&B, "other", "admin");
    char kid[17], okid[17];
    tst_resp_t r;
    key_id_of(ISSUER, kid);
    key_id_of(other, okid);
    ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", ISSUER), 200);
    /* last use is written after the answer, once a minute at most: wait for it */
    PGconn *c = tst_pg_connect(DB);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM api_keys WHERE key_id = '%s' AND last_used_at IS NOT NULL", kid);
    for (int i = 0; i < 100 && tst_pg_long(c, sql) != 1; i++)
        usleep(100 * 1000);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);

    ck_assert_int_eq(tst_get(B.port, "/admin/keys", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant_id")), "acme");
    ck_assert(json_is_false(json_object_get(r.json, "truncated")));
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "keys")), 2);
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(r.json, "keys"), i, k) assert_key_shape(k);
    json_t *mine = find(r.json, kid);
    ck_assert_ptr_nonnull(mine);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(mine, "roles"), 0)), "issuer");
    ck_assert_str_eq(json_string_value(json_object_get(mine, "status")), "active");
    ck_assert(json_is_string(json_object_get(mine, "last_used_at")));
    ck_assert(json_is_null(json_object_get(mine, "revoked_at")));
    ck_assert(json_is_null(json_object_get(mine, "expires_at")));
    /* no other tenant's key, no secret, no hash of one */
    ck_assert_ptr_null(find(r.json, okid));
    const char *tokens[] = {ADMIN, ISSUER};
    for (int t = 0; t < 2; t++)
        ck_assert_ptr_null(strstr(r.body, strrchr(tokens[t], '.') + 1));
    PGresult *h = PQexec(c, "SELECT secret_hash FROM api_keys");
    for (int row = 0; row < PQntuples(h); row++)
        ck_assert_ptr_null(strstr(r.body, PQgetvalue(h, row, 0)));
    PQclear(h);
    tst_resp_clear(&r);

    /* the CLI prints the same shape */
    int st = 0;
    char *out = tst_broker_cli(&B, &st, "keys", "list", "--tenant", "acme", NULL);
    ck_assert_int_eq(st, 0);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "keys")), 2);
    json_array_foreach(json_object_get(j, "keys"), i, k) assert_key_shape(k);
    ck_assert_ptr_null(strstr(out, strrchr(ISSUER, '.') + 1));
    json_decref(j);
    free(out);

    /* BRK_KEYS_LIST_MAX: exactly the limit is whole, one more is truncated */
    snprintf(sql, sizeof sql,
             "INSERT INTO api_keys (tenant_id, key_id, roles, secret_hash) "
             "SELECT 'acme', lpad(to_hex(g), 16, '0'), '{auditor}', repeat('0', 64) "
             "FROM generate_series(1, %d) g",
             BRK_KEYS_LIST_MAX - 2);
    PQclear(PQexec(c, sql));
    ck_assert_int_eq(tst_get(B.port, "/admin/keys", ADMIN, &r), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "keys")), BRK_KEYS_LIST_MAX);
    ck_assert(json_is_false(json_object_get(r.json, "truncated")));
    tst_resp_clear(&r);
    PQclear(PQexec(c, "INSERT INTO api_keys (tenant_id, key_id, roles, secret_hash) "
                      "VALUES ('acme', 'ffffffffffffffff', '{auditor}', repeat('0', 64))"));
    ck_assert_int_eq(tst_get(B.port, "/admin/keys", ADMIN, &r), 0);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "keys")), BRK_KEYS_LIST_MAX);
    ck_assert(json_is_true(json_object_get(r.json, "truncated")));
    tst_resp_clear(&r);
    PQfinish(c);
    free(other);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

/* ---- expiry ---- */

START_TEST(expiry)
{
    tst_resp_t r;
    char body[128];
    /* bounds: 1 and BRK_KEY_EXPIRES_MAX_S are fine, 0 and one past the maximum are 422 */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN,
                                   "{\"roles\":[\"issuer\"],\"expires_in_seconds\":0}", &r), 0);
    assert_error(&r, 422, "out_of_range");
    tst_resp_clear(&r);
    snprintf(body, sizeof body, "{\"roles\":[\"issuer\"],\"expires_in_seconds\":%d}",
             BRK_KEY_EXPIRES_MAX_S + 1);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN, body, &r), 0);
    assert_error(&r, 422, "out_of_range");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN,
                                   "{\"roles\":[\"issuer\"],\"expires_in_seconds\":\"60\"}", &r), 0);
    assert_error(&r, 400, "invalid_field");
    tst_resp_clear(&r);
    snprintf(body, sizeof body, "{\"roles\":[\"issuer\"],\"expires_in_seconds\":%d}",
             BRK_KEY_EXPIRES_MAX_S);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN, body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r.json, "expires_at")), "Z"));
    tst_resp_clear(&r);
    /* without expiry: expires_at null */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN, "{\"roles\":[\"issuer\"]}", &r), 0);
    ck_assert(json_is_null(json_object_get(r.json, "expires_at")));
    tst_resp_clear(&r);

    /* a key of one second stops working by the real clock */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN,
                                   "{\"roles\":[\"issuer\"],\"expires_in_seconds\":1}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *tok = strdup(json_string_value(json_object_get(r.json, "token")));
    char kid[17];
    key_id_of(tok, kid);
    tst_resp_clear(&r);
    int st = 200;
    for (int i = 0; i < 150 && st == 200; i++) {
        st = status_of(B.port, "GET", "/governance/drivers/", tok);
        if (st == 200)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(st, 401);
    ck_assert_int_eq(tst_get(B.port, "/admin/keys", ADMIN, &r), 0);
    json_t *k = find(r.json, kid);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "expired");
    ck_assert(json_is_string(json_object_get(k, "expires_at")));
    tst_resp_clear(&r);
    free(tok);

    /* the CLI: --expires-in, bounds refused before anything is created */
    char *out = tst_broker_cli(&B, &st, "keys", "create", "--tenant", "acme", "--role", "issuer",
                               "--expires-in", "0", NULL);
    ck_assert_int_eq(st, 2);
    free(out);
    out = tst_broker_cli(&B, &st, "keys", "create", "--tenant", "acme", "--role", "issuer",
                         "--expires-in", "3600", NULL);
    ck_assert_int_eq(st, 0);
    ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", out), 200);
    key_id_of(out, kid);
    PGconn *c = tst_pg_connect(DB);
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM api_keys WHERE key_id = '%s' AND expires_at BETWEEN "
             "now() + interval '3500 s' AND now() + interval '3600 s'", kid);
    ck_assert_int_eq(tst_pg_long(c, sql), 1);
    /* moved into the past, it is refused on the next request */
    snprintf(sql, sizeof sql,
             "UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE key_id = '%s'", kid);
    PQclear(PQexec(c, sql));
    ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", out), 401);
    PQfinish(c);
    free(out);
}
END_TEST

/* ---- rate limits ---- */

/*
 * burst_until_429: requests with token until a 429 (at most max); returns the number of 200s
 * before it and leaves the 429 in *last.
 */
static int burst_until_429(unsigned short port, const char *token, int max, tst_resp_t *last)
{
    char hdr[512];
    int ok = 0;
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", token);
    for (int i = 0; i < max; i++) {
        ck_assert_int_eq(tst_http(port, "GET", "/governance/drivers/", hdr, NULL, 0, last), 0);
        if (last->status == 429)
            return ok;
        ck_assert_int_eq(last->status, 200);
        ok++;
        tst_resp_clear(last);
    }
    ck_abort_msg("no 429 after %d requests", max);
    return -1;
}

START_TEST(key_bucket_429_and_headers)
{
    static const char *const env[] = {"GSAP_THREADS=4", "GSAP_RATE_PER_S=1", "GSAP_RATE_BURST=5",
                                      NULL};
    tst_broker_clear(&B);
    free(ADMIN);
    free(ISSUER);
    start(env);
    tst_resp_t r;
    char v[128];
    /* every authenticated answer carries the policy and the state */
    ck_assert_int_eq(tst_get(B.port, "/governance/drivers/", ISSUER, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_resp_header(&r, "ratelimit-policy", v, sizeof v), "\"key\";q=5;w=5");
    ck_assert_str_eq(tst_resp_header(&r, "ratelimit", v, sizeof v), "\"key\";r=4;t=1");
    tst_resp_clear(&r);
    long before = metric(B.port, "gsap_rate_limited_total{reason=\"key\"}");
    ck_assert_int_eq(before, 0);

    double t0 = now_s();
    int ok = burst_until_429(B.port, ISSUER, 40, &r);
    double took = now_s() - t0;
    /* the 4 tokens left, plus at most one per second that passed */
    ck_assert_int_ge(ok, 4);
    ck_assert_int_le(ok, 4 + (int)took + 1);
    assert_error(&r, 429, "rate_limited");
    ck_assert_str_eq(tst_resp_header(&r, "retry-after", v, sizeof v), "1");
    ck_assert_str_eq(tst_resp_header(&r, "ratelimit-policy", v, sizeof v), "\"key\";q=5;w=5");
    ck_assert_str_eq(tst_resp_header(&r, "ratelimit", v, sizeof v), "\"key\";r=0;t=1");
    tst_resp_clear(&r);
    ck_assert_int_ge(metric(B.port, "gsap_rate_limited_total{reason=\"key\"}"), 1);
    /* another key of the same tenant has its own bucket */
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", ADMIN), 200);
    /* after Retry-After (and a second of slack), the key is served again */
    sleep(2);
    ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", ISSUER), 200);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

START_TEST(tenant_override)
{
    static const char *const env[] = {"GSAP_THREADS=4", NULL};
    tst_resp_t r;
    char v[128];
    ck_assert_int_eq(tst_broker_start(&B2, B.conninfo, env), 0);
    char *neighbour = tst_keys_create(&B, "other", "issuer");
    /* defaults: no override, the broker's settings */
    ck_assert_int_eq(tst_get(B.port, "/admin/tenant/rate-limit", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_null(json_object_get(r.json, "rate_per_s")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r.json, "effective"), "burst")),
                     BRK_DEFAULT_RATE_BURST);
    tst_resp_clear(&r);
    /* bounds: 1 and 1000000 are fine, 0 and 1000001 are 422, a string is 400 */
    const char *bad422[] = {"{\"burst\":0}", "{\"burst\":1000001}", "{\"rate_per_s\":0}",
                            "{\"rate_per_s\":1000001}"};
    for (size_t i = 0; i < 4; i++) {
        char hdr[600];
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
                 ADMIN);
        ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/tenant/rate-limit", hdr, bad422[i],
                                  strlen(bad422[i]), &r), 0);
        assert_error(&r, 422, "out_of_range");
        tst_resp_clear(&r);
    }
    char hdr[600];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             ADMIN);
    const char *s400[] = {"{\"burst\":\"5\"}", "{\"rate\":5}"};
    const char *c400[] = {"invalid_field", "unknown_field"};
    for (size_t i = 0; i < 2; i++) {
        ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/tenant/rate-limit", hdr, s400[i],
                                  strlen(s400[i]), &r), 0);
        assert_error(&r, 400, c400[i]);
        tst_resp_clear(&r);
    }
    const char *edge = "{\"rate_per_s\":1000000,\"burst\":1000000}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/tenant/rate-limit", hdr, edge, strlen(edge), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);

    /* burst 3 at 1/s for every key of acme, on both brokers, from the next request */
    const char *tight = "{\"rate_per_s\":1,\"burst\":3}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/tenant/rate-limit", hdr, tight, strlen(tight), &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "burst")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r.json, "effective"), "rate_per_s")), 1);
    tst_resp_clear(&r);
    for (int b = 0; b < 2; b++) {
        unsigned short port = b == 0 ? B.port : B2.port;
        double t0 = now_s();
        int ok = burst_until_429(port, ISSUER, 40, &r);
        ck_assert_int_le(ok, 3 + (int)(now_s() - t0) + 1);
        ck_assert_str_eq(tst_resp_header(&r, "ratelimit-policy", v, sizeof v), "\"key\";q=3;w=3");
        tst_resp_clear(&r);
    }
    /* the neighbour tenant keeps the broker's limit */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(status_of(B.port, "GET", "/governance/drivers/", neighbour), 200);
    /* cleared: the broker's settings again (the admin's own bucket may need a second) */
    sleep(2);
    const char *clear = "{\"rate_per_s\":null,\"burst\":null}";
    ck_assert_int_eq(tst_http(B.port, "PUT", "/admin/tenant/rate-limit", hdr, clear, strlen(clear), &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_null(json_object_get(r.json, "burst")));
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/governance/drivers/", ISSUER, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "\"key\";q=%d;w=%d", BRK_DEFAULT_RATE_BURST,
             (BRK_DEFAULT_RATE_BURST + BRK_DEFAULT_RATE_PER_S - 1) / BRK_DEFAULT_RATE_PER_S);
    ck_assert_str_eq(tst_resp_header(&r, "ratelimit-policy", v, sizeof v), want);
    tst_resp_clear(&r);
    free(neighbour);
    ck_assert_int_eq(tst_broker_stop(&B2), 0);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

/* get_from: GET path with token from source address src (a loopback alias); the status. */
static int get_from(const char *src, unsigned short port, const char *path, const char *token)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0}, to = {0};
    char req[512], buf[64] = "";
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src, &a.sin_addr);
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n", path, token);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert_int_gt(got, 12);
    return atoi(buf + 9);
}

START_TEST(failed_auth_limited_per_address)
{
    static const char *const env[] = {"GSAP_THREADS=4", "GSAP_AUTH_FAIL_MAX=3",
                                      "GSAP_AUTH_FAIL_WINDOW_S=600", NULL};
    tst_broker_clear(&B);
    free(ADMIN);
    free(ISSUER);
    start(env);
    tst_resp_t r;
    char forged[256], v[32];
    snprintf(forged, sizeof forged, "%s", ADMIN);
    char *last = strrchr(forged, '.') + 1;
    last[0] = last[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(metric(B.port, "gsap_auth_failures_total"), 0);
    /* two failures (a wrong secret, a malformed token): the valid key still gets in */
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", forged), 401);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", "gsap.nonsense"), 401);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", ADMIN), 200);
    /* the third reaches the limit: from now on this address is refused before the token is
     * even looked at, the valid one included */
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", forged), 401);
    ck_assert_int_eq(tst_get(B.port, "/admin/keys", ADMIN, &r), 0);
    assert_error(&r, 429, "rate_limited");
    ck_assert_ptr_nonnull(tst_resp_header(&r, "retry-after", v, sizeof v));
    long ra = strtol(v, NULL, 10);
    ck_assert_int_ge(ra, 1);
    ck_assert_int_le(ra, 600);
    tst_resp_clear(&r);
    ck_assert_int_eq(status_of(B.port, "GET", "/admin/keys", forged), 429);
    /* another address (a loopback alias) is not affected */
    ck_assert_int_eq(get_from("127.0.0.2", B.port, "/admin/keys", ADMIN), 200);
    ck_assert_int_eq(get_from("127.0.0.2", B.port, "/admin/keys", ISSUER), 403);
    /* counted: 3 failures, 2 refusals for the address */
    ck_assert_int_eq(metric(B.port, "gsap_auth_failures_total"), 3);
    ck_assert_int_eq(metric(B.port, "gsap_rate_limited_total{reason=\"auth_failures\"}"), 2);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_keys");
    TCase *tc = tcase_create("keys");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, revoke_refused_at_once_on_every_worker_and_broker);
    tcase_add_test(tc, receipt_route_rechecks_key);
    tcase_add_test(tc, revoke_scope_and_cli);
    tcase_add_test(tc, list_shows_no_secret);
    tcase_add_test(tc, expiry);
    tcase_add_test(tc, key_bucket_429_and_headers);
    tcase_add_test(tc, tenant_override);
    tcase_add_test(tc, failed_auth_limited_per_address);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
