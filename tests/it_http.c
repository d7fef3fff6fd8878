/*
 * it_http: the HTTP front against the real binary and a real database: error shapes and
 * limits, authentication and roles, readiness across a database outage, metrics, TLS with
 * HTTP/2, and a graceful stop.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_http.h"
#include "tst_broker.h"
#include "tst_pg.h"

static tst_broker_t B;
static char *ADMIN, *ISSUER;

static void setup(void)
{
    const char *ci = tst_pg_createdb("it_http");
    ck_assert_int_eq(tst_broker_start(&B, ci, NULL), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
    ISSUER = tst_keys_create(&B, "acme", "issuer");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(ADMIN);
    free(ISSUER);
}

/* The error shape every route shares, with the request id echoed in the header. */
static void assert_error(const tst_resp_t *r, int status, const char *code)
{
    char rid[128];
    ck_assert_int_eq(r->status, status);
    ck_assert_ptr_nonnull(r->json);
    json_t *e = json_object_get(r->json, "error");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    ck_assert(json_string_length(json_object_get(e, "message")) > 0);
    ck_assert_ptr_nonnull(tst_resp_header(r, "x-request-id", rid, sizeof rid));
    ck_assert_str_eq(json_string_value(json_object_get(e, "request_id")), rid);
    ck_assert_ptr_nonnull(tst_resp_header(r, "content-type", rid, sizeof rid));
    ck_assert_str_eq(rid, "application/json");
}

START_TEST(health_and_request_id)
{
    tst_resp_t r;
    char v[128];
    ck_assert_int_eq(tst_http(B.port, "GET", "/healthz", "X-Request-Id: trace-42\r\n", NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    ck_assert_str_eq(tst_resp_header(&r, "x-request-id", v, sizeof v), "trace-42");
    ck_assert_str_eq(tst_resp_header(&r, "content-length", v, sizeof v), "15");
    tst_resp_clear(&r);
    /* the same path with a trailing slash is the same route */
    ck_assert_int_eq(tst_get(B.port, "/healthz/", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/readyz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ready");
    tst_resp_clear(&r);
}
END_TEST

START_TEST(not_found_and_method)
{
    tst_resp_t r;
    char v[64];
    ck_assert_int_eq(tst_get(B.port, "/governance/nothing/", NULL, &r), 0);
    assert_error(&r, 404, "not_found");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_http(B.port, "DELETE", "/healthz", NULL, NULL, 0, &r), 0);
    assert_error(&r, 405, "method_not_allowed");
    ck_assert_str_eq(tst_resp_header(&r, "allow", v, sizeof v), "GET");
    tst_resp_clear(&r);
}
END_TEST

START_TEST(well_known_keys)
{
    tst_resp_t r;
    uint8_t pub[64], md[32];
    char id[17];
    unsigned mdlen;
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *keys = json_object_get(r.json, "keys");
    ck_assert_int_eq(json_array_size(keys), 1);
    json_t *k = json_array_get(keys, 0);
    ck_assert_str_eq(json_string_value(json_object_get(k, "alg")), "Ed25519");
    const char *pk = json_string_value(json_object_get(k, "public_key"));
    ck_assert_int_eq(brk_b64url_decode(pk, strlen(pk), pub, sizeof pub), 32);
    /* key id = first 16 hex digits of SHA-256 of the raw key, recomputed with OpenSSL */
    ck_assert_int_eq(EVP_Digest(pub, 32, md, &mdlen, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 8; i++)
        snprintf(id + 2 * i, 3, "%02x", md[i]);
    ck_assert_str_eq(json_string_value(json_object_get(k, "key_id")), id);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "current_key_id")), id);
    tst_resp_clear(&r);
}
END_TEST

START_TEST(auth_errors)
{
    tst_resp_t r;
    const char *body = "{\"roles\":[\"issuer\"]}";
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", NULL, body, &r), 0);
    assert_error(&r, 401, "missing_token");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", "not-a-token", body, &r), 0);
    assert_error(&r, 401, "invalid_token");
    tst_resp_clear(&r);
    /* a well-formed token whose secret is wrong */
    char forged[256];
    snprintf(forged, sizeof forged, "%s", ADMIN);
    char *last = strrchr(forged, '.') + 1;
    last[0] = last[0] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", forged, body, &r), 0);
    assert_error(&r, 401, "invalid_token");
    tst_resp_clear(&r);
    /* a real key without the role */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ISSUER, body, &r), 0);
    assert_error(&r, 403, "forbidden");
    tst_resp_clear(&r);
    /* a real key naming another tenant */
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nX-GSAP-Tenant: other\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, "GET", "/metrics", hdr, NULL, 0, &r), 0);
    assert_error(&r, 403, "tenant_forbidden");
    tst_resp_clear(&r);
}
END_TEST

START_TEST(keys_route_creates_working_keys)
{
    tst_resp_t r;
    ck_assert_int_eq(
        tst_post_json(B.port, "/admin/keys", ADMIN, "{\"roles\":[\"admin\"],\"name\":\"ops\"}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *tok = strdup(json_string_value(json_object_get(r.json, "token")));
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "tenant_id")), "acme");
    tst_resp_clear(&r);
    /* the new admin key works; the row holds only the hash of its secret */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", tok, "{\"roles\":[\"auditor\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    PGconn *c = tst_pg_connect("it_http");
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM api_keys WHERE tenant_id='acme'"), 4);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM api_keys WHERE secret_hash LIKE '%%%s%%'",
             strrchr(tok, '.') + 1);
    ck_assert_int_eq(tst_pg_long(c, sql), 0);
    PQfinish(c);
    /* bad values: an unknown role is 422, a wrong type 400, an unknown field 400 */
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", tok, "{\"roles\":[\"king\"]}", &r), 0);
    assert_error(&r, 422, "invalid_role");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", tok, "{\"roles\":\"admin\"}", &r), 0);
    assert_error(&r, 400, "invalid_field");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", tok, "{\"roles\":[\"admin\"],\"x\":1}", &r), 0);
    assert_error(&r, 400, "unknown_field");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", tok, "{\"roles\":[\"admin\"", &r), 0);
    assert_error(&r, 400, "invalid_json");
    tst_resp_clear(&r);
    free(tok);
}
END_TEST

/* A valid body padded with spaces to exactly n bytes. */
static char *padded_body(size_t n)
{
    const char *json = "{\"roles\":[\"auditor\"]}";
    char *b = malloc(n + 1);
    memset(b, ' ', n);
    memcpy(b, json, strlen(json));
    b[n] = 0;
    return b;
}

START_TEST(body_limit_boundary)
{
    tst_resp_t r;
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n", ADMIN);
    char *ok = padded_body(BRK_MAX_BODY);
    ck_assert_int_eq(tst_http(B.port, "POST", "/admin/keys", hdr, ok, BRK_MAX_BODY, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    free(ok);
    char *big = padded_body(BRK_MAX_BODY + 1);
    ck_assert_int_eq(tst_http(B.port, "POST", "/admin/keys", hdr, big, BRK_MAX_BODY + 1, &r), 0);
    assert_error(&r, 413, "payload_too_large");
    tst_resp_clear(&r);
    free(big);
    /* nothing was created by the refused request: 3 keys (2 from setup, 1 above) */
    PGconn *c = tst_pg_connect("it_http");
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM api_keys"), 3);
    PQfinish(c);
}
END_TEST

static char *nested(int depth)
{
    /* {"roles":["auditor"],"x": [[...]]} with depth levels in all */
    size_t n = (size_t)depth * 2 + 64;
    char *b = malloc(n), *p = b;
    p += snprintf(p, n, "{\"roles\":[\"auditor\"],\"x\":");
    for (int i = 1; i < depth; i++)
        *p++ = '[';
    for (int i = 1; i < depth; i++)
        *p++ = ']';
    *p++ = '}';
    *p = 0;
    return b;
}

START_TEST(json_depth_boundary)
{
    tst_resp_t r;
    char *ok = nested(BRK_MAX_JSON_DEPTH), *deep = nested(BRK_MAX_JSON_DEPTH + 1);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN, ok, &r), 0);
    assert_error(&r, 400, "unknown_field"); /* parsed: the handler saw the field */
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_post_json(B.port, "/admin/keys", ADMIN, deep, &r), 0);
    assert_error(&r, 400, "json_too_deep");
    tst_resp_clear(&r);
    free(ok);
    free(deep);
}
END_TEST

static char *headers(int count, size_t value_len)
{
    size_t n = (size_t)count * (value_len + 32) + 1;
    char *h = malloc(n), *p = h;
    *p = 0;
    for (int i = 0; i < count; i++) {
        p += snprintf(p, n - (size_t)(p - h), "X-F%d: ", i);
        memset(p, 'v', value_len);
        p += value_len;
        p += snprintf(p, n - (size_t)(p - h), "\r\n");
    }
    return h;
}

START_TEST(header_limits)
{
    tst_resp_t r;
    /* tst_http adds Host and Connection: BRK_MAX_HEADERS - 2 of ours make exactly the limit */
    char *ok = headers(BRK_MAX_HEADERS - 2, 8), *many = headers(BRK_MAX_HEADERS - 1, 8);
    ck_assert_int_eq(tst_http(B.port, "GET", "/healthz", ok, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_http(B.port, "GET", "/healthz", many, NULL, 0, &r), 0);
    assert_error(&r, 431, "headers_too_large");
    tst_resp_clear(&r);
    char *big = headers(3, BRK_MAX_HEADER_BYTES / 2);
    ck_assert_int_eq(tst_http(B.port, "GET", "/healthz", big, NULL, 0, &r), 0);
    assert_error(&r, 431, "headers_too_large");
    tst_resp_clear(&r);
    free(ok);
    free(many);
    free(big);
}
END_TEST

START_TEST(metrics_local_and_roles)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, "/healthz", NULL, &r), 0);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/metrics", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "gsap_http_requests_total{route=\"GET /healthz\",status=\"200\"}"));
    ck_assert_ptr_nonnull(strstr(r.body, "gsap_http_request_duration_seconds_bucket{route=\"GET /healthz\",le=\"+Inf\"}"));
    ck_assert_ptr_nonnull(strstr(r.body, "gsap_db_connections_ready{loop=\"0\"} 1"));
    tst_resp_clear(&r);
    /* a token that lacks admin is refused even from loopback */
    ck_assert_int_eq(tst_get(B.port, "/metrics", ISSUER, &r), 0);
    assert_error(&r, 403, "forbidden");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/metrics", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
}
END_TEST

START_TEST(graceful_stop)
{
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    char *log = tst_broker_log(&B);
    ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"stopped\",\"status\":\"ok\""));
    /* request lines carry method, path, status, request id; never the token */
    ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"request\",\"method\":\"GET\",\"path\":\"/healthz\""));
    ck_assert_ptr_null(strstr(log, strrchr(ADMIN, '.') + 1));
    free(log);
}
END_TEST

/* A load balancer keeps idle HTTP/1.1 keep-alive connections open to every broker. SIGTERM
 * must still end in a clean exit 0, promptly, with those connections closed by the broker
 * (h2o leaves idle HTTP/1 connections open until their timeout; disposing of a context
 * that still has them aborted the process). */
START_TEST(graceful_stop_with_idle_keepalive)
{
    enum { IDLE = 8 };
    int fds[IDLE];
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < IDLE; i++) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(B.port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(fds[i], (void *)&a, sizeof a), 0);
        ck_assert_int_eq(write(fds[i], req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        char buf[1024];
        ssize_t n = read(fds[i], buf, sizeof buf - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = 0;
        ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200"));
        ck_assert_ptr_null(strcasestr(buf, "connection: close")); /* kept alive */
    }
    time_t t0 = time(NULL);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    ck_assert_int_le(time(NULL) - t0, 10); /* not the 30 s grace: the idle ones end at once */
    for (int i = 0; i < IDLE; i++) {
        char c;
        ck_assert_int_eq(read(fds[i], &c, 1), 0); /* the broker closed it */
        close(fds[i]);
    }
    char *log = tst_broker_log(&B);
    ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"stopped\",\"status\":\"ok\""));
    free(log);
}
END_TEST

/* ---- a private cluster that the test stops and starts ---- */

#define OUTAGE_PORT "55471"

static int sh(const char *fmt, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, getenv("GSAP_SOURCE_DIR"), arg);
    return system(cmd);
}

START_TEST(readyz_follows_database)
{
    char dir[] = "/tmp/gsap-out-XXXXXX", ci[256];
    tst_broker_t b = {0};
    tst_resp_t r;
    char v[16];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh start %s " OUTAGE_PORT " >/dev/null", dir), 0);
    snprintf(ci, sizeof ci, "host=%s port=" OUTAGE_PORT " user=postgres dbname=postgres", dir);
    ck_assert_int_eq(tst_broker_start(&b, ci, NULL), 0);
    char *admin = tst_keys_create(&b, "acme", "admin");
    ck_assert_int_eq(tst_get(b.port, "/readyz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);

    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh stop %s " OUTAGE_PORT " >/dev/null", dir), 0);
    ck_assert_int_eq(tst_get(b.port, "/readyz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(tst_resp_header(&r, "retry-after", v, sizeof v), "1");
    tst_resp_clear(&r);
    /* an authenticated request needs the database too: 503, no hang, no crash */
    ck_assert_int_eq(tst_post_json(b.port, "/admin/keys", admin, "{\"roles\":[\"issuer\"]}", &r), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_ptr_nonnull(tst_resp_header(&r, "retry-after", v, sizeof v));
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(b.port, "/healthz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);

    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh resume %s " OUTAGE_PORT " >/dev/null", dir), 0);
    int status = 0;
    for (int i = 0; i < 200 && status != 200; i++) {
        ck_assert_int_eq(tst_get(b.port, "/readyz", NULL, &r), 0);
        status = r.status;
        tst_resp_clear(&r);
        if (status != 200)
            usleep(100 * 1000);
    }
    ck_assert_int_eq(status, 200);
    /* both loops reconnect; a normal request succeeds on either */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(tst_post_json(b.port, "/admin/keys", admin, "{\"roles\":[\"issuer\"]}", &r), 0);
        if (r.status == 503) { /* the other loop may still be reconnecting */
            tst_resp_clear(&r);
            usleep(600 * 1000);
            i--;
            continue;
        }
        ck_assert_int_eq(r.status, 200);
        tst_resp_clear(&r);
    }
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    sh("%s/tests/pg_tmp.sh stop %s " OUTAGE_PORT " >/dev/null", dir);
    sh("rm -rf %.0s%s", dir);
    free(admin);
}
END_TEST

/* A port nothing listens on right now (bind to 0, read it back, close). */
START_TEST(tls_http2)
{
    unsigned short port;
    ck_assert_int_eq(tst_free_port(&port), 0);
    char dir[] = "/tmp/gsap-tls-XXXXXX", cmd[1024], env1[300], env2[300];
    tst_broker_t b = {0};
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=localhost -keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
             dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(env1, sizeof env1, "GSAP_TLS_CERT=%s/cert.pem", dir);
    snprintf(env2, sizeof env2, "GSAP_TLS_KEY=%s/key.pem", dir);
    const char *env[] = {env1, env2, "GSAP_TLS_HEALTHCHECK_SKIP=1", NULL};
    /* tst_broker_start polls plain HTTP; with TLS it cannot, so run the binary by hand */
    (void)env;
    snprintf(cmd, sizeof cmd,
             "cd %s && GSAP_DATABASE_URL='%s' GSAP_LISTEN=127.0.0.1:%u GSAP_DATA_DIR=%s "
             "GSAP_TLS_CERT=%s/cert.pem GSAP_TLS_KEY=%s/key.pem %s serve >%s/log 2>&1 & echo $! >%s/pid",
             dir, tst_pg_conninfo("it_http"), port, dir, dir, dir, getenv("GSAP_BROKER_BIN"), dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    char out[64] = "";
    for (int i = 0; i < 100 && strcmp(out, "2 200") != 0; i++) {
        usleep(100 * 1000);
        snprintf(cmd, sizeof cmd,
                 "curl -sk --http2 -o /dev/null -w '%%{http_version} %%{http_code}' "
                 "https://127.0.0.1:%u/healthz", port);
        FILE *p = popen(cmd, "r");
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        pclose(p);
    }
    ck_assert_str_eq(out, "2 200");
    snprintf(cmd, sizeof cmd, "kill -TERM $(cat %s/pid); sleep 1; rm -rf %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    (void)b;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_http");
    TCase *tc = tcase_create("front");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, health_and_request_id);
    tcase_add_test(tc, not_found_and_method);
    tcase_add_test(tc, well_known_keys);
    tcase_add_test(tc, auth_errors);
    tcase_add_test(tc, keys_route_creates_working_keys);
    tcase_add_test(tc, body_limit_boundary);
    tcase_add_test(tc, json_depth_boundary);
    tcase_add_test(tc, header_limits);
    tcase_add_test(tc, metrics_local_and_roles);
    tcase_add_test(tc, graceful_stop);
    tcase_add_test(tc, graceful_stop_with_idle_keepalive);
    tcase_add_test(tc, tls_http2);
    suite_add_tcase(s, tc);
    TCase *out = tcase_create("outage");
    tcase_set_timeout(out, 180);
    tcase_add_test(out, readyz_follows_database);
    suite_add_tcase(s, out);
    return tst_run(s);
}
