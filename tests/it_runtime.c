/*
 * it_runtime: the function runtime against the real binary and PostgreSQL: the Chronicle
 * emitter with a webhook receiver that is down and then up (CloudEvents whose id is the event
 * CID, recomputed by tests/npm/gsap_oracle.mjs), retries into dead letters and their replay
 * over the admin routes and metrics, the AC expiry job, a graceful stop with a webhook in
 * flight, backfill when a function is enabled late, two brokers on one database delivering
 * each event exactly once, a synchronous run killed with the broker (its attempt still counts,
 * and repeated deaths end in a dead letter), and a database outage.
 *
 * The receiver is a thread of the test with a listening socket: it records every request
 * (content type, parsed body) and answers a configurable status, or never answers ("hang").
 * Each test makes a fresh database, so its rows and counts are its own.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define DB "it_runtime"
#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define OTHER H("4")
#define TS_SQL "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define RECV_MAX_REQ (256 * 1024)
#define RECV_MAX_HUNG 128
#define OUTAGE_PORT "55473" /* names the unix socket of the outage test's own cluster */
/* The emitter's runs only: other functions (billing) get runs for the same events. */
#define RUNS "(SELECT * FROM fn_runs WHERE function = 'chronicle_emitter') er"

/* ---- small helpers ----------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long scalar_long(const char *sql)
{
    PGconn *c = tst_pg_connect(DB);
    long v = tst_pg_long(c, sql);
    PQfinish(c);
    return v;
}

/* Polls sql (a count) every 100 ms until it equals want or timeout_s pass; returns the last. */
static long wait_long(const char *sql, long want, double timeout_s)
{
    double end = now_s() + timeout_s;
    long v;
    while ((v = scalar_long(sql)) != want && now_s() < end)
        usleep(100 * 1000);
    return v;
}

/* ---- the webhook receiver ---------------------------------------------------------------- */

typedef struct recv {
    unsigned short port;
    int lfd;
    pthread_t th;
    int running;
    pthread_mutex_t mu;
    int status; /* answered to every request; 0: never answer (hang) */
    int stop;
    json_t *got; /* [{"content_type", "body", "status"}] */
    int hung[RECV_MAX_HUNG];
    int nhung;
} recv_t;

static void recv_init(recv_t *r, int status)
{
    memset(r, 0, sizeof *r);
    ck_assert_int_eq(tst_free_port(&r->port), 0);
    r->lfd = -1;
    r->status = status;
    r->got = json_array();
    pthread_mutex_init(&r->mu, NULL);
}

/* Reads one request from fd; records it; answers unless hanging (then keeps fd). */
static void recv_one(recv_t *r, int fd)
{
    char *buf = malloc(RECV_MAX_REQ + 1), ctype[128] = "";
    size_t len = 0, need = 0, head = 0;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (len < RECV_MAX_REQ) {
        ssize_t n = recv(fd, buf + len, RECV_MAX_REQ - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (end && head == 0) {
            head = (size_t)(end - buf) + 4;
            for (char *l = buf; l < end; l = strstr(l, "\r\n") + 2) {
                if (strncasecmp(l, "content-length:", 15) == 0)
                    need = strtoul(l + 15, NULL, 10);
                if (strncasecmp(l, "content-type:", 13) == 0)
                    sscanf(l + 13, " %127[^\r]", ctype);
            }
        }
        if (head && len >= head + need)
            break;
    }
    buf[len] = 0;
    pthread_mutex_lock(&r->mu);
    int status = r->status;
    json_t *body = head ? json_loads(buf + head, 0, NULL) : NULL;
    json_array_append_new(r->got, json_pack("{s:s,s:o,s:i}", "content_type", ctype, "body",
                                            body ? body : json_null(), "status", status));
    if (status == 0 && r->nhung < RECV_MAX_HUNG) {
        r->hung[r->nhung++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&r->mu);
    if (fd >= 0) {
        char resp[128];
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
        ssize_t w = send(fd, resp, (size_t)n, MSG_NOSIGNAL);
        (void)w;
        close(fd);
    }
    free(buf);
}

static void *recv_main(void *arg)
{
    recv_t *r = arg;
    for (;;) {
        struct pollfd p = {r->lfd, POLLIN, 0};
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        if (poll(&p, 1, 100) == 1) {
            int fd = accept(r->lfd, NULL, NULL);
            if (fd >= 0)
                recv_one(r, fd);
        }
    }
}

/* Starts listening on r->port (it was only reserved until now). */
static void recv_start(recv_t *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(r->port)};
    int one = 1;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(r->lfd, 64), 0);
    r->stop = 0;
    ck_assert_int_eq(pthread_create(&r->th, NULL, recv_main, r), 0);
    r->running = 1;
}

static void recv_set_status(recv_t *r, int status)
{
    pthread_mutex_lock(&r->mu);
    r->status = status;
    pthread_mutex_unlock(&r->mu);
}

static void recv_clear(recv_t *r)
{
    if (r->running) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->th, NULL);
        r->running = 0;
    }
    if (r->lfd >= 0)
        close(r->lfd);
    for (int i = 0; i < r->nhung; i++)
        close(r->hung[i]);
    json_decref(r->got);
    pthread_mutex_destroy(&r->mu);
}

/* A snapshot of what arrived (caller decrefs). */
static json_t *recv_got(recv_t *r)
{
    pthread_mutex_lock(&r->mu);
    json_t *copy = json_deep_copy(r->got);
    pthread_mutex_unlock(&r->mu);
    return copy;
}

/* How many requests carried a CloudEvent of ce_type (NULL: any) answered with status (0: any). */
static size_t recv_count(recv_t *r, const char *ce_type, int status)
{
    json_t *got = recv_got(r), *g;
    size_t i, n = 0;
    json_array_foreach(got, i, g)
    {
        const char *t = tst_str(json_object_get(g, "body"), "type");
        int st = (int)json_integer_value(json_object_get(g, "status"));
        if ((ce_type == NULL || (t && strcmp(t, ce_type) == 0)) && (status == 0 || st == status))
            n++;
    }
    json_decref(got);
    return n;
}

static int wait_recv(recv_t *r, const char *ce_type, int status, size_t want, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (recv_count(r, ce_type, status) < want && now_s() < end)
        usleep(100 * 1000);
    return recv_count(r, ce_type, status) >= want;
}

/* ---- broker helpers ---------------------------------------------------------------------- */

static json_t *authorize(unsigned short port, const char *token, const char *extra)
{
    tst_resp_t r;
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}%s%s}",
                     CMD, CORPUS, PARAMS, extra ? "," : "", extra ? extra : "");
    ck_assert_int_eq(tst_post_json(port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    return j;
}

static json_t *complete(unsigned short port, const char *token, const char *ctx)
{
    tst_resp_t r;
    char *body =
        tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
            "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":\"2030-01-01T00:00:00Z\","
            "\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
            "\"chronicle\":{\"session_id\":\"chr-1\",\"behavior_state\":\"verified\","
            "\"merkle_root\":\"%s\"}}",
            ctx, CMD, CORPUS, PARAMS, OTHER);
    ck_assert_int_eq(tst_post_json(port, "/governance/complete/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "complete: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    return j;
}

/* The event CID recomputed by the independent oracle from the stored row. */
static char *oracle_event_cid(const char *where)
{
    char path[] = "/tmp/gsap-ev-XXXXXX", line[256] = "";
    char *sql = tst_fmt("SELECT json_build_object('tenant_id', tenant_id, 'event_id', event_id, "
                    "'type', type, 'context_id', context_id, 'payload', payload, "
                    "'created_at', " TS_SQL ")::text FROM events WHERE %s",
                    where);
    PGconn *c = tst_pg_connect(DB);
    char *obj = tst_pg_scalar(c, sql);
    PQfinish(c);
    ck_assert_ptr_nonnull(obj);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, obj, strlen(obj)), (ssize_t)strlen(obj));
    close(fd);
    char *cmd = tst_fmt("node %s/tests/npm/gsap_oracle.mjs cid %s", getenv("GSAP_SOURCE_DIR"), path);
    FILE *p = popen(cmd, "r");
    size_t n = fread(line, 1, sizeof line - 1, p);
    line[n] = 0;
    ck_assert_int_eq(pclose(p), 0);
    line[strcspn(line, "\n")] = 0;
    unlink(path);
    free(cmd), free(sql), free(obj);
    return strdup(line);
}

/* Every delivery of ce_type carries the same CloudEvent: the right id, type, subject, time,
 * data and headers. Returns the number of deliveries checked. */
static size_t check_cloudevents(recv_t *rc, const char *ce_type, const char *event_type,
                                const char *ctx, unsigned short broker_port)
{
    char *where = tst_fmt("type = '%s' AND context_id = '%s'", event_type, ctx);
    char *cid = oracle_event_cid(where);
    char *sql = tst_fmt("SELECT " TS_SQL " FROM events WHERE %s", where);
    char *sql2 = tst_fmt("SELECT payload::text FROM events WHERE %s", where);
    char *source = tst_fmt("http://127.0.0.1:%u", broker_port);
    PGconn *c = tst_pg_connect(DB);
    char *created = tst_pg_scalar(c, sql), *payload = tst_pg_scalar(c, sql2);
    PQfinish(c);
    json_t *pj = json_loads(payload, 0, NULL), *got = recv_got(rc), *g;
    size_t i, n = 0;
    json_array_foreach(got, i, g)
    {
        json_t *ce = json_object_get(g, "body");
        if (!tst_str(ce, "type") || strcmp(tst_str(ce, "type"), ce_type) != 0 || !tst_str(ce, "subject") ||
            strcmp(tst_str(ce, "subject"), ctx) != 0)
            continue;
        n++;
        ck_assert_str_eq(tst_str(g, "content_type"), "application/cloudevents+json");
        ck_assert_str_eq(tst_str(ce, "specversion"), "1.0");
        ck_assert_str_eq(tst_str(ce, "id"), cid);
        ck_assert_str_eq(tst_str(ce, "time"), created);
        ck_assert_str_eq(tst_str(ce, "source"), source);
        ck_assert_str_eq(tst_str(ce, "datacontenttype"), "application/json");
        ck_assert_str_eq(tst_str(ce, "gsaptenant"), "acme");
        ck_assert_msg(json_equal(json_object_get(ce, "data"), pj), "data differs from the payload");
    }
    json_decref(got), json_decref(pj);
    free(where), free(cid), free(sql), free(sql2), free(source), free(created), free(payload);
    return n;
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(receiver_down_then_up)
{
    tst_broker_t b = {0};
    recv_t rc;
    recv_init(&rc, 200);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/hook?x=1", rc.port);
    const char *env[] = {url, "GSAP_FN_BACKOFF_MS=100", "GSAP_FN_MAX_ATTEMPTS=1000",
                         "GSAP_FN_POLL_MS=200", NULL};
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer"),
         *exec = tst_keys_create(&b, "acme", "executor");
    json_t *ac = authorize(b.port, issuer, NULL);
    const char *ctx = tst_str(ac, "context_id");
    json_t *cr = complete(b.port, exec, ctx);

    /* the receiver is down: the runs are tried and retried, never done */
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " JOIN events e USING (tenant_id, "
                               "event_id) WHERE e.type = 'GSAP_CR_RECEIVED' AND er.attempts > 1",
                               1, 10),
                     1);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NOT NULL"), 0);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE dead_at IS NOT NULL"), 0);

    /* up: both arrive, with the event CID as a stable id */
    recv_start(&rc);
    ck_assert(wait_recv(&rc, "dev.gsap.ac.issued", 200, 1, 20));
    ck_assert(wait_recv(&rc, "dev.gsap.cr.received", 200, 1, 20));
    ck_assert_uint_ge(check_cloudevents(&rc, "dev.gsap.ac.issued", "GSAP_AC_ISSUED", ctx, b.port),
                      1);
    ck_assert_uint_ge(
        check_cloudevents(&rc, "dev.gsap.cr.received", "GSAP_CR_RECEIVED", ctx, b.port), 1);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NULL", 0, 10), 0);
    /* the two events have different ids */
    json_t *got = recv_got(&rc), *g;
    size_t i;
    const char *id_ac = NULL, *id_cr = NULL;
    json_array_foreach(got, i, g)
    {
        json_t *ce = json_object_get(g, "body");
        if (strcmp(tst_str(ce, "type"), "dev.gsap.ac.issued") == 0)
            id_ac = tst_str(ce, "id");
        else
            id_cr = tst_str(ce, "id");
    }
    ck_assert_str_ne(id_ac, id_cr);
    json_decref(got);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    recv_clear(&rc);
    json_decref(ac), json_decref(cr);
    free(url), free(issuer), free(exec);
}
END_TEST

static long metric(unsigned short port, const char *name)
{
    tst_resp_t r;
    long v = -1;
    ck_assert_int_eq(tst_get(port, "/metrics", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    for (char *l = r.body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, name, strlen(name)) == 0 && l[strlen(name)] == ' ')
            v = strtol(l + strlen(name) + 1, NULL, 10);
    tst_resp_clear(&r);
    return v;
}

static long wait_metric(unsigned short port, const char *name, long want, double timeout_s)
{
    double end = now_s() + timeout_s;
    long v;
    while ((v = metric(port, name)) != want && now_s() < end)
        usleep(100 * 1000);
    return v;
}

static int replay(unsigned short port, const char *token, const char *body, tst_resp_t *r)
{
    return tst_post_json(port, "/admin/functions/dead-letters/replay", token, body, r);
}

START_TEST(dead_letters_and_replay)
{
    tst_broker_t b = {0};
    tst_resp_t r;
    recv_t rc;
    recv_init(&rc, 500);
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    const char *env[] = {url, "GSAP_FN_BACKOFF_MS=100", "GSAP_FN_MAX_ATTEMPTS=2",
                         "GSAP_FN_POLL_MS=200", NULL};
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer"),
         *admin = tst_keys_create(&b, "acme", "admin");
    char *other = tst_keys_create(&b, "globex", "admin");
    json_t *ac = authorize(b.port, issuer, NULL);
    long ev = scalar_long("SELECT event_id FROM events WHERE type = 'GSAP_AC_ISSUED'");

    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE dead_at IS NOT NULL", 1, 15),
                     1);
    ck_assert_int_eq(scalar_long("SELECT attempts FROM " RUNS), 2);
    ck_assert_uint_eq(recv_count(&rc, "dev.gsap.ac.issued", 500), 2);

    /* listed for its tenant only */
    ck_assert_int_eq(tst_get(b.port, "/admin/functions/dead-letters/", admin, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *list = json_object_get(r.json, "dead_letters");
    ck_assert_int_eq(json_array_size(list), 1);
    json_t *d = json_array_get(list, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "event_id")), ev);
    ck_assert_str_eq(tst_str(d, "function"), "chronicle_emitter");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "attempts")), 2);
    ck_assert_str_eq(tst_str(d, "last_error"), "webhook answered 500");
    ck_assert_str_eq(tst_str(d, "type"), "GSAP_AC_ISSUED");
    ck_assert_str_eq(tst_str(d, "context_id"), tst_str(ac, "context_id"));
    ck_assert_int_eq(strlen(tst_str(d, "dead_at")), 27); /* 2026-11-23T10:00:00.123456Z */
    ck_assert(json_is_false(json_object_get(r.json, "truncated")));
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(b.port, "/admin/functions/dead-letters", other, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "dead_letters")), 0);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(b.port, "/admin/functions/dead-letters", issuer, &r), 0);
    ck_assert_int_eq(r.status, 403);
    tst_resp_clear(&r);
    ck_assert_int_eq(wait_metric(b.port, "gsap_fn_dead_letters", 1, 5), 1);
    ck_assert_int_ge(metric(b.port, "gsap_fn_failures_total{function=\"chronicle_emitter\"}"), 2);

    /* replay: bad bodies, another tenant, then the real thing */
    char *body = tst_fmt("{\"event_id\":%ld,\"function\":\"chronicle_emitter\"}", ev);
    const struct {
        const char *body;
        int status;
    } bad[] = {
        {"{\"event_id\":\"1\",\"function\":\"chronicle_emitter\"}", 400},
        {"{\"function\":\"chronicle_emitter\"}", 400},
        {"{\"event_id\":1}", 400},
        {"{\"event_id\":0,\"function\":\"chronicle_emitter\"}", 422},
        {"{\"event_id\":1,\"function\":\"chronicle_emitter\",\"x\":1}", 400},
        {"{\"event_id\":999999,\"function\":\"chronicle_emitter\"}", 404},
        {"{\"event_id\":1,\"function\":\"nope\"}", 404},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(replay(b.port, admin, bad[i].body, &r), 0);
        ck_assert_msg(r.status == bad[i].status, "%s: %d %s", bad[i].body, r.status, r.body);
        tst_resp_clear(&r);
    }
    ck_assert_int_eq(replay(b.port, other, body, &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "error"), "code"), "dead_letter_not_found");
    tst_resp_clear(&r);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE dead_at IS NOT NULL"), 1);

    recv_set_status(&rc, 200);
    ck_assert_int_eq(replay(b.port, admin, body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "status"), "pending");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "event_id")), ev);
    tst_resp_clear(&r);
    ck_assert(wait_recv(&rc, "dev.gsap.ac.issued", 200, 1, 10));
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NOT NULL", 1, 10),
                     1);
    ck_assert_int_eq(scalar_long("SELECT attempts FROM " RUNS), 1);
    ck_assert_int_eq(tst_get(b.port, "/admin/functions/dead-letters", admin, &r), 0);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "dead_letters")), 0);
    tst_resp_clear(&r);
    ck_assert_int_eq(replay(b.port, admin, body, &r), 0);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    ck_assert_int_eq(wait_metric(b.port, "gsap_fn_dead_letters", 0, 5), 0);
    ck_assert_int_eq(wait_metric(b.port, "gsap_fn_queue_depth", 0, 5), 0);

    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    recv_clear(&rc);
    json_decref(ac);
    free(url), free(issuer), free(admin), free(other), free(body);
}
END_TEST

START_TEST(ac_expiry_job)
{
    tst_broker_t b = {0};
    tst_resp_t r;
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), NULL), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer"),
         *exec = tst_keys_create(&b, "acme", "executor");
    json_t *ac = authorize(b.port, issuer, "\"ttl_seconds\":1");
    json_t *used = authorize(b.port, issuer, "\"ttl_seconds\":1");
    json_t *cr = complete(b.port, exec, tst_str(used, "context_id"));
    json_t *lasting = authorize(b.port, issuer, "\"ttl_seconds\":600");
    char *sql = tst_fmt("SELECT count(*) FROM acs WHERE context_id = '%s' AND status = 'expired'",
                    tst_str(ac, "context_id"));
    ck_assert_int_eq(wait_long(sql, 1, 12), 1);
    /* a consumed AC and a live one are left alone */
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM acs WHERE status = 'expired'"), 1);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM acs WHERE status = 'consumed'"), 1);
    char *path = tst_fmt("/governance/authorize/%s/", tst_str(ac, "context_id"));
    ck_assert_int_eq(tst_get(b.port, path, issuer, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(tst_str(r.json, "status"), "expired");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    json_decref(ac), json_decref(used), json_decref(cr), json_decref(lasting);
    free(issuer), free(exec), free(sql), free(path);
}
END_TEST

START_TEST(graceful_stop_with_webhook_in_flight)
{
    tst_broker_t b = {0};
    recv_t rc;
    recv_init(&rc, 0); /* accepts and never answers */
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    const char *env[] = {url, "GSAP_FN_POLL_MS=200", NULL};
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer");
    json_t *ac = authorize(b.port, issuer, NULL);
    ck_assert(wait_recv(&rc, NULL, 0, 1, 10));
    double t0 = now_s();
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    /* it waited for the run (the webhook timeout, 5 s), not for the 30 s grace */
    ck_assert(now_s() - t0 < 15);
    char *log = tst_broker_log(&b);
    ck_assert_ptr_nonnull(strstr(log, "\"msg\":\"function runtime stopped\""));
    ck_assert_ptr_null(strstr(log, "asynchronous runs in flight"));
    free(log);
    /* the interrupted delivery is recorded as a failed attempt, to be retried */
    PGconn *c = tst_pg_connect(DB);
    char *err = tst_pg_scalar(c, "SELECT last_error FROM " RUNS);
    ck_assert_str_eq(err, "webhook timed out");
    ck_assert_int_eq(
        tst_pg_long(c, "SELECT count(*) FROM " RUNS " WHERE done_at IS NULL AND attempts = 1"), 1);
    PQfinish(c);
    tst_broker_clear(&b);
    recv_clear(&rc);
    json_decref(ac);
    free(url), free(issuer), free(err);
}
END_TEST

START_TEST(backfill_when_enabled_later)
{
    tst_broker_t a = {0}, b = {0};
    recv_t rc;
    const char *ci = tst_pg_createdb(DB);
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s", ci);
    ck_assert_int_eq(tst_broker_start(&a, conninfo, NULL), 0);
    char *issuer = tst_keys_create(&a, "acme", "issuer");
    json_t *ac = authorize(a.port, issuer, NULL);
    ck_assert_int_eq(tst_broker_stop(&a), 0);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS), 0);

    recv_init(&rc, 200);
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    const char *env[] = {url, "GSAP_FN_POLL_MS=200", NULL};
    ck_assert_int_eq(tst_broker_start(&b, conninfo, env), 0);
    ck_assert(wait_recv(&rc, "dev.gsap.ac.issued", 200, 1, 10));
    ck_assert_uint_eq(check_cloudevents(&rc, "dev.gsap.ac.issued", "GSAP_AC_ISSUED",
                                        tst_str(ac, "context_id"), b.port),
                      1);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NOT NULL", 1, 5), 1);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&a), tst_broker_clear(&b);
    recv_clear(&rc);
    json_decref(ac);
    free(url), free(issuer);
}
END_TEST

#define INFLIGHT_MAX 64 /* FN_ASYNC_MAX_INFLIGHT */
#define INFLIGHT_ACS (INFLIGHT_MAX + 6)

/* At most FN_ASYNC_MAX_INFLIGHT webhooks at once: the events exist before the emitter is
 * enabled (backfill), the receiver never answers, so the runtime starts exactly that many and
 * leaves the rest pending, unleased. */
START_TEST(async_inflight_bound)
{
    tst_broker_t a = {0}, b = {0};
    recv_t rc;
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s", tst_pg_createdb(DB));
    ck_assert_int_eq(tst_broker_start(&a, conninfo, NULL), 0);
    char *issuer = tst_keys_create(&a, "acme", "issuer");
    for (int i = 0; i < INFLIGHT_ACS; i++)
        json_decref(authorize(a.port, issuer, NULL));
    ck_assert_int_eq(tst_broker_stop(&a), 0);

    recv_init(&rc, 0);
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    const char *env[] = {url, "GSAP_FN_POLL_MS=100", NULL};
    ck_assert_int_eq(tst_broker_start(&b, conninfo, env), 0);
    ck_assert(wait_recv(&rc, NULL, 0, INFLIGHT_MAX, 4));
    usleep(500 * 1000); /* well inside the 5 s webhook timeout: nothing may have ended */
    ck_assert_uint_eq(recv_count(&rc, NULL, 0), INFLIGHT_MAX);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE attempts = 1"), INFLIGHT_MAX);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE attempts = 0"),
                     INFLIGHT_ACS - INFLIGHT_MAX);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&a), tst_broker_clear(&b);
    recv_clear(&rc);
    free(url), free(issuer);
}
END_TEST

#define TWO_BROKER_ACS 20

START_TEST(two_brokers_exactly_once)
{
    tst_broker_t a = {0}, b = {0};
    recv_t rc;
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "%s", tst_pg_createdb(DB));
    recv_init(&rc, 200);
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    /* a short poll so both brokers keep competing for the same pairs */
    const char *env[] = {url, "GSAP_FN_POLL_MS=50", "GSAP_FN_BATCH=2", NULL};
    ck_assert_int_eq(tst_broker_start(&a, conninfo, env), 0);
    ck_assert_int_eq(tst_broker_start(&b, conninfo, env), 0);
    char *issuer = tst_keys_create(&a, "acme", "issuer"),
         *exec = tst_keys_create(&a, "acme", "executor");
    for (int i = 0; i < TWO_BROKER_ACS; i++) {
        unsigned short port = i % 2 ? a.port : b.port;
        json_t *ac = authorize(port, issuer, NULL);
        json_t *cr = complete(i % 3 ? a.port : b.port, exec, tst_str(ac, "context_id"));
        json_decref(ac), json_decref(cr);
    }
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NOT NULL",
                               2 * TWO_BROKER_ACS, 30),
                     2 * TWO_BROKER_ACS);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS), 2 * TWO_BROKER_ACS);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE attempts <> 1"), 0);
    /* the receiver saw every event exactly once */
    usleep(500 * 1000);
    json_t *got = recv_got(&rc), *ids = json_object(), *g;
    size_t i;
    json_array_foreach(got, i, g)
    {
        const char *id = tst_str(json_object_get(g, "body"), "id");
        ck_assert_ptr_nonnull(id);
        ck_assert_msg(json_object_get(ids, id) == NULL, "event %s delivered twice", id);
        json_object_set_new(ids, id, json_true());
    }
    ck_assert_int_eq(json_array_size(got), 2 * TWO_BROKER_ACS);
    json_decref(got), json_decref(ids);
    ck_assert_int_eq(tst_broker_stop(&a), 0);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&a), tst_broker_clear(&b);
    recv_clear(&rc);
    free(url), free(issuer), free(exec);
}
END_TEST

/* The billing function's runs only (it is synchronous, and on whenever the broker runs). */
#define BRUNS "(SELECT * FROM fn_runs WHERE function = 'billing') br"
/* A run in progress: the runtime's work connection waits for a lock (the one the test holds). */
#define RUN_WAITING                                                                                \
    "SELECT count(*) FROM pg_stat_activity WHERE datname = '" DB "' AND application_name = "       \
    "'gsap-fn-runtime' AND wait_event_type = 'Lock'"
#define RUNTIME_CONNS                                                                              \
    "SELECT count(*) FROM pg_stat_activity WHERE datname = '" DB "' AND application_name = "       \
    "'gsap-fn-runtime'"

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(res);
}

/*
 * A synchronous run that dies with the broker still counts its attempt, and after
 * GSAP_FN_MAX_ATTEMPTS such deaths the pair is a dead letter instead of looping forever.
 * The crash is made deterministic without a crashing function: the test holds the row lock of
 * the tenant's billing accounts, which the billing function share-locks first, so each run
 * provably waits mid-run (its connection shows a lock wait) when the broker gets SIGKILL.
 * Releasing the lock afterwards lets the orphaned backend notice its client is gone and roll
 * back; nothing of the run may have committed but its attempt.
 */
START_TEST(sync_crash_counts_attempts)
{
    tst_broker_t b = {0};
    tst_resp_t r;
    const char *env[] = {"GSAP_FN_MAX_ATTEMPTS=2", "GSAP_FN_POLL_MS=100", "GSAP_FN_BACKOFF_MS=100",
                         NULL};
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer"),
         *exec = tst_keys_create(&b, "acme", "executor"),
         *admin = tst_keys_create(&b, "acme", "admin");
    json_t *ac = authorize(b.port, issuer, NULL), *cr = NULL;
    PGconn *hold = tst_pg_connect(DB);

    for (int crash = 1; crash <= 2; crash++) {
        exec_ok(hold, "BEGIN");
        exec_ok(hold, "SELECT 1 FROM billing_accounts WHERE tenant_id = 'acme' FOR UPDATE");
        if (crash == 1)
            cr = complete(b.port, exec, tst_str(ac, "context_id"));
        else
            ck_assert_int_eq(tst_broker_restart(&b), 0);
        /* the attempt is committed while the run is still going */
        char *counted = tst_fmt("SELECT count(*) FROM " BRUNS " WHERE attempts = %d", crash);
        ck_assert_int_eq(wait_long(counted, 1, 15), 1);
        ck_assert_int_eq(wait_long(RUN_WAITING, 1, 15), 1);
        /* and the pair stays locked by the run: no other broker could claim it */
        ck_assert_int_eq(scalar_long("SELECT count(*) FROM (SELECT 1 FROM fn_runs WHERE "
                                     "function = 'billing' FOR UPDATE SKIP LOCKED) x"),
                         0);
        tst_broker_kill(&b);
        exec_ok(hold, "ROLLBACK");
        ck_assert_int_eq(wait_long(RUNTIME_CONNS, 0, 15), 0);
        ck_assert_int_eq(scalar_long(counted), 1);
        ck_assert_int_eq(
            scalar_long("SELECT count(*) FROM " BRUNS " WHERE done_at IS NULL AND dead_at IS NULL"),
            1);
        ck_assert_int_eq(scalar_long("SELECT count(*) FROM invoice_lines"), 0);
        free(counted);
    }

    /* no attempts left: the next claim dead-letters the pair rather than run it a third time */
    ck_assert_int_eq(tst_broker_restart(&b), 0);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " BRUNS " WHERE dead_at IS NOT NULL", 1, 15),
                     1);
    ck_assert_int_eq(scalar_long("SELECT attempts FROM " BRUNS), 2);
    PGconn *c = tst_pg_connect(DB);
    char *err = tst_pg_scalar(c, "SELECT last_error FROM " BRUNS);
    PQfinish(c);
    ck_assert_str_eq(err, "no result within the lease");
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM invoice_lines"), 0);
    /* billing logs each CR it bills; while this one is a dead letter, the log sequencer (its
     * fallback, whose pair the dead-lettering created) logs it */
    char *logged = tst_fmt("SELECT count(*) FROM tlog_entries e JOIN fn_runs r ON r.tenant_id = "
                           "e.tenant_id AND r.function = 'tlog' AND r.done_at IS NOT NULL "
                           "WHERE e.cr_id = '%s' AND e.idx = 0",
                           tst_str(cr, "cr_id"));
    ck_assert_int_eq(wait_long(logged, 1, 15), 1);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM fn_runs WHERE function = 'tlog'"), 1);

    /* a replay runs it once more, from scratch: exactly one line */
    long ev = scalar_long("SELECT event_id FROM events WHERE type = 'GSAP_CR_RECEIVED'");
    char *body = tst_fmt("{\"event_id\":%ld,\"function\":\"billing\"}", ev);
    ck_assert_int_eq(replay(b.port, admin, body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " BRUNS " WHERE done_at IS NOT NULL", 1, 10),
                     1);
    ck_assert_int_eq(scalar_long("SELECT attempts FROM " BRUNS), 1);
    char *line = tst_fmt("SELECT count(*) FROM invoice_lines WHERE cr_id = '%s' AND "
                         "log_index = 0",
                         tst_str(cr, "cr_id")); /* the index the sequencer gave it */
    ck_assert_int_eq(scalar_long(line), 1);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM invoice_lines"), 1);

    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    PQfinish(hold);
    json_decref(ac), json_decref(cr);
    free(issuer), free(exec), free(admin), free(err), free(body), free(line), free(logged);
}
END_TEST

static int sh(const char *fmt_, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt_, getenv("GSAP_SOURCE_DIR"), arg);
    return system(cmd);
}

static size_t count_in(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

START_TEST(database_outage)
{
    char dir[] = "/tmp/gsap-rtout-XXXXXX", ci[256];
    tst_broker_t b = {0};
    tst_resp_t r;
    recv_t rc;
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh start %s " OUTAGE_PORT " >/dev/null", dir), 0);
    snprintf(ci, sizeof ci, "host=%s port=" OUTAGE_PORT " user=postgres dbname=postgres", dir);
    recv_init(&rc, 200);
    recv_start(&rc);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=http://127.0.0.1:%u/", rc.port);
    const char *env[] = {url, "GSAP_FN_POLL_MS=200", "GSAP_FN_WORKERS=2", NULL};
    ck_assert_int_eq(tst_broker_start(&b, ci, env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer");

    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh stop %s " OUTAGE_PORT " >/dev/null", dir), 0);
    sleep(3); /* several reconnect periods with the database gone */
    ck_assert_int_eq(sh("%s/tests/pg_tmp.sh resume %s " OUTAGE_PORT " >/dev/null", dir), 0);
    /* the HTTP pools reconnect on their own; retry until one answers */
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                     CMD, CORPUS, PARAMS);
    int status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        ck_assert_int_eq(tst_post_json(b.port, "/governance/authorize/", issuer, body, &r), 0);
        status = r.status;
        tst_resp_clear(&r);
        if (status != 200)
            usleep(200 * 1000);
    }
    ck_assert_int_eq(status, 200);
    ck_assert(wait_recv(&rc, "dev.gsap.ac.issued", 200, 1, 10));
    char *log = tst_broker_log(&b);
    /* once per outage and worker (two), not once per reconnect attempt */
    ck_assert_uint_eq(count_in(log, "\"msg\":\"function runtime lost the database\""), 2);
    ck_assert_uint_eq(count_in(log, "\"msg\":\"function runtime reconnected\""), 2);
    free(log);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    sh("%s/tests/pg_tmp.sh stop %s " OUTAGE_PORT " >/dev/null 2>&1", dir);
    char *rm = tst_fmt("rm -rf %s", dir);
    ck_assert_int_eq(system(rm), 0);
    recv_clear(&rc);
    free(url), free(issuer), free(body), free(rm);
}
END_TEST


/* ---- https receiver ---------------------------------------------------------------------- */

/* A Node.js https receiver on 127.0.0.1:port with dir/<name>.{key,pem}: appends one JSON line
 * {"ct", "body"} per request to dir/got and answers 200. Returns its pid once it listens. */
static pid_t https_receiver(const char *dir, const char *name, unsigned short port)
{
    static const char script[] =
        "const [port, key, cert, out] = process.argv.slice(1); const fs = require('fs');"
        "require('https').createServer({key: fs.readFileSync(key), cert: fs.readFileSync(cert)},"
        " (q, s) => { let b = ''; q.on('data', d => b += d); q.on('end', () => {"
        " fs.appendFileSync(out, JSON.stringify({ct: q.headers['content-type'], body: b}) + '\\n');"
        " s.writeHead(200, {'Content-Length': 0}); s.end(); }); })"
        ".listen(+port, '127.0.0.1', () => fs.writeFileSync(out + '.ready', '1'));";
    char *portv = tst_fmt("%u", port), *key = tst_fmt("%s/%s.key", dir, name),
         *cert = tst_fmt("%s/%s.pem", dir, name), *out = tst_fmt("%s/got", dir),
         *ready = tst_fmt("%s/got.ready", dir);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execlp("node", "node", "-e", script, portv, key, cert, out, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && access(ready, F_OK) != 0; i++)
        usleep(50 * 1000);
    ck_assert_msg(access(ready, F_OK) == 0, "the https receiver did not start");
    free(portv), free(key), free(cert), free(out), free(ready);
    return pid;
}

/* The CloudEvents the receiver got whose type is ce_type. */
static int https_got(const char *dir, const char *ce_type)
{
    char *path = tst_fmt("%s/got", dir);
    FILE *f = fopen(path, "r");
    char line[65536];
    int n = 0;
    free(path);
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL), *ce;
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(tst_str(j, "ct"), "application/cloudevents+json");
        ce = json_loads(tst_str(j, "body"), 0, NULL);
        ck_assert_ptr_nonnull(ce);
        if (strcmp(tst_str(ce, "type"), ce_type) == 0)
            n++;
        json_decref(ce);
        json_decref(j);
    }
    fclose(f);
    return n;
}

/*
 * The Chronicle emitter over https: with GSAP_CA_FILE naming the receiver's CA the events
 * arrive; a broker trusting another CA delivers nothing, and the run's last_error says the
 * certificate did not verify (retried like any failed delivery).
 */
START_TEST(emitter_https)
{
    char dir[] = "/tmp/it_runtime_tls.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    for (int i = 0; i < 2; i++) {
        const char *name = i == 0 ? "recv" : "other";
        char *cmd = tst_fmt("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                        "-nodes -days 1 -subj /CN=localhost "
                        "-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' "
                        "-keyout %s/%s.key -out %s/%s.pem 2>/dev/null",
                        dir, name, dir, name);
        ck_assert_int_eq(system(cmd), 0);
        free(cmd);
    }
    unsigned short port;
    ck_assert_int_eq(tst_free_port(&port), 0);
    pid_t node = https_receiver(dir, "recv", port);
    char *url = tst_fmt("CHRONICLE_WEBHOOK_URL=https://localhost:%u/hook", port);
    char *ca = tst_fmt("GSAP_CA_FILE=%s/recv.pem", dir), *wrong = tst_fmt("GSAP_CA_FILE=%s/other.pem", dir);

    tst_broker_t b = {0};
    const char *env[] = {url, ca, "GSAP_FN_BACKOFF_MS=100", "GSAP_FN_POLL_MS=200", NULL};
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    char *issuer = tst_keys_create(&b, "acme", "issuer");
    json_t *ac = authorize(b.port, issuer, NULL);
    double end = now_s() + 20;
    while (https_got(dir, "dev.gsap.ac.issued") < 1 && now_s() < end)
        usleep(100 * 1000);
    ck_assert_int_eq(https_got(dir, "dev.gsap.ac.issued"), 1);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NULL", 0, 10), 0);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    json_decref(ac);
    free(issuer);

    /* another CA: refused at the handshake, nothing delivered, the reason recorded */
    env[1] = wrong;
    ck_assert_int_eq(tst_broker_start(&b, tst_pg_createdb(DB), env), 0);
    issuer = tst_keys_create(&b, "acme", "issuer");
    ac = authorize(b.port, issuer, NULL);
    ck_assert_int_eq(wait_long("SELECT count(*) FROM " RUNS " WHERE attempts > 1 AND last_error "
                               "LIKE 'webhook certificate verify failed%'",
                               1, 20),
                     1);
    ck_assert_int_eq(scalar_long("SELECT count(*) FROM " RUNS " WHERE done_at IS NOT NULL"), 0);
    ck_assert_int_eq(https_got(dir, "dev.gsap.ac.issued"), 1);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    tst_broker_clear(&b);
    json_decref(ac);
    free(issuer);

    kill(node, SIGTERM);
    waitpid(node, NULL, 0);
    char *rm = tst_fmt("rm -rf %s", dir);
    ck_assert_int_eq(system(rm), 0);
    free(rm), free(url), free(ca), free(wrong);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, receiver_down_then_up);
    tcase_add_test(tc, dead_letters_and_replay);
    tcase_add_test(tc, ac_expiry_job);
    tcase_add_test(tc, graceful_stop_with_webhook_in_flight);
    tcase_add_test(tc, backfill_when_enabled_later);
    tcase_add_test(tc, two_brokers_exactly_once);
    tcase_add_test(tc, async_inflight_bound);
    tcase_add_test(tc, sync_crash_counts_attempts);
    tcase_add_test(tc, emitter_https);
    suite_add_tcase(s, tc);
    TCase *out = tcase_create("outage");
    tcase_set_timeout(out, 180);
    tcase_add_test(out, database_outage);
    suite_add_tcase(s, out);
    return tst_run(s);
}
