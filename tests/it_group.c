/*
 * it_group: group commit (brk_db_submit_grouped) and long sessions.
 *
 * 1. mixed_group: this process drives a brk_db pool of its own on the broker's database with
 *    group commit on, and submits, in one loop iteration, gsap_complete batches that must each
 *    get their own answer from one shared transaction: accepted CRs of two tenants, an AC
 *    already consumed (409), a revoked one (409), an unknown context (404), and a CR together
 *    with its identical retry. The pool's counters prove they were one group; the rows prove
 *    each answer. Then a group with a statement that raises: the transaction is rolled back
 *    and every member re-run on its own, so the good ones are accepted exactly once and the
 *    bad one alone fails. And the group's NOTIFY reaches a listener once.
 *    group_rules: when a group goes out (at once on an idle pool, held while another is in
 *    flight, split at group_max, exactly and one past).
 * 2. http_mixed: the same mix through the broker's HTTP API, from concurrent clients, with a
 *    long group wait so requests do share groups; 422s (refused before the database) among
 *    them. Every client gets the answer it would get alone.
 * 3. session_lookup_indexed: the identical-retry lookup of gsap_complete is an index probe on
 *    (tenant, context, cr_cid) in a context with thousands of CRs, not a scan of them (the
 *    plan, not a timing).
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_db.h"
#include "brk_err.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define DBNAME "it_group"
#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define OTHER H("4")
#define WAIT_S 60
#define MAXM 16 /* members of one test group */

static tst_broker_t B;
static char *ACME, *GLOBEX; /* issuer+executor keys of two tenants */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *now_utc(void)
{
    static char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void setup(void)
{
    const char *env[] = {"GSAP_DB_GROUP_MAX=64", "GSAP_DB_GROUP_WAIT_MS=50", "GSAP_THREADS=1",
                         "GSAP_RATE_PER_S=100000", "GSAP_RATE_BURST=100000", NULL};
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DBNAME), env), 0);
    ACME = tst_keys_create(&B, "acme", "issuer,executor");
    GLOBEX = tst_keys_create(&B, "globex", "issuer,executor");
}

static void teardown(void)
{
    tst_broker_stop(&B);
    tst_broker_clear(&B);
    free(ACME), free(GLOBEX);
}

/* A new AC of token's tenant; its context id (malloc'd). */
static char *new_ac(const char *token)
{
    tst_resp_t r;
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                         "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                         CMD, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    free(body);
    return ctx;
}

/* The key id of a token "gsap.<tenant>.<key_id>.<secret>" (static buffer). */
static const char *key_id_of(const char *token)
{
    static char id[64];
    const char *a = strchr(token, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    const char *c = b ? strchr(b + 1, '.') : NULL;
    ck_assert_ptr_nonnull(c);
    snprintf(id, sizeof id, "%.*s", (int)(c - b - 1), b + 1);
    return id;
}

/* ---- 1. a group of mixed receipts, on a pool of this process ---- */

/* The statement hnd_complete sends, with the columns this test reads. */
static brk_db_stmt_t q_complete = {
    "it_complete",
    "SELECT code, cr_id, sequence FROM gsap_complete($1, $2, $3, $4::jsonb, $5, $6, $7, $8, "
    "$9, $10, $11, $12, $13, $14::boolean, $15::integer, $16::timestamptz, $17::timestamptz, "
    "$18, $19::integer, $20::jsonb, $21, $22, $23::integer, $24, $25, $26, $27::boolean)",
    0};

typedef struct member {
    char tenant[16], ctx[64], cr_id[40], cr_cid[80], executor[64], key[128];
    int answered, err;
    char sqlstate[8], code[32], got_cr_id[40], seq[16];
} member_t;

static member_t M[MAXM];
static int NM, ANSWERED;

static void on_member(void *arg, const brk_db_result_t *res)
{
    member_t *m = arg;
    m->answered++;
    ANSWERED++;
    m->err = res->err;
    snprintf(m->sqlstate, sizeof m->sqlstate, "%s", res->sqlstate);
    if (res->err == 0 && res->n == 1 && PQntuples(res->res[0]) == 1) {
        snprintf(m->code, sizeof m->code, "%s", PQgetvalue(res->res[0], 0, 0));
        snprintf(m->got_cr_id, sizeof m->got_cr_id, "%s", PQgetvalue(res->res[0], 0, 1));
        snprintf(m->seq, sizeof m->seq, "%s", PQgetvalue(res->res[0], 0, 2));
    }
}

/* Adds a member: tenant's CR on ctx with cr_cid (the CR's identity: the same cid is an
 * identical retry) and a fresh cr_id. */
static member_t *add(const char *tenant, const char *token, const char *ctx, const char *cr_cid)
{
    ck_assert_int_lt(NM, MAXM);
    member_t *m = &M[NM];
    memset(m, 0, sizeof *m);
    snprintf(m->tenant, sizeof m->tenant, "%s", tenant);
    snprintf(m->ctx, sizeof m->ctx, "%s", ctx);
    static unsigned serial;
    snprintf(m->cr_id, sizeof m->cr_id, "cr_%08x%08x%016llx", (unsigned)getpid(), ++serial,
             (unsigned long long)time(NULL));
    snprintf(m->cr_cid, sizeof m->cr_cid, "%s", cr_cid);
    snprintf(m->executor, sizeof m->executor, "%s", key_id_of(token));
    snprintf(m->key, sizeof m->key, "%s/%s", tenant, ctx);
    NM++;
    return m;
}

static void submit_all(brk_db_t *db)
{
    char now[32];
    snprintf(now, sizeof now, "%s", now_utc());
    for (int i = 0; i < NM; i++) {
        member_t *m = &M[i];
        brk_db_op_t op = {&q_complete, 27, {
            m->tenant, m->ctx, m->cr_id, "{}", m->cr_cid, OTHER, OTHER, "completed", "verified",
            CMD, CORPUS, PARAMS, NULL, "false", "0", now, now, m->executor, "30", NULL, NULL,
            "default", "604800", NULL, NULL, NULL, "true"}};
        ck_assert_int_eq(brk_db_submit_grouped(db, &op, 1, m->key, on_member, m), 0);
    }
}

static void run_until_answered(h2o_evloop_t *loop)
{
    double deadline = now_s() + WAIT_S;
    while (ANSWERED < NM && now_s() < deadline)
        h2o_evloop_run(loop, 10);
    ck_assert_int_eq(ANSWERED, NM);
    for (int i = 0; i < NM; i++)
        ck_assert_int_eq(M[i].answered, 1);
}

static long count_where(PGconn *pg, const char *table_where, const char *ctx)
{
    char *sql = tst_fmt("SELECT count(*) FROM %s AND context_id = '%s'", table_where, ctx);
    long n = tst_pg_long(pg, sql);
    free(sql);
    return n;
}

/* Notifications on gsap_events that reached listener so far. */
static int drain_notifies(PGconn *listener)
{
    int n = 0;
    PGnotify *x;
    ck_assert_int_eq(PQconsumeInput(listener), 1);
    while ((x = PQnotifies(listener)) != NULL) {
        n++;
        PQfreemem(x);
    }
    return n;
}

/* Drains until at least `at_least` notifications came and then none for 300 ms. The broker
 * sends its wake-up after each response (hnd_q_wake), so one may still be on its way when
 * the response is read. */
static void settle_notifies(PGconn *listener, int at_least)
{
    int n = 0;
    double quiet_until = now_s() + 0.3, deadline = now_s() + WAIT_S;
    while (now_s() < deadline && (n < at_least || now_s() < quiet_until)) {
        usleep(10 * 1000);
        int k = drain_notifies(listener);
        if (k > 0)
            n += k, quiet_until = now_s() + 0.3;
    }
    ck_assert_int_ge(n, at_least);
}

START_TEST(mixed_group)
{
    PGconn *pg = tst_pg_connect(DBNAME), *listener = tst_pg_connect(DBNAME);
    PQclear(PQexec(listener, "LISTEN gsap_events"));
    char *fresh_a = new_ac(ACME), *fresh_g = new_ac(GLOBEX), *used = new_ac(ACME);
    char *revoked = new_ac(ACME), *twice = new_ac(ACME);
    const char *unknown = "ctx_00000000000000000000000000000000";
    h2o_evloop_t *loop = h2o_evloop_create();
    brk_db_stats_t st;
    char *sql;

    /* consume one AC through the API, revoke another in the database */
    tst_resp_t r;
    char *body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                         "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"%s\","
                         "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
                         "\"stdout_hash\":\"%s\",\"output_bytes\":1,\"chronicle\":{\"session_id\":"
                         "\"c\",\"behavior_state\":\"verified\",\"merkle_root\":\"%s\"}}",
                         used, now_utc(), now_utc(), CMD, CORPUS, PARAMS, OTHER, OTHER);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", ACME, body, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    free(body);
    sql = tst_fmt("UPDATE acs SET status = 'revoked' WHERE context_id = '%s' RETURNING 1", revoked);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    settle_notifies(listener, 6); /* the broker's wake-ups: five ACs, one receipt */

    ck_assert_int_eq(brk_db_register(&q_complete), 0);
    brk_db_t *db = brk_db_new(loop, tst_pg_conninfo(DBNAME), 1, 64, 60000);
    brk_db_set_group(db, 64, 1000);
    for (double deadline = now_s() + WAIT_S; !brk_db_is_up(db) && now_s() < deadline;)
        h2o_evloop_run(loop, 10);
    ck_assert(brk_db_is_up(db));

    /* one group: everything below is submitted before the loop runs again */
    member_t *ok_a = add("acme", ACME, fresh_a, H("a"));
    member_t *ok_g = add("globex", GLOBEX, fresh_g, H("b"));
    member_t *consumed = add("acme", ACME, used, H("c"));
    member_t *rev = add("acme", ACME, revoked, H("d"));
    member_t *missing = add("acme", ACME, unknown, H("e"));
    member_t *first = add("acme", ACME, twice, H("f"));
    member_t *retry = add("acme", ACME, twice, H("f"));
    member_t *cross = add("globex", GLOBEX, fresh_a, H("9")); /* acme's AC, globex's key */
    submit_all(db);
    run_until_answered(loop);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 1);
    ck_assert_uint_eq(st.grouped, (uint64_t)NM);
    ck_assert_uint_eq(st.group_reruns, 0);
    for (int i = 0; i < NM; i++)
        ck_assert_msg(M[i].err == 0, "member %d: err %d %s", i, M[i].err, M[i].sqlstate);
    ck_assert_str_eq(ok_a->code, "ok");
    ck_assert_str_eq(ok_a->got_cr_id, ok_a->cr_id);
    ck_assert_str_eq(ok_g->code, "ok");
    ck_assert_str_eq(consumed->code, "consumed");
    ck_assert_str_eq(rev->code, "revoked");
    ck_assert_str_eq(missing->code, "not_found");
    ck_assert_str_eq(cross->code, "not_found");
    ck_assert_str_eq(first->code, "ok");
    ck_assert_str_eq(retry->code, "retry");
    ck_assert_str_eq(retry->got_cr_id, first->cr_id); /* the first receipt, not its own id */
    ck_assert_str_eq(retry->seq, "1");
    /* the rows: one CR each where accepted, none where refused; the refusal is evidence */
    ck_assert_int_eq(count_where(pg, "crs WHERE true", fresh_a), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE tenant_id = 'globex'", fresh_a), 0);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", fresh_g), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", used), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", revoked), 0);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", twice), 1);
    ck_assert_int_eq(count_where(pg, "events WHERE type = 'GSAP_CR_REFUSED'", revoked), 1);
    ck_assert_int_eq(count_where(pg, "events WHERE type = 'GSAP_CR_RECEIVED'", twice), 1);
    ck_assert_int_eq(count_where(pg, "acs WHERE status = 'consumed'", fresh_a), 1);
    /* one transaction, one wake-up, although two tenants wrote events */
    usleep(200 * 1000);
    ck_assert_int_eq(drain_notifies(listener), 1);

    /* a group with a statement that raises: rolled back, then each member on its own */
    char *fresh_a2 = new_ac(ACME), *fresh_g2 = new_ac(GLOBEX), first_id[40];
    snprintf(first_id, sizeof first_id, "%s", ok_a->cr_id); /* M is reused below */
    NM = ANSWERED = 0;
    member_t *ok2 = add("acme", ACME, fresh_a2, H("a"));
    member_t *bad = add("acme", ACME, fresh_a2, "not-a-cid"); /* same context: locks ahead */
    member_t *ok3 = add("globex", GLOBEX, fresh_g2, H("b"));
    member_t *again = add("acme", ACME, fresh_a, H("a")); /* identical retry of ok_a */
    submit_all(db);
    run_until_answered(loop);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 2);
    ck_assert_uint_eq(st.group_reruns, 1);
    ck_assert_int_eq(bad->err, BRK_EINVAL);
    ck_assert_str_eq(bad->sqlstate, "23514"); /* the gsap_cid domain's check */
    ck_assert_int_eq(ok2->err, 0);
    ck_assert_str_eq(ok2->code, "ok");
    ck_assert_int_eq(ok3->err, 0);
    ck_assert_str_eq(ok3->code, "ok");
    ck_assert_int_eq(again->err, 0);
    ck_assert_str_eq(again->code, "retry");
    ck_assert_str_eq(again->got_cr_id, first_id);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", fresh_a2), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", fresh_g2), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", fresh_a), 1);
    ck_assert_int_eq(count_where(pg, "events WHERE type = 'GSAP_CR_RECEIVED'", fresh_a2), 1);

    brk_db_free(db);
    h2o_evloop_destroy(loop);
    PQfinish(pg);
    PQfinish(listener);
    free(fresh_a), free(fresh_g), free(used), free(revoked), free(twice);
    free(fresh_a2), free(fresh_g2);
}
END_TEST

/* ---- 1b. when a group is sent: at once when idle, held while one is in flight, split at
 * group_max ---- */

static brk_db_stmt_t q_echo = {"it_echo", "SELECT $1::text", 0};
/* blocks while the test holds a lock on the table (the argument is unused) */
static brk_db_stmt_t q_locked = {"it_locked",
                                 "SELECT count(*)::text FROM it_group_lock WHERE $1::text IS NOT NULL", 0};

#define RULE_MAX 4           /* group_max of this pool */
#define RULE_WAIT_MS 1000    /* long: only the in-flight group's end may release a held one */
#define RULE_N (RULE_MAX + 1)

static int RULE_ANSWERS, RULE_ERRS;

static void on_rule(void *arg, const brk_db_result_t *res)
{
    (void)arg;
    RULE_ANSWERS++;
    RULE_ERRS += res->err != 0;
}

static void rule_submit(brk_db_t *db, const brk_db_stmt_t *stmt, const char *v)
{
    brk_db_op_t op = {stmt, 1, {v}};
    ck_assert_int_eq(brk_db_submit_grouped(db, &op, 1, "k", on_rule, NULL), 0);
}

static void rule_run(h2o_evloop_t *loop, int want)
{
    double deadline = now_s() + WAIT_S;
    while (RULE_ANSWERS < want && now_s() < deadline)
        h2o_evloop_run(loop, 10);
    ck_assert_int_eq(RULE_ANSWERS, want);
    ck_assert_int_eq(RULE_ERRS, 0);
}

START_TEST(group_rules)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    brk_db_stats_t st;

    ck_assert_int_eq(brk_db_register(&q_echo), 0);
    ck_assert_int_eq(brk_db_register(&q_locked), 0);
    PGconn *locker = tst_pg_connect(DBNAME);
    PQclear(PQexec(locker, "CREATE TABLE IF NOT EXISTS it_group_lock (x int)"));
    brk_db_t *db = brk_db_new(loop, tst_pg_conninfo(DBNAME), 1, 64, 60000);
    brk_db_set_group(db, RULE_MAX, RULE_WAIT_MS);
    for (double deadline = now_s() + WAIT_S; !brk_db_is_up(db) && now_s() < deadline;)
        h2o_evloop_run(loop, 10);
    ck_assert(brk_db_is_up(db));

    /* a lone batch on an idle pool is sent in the loop iteration that queued it: one
     * iteration later it is in flight, not waiting RULE_WAIT_MS for company. It then blocks
     * on the test's lock, so it stays in flight as long as the test wants. */
    PGresult *res = PQexec(locker, "BEGIN; LOCK TABLE it_group_lock IN ACCESS EXCLUSIVE MODE");
    ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    rule_submit(db, &q_locked, "1");
    h2o_evloop_run(loop, 0);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 1);
    ck_assert_uint_eq(st.in_flight, 1);
    /* while that group is in flight, the next one collects batches instead of going out */
    rule_submit(db, &q_echo, "a");
    rule_submit(db, &q_echo, "b");
    for (int i = 0; i < 3; i++)
        h2o_evloop_run(loop, 0);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 1);
    ck_assert_uint_eq(st.in_flight, 1);
    ck_assert(!brk_db_idle(db));
    /* ... and goes out as one group once the first completes */
    PQclear(PQexec(locker, "COMMIT"));
    rule_run(loop, 3);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 2);
    ck_assert_uint_eq(st.grouped, 3);

    /* exactly RULE_MAX batches at once: one group */
    RULE_ANSWERS = 0;
    for (int i = 0; i < RULE_MAX; i++)
        rule_submit(db, &q_echo, "x");
    rule_run(loop, RULE_MAX);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 3);
    ck_assert_uint_eq(st.grouped, 3 + RULE_MAX);
    /* one more than RULE_MAX: the full group goes at once, the rest in a group of its own */
    RULE_ANSWERS = 0;
    for (int i = 0; i < RULE_N; i++)
        rule_submit(db, &q_echo, "y");
    rule_run(loop, RULE_N);
    brk_db_get_stats(db, &st);
    ck_assert_uint_eq(st.groups, 5);
    ck_assert_uint_eq(st.grouped, 3 + RULE_MAX + RULE_N);
    ck_assert_uint_eq(st.group_reruns, 0);
    ck_assert(brk_db_idle(db));
    brk_db_free(db);
    h2o_evloop_destroy(loop);
    PQfinish(locker);
}
END_TEST

/* ---- 2. the same mix through HTTP, from concurrent clients ---- */

#define CLIENTS 40

typedef struct client {
    const char *token;
    char *body;
    int want;             /* status */
    const char *want_code; /* error code, or NULL */
    int status;
    char code[48], cr_id[48];
} client_t;

static void *post(void *arg)
{
    client_t *c = arg;
    tst_resp_t r;
    if (tst_post_json(B.port, "/governance/complete/", c->token, c->body, &r) == 0) {
        c->status = r.status;
        if (r.status == 200)
            snprintf(c->cr_id, sizeof c->cr_id, "%s", tst_str(r.json, "cr_id"));
        else if (json_object_get(r.json, "error") != NULL)
            snprintf(c->code, sizeof c->code, "%s",
                     tst_str(json_object_get(r.json, "error"), "code"));
        tst_resp_clear(&r);
    }
    return NULL;
}

static char *cr_json(const char *ctx, const char *outcome, int exit_code)
{
    return tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"%s\",\"exit_code\":%d,"
                   "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"%s\","
                   "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\",\"stdout_hash\":\"%s\","
                   "\"output_bytes\":1,\"chronicle\":{\"session_id\":\"c\",\"behavior_state\":"
                   "\"verified\",\"merkle_root\":\"%s\"}}",
                   ctx, outcome, exit_code, now_utc(), now_utc(), CMD, CORPUS, PARAMS, OTHER,
                   OTHER);
}

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

START_TEST(http_mixed)
{
    client_t c[CLIENTS];
    pthread_t th[CLIENTS];
    char *ctxs[CLIENTS] = {0};
    char *used = new_ac(ACME), *twice = new_ac(GLOBEX);
    PGconn *pg = tst_pg_connect(DBNAME);
    tst_resp_t r;
    char *b = cr_json(used, "completed", 0);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", ACME, b, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    free(b);

    for (int i = 0; i < CLIENTS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        switch (i % 5) {
        case 0: /* a fresh AC: accepted */
            ctxs[i] = new_ac(i % 2 ? ACME : GLOBEX);
            c[i] = (client_t){i % 2 ? ACME : GLOBEX, cr_json(ctxs[i], "completed", i), 200, NULL};
            break;
        case 1: /* the consumed AC with another CR: 409 */
            c[i] = (client_t){ACME, cr_json(used, "failed", 100 + i), 409, "ac_consumed"};
            break;
        case 2: /* a context that does not exist: 404 */
            c[i] = (client_t){ACME, cr_json("ctx_0000000000000000000000000000abcd", "completed", 0),
                              404, "context_not_found"};
            break;
        case 3: /* not a CR: 422, before the database */
            c[i] = (client_t){GLOBEX, cr_json(twice, "exploded", 0), 422, NULL};
            break;
        case 4: /* the same CR, many times: one receipt, returned to each */
            c[i] = (client_t){GLOBEX, cr_json(twice, "completed", 7), 200, NULL};
            free(c[i].body);
            c[i].body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":7,"
                                "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":"
                                "\"2026-01-01T00:00:01Z\",\"command_hash\":\"%s\","
                                "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
                                "\"stdout_hash\":\"%s\",\"output_bytes\":1,\"chronicle\":{"
                                "\"session_id\":\"c\",\"behavior_state\":\"verified\","
                                "\"merkle_root\":\"%s\"}}",
                                twice, CMD, CORPUS, PARAMS, OTHER, OTHER);
            break;
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, post, &c[i]), 0);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    const char *twice_id = NULL;
    for (int i = 0; i < CLIENTS; i++) {
        ck_assert_msg(c[i].status == c[i].want, "client %d: %d (%s), want %d", i, c[i].status,
                      c[i].code, c[i].want);
        if (c[i].want_code != NULL)
            ck_assert_str_eq(c[i].code, c[i].want_code);
        if (i % 5 == 4) {
            if (twice_id == NULL)
                twice_id = c[i].cr_id;
            ck_assert_str_eq(c[i].cr_id, twice_id);
        }
        if (ctxs[i] != NULL)
            ck_assert_int_eq(count_where(pg, "crs WHERE true", ctxs[i]), 1);
    }
    ck_assert_int_eq(count_where(pg, "crs WHERE true", used), 1);
    ck_assert_int_eq(count_where(pg, "crs WHERE true", twice), 1);
    /* every receipt and AC that reached the database went through a group (how many shared
     * one depends on timing: mixed_group shows sharing deterministically) */
    long groups = metric("gsap_db_groups_total"), grouped = metric("gsap_db_grouped_batches_total");
    ck_assert_int_gt(groups, 0);
    ck_assert_int_ge(grouped, groups);
    ck_assert_int_eq(metric("gsap_db_group_reruns_total"), 0);
    for (int i = 0; i < CLIENTS; i++) {
        free(c[i].body);
        free(ctxs[i]);
    }
    free(used), free(twice);
    PQfinish(pg);
}
END_TEST

/* ---- 3. a long session: the identical-retry lookup is an index probe ---- */

#define SESSION_CRS 3000
#define SINGLE_CONTEXTS 20000 /* contexts of one receipt each beside the session */

START_TEST(session_lookup_indexed)
{
    char *ctx = new_ac(ACME);
    PGconn *pg = tst_pg_connect(DBNAME);
    /* a session context with SESSION_CRS receipts, written directly (their content is not
     * what this checks), then the planner's statistics */
    tst_pg_execf(
        pg,
        "INSERT INTO crs (tenant_id, context_id, sequence, cr_id, outcome, effective_outcome, "
        "flags, started_at, completed_at, cr, cr_cid, chronicle_cid, merkle_root, ac_cid, "
        "lineage_cid, executor_key_id, received_at, billed_started_at, billed_completed_at) "
        "SELECT a.tenant_id, a.context_id, g, 'cr_' || lpad(to_hex(g + 1000000), 32, '0'), "
        "'completed', 'completed', '{}', now(), now(), '{}', 'sha256:' || "
        "encode(sha256(g::text::bytea), 'hex'), '%s', '%s', a.ac_cid, 'sha256:' || "
        "encode(sha256(('l' || g)::bytea), 'hex'), a.issuer_key_id, now(), now(), now() "
        "FROM acs a, generate_series(1, %d) g WHERE a.context_id = '%s'",
        OTHER, OTHER, SESSION_CRS, ctx);
    /* and, as in any real tenant, many contexts of one receipt each: a generic plan then
     * expects one row per context, which is what made the primary key look as cheap as the
     * cr_cid index and walk the long session row by row (0016's index alone did not help) */
    tst_pg_execf(
        pg,
        "INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, "
        "capability_set, command_hash, corpus_entry_cid, parameters_cid, environment_commitment, "
        "description, ttl_seconds, issued_at, expires_at, issuer_key_id, billing_account, ac, "
        "ac_cid) SELECT a.tenant_id, 'ctx_' || lpad(to_hex(g + 5000000), 32, '0'), 'consumed', "
        "a.accord_name, a.session_mode, a.capability_set, a.command_hash, a.corpus_entry_cid, "
        "a.parameters_cid, a.environment_commitment, 'one', a.ttl_seconds, a.issued_at, "
        "a.expires_at, a.issuer_key_id, a.billing_account, a.ac, a.ac_cid "
        "FROM acs a, generate_series(1, %d) g WHERE a.context_id = '%s'",
        SINGLE_CONTEXTS, ctx);
    tst_pg_execf(
        pg,
        "INSERT INTO crs (tenant_id, context_id, sequence, cr_id, outcome, effective_outcome, "
        "flags, started_at, completed_at, cr, cr_cid, chronicle_cid, merkle_root, ac_cid, "
        "lineage_cid, executor_key_id, received_at, billed_started_at, billed_completed_at) "
        "SELECT a.tenant_id, a.context_id, 1, 'cr_' || lpad(to_hex(g + 9000000), 32, '0'), "
        "'completed', 'completed', '{}', now(), now(), '{}', 'sha256:' || "
        "encode(sha256(('s' || g)::bytea), 'hex'), '%s', '%s', a.ac_cid, 'sha256:' || "
        "encode(sha256(('m' || g)::bytea), 'hex'), a.issuer_key_id, now(), now(), now() "
        "FROM generate_series(1, %d) g JOIN acs a ON a.tenant_id = 'acme' "
        "AND a.context_id = 'ctx_' || lpad(to_hex(g + 5000000), 32, '0')",
        OTHER, OTHER, SINGLE_CONTEXTS);
    PQclear(PQexec(pg, "ANALYZE crs"));
    /* the lookup exactly as gsap_complete writes it, planned generically as PL/pgSQL may */
    PQclear(PQexec(pg, "SET plan_cache_mode = force_generic_plan"));
    PGresult *res = PQexec(pg, "PREPARE retry_lookup(text, gsap_cid) AS SELECT * FROM crs "
                     "WHERE crs.tenant_id = $1 AND crs.cr_cid = $2");
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    char *sql = tst_fmt("EXPLAIN (FORMAT JSON) EXECUTE retry_lookup('acme', '%s')", H("7"));
    char *plan = tst_pg_scalar(pg, sql);
    free(sql);
    /* the cr_cid is matched in the index, not filtered row by row after reading the context */
    ck_assert_msg(strstr(plan, "\"Index Cond\"") != NULL && strstr(plan, "cr_cid") != NULL &&
                      (strstr(plan, "\"Filter\"") == NULL ||
                       strstr(strstr(plan, "\"Filter\""), "cr_cid") == NULL),
                  "the retry lookup scans the context's CRs: %s", plan);
    {
        const char *cond = strstr(plan, "\"Index Cond\"");
        const char *end = cond ? strchr(cond, '\n') : NULL;
        ck_assert_ptr_nonnull(end);
        ck_assert_msg(memmem(cond, (size_t)(end - cond), "cr_cid", 6) != NULL,
                      "cr_cid is not in the index condition: %s", plan);
    }
    free(plan);
    /* and the session's head is the AC row's: a CR after them is accepted with the next
     * sequence once the head says so */
    sql = tst_fmt("UPDATE acs SET session_mode = true, status = 'active', cr_count = %d, "
                  "last_lineage_cid = (SELECT lineage_cid FROM crs WHERE context_id = '%s' "
                  "AND sequence = %d) WHERE context_id = '%s' RETURNING 1",
                  SESSION_CRS, ctx, SESSION_CRS, ctx);
    ck_assert_int_eq(tst_pg_long(pg, sql), 1);
    free(sql);
    char *b = cr_json(ctx, "completed", 0);
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", ACME, b, &r), 0);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    ck_assert_int_eq((int)json_integer_value(json_object_get(r.json, "sequence")),
                     SESSION_CRS + 1);
    tst_resp_clear(&r);
    free(b);
    free(ctx);
    PQfinish(pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_group");
    TCase *tc = tcase_create("group");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mixed_group);
    tcase_add_test(tc, group_rules);
    tcase_add_test(tc, http_mixed);
    tcase_add_test(tc, session_lookup_indexed);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
