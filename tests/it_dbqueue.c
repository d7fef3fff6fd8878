/*
 * it_dbqueue: both sides of the per-loop database wait queue (GSAP_DB_QUEUE_MAX).
 *
 * A batch waits in the queue only when every connection of its loop already carries
 * BRK_DB_PIPELINE_MAX batches; past queue_max it fails at once with 503 "overloaded" and
 * Retry-After. The test makes that state on purpose: one worker, one connection, a queue of
 * QUEUE_MAX, and the api_keys table locked from a test connection, so every authenticated
 * request's key lookup blocks inside PostgreSQL and stays in flight. Then
 *   - BRK_DB_PIPELINE_MAX requests fill the pipeline,
 *   - QUEUE_MAX more wait in the queue,
 *   - one more is refused with 503 while the lock is still held,
 * and after the lock goes every request that was admitted is answered 200.
 *
 * Order: the broker reads its connections in whatever order epoll reports them, so the test
 * never relies on it. It sends the whole pipeline group, then waits (via the broker's own
 * gauges on /metrics, which loopback callers read without a token and so without the
 * database) until all of them are in flight; then sends each queued request alone and waits
 * until the queue gauge counts it; only then the one that must be refused. Gauges are
 * published after each loop iteration, so polling converges on the true count, and with the
 * lock held the counts can only grow.
 *
 * Timing: batches in flight would time out after GSAP_DB_TIMEOUT_MS (10 s by default) and
 * break the connection, which on a slow machine could turn the 200s into 503s; the broker
 * here gets a generous timeout so only the queue limit can refuse anything.
 *
 * Second test, in this process with a pool of its own: callbacks never run inside the call
 * that queued them. The pool's one connection is terminated (pg_terminate_backend) while the
 * loop is not running, so the pool has not noticed; batches submitted then are accepted onto
 * the dead connection until libpq finds it closed inside a brk_db_submit. That submit fails
 * (BRK_EDB, no callback for it), and the batches accepted before it must then be answered
 * BRK_EDB later, from the loop, exactly once each: never while brk_db_submit is on the stack.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "tst_check.h"
#include "brk_db.h"
#include "brk_err.h"
#include "brk_http.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "banned.h"

#define DBNAME "it_dbqueue"
#define QUEUE_MAX 2            /* GSAP_DB_QUEUE_MAX given to the broker */
#define STR_(x) #x
#define STR(x) STR_(x)
#define WAIT_S 60              /* for a gauge to reach its value, or a reply to arrive */
#define REFUSAL_S 15           /* for the refusal: it needs no database, so it is prompt */
#define NADMITTED (BRK_DB_PIPELINE_MAX + QUEUE_MAX) /* in flight or waiting */

static tst_broker_t B;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A connection to the broker with request already sent; the reply is left unread. */
static int send_request(const char *request)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(B.port)};
    size_t n = strlen(request), off = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                  strerror(errno));
    while (off < n) {
        ssize_t w = send(fd, request + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "send: %s", strerror(errno));
        off += (size_t)w;
    }
    return fd;
}

/* Reads the whole reply (the request said Connection: close) within timeout_s seconds and
 * closes fd. Returns the reply (malloc'd, NUL-terminated), or NULL on a timeout or error. */
static char *read_reply(int fd, int timeout_s)
{
    struct timeval tv = {.tv_sec = 1};
    double deadline = now_s() + timeout_s;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    ck_assert_ptr_nonnull(buf);
    /* A short per-call timeout checked against one overall deadline: a reply that trickles
     * in cannot stretch the wait past timeout_s. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
        if (cap - len < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r > 0) {
            len += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        if ((errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && now_s() < deadline)
            continue;
        free(buf);
        buf = NULL;
        break;
    }
    close(fd);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

static int status_of(const char *reply)
{
    if (reply == NULL || strncmp(reply, "HTTP/1.1 ", 9) != 0)
        return -1;
    return (int)strtol(reply + 9, NULL, 10);
}

/* The value of header name (lowercase, with its colon) in reply, copied into buf. */
static const char *header_of(const char *reply, const char *name, char *buf, size_t cap)
{
    const char *end = strstr(reply, "\r\n\r\n"), *h = reply;
    size_t nlen = strlen(name);
    if (end == NULL)
        return NULL;
    while ((h = strstr(h, "\r\n")) != NULL && h < end) {
        h += 2;
        if (strncasecmp(h, name, nlen) == 0) {
            const char *v = h + nlen, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(buf, cap, "%.*s", (int)(e - v), v);
            return buf;
        }
    }
    return NULL;
}

/* The value of one metric line ("name value") from GET /metrics, or -1. */
static long metric(const char *name)
{
    tst_resp_t r;
    long v = -1;
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    if (tst_get(B.port, "/metrics", NULL, &r) != 0)
        return -1;
    const char *p = r.status == 200 ? strstr(r.body, key) : NULL;
    if (p != NULL)
        v = strtol(p + strlen(key), NULL, 10);
    tst_resp_clear(&r);
    return v;
}

/* Polls until metric name reads want; fails the test after WAIT_S seconds. */
static void wait_metric(const char *name, long want)
{
    double deadline = now_s() + WAIT_S;
    long v;
    while ((v = metric(name)) != want && now_s() < deadline)
        usleep(20 * 1000);
    ck_assert_msg(v == want, "%s is %ld, expected %ld", name, v, want);
}

/* Polls pg_stat_activity (from conn, outside any transaction, so each query sees fresh
 * activity) until a client backend of our database waits for a lock. At least one, not
 * exactly one: the broker's function runtime has connections of its own. */
static void wait_lock_waiter(PGconn *conn)
{
    double deadline = now_s() + WAIT_S;
    long v;
    while ((v = tst_pg_long(conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = '" DBNAME
                                  "' AND backend_type = 'client backend'"
                                  " AND wait_event_type = 'Lock'")) < 1 &&
           now_s() < deadline)
        usleep(20 * 1000);
    ck_assert_msg(v >= 1, "no backend waits for the lock on api_keys");
}

static void exec_ok(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

#define IN_FLIGHT "gsap_db_batches_in_flight{loop=\"0\"}"
#define QUEUED "gsap_db_batches_queued{loop=\"0\"}"

START_TEST(queue_limit_both_sides)
{
    static int fds[NADMITTED];
    const char *env[] = {"GSAP_THREADS=1", "GSAP_DB_CONNS=1", "GSAP_DB_QUEUE_MAX=" STR(QUEUE_MAX),
                         "GSAP_DB_TIMEOUT_MS=300000", NULL};
    char request[512], v[64];
    tst_resp_t r;

    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DBNAME), env), 0);
    char *admin = tst_keys_create(&B, "acme", "admin");
    snprintf(request, sizeof request,
             "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             "Connection: close\r\n\r\n",
             admin);
    /* The pool's connection must be ready, its statements prepared (preparing reads
     * api_keys too, and would block behind the lock), and the token good. */
    ck_assert_int_eq(tst_get(B.port, "/readyz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/metrics", admin, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    wait_metric("gsap_db_connections_ready{loop=\"0\"}", 1);

    PGconn *lock = tst_pg_connect(DBNAME), *watch = tst_pg_connect(DBNAME);
    exec_ok(lock, "BEGIN");
    exec_ok(lock, "LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE");

    /* Fill the connection's pipeline: every key lookup is sent and blocks in PostgreSQL. */
    for (int i = 0; i < BRK_DB_PIPELINE_MAX; i++)
        fds[i] = send_request(request);
    wait_metric(IN_FLIGHT, BRK_DB_PIPELINE_MAX);
    wait_metric(QUEUED, 0);
    /* The first lookup waits on our lock; the rest sit behind it in the pipeline. */
    wait_lock_waiter(watch);

    /* Up to the limit: each one waits in the queue. */
    for (int i = 0; i < QUEUE_MAX; i++) {
        fds[BRK_DB_PIPELINE_MAX + i] = send_request(request);
        wait_metric(QUEUED, i + 1);
    }

    /* One past the limit: refused at once, without the database, while the lock is held. */
    double t0 = now_s();
    char *reply = read_reply(send_request(request), REFUSAL_S);
    ck_assert_msg(reply != NULL, "no reply to the request past the queue limit");
    ck_assert_msg(status_of(reply) == 503, "past the limit: %.200s", reply);
    ck_assert_ptr_nonnull(header_of(reply, "retry-after:", v, sizeof v));
    ck_assert_str_eq(v, BRK_RETRY_AFTER_S);
    const char *sep = strstr(reply, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    json_t *body = json_loads(sep + 4, 0, NULL);
    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(body, "error"), "code")),
                     "overloaded");
    json_decref(body);
    free(reply);
    ck_assert_msg(now_s() - t0 < REFUSAL_S, "the refusal took %.1f s", now_s() - t0);
    /* Still held: nothing admitted has finished, nothing was dropped from the queue. */
    ck_assert_int_eq(metric(IN_FLIGHT), BRK_DB_PIPELINE_MAX);
    ck_assert_int_eq(metric(QUEUED), QUEUE_MAX);

    exec_ok(lock, "ROLLBACK");
    for (int i = 0; i < NADMITTED; i++) {
        reply = read_reply(fds[i], WAIT_S);
        ck_assert_msg(status_of(reply) == 200, "request %d after the lock: %.200s", i,
                      reply ? reply : "(no reply)");
        free(reply);
    }
    wait_metric(IN_FLIGHT, 0);
    wait_metric(QUEUED, 0);

    PQfinish(watch);
    PQfinish(lock);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);
    free(admin);
}
END_TEST

#define BROKEN_DB "it_dbqueue_broken"
#define BROKEN_TRIES 64 /* submits onto the dead connection before libpq must notice */

static brk_db_stmt_t q_pid = {"it_pid", "SELECT pg_backend_pid()::text", 0};

struct answers {
    int in_submit;      /* set while the test is inside brk_db_submit */
    int reentrant;      /* callbacks that ran while in_submit was set */
    int count[BROKEN_TRIES + 1];
    int err[BROKEN_TRIES + 1];
    char pid[32];
};
static struct answers A;

static void on_answer(void *arg, const brk_db_result_t *res)
{
    int i = (int)(intptr_t)arg;

    if (A.in_submit)
        A.reentrant++;
    A.count[i]++;
    A.err[i] = res->err;
    if (i == 0 && res->err == 0 && res->n == 1)
        snprintf(A.pid, sizeof A.pid, "%s", PQgetvalue(res->res[0], 0, 0));
}

/* run_until: runs loop until *flag is nonzero or WAIT_S passes. */
static void run_until(h2o_evloop_t *loop, const int *flag)
{
    double deadline = now_s() + WAIT_S;

    while (*flag == 0 && now_s() < deadline)
        h2o_evloop_run(loop, 10);
}

START_TEST(broken_connection_answers_from_the_loop)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    brk_db_op_t op = {.stmt = &q_pid, .nparams = 0};
    char sql[128];
    int accepted = 0, rc = 0, i, up = 0;
    PGconn *admin;
    brk_db_t *db;

    ck_assert_int_eq(brk_db_register(&q_pid), 0);
    tst_pg_createdb(BROKEN_DB);
    db = brk_db_new(loop, tst_pg_conninfo(BROKEN_DB), 1, 16, 60000);
    for (double deadline = now_s() + WAIT_S; !(up = brk_db_is_up(db)) && now_s() < deadline;)
        h2o_evloop_run(loop, 10);
    ck_assert_msg(up, "the pool never connected");
    ck_assert_int_eq(brk_db_submit(db, &op, 1, on_answer, (void *)(intptr_t)0), 0);
    run_until(loop, &A.count[0]);
    ck_assert_int_eq(A.err[0], 0);
    ck_assert_str_ne(A.pid, "");

    /* Kill the pool's backend and wait until it is gone; the loop does not run meanwhile. */
    admin = tst_pg_connect(BROKEN_DB);
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)::int", A.pid);
    ck_assert_int_eq(tst_pg_long(admin, sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", A.pid);
    for (double deadline = now_s() + WAIT_S; tst_pg_long(admin, sql) != 0 && now_s() < deadline;)
        usleep(10 * 1000);
    ck_assert_int_eq(tst_pg_long(admin, sql), 0);
    usleep(100 * 1000); /* the close reaches our socket */

    for (i = 1; i <= BROKEN_TRIES; i++) {
        A.in_submit = 1;
        rc = brk_db_submit(db, &op, 1, on_answer, (void *)(intptr_t)i);
        A.in_submit = 0;
        if (rc != 0)
            break;
        accepted++;
        usleep(5 * 1000);
    }
    ck_assert_msg(rc == BRK_EDB, "no submit noticed the dead connection (rc %d)", rc);
    ck_assert_msg(accepted >= 1, "the first submit already failed: nothing to answer later");
    ck_assert_int_eq(A.reentrant, 0);
    /* the batches accepted before are answered from the loop, once each; the refused one
     * never */
    for (i = 1; i <= accepted; i++)
        run_until(loop, &A.count[i]);
    for (int k = 0; k < 20; k++)
        h2o_evloop_run(loop, 10);
    for (i = 1; i <= accepted; i++) {
        ck_assert_msg(A.count[i] == 1, "batch %d answered %d times", i, A.count[i]);
        ck_assert_int_eq(A.err[i], BRK_EDB);
    }
    ck_assert_int_eq(A.count[accepted + 1], 0);
    ck_assert_int_eq(A.reentrant, 0);
    brk_db_free(db);
    for (i = 1; i <= accepted + 1; i++)
        ck_assert_int_le(A.count[i], 1);
    PQfinish(admin);
    h2o_evloop_destroy(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_dbqueue");
    TCase *tc = tcase_create("queue");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, queue_limit_both_sides);
    suite_add_tcase(s, tc);
    tc = tcase_create("broken");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, broken_connection_answers_from_the_loop);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
