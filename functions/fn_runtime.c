/*
 * fn_runtime: the function runtime's thread, its claim passes and its timers.
 *
 * The thread owns an event_base and two PostgreSQL connections: "listen" (LISTEN
 * gsap_events; its socket is watched by libevent, and a notification only wakes a claim
 * pass) and "work" (every claim, update and periodic job). Work statements are blocking
 * libpq calls on this thread. That is deliberate and acceptable here: this loop serves no
 * HTTP client, its only other duties (webhook responses, timers) tolerate a pass's latency,
 * and a blocking claim-run-commit sequence is far easier to prove exactly-once than a state
 * machine. The HTTP loops never block; they only meet this thread in PostgreSQL.
 *
 * State per (event, function) pair lives in fn_runs (migrations/0003_runtime.sql):
 *   - a synchronous function runs inside the claim transaction under a savepoint; its
 *     writes and its done mark commit together, or roll back together, so a pair takes
 *     effect exactly once even with several brokers (claims use FOR UPDATE SKIP LOCKED) and
 *     across crashes (an uncommitted pass leaves the pair pending);
 *   - an asynchronous function (a webhook) cannot join a transaction: the pass takes a
 *     lease instead (attempts + 1, next_attempt_at = now() + FN_ASYNC_LEASE_MS) and commits,
 *     then starts it; its completion is recorded in a short statement that only applies
 *     while attempts still equals the claimed value, so a completion that lost its lease to
 *     another claim changes nothing. At-least-once: receivers dedupe by the event CID.
 * Counting the lease as the attempt means a run that crashes the broker is still counted:
 * a pair claimed again with no attempts left is dead-lettered rather than run, so a
 * poisonous event cannot loop forever. (A synchronous run that crashes the process rolls
 * its attempt back with everything else; that case is not bounded.) At most
 * FN_ASYNC_MAX_INFLIGHT asynchronous runs are in flight; a pass leaves the rest pending.
 *
 * Subscriptions: at every (re)connect each enabled function is subscribed to its types
 * with gsap_fn_subscribe, which backfills runs for stored events the first time.
 *
 * The event CID (fn_event_t.cid) is the CID of {"tenant_id","event_id","type",
 * "context_id","payload","created_at"} where event_id is a JSON number, context_id a string
 * or null, payload the stored jsonb, and created_at is formatted by the database as
 * to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'): always six
 * fractional digits, e.g. "2026-11-23T10:00:00.123456Z" (FN_TS_FORMAT below). The same
 * string is the event's time everywhere the runtime shows it.
 *
 * Retries: next_attempt_at = now() + backoff, backoff = GSAP_FN_BACKOFF_MS doubled per
 * attempt, capped at FN_BACKOFF_CAP_MS, times a uniform factor in [0.8, 1.2]; a pair whose
 * attempts reach GSAP_FN_MAX_ATTEMPTS is dead (dead_at) until replayed. Pending retries are
 * picked up by the poll timer, so GSAP_FN_POLL_MS bounds how late a retry runs.
 *
 * When the database goes away the runtime closes both connections, logs once, and tries
 * again every FN_RECONNECT_MS; asynchronous completions that arrive meanwhile are not
 * recorded (their leases expire and the pairs run again).
 */
#include "fn_runtime.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "fn.h"
#include "banned.h"

#define FN_DEFAULT_POLL_MS 1000
#define FN_POLL_MS_MIN 10
#define FN_POLL_MS_MAX 60000
#define FN_DEFAULT_BATCH 32
#define FN_BATCH_MAX 1000
#define FN_DEFAULT_BACKOFF_MS 500
#define FN_BACKOFF_CAP_MS 300000 /* longest retry delay, and largest GSAP_FN_BACKOFF_MS */
#define FN_BACKOFF_JITTER_PCT 20 /* a delay is scaled by a factor in [1 - 20%, 1 + 20%] */
#define FN_DEFAULT_MAX_ATTEMPTS 8
#define FN_MAX_ATTEMPTS_MAX 1000000
#define FN_ASYNC_LEASE_MS 30000  /* must exceed any async function's own timeout */
#define FN_ASYNC_MAX_INFLIGHT 64 /* asynchronous runs started and not yet finished */
#define FN_STOP_GRACE_MS 30000   /* how long a stop waits for asynchronous runs */
#define FN_RECONNECT_MS 1000
#define FN_CONNECT_TIMEOUT_S "5"
#define FN_STATEMENT_TIMEOUT_MS "60000"
#define FN_PASSES_PER_WAKE 16 /* full passes in a row before yielding to other events */
#define FN_MAX_FUNCTIONS 32
#define FN_MAX_PERIODICS 16
#define FN_EVENT_TYPE_MAX 64
#define FN_TENANT_MAX 63
#define FN_NAMES_PARAM_MAX (FN_MAX_FUNCTIONS * (FN_NAME_MAX + 3) + 3)
#define FN_TYPES_PARAM_MAX 2048
#define FN_APP_NAME "gsap-fn-runtime"
#define FN_TS_FORMAT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* ---- statements (prepared on the work connection at every connect) ------------------- */

enum {
    S_CLAIM,
    S_DONE,
    S_FAIL,
    S_LEASE,
    S_LEASE_DEAD,
    S_ASYNC_DONE,
    S_ASYNC_FAIL,
    S_STATS,
    S_SUBSCRIBE,
    S_COUNT
};

static const struct {
    const char *name, *sql;
    int nparams;
} k_stmts[S_COUNT] = {
    [S_CLAIM] = {"fn_claim",
                 "SELECT r.tenant_id, r.event_id, r.function, r.attempts, e.type, e.context_id, "
                 "e.payload::text, to_char(e.created_at AT TIME ZONE 'UTC', " FN_TS_FORMAT ") "
                 "FROM fn_runs r JOIN events e "
                 "ON e.tenant_id = r.tenant_id AND e.event_id = r.event_id "
                 "WHERE r.done_at IS NULL AND r.dead_at IS NULL AND r.next_attempt_at <= now() "
                 "AND r.function = ANY ($1::text[]) "
                 "ORDER BY r.event_id LIMIT $2::int FOR UPDATE OF r SKIP LOCKED",
                 2},
    [S_DONE] = {"fn_done",
                "UPDATE fn_runs SET done_at = now(), attempts = attempts + 1 "
                "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3",
                3},
    [S_FAIL] = {"fn_fail",
                "UPDATE fn_runs SET attempts = attempts + 1, last_error = $4, "
                "next_attempt_at = now() + $5::bigint * interval '1 millisecond', "
                "dead_at = CASE WHEN attempts + 1 >= $6::int THEN now() END "
                "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3 "
                "RETURNING dead_at IS NOT NULL",
                6},
    [S_LEASE] = {"fn_lease",
                 "UPDATE fn_runs SET attempts = attempts + 1, "
                 "next_attempt_at = now() + $4::bigint * interval '1 millisecond' "
                 "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3",
                 4},
    /* An async pair claimed again with no attempts left: its leases kept expiring without a
     * result (the broker died or lost the database mid-run), so it would never end. */
    [S_LEASE_DEAD] = {"fn_lease_dead",
                      "UPDATE fn_runs SET dead_at = now(), last_error = left(coalesce(last_error "
                      "|| '; ', '') || 'no result within the lease', 512) "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3",
                      3},
    [S_ASYNC_DONE] = {"fn_async_done",
                      "UPDATE fn_runs SET done_at = now() "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3 "
                      "AND attempts = $4::int AND done_at IS NULL AND dead_at IS NULL",
                      4},
    [S_ASYNC_FAIL] = {"fn_async_fail",
                      "UPDATE fn_runs SET last_error = $5, "
                      "next_attempt_at = now() + $6::bigint * interval '1 millisecond', "
                      "dead_at = CASE WHEN attempts >= $7::int THEN now() END "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3 "
                      "AND attempts = $4::int AND done_at IS NULL AND dead_at IS NULL "
                      "RETURNING dead_at IS NOT NULL",
                      7},
    /* The oldest pending pair is found through the pending index (lowest event_id), not by
     * joining the whole backlog: event ids grow with time, so it is the oldest event. */
    [S_STATS] = {"fn_stats",
                 "SELECT (SELECT count(*) FROM fn_runs WHERE done_at IS NULL AND dead_at IS NULL), "
                 "coalesce((SELECT floor(extract(epoch FROM now() - e.created_at))::bigint "
                 "  FROM events e JOIN (SELECT tenant_id, event_id FROM fn_runs "
                 "    WHERE done_at IS NULL AND dead_at IS NULL ORDER BY event_id LIMIT 1) p "
                 "  ON e.tenant_id = p.tenant_id AND e.event_id = p.event_id), 0), "
                 "(SELECT count(*) FROM fn_runs WHERE dead_at IS NOT NULL)",
                 0},
    [S_SUBSCRIBE] = {"fn_subscribe", "SELECT gsap_fn_subscribe($1, $2::text[])", 2},
};

/* ---- types ----------------------------------------------------------------------------- */

typedef struct fn_slot {
    const fn_def_t *def;
    int m_runs, m_failures; /* metric slots */
} fn_slot_t;

typedef struct fn_timer {
    fn_runtime_t *rt;
    const fn_periodic_t *def;
    struct event *ev;
} fn_timer_t;

enum job_state { JOB_STARTING, JOB_RUNNING, JOB_FINISHED };

struct fn_async {
    fn_runtime_t *rt;
    fn_async_t *next;
    const fn_slot_t *slot;
    char tenant[FN_TENANT_MAX + 1];
    char event_id[24];
    char type[FN_EVENT_TYPE_MAX + 1];
    int attempts; /* after the lease: fences the completion against a later claim */
    uint64_t started_ns;
    enum job_state state;
    int failed;
    char err[FN_ERR_MAX];
};

struct fn_runtime {
    const brk_config_t *cfg;
    fn_env_t env;
    struct event_base *base;
    pthread_t thread;
    int thread_started;

    unsigned poll_ms, batch, backoff_ms, max_attempts;
    fn_slot_t slots[FN_MAX_FUNCTIONS]; /* enabled functions only */
    size_t nslots, nasync;
    fn_timer_t timers[FN_MAX_PERIODICS];
    size_t ntimers;

    PGconn *work, *listen;
    int connected;
    int down_logged; /* the outage was logged; stay quiet until it ends */
    struct event *listen_ev, *poll_ev, *claim_ev, *done_ev, *stop_ev, *grace_ev, *reconnect_ev;
    struct event *lost_ev;
    char lost_err[FN_ERR_MAX];

    fn_async_t *running;  /* started, not finished */
    fn_async_t *finished; /* finished, waiting for done_ev to record them */
    unsigned inflight;    /* running + finished */
    int starved;          /* a pass left async pairs for lack of slots */
    int stopping;         /* loop thread only */

    int m_depth, m_oldest, m_dead;
};

/* Metric names must be static strings (brk_metrics keeps the pointer); one per registry
 * index, written once. */
static char g_metric_names[FN_MAX_FUNCTIONS][2][BRK_METRICS_NAME_MAX];

/* ---- small helpers --------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Error text goes into a text column and a log line: keep printable ASCII only, so a cut
 * never splits a UTF-8 sequence and a message never carries control characters. */
static void copy_err(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src != NULL && *src != '\0' && i + 1 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        char out = c > 0x20 && c < 0x7f ? (char)c : ' ';
        if (out == ' ' && (i == 0 || dst[i - 1] == ' '))
            continue; /* libpq's messages carry newlines and tabs: one space for each run */
        dst[i++] = out;
    }
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

/* env_uint: the whole of variable name as a decimal in [min, max], or def when unset/empty. */
static int env_uint(const char *name, unsigned def, unsigned min, unsigned max, unsigned *out,
                    char *err, size_t errlen)
{
    const char *v = getenv(name);
    unsigned long n = 0;
    size_t i;

    if (v == NULL || *v == '\0') {
        *out = def;
        return 0;
    }
    for (i = 0; v[i] != '\0'; i++) {
        if (v[i] < '0' || v[i] > '9' || i >= 10)
            goto bad;
        n = n * 10 + (unsigned long)(v[i] - '0');
    }
    if (n < min || n > max)
        goto bad;
    *out = (unsigned)n;
    return 0;
bad:
    snprintf(err, errlen, "invalid %s '%.32s': expected an integer from %u to %u", name, v, min,
             max);
    return BRK_EINVAL;
}

static int name_ok(const char *s, size_t max, int upper_only)
{
    size_t i;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 (!upper_only && ((c >= 'a' && c <= 'z') || c == '.' || c == '-'));
        if (!ok || i >= max)
            return 0;
    }
    return i > 0;
}

/* A text[] literal of names already checked by name_ok (no quotes or backslashes). */
static int array_literal(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t len = 0;
    int w = snprintf(buf, cap, "{");
    for (size_t i = 0; w >= 0 && (size_t)w < cap - len && i < n; i++) {
        len += (size_t)w;
        w = snprintf(buf + len, cap - len, "%s\"%s\"", i ? "," : "", names[i]);
    }
    if (w < 0 || (size_t)w >= cap - len)
        return BRK_ETOOBIG;
    len += (size_t)w;
    if (len + 2 > cap)
        return BRK_ETOOBIG;
    buf[len++] = '}';
    buf[len] = '\0';
    return 0;
}

uint64_t fn_runtime_backoff_ms(unsigned base_ms, unsigned attempt, uint32_t draw)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < attempt && d < FN_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > FN_BACKOFF_CAP_MS)
        d = FN_BACKOFF_CAP_MS;
    /* draw picks the factor: 100 - JITTER .. 100 + JITTER percent */
    return d * (100 - FN_BACKOFF_JITTER_PCT + draw % (2 * FN_BACKOFF_JITTER_PCT + 1)) / 100;
}

static uint64_t backoff(const fn_runtime_t *rt, unsigned attempt)
{
    return fn_runtime_backoff_ms(rt->backoff_ms, attempt, arc4random());
}

static const fn_slot_t *slot_of(const fn_runtime_t *rt, const char *name)
{
    for (size_t i = 0; i < rt->nslots; i++)
        if (strcmp(rt->slots[i].def->name, name) == 0)
            return &rt->slots[i];
    return NULL;
}

/* ---- the work connection --------------------------------------------------------------- */

/* exec_p: a prepared statement. Returns the result (caller PQclear()s) or NULL with the
 * error in err; the caller checks PQstatus for a lost connection. */
static PGresult *exec_p(fn_runtime_t *rt, int s, const char *const *params, char *err,
                        size_t errlen)
{
    PGresult *res =
        PQexecPrepared(rt->work, k_stmts[s].name, k_stmts[s].nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    copy_err(err, errlen, res ? PQresultErrorMessage(res) : PQerrorMessage(rt->work));
    PQclear(res);
    return NULL;
}

/* exec_s: a statement without parameters or result (BEGIN, SAVEPOINT, ...). 0 or BRK_EDB. */
static int exec_s(fn_runtime_t *rt, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(rt->work, sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        copy_err(err, errlen, res ? PQresultErrorMessage(res) : PQerrorMessage(rt->work));
    PQclear(res);
    return ok ? 0 : BRK_EDB;
}

static int work_broken(const fn_runtime_t *rt)
{
    return rt->work == NULL || PQstatus(rt->work) == CONNECTION_BAD;
}

/* ---- connecting ------------------------------------------------------------------------ */

static void on_notify(evutil_socket_t fd, short what, void *arg);

static PGconn *pg_open(const fn_runtime_t *rt, char *err, size_t errlen)
{
    /* The configured conninfo is expanded first, so the keywords after it win. */
    const char *const keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *const vals[] = {rt->cfg->conninfo, FN_CONNECT_TIMEOUT_S, FN_APP_NAME, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c != NULL && PQstatus(c) == CONNECTION_OK)
        return c;
    copy_err(err, errlen, c ? PQerrorMessage(c) : "cannot connect");
    PQfinish(c);
    return NULL;
}

static void db_close(fn_runtime_t *rt)
{
    if (rt->listen_ev) {
        event_free(rt->listen_ev);
        rt->listen_ev = NULL;
    }
    PQfinish(rt->listen);
    PQfinish(rt->work);
    rt->listen = rt->work = NULL;
    rt->connected = 0;
}

static void db_lost(fn_runtime_t *rt, const char *why)
{
    db_close(rt);
    if (!rt->down_logged) {
        char ms[16];
        snprintf(ms, sizeof ms, "%d", FN_RECONNECT_MS);
        brk_log_warn("function runtime lost the database", "error", why, "retry_ms", ms);
        rt->down_logged = 1;
    }
    if (!rt->stopping) {
        struct timeval tv = ms_tv(FN_RECONNECT_MS);
        evtimer_add(rt->reconnect_ev, &tv);
    }
}

/* Subscribes every enabled function (backfilling history for new subscriptions). */
static int subscribe_all(fn_runtime_t *rt, char *err, size_t errlen)
{
    char types[FN_TYPES_PARAM_MAX], n[24];
    for (size_t i = 0; i < rt->nslots; i++) {
        const fn_def_t *d = rt->slots[i].def;
        size_t nt = 0;
        while (d->event_types[nt] != NULL)
            nt++;
        if (array_literal(types, sizeof types, d->event_types, nt) != 0) {
            snprintf(err, errlen, "too many event types for function \"%s\"", d->name);
            return BRK_EINVAL;
        }
        const char *p[] = {d->name, types};
        PGresult *res = exec_p(rt, S_SUBSCRIBE, p, err, errlen);
        if (res == NULL)
            return BRK_EDB;
        snprintf(n, sizeof n, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (strcmp(n, "0") != 0)
            brk_log_info("function subscribed", "function", d->name, "backfilled_runs", n);
    }
    return 0;
}

/* db_connect: opens both connections, prepares, subscribes, listens. On failure everything
 * is closed again and a reconnect is scheduled. Runtime thread. */
static void db_connect(fn_runtime_t *rt)
{
    char err[FN_ERR_MAX] = "";
    PGresult *res = NULL;

    if ((rt->work = pg_open(rt, err, sizeof err)) == NULL ||
        (rt->listen = pg_open(rt, err, sizeof err)) == NULL)
        goto fail;
    /* A blocking statement must not hang the runtime forever on a lock or a stuck server. */
    if (exec_s(rt, "SET statement_timeout = " FN_STATEMENT_TIMEOUT_MS, err, sizeof err) != 0)
        goto fail;
    for (int s = 0; s < S_COUNT; s++) {
        res = PQprepare(rt->work, k_stmts[s].name, k_stmts[s].sql, k_stmts[s].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            copy_err(err, sizeof err, PQresultErrorMessage(res));
            goto fail;
        }
        PQclear(res);
        res = NULL;
    }
    if (subscribe_all(rt, err, sizeof err) != 0)
        goto fail;
    res = PQexec(rt->listen, "LISTEN gsap_events");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        copy_err(err, sizeof err, PQresultErrorMessage(res));
        goto fail;
    }
    PQclear(res);
    res = NULL;
    rt->listen_ev = event_new(rt->base, PQsocket(rt->listen), EV_READ | EV_PERSIST, on_notify, rt);
    if (rt->listen_ev == NULL || event_add(rt->listen_ev, NULL) != 0) {
        copy_err(err, sizeof err, "cannot watch the listen connection");
        goto fail;
    }
    rt->connected = 1;
    if (rt->down_logged) {
        brk_log_info("function runtime reconnected", "database", "up");
        rt->down_logged = 0;
    }
    event_active(rt->claim_ev, EV_READ, 0);
    return;
fail:
    PQclear(res);
    db_lost(rt, err);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (!rt->stopping && !rt->connected)
        db_connect(rt);
}

/* on_lost: the listen connection failed; handled here rather than inside on_notify, so the
 * listen event is never freed from its own callback. */
static void on_lost(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (rt->connected)
        db_lost(rt, rt->lost_err);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    PGnotify *n;
    if (PQconsumeInput(rt->listen) == 0) {
        copy_err(rt->lost_err, sizeof rt->lost_err, PQerrorMessage(rt->listen));
        event_del(rt->listen_ev);
        event_active(rt->lost_ev, EV_READ, 0);
        return;
    }
    while ((n = PQnotifies(rt->listen)) != NULL)
        PQfreemem(n);
    event_active(rt->claim_ev, EV_READ, 0);
}

/* ---- metrics --------------------------------------------------------------------------- */

static void refresh_stats(fn_runtime_t *rt)
{
    char err[FN_ERR_MAX];
    PGresult *res = exec_p(rt, S_STATS, NULL, err, sizeof err);
    if (res == NULL) {
        if (work_broken(rt))
            db_lost(rt, err);
        return;
    }
    brk_metrics_set(rt->m_depth, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    brk_metrics_set(rt->m_oldest, strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    brk_metrics_set(rt->m_dead, strtoll(PQgetvalue(res, 0, 2), NULL, 10));
    PQclear(res);
}

/* ---- one run's log line ------------------------------------------------------------------ */

static void log_run(const char *function, const char *tenant, const char *event_id,
                    const char *type, const char *outcome, int attempt, uint64_t dur_ns,
                    const char *err)
{
    char att[16], dur[32];
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(dur, sizeof dur, "%.3f", (double)dur_ns / 1e6);
    brk_log_info("function run", "function", function, "event_id", event_id, "tenant", tenant,
                 "type", type, "outcome", outcome, "attempt", att, "duration_ms", dur, "error",
                 err && *err ? err : NULL);
}

/* ---- events as functions see them ---------------------------------------------------------- */

/* Columns of S_CLAIM. */
enum { C_TENANT, C_EVENT, C_FUNCTION, C_ATTEMPTS, C_TYPE, C_CONTEXT, C_PAYLOAD, C_CREATED };

/* event_from_row: fills ev from a claimed row (strings point into res; payload is owned by
 * ev, released with json_decref). Returns 0 or BRK_EINVAL with err. */
static int event_from_row(PGresult *res, int i, fn_event_t *ev, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *obj = NULL;
    int rc = 0;

    memset(ev, 0, sizeof *ev);
    ev->tenant = PQgetvalue(res, i, C_TENANT);
    ev->event_id = strtoll(PQgetvalue(res, i, C_EVENT), NULL, 10);
    ev->type = PQgetvalue(res, i, C_TYPE);
    ev->context_id = PQgetisnull(res, i, C_CONTEXT) ? NULL : PQgetvalue(res, i, C_CONTEXT);
    ev->created_at = PQgetvalue(res, i, C_CREATED);
    ev->payload = json_loads(PQgetvalue(res, i, C_PAYLOAD), JSON_DECODE_ANY, &jerr);
    if (ev->payload == NULL) {
        snprintf(err, errlen, "event payload does not parse: %s", jerr.text);
        rc = BRK_EINVAL;
        goto out;
    }
    obj = json_pack("{s:s,s:I,s:s,s:s?,s:O,s:s}", "tenant_id", ev->tenant, "event_id",
                    (json_int_t)ev->event_id, "type", ev->type, "context_id", ev->context_id,
                    "payload", ev->payload, "created_at", ev->created_at);
    if (obj == NULL || brk_jcs_cid(obj, ev->cid) != 0) {
        snprintf(err, errlen, "cannot compute the event CID");
        rc = BRK_EINVAL;
    }
out:
    json_decref(obj);
    return rc;
}

/* ---- asynchronous runs ------------------------------------------------------------------- */

static void job_unlink(fn_async_t **list, fn_async_t *job)
{
    for (fn_async_t **p = list; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            job->next = NULL;
            return;
        }
}

void fn_async_done(fn_async_t *job, const char *err)
{
    fn_runtime_t *rt = job->rt;
    if (job->state == JOB_FINISHED) {
        brk_log_error("fn_async_done called twice", "function", job->slot->def->name);
        return;
    }
    job->state = JOB_FINISHED;
    job->failed = err != NULL;
    copy_err(job->err, sizeof job->err, err);
    if (err != NULL && job->err[0] == '\0')
        copy_err(job->err, sizeof job->err, "failed");
    job_unlink(&rt->running, job);
    job->next = rt->finished;
    rt->finished = job;
    /* Recorded from the loop, not from inside the function's own callback. */
    event_active(rt->done_ev, EV_READ, 0);
}

/* record_job: the outcome of a finished job, in one autocommitted statement. */
static void record_job(fn_runtime_t *rt, fn_async_t *job)
{
    char att[16], delay[24], maxa[16], err[FN_ERR_MAX] = "";
    const char *outcome;
    PGresult *res = NULL;
    uint64_t dur = now_ns() - job->started_ns;

    snprintf(att, sizeof att, "%d", job->attempts);
    if (!rt->connected) {
        outcome = "unrecorded"; /* the lease expires and the pair runs again */
    } else if (!job->failed) {
        const char *p[] = {job->tenant, job->event_id, job->slot->def->name, att};
        res = exec_p(rt, S_ASYNC_DONE, p, err, sizeof err);
        outcome = res == NULL                          ? "unrecorded"
                  : strcmp(PQcmdTuples(res), "1") == 0 ? "done"
                                                       : "stale";
    } else {
        snprintf(delay, sizeof delay, "%" PRIu64, backoff(rt, (unsigned)job->attempts));
        snprintf(maxa, sizeof maxa, "%u", rt->max_attempts);
        const char *p[] = {job->tenant, job->event_id, job->slot->def->name, att, job->err,
                           delay,       maxa};
        res = exec_p(rt, S_ASYNC_FAIL, p, err, sizeof err);
        outcome = res == NULL                               ? "unrecorded"
                  : PQntuples(res) == 0                     ? "stale"
                  : strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "dead"
                                                            : "retry";
    }
    brk_metrics_add(job->slot->m_runs, 1);
    if (job->failed)
        brk_metrics_add(job->slot->m_failures, 1);
    log_run(job->slot->def->name, job->tenant, job->event_id, job->type, outcome, job->attempts,
            dur, job->failed ? job->err : err);
    PQclear(res);
    if (res == NULL && rt->connected && work_broken(rt))
        db_lost(rt, err);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    fn_async_t *list = rt->finished, *job;
    rt->finished = NULL;
    while ((job = list) != NULL) {
        list = job->next;
        record_job(rt, job);
        free(job);
        rt->inflight--;
    }
    if (rt->stopping) {
        if (rt->inflight == 0)
            event_base_loopbreak(rt->base);
        return;
    }
    if (rt->starved) {
        rt->starved = 0;
        event_active(rt->claim_ev, EV_READ, 0);
    }
}

/* start_job: starts one leased async pair (after the lease committed). */
static void start_job(fn_runtime_t *rt, const fn_slot_t *slot, PGresult *res, int i)
{
    fn_async_t *job = brk_calloc(1, sizeof *job);
    fn_event_t ev;
    char err[FN_ERR_MAX] = "";
    int rc;

    job->rt = rt;
    job->slot = slot;
    snprintf(job->tenant, sizeof job->tenant, "%s", PQgetvalue(res, i, C_TENANT));
    snprintf(job->event_id, sizeof job->event_id, "%s", PQgetvalue(res, i, C_EVENT));
    snprintf(job->type, sizeof job->type, "%s", PQgetvalue(res, i, C_TYPE));
    job->attempts = (int)strtol(PQgetvalue(res, i, C_ATTEMPTS), NULL, 10) + 1;
    job->started_ns = now_ns();
    job->state = JOB_STARTING;
    job->next = rt->running;
    rt->running = job;
    rt->inflight++;

    rc = event_from_row(res, i, &ev, err, sizeof err);
    if (rc == 0)
        rc = slot->def->start(&rt->env, &ev, job, err, sizeof err);
    json_decref(ev.payload);
    if (rc != 0) /* it never calls fn_async_done then: finish it here */
        fn_async_done(job, err[0] ? err : brk_strerror(rc));
    else if (job->state == JOB_STARTING)
        job->state = JOB_RUNNING;
}

/* ---- synchronous runs and the claim pass -------------------------------------------------- */

typedef struct run_note {
    const fn_slot_t *slot;
    int row, attempt, async;
    const char *outcome;
    uint64_t dur_ns;
    char err[FN_ERR_MAX];
} run_note_t;

/* run_sync: one synchronous pair inside the claim transaction, under a savepoint.
 * Returns 0 (outcome recorded in note) or BRK_EDB when the transaction cannot go on. */
static int run_sync(fn_runtime_t *rt, PGresult *res, int i, run_note_t *note, char *err,
                    size_t errlen)
{
    const char *tenant = PQgetvalue(res, i, C_TENANT), *event_id = PQgetvalue(res, i, C_EVENT);
    const char *name = note->slot->def->name;
    char delay[24], maxa[16];
    fn_event_t ev;
    PGresult *r = NULL;
    uint64_t t0 = now_ns();
    int rc;

    if (exec_s(rt, "SAVEPOINT fn_run", err, errlen) != 0)
        return BRK_EDB;
    rc = event_from_row(res, i, &ev, note->err, sizeof note->err);
    if (rc == 0)
        rc = note->slot->def->run(&rt->env, rt->work, &ev, note->err, sizeof note->err);
    json_decref(ev.payload);
    if (work_broken(rt)) {
        copy_err(err, errlen, PQerrorMessage(rt->work));
        return BRK_EDB;
    }
    if (rc == 0 && PQtransactionStatus(rt->work) != PQTRANS_INTRANS) {
        copy_err(note->err, sizeof note->err, "the function left its transaction aborted");
        rc = BRK_EINTERNAL;
    }
    note->dur_ns = now_ns() - t0;
    if (rc == 0) {
        const char *p[] = {tenant, event_id, name};
        if (exec_s(rt, "RELEASE SAVEPOINT fn_run", err, errlen) != 0 ||
            (r = exec_p(rt, S_DONE, p, err, errlen)) == NULL)
            return BRK_EDB;
        note->outcome = "done";
        PQclear(r);
        return 0;
    }
    if (note->err[0] == '\0')
        copy_err(note->err, sizeof note->err, brk_strerror(rc));
    if (exec_s(rt, "ROLLBACK TO SAVEPOINT fn_run", err, errlen) != 0)
        return BRK_EDB;
    snprintf(delay, sizeof delay, "%" PRIu64, backoff(rt, (unsigned)note->attempt));
    snprintf(maxa, sizeof maxa, "%u", rt->max_attempts);
    const char *p[] = {tenant, event_id, name, note->err, delay, maxa};
    if ((r = exec_p(rt, S_FAIL, p, err, errlen)) == NULL)
        return BRK_EDB;
    note->outcome = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? "dead" : "retry";
    PQclear(r);
    return 0;
}

/*
 * claim_pass: BEGIN; claim up to batch pending pairs; run the synchronous ones and lease
 * the asynchronous ones; COMMIT; then start the leased ones. Returns the number of pairs
 * claimed, or BRK_EDB. *more is 1 when the batch was full and nothing was left over.
 */
static int claim_pass(fn_runtime_t *rt, int *more)
{
    const char *names[FN_MAX_FUNCTIONS];
    char names_param[FN_NAMES_PARAM_MAX], limit[16], lease[16], err[FN_ERR_MAX] = "";
    size_t nn = 0;
    unsigned free_slots = FN_ASYNC_MAX_INFLIGHT - rt->inflight, leased = 0;
    int n = 0, rc = BRK_EDB, left_over = 0, committed = 0;
    int excluded = free_slots == 0 && rt->nasync > 0; /* async functions not even asked for */
    PGresult *res = NULL;
    run_note_t *notes = NULL;

    *more = 0;
    for (size_t i = 0; i < rt->nslots; i++)
        if (rt->slots[i].def->run != NULL || free_slots > 0)
            names[nn++] = rt->slots[i].def->name;
    if (nn == 0) {
        rt->starved = rt->nasync > 0;
        return 0;
    }
    if (array_literal(names_param, sizeof names_param, names, nn) != 0)
        return BRK_EINTERNAL;
    snprintf(limit, sizeof limit, "%u", rt->batch);
    snprintf(lease, sizeof lease, "%u", FN_ASYNC_LEASE_MS);

    if (exec_s(rt, "BEGIN", err, sizeof err) != 0)
        goto out;
    const char *cp[] = {names_param, limit};
    if ((res = exec_p(rt, S_CLAIM, cp, err, sizeof err)) == NULL)
        goto out;
    n = PQntuples(res);
    notes = n > 0 ? brk_calloc((size_t)n, sizeof *notes) : NULL;
    for (int i = 0; i < n; i++) {
        run_note_t *note = &notes[i];
        note->row = i;
        note->slot = slot_of(rt, PQgetvalue(res, i, C_FUNCTION));
        note->attempt = (int)strtol(PQgetvalue(res, i, C_ATTEMPTS), NULL, 10) + 1;
        if (note->slot == NULL) /* not claimed by name: cannot happen */
            continue;
        if (note->slot->def->run != NULL) {
            if (run_sync(rt, res, i, note, err, sizeof err) != 0)
                goto out;
            continue;
        }
        note->async = 1;
        if ((unsigned)note->attempt > rt->max_attempts) {
            const char *dp[] = {PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_EVENT),
                                note->slot->def->name};
            PGresult *r = exec_p(rt, S_LEASE_DEAD, dp, err, sizeof err);
            if (r == NULL)
                goto out;
            PQclear(r);
            note->attempt--; /* no new attempt was made */
            note->outcome = "dead";
            copy_err(note->err, sizeof note->err, "no result within the lease");
            continue;
        }
        if (leased >= free_slots) { /* no slot: leave it pending, locked only until COMMIT */
            left_over = 1;
            note->slot = NULL;
            continue;
        }
        const char *lp[] = {PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_EVENT),
                            note->slot->def->name, lease};
        PGresult *r = exec_p(rt, S_LEASE, lp, err, sizeof err);
        if (r == NULL)
            goto out;
        PQclear(r);
        leased++;
    }
    if (exec_s(rt, "COMMIT", err, sizeof err) != 0)
        goto out;
    committed = 1;
    rc = n;
    *more = n == (int)rt->batch && !left_over;
    rt->starved = left_over || excluded;
out:
    if (!committed && !work_broken(rt)) {
        char ignored[FN_ERR_MAX];
        exec_s(rt, "ROLLBACK", ignored, sizeof ignored);
    }
    for (int i = 0; i < n && notes != NULL; i++) {
        run_note_t *note = &notes[i];
        if (note->slot == NULL)
            continue;
        if (note->async && note->outcome == NULL) {
            if (committed)
                start_job(rt, note->slot, res, i);
            continue;
        }
        if (note->outcome == NULL) /* not reached, or the pass did not commit */
            continue;
        const char *outcome = committed ? note->outcome : "rolled_back";
        if (committed) {
            brk_metrics_add(note->slot->m_runs, 1);
            if (strcmp(note->outcome, "done") != 0)
                brk_metrics_add(note->slot->m_failures, 1);
        }
        log_run(note->slot->def->name, PQgetvalue(res, i, C_TENANT), PQgetvalue(res, i, C_EVENT),
                PQgetvalue(res, i, C_TYPE), outcome, note->attempt, note->dur_ns, note->err);
    }
    free(notes);
    PQclear(res);
    if (!committed && work_broken(rt))
        db_lost(rt, err);
    else if (!committed)
        brk_log_warn("function runtime claim pass failed", "error", err);
    return rc;
}

static void on_claim(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    int more = 0;
    for (int pass = 0; pass < FN_PASSES_PER_WAKE; pass++) {
        if (!rt->connected || rt->stopping)
            return;
        if (claim_pass(rt, &more) < 0 || !more)
            return;
    }
    /* Still a full backlog: yield to timers and completions, then continue. */
    event_active(rt->claim_ev, EV_READ, 0);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (!rt->connected || rt->stopping)
        return;
    refresh_stats(rt);
    if (rt->connected)
        event_active(rt->claim_ev, EV_READ, 0);
}

/* ---- periodic jobs ----------------------------------------------------------------------- */

static void on_periodic(evutil_socket_t fd, short what, void *arg)
{
    fn_timer_t *t = arg;
    fn_runtime_t *rt = t->rt;
    char err[FN_ERR_MAX] = "", ignored[FN_ERR_MAX];
    int rc;

    if (!rt->connected || rt->stopping)
        return;
    if ((rc = exec_s(rt, "BEGIN", err, sizeof err)) == 0) {
        rc = t->def->run(&rt->env, rt->work, err, sizeof err);
        if (rc == 0 && PQtransactionStatus(rt->work) != PQTRANS_INTRANS) {
            copy_err(err, sizeof err, "the job left its transaction aborted");
            rc = BRK_EINTERNAL;
        }
        if (rc == 0)
            rc = exec_s(rt, "COMMIT", err, sizeof err);
        else if (!work_broken(rt))
            exec_s(rt, "ROLLBACK", ignored, sizeof ignored);
    }
    if (rc != 0 && work_broken(rt))
        db_lost(rt, err);
    else if (rc != 0)
        brk_log_warn("periodic job failed", "job", t->def->name, "error",
                     err[0] ? err : brk_strerror(rc));
}

/* ---- stop ------------------------------------------------------------------------------- */

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    char n[16];
    snprintf(n, sizeof n, "%u", rt->inflight);
    brk_log_warn("function runtime stops with asynchronous runs in flight", "runs", n);
    event_base_loopbreak(rt->base);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    struct timeval tv = ms_tv(FN_STOP_GRACE_MS);

    rt->stopping = 1;
    event_del(rt->poll_ev);
    event_del(rt->claim_ev);
    event_del(rt->reconnect_ev);
    event_del(rt->lost_ev);
    if (rt->listen_ev)
        event_del(rt->listen_ev);
    for (size_t i = 0; i < rt->ntimers; i++)
        event_del(rt->timers[i].ev);
    if (rt->inflight == 0) {
        event_base_loopbreak(rt->base);
        return;
    }
    evtimer_add(rt->grace_ev, &tv);
}

static void *thread_main(void *arg)
{
    fn_runtime_t *rt = arg;
    fn_async_t *job;
    db_connect(rt);
    event_base_loop(rt->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* Connections and jobs belong to this thread: release them here. Jobs still running were
     * abandoned after the grace period; their pairs stay leased and run again later. */
    while ((job = rt->running) != NULL) {
        rt->running = job->next;
        free(job);
    }
    while ((job = rt->finished) != NULL) {
        rt->finished = job->next;
        free(job);
    }
    db_close(rt);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------------- */

/* rt_free: releases rt once its thread has ended (or never started). */
static void rt_free(fn_runtime_t *rt)
{
    struct event **evs[] = {&rt->poll_ev,  &rt->claim_ev,     &rt->done_ev, &rt->stop_ev,
                            &rt->grace_ev, &rt->reconnect_ev, &rt->lost_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i])
            event_free(*evs[i]);
    for (size_t i = 0; i < rt->ntimers; i++)
        if (rt->timers[i].ev)
            event_free(rt->timers[i].ev);
    if (rt->base)
        event_base_free(rt->base);
    free(rt);
}

/* register_functions: checks the registry and keeps the enabled functions. */
static int register_functions(fn_runtime_t *rt, char *err, size_t errlen)
{
    for (size_t i = 0; fn_registry[i] != NULL; i++) {
        const fn_def_t *d = fn_registry[i];
        size_t nt = 0;
        if (i >= FN_MAX_FUNCTIONS) {
            snprintf(err, errlen, "more than %d registered functions", FN_MAX_FUNCTIONS);
            return BRK_EINVAL;
        }
        if (d->name == NULL || !name_ok(d->name, FN_NAME_MAX, 0) ||
            (d->run == NULL) == (d->start == NULL) || d->event_types == NULL) {
            snprintf(err, errlen,
                     "function %zu (\"%.32s\") is malformed: a name of 1 to %d "
                     "[A-Za-z0-9_.-], exactly one of run and start, event types",
                     i, d->name ? d->name : "", FN_NAME_MAX);
            return BRK_EINVAL;
        }
        for (; d->event_types[nt] != NULL; nt++)
            if (!name_ok(d->event_types[nt], FN_EVENT_TYPE_MAX, 1)) {
                snprintf(err, errlen, "function \"%s\": bad event type", d->name);
                return BRK_EINVAL;
            }
        for (size_t k = 0; k < i; k++)
            if (strcmp(fn_registry[k]->name, d->name) == 0) {
                snprintf(err, errlen, "function \"%s\" is registered twice", d->name);
                return BRK_EINVAL;
            }
        if (nt == 0 || (d->enabled != NULL && !d->enabled(&rt->env)))
            continue;
        fn_slot_t *s = &rt->slots[rt->nslots++];
        s->def = d;
        if (g_metric_names[i][0][0] == '\0') {
            snprintf(g_metric_names[i][0], BRK_METRICS_NAME_MAX,
                     "gsap_fn_runs_total{function=\"%s\"}", d->name);
            snprintf(g_metric_names[i][1], BRK_METRICS_NAME_MAX,
                     "gsap_fn_failures_total{function=\"%s\"}", d->name);
        }
        s->m_runs =
            brk_metrics_gauge(g_metric_names[i][0], "Function runs finished (any outcome).");
        s->m_failures = brk_metrics_gauge(g_metric_names[i][1], "Function runs that failed.");
        if (d->start != NULL)
            rt->nasync++;
        brk_log_info("function enabled", "function", d->name, "kind", d->run ? "sync" : "async");
    }
    return 0;
}

static int register_periodics(fn_runtime_t *rt, char *err, size_t errlen)
{
    for (size_t i = 0; fn_periodics[i] != NULL; i++) {
        const fn_periodic_t *p = fn_periodics[i];
        if (i >= FN_MAX_PERIODICS || p->name == NULL || p->run == NULL || p->interval_s == 0) {
            snprintf(err, errlen, "periodic job %zu is malformed (or more than %d jobs)", i,
                     FN_MAX_PERIODICS);
            return BRK_EINVAL;
        }
        fn_timer_t *t = &rt->timers[rt->ntimers++];
        struct timeval tv = {(time_t)p->interval_s, 0};
        t->rt = rt;
        t->def = p;
        if ((t->ev = event_new(rt->base, -1, EV_PERSIST, on_periodic, t)) == NULL ||
            event_add(t->ev, &tv) != 0) {
            snprintf(err, errlen, "cannot arm the timer of periodic job \"%s\"", p->name);
            return BRK_ENOMEM;
        }
    }
    return 0;
}

fn_runtime_t *fn_runtime_start(const brk_config_t *cfg, const brk_keyring_t *keys, char *err,
                               size_t errlen)
{
    fn_runtime_t *rt = brk_calloc(1, sizeof *rt);
    sigset_t block, old;
    struct timeval tv;
    int rc;

    rt->cfg = cfg;
    if ((rc = env_uint("GSAP_FN_POLL_MS", FN_DEFAULT_POLL_MS, FN_POLL_MS_MIN, FN_POLL_MS_MAX,
                       &rt->poll_ms, err, errlen)) != 0 ||
        (rc = env_uint("GSAP_FN_BATCH", FN_DEFAULT_BATCH, 1, FN_BATCH_MAX, &rt->batch, err,
                       errlen)) != 0 ||
        (rc = env_uint("GSAP_FN_BACKOFF_MS", FN_DEFAULT_BACKOFF_MS, 1, FN_BACKOFF_CAP_MS,
                       &rt->backoff_ms, err, errlen)) != 0 ||
        (rc = env_uint("GSAP_FN_MAX_ATTEMPTS", FN_DEFAULT_MAX_ATTEMPTS, 1, FN_MAX_ATTEMPTS_MAX,
                       &rt->max_attempts, err, errlen)) != 0)
        goto fail;
    if (cfg->conninfo == NULL) {
        snprintf(err, errlen, "the function runtime needs a database connection string");
        goto fail;
    }
    /* Locking must be on before the base exists, or cross-thread event_active is unsafe. */
    if (evthread_use_pthreads() != 0 || (rt->base = event_base_new()) == NULL) {
        snprintf(err, errlen, "cannot create the function runtime's event loop");
        goto fail;
    }
    rt->env.cfg = cfg;
    rt->env.keys = keys;
    rt->env.base = rt->base;
    if (register_functions(rt, err, errlen) != 0 || register_periodics(rt, err, errlen) != 0)
        goto fail;
    rt->m_depth = brk_metrics_gauge("gsap_fn_queue_depth",
                                    "Pending (event, function) pairs in the database.");
    rt->m_oldest = brk_metrics_gauge("gsap_fn_oldest_pending_seconds",
                                     "Age of the oldest event with a pending pair.");
    rt->m_dead =
        brk_metrics_gauge("gsap_fn_dead_letters", "Dead-lettered (event, function) pairs.");
    rt->poll_ev = event_new(rt->base, -1, EV_PERSIST, on_poll, rt);
    rt->claim_ev = event_new(rt->base, -1, 0, on_claim, rt);
    rt->done_ev = event_new(rt->base, -1, 0, on_done, rt);
    rt->stop_ev = event_new(rt->base, -1, 0, on_stop, rt);
    rt->grace_ev = evtimer_new(rt->base, on_grace, rt);
    rt->reconnect_ev = evtimer_new(rt->base, on_reconnect, rt);
    rt->lost_ev = event_new(rt->base, -1, 0, on_lost, rt);
    tv = ms_tv(rt->poll_ms);
    if (!rt->poll_ev || !rt->claim_ev || !rt->done_ev || !rt->stop_ev || !rt->grace_ev ||
        !rt->reconnect_ev || !rt->lost_ev || event_add(rt->poll_ev, &tv) != 0) {
        snprintf(err, errlen, "cannot create the function runtime's events");
        goto fail;
    }
    /* brk_server_run waits for SIGTERM with sigwait: no other thread may take it. SIGPIPE
     * too, since a webhook peer may reset before the server ignores SIGPIPE. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    rc = pthread_create(&rt->thread, NULL, thread_main, rt);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the function runtime thread: %s", strerror(rc));
        goto fail;
    }
    rt->thread_started = 1;
    return rt;
fail:
    rt_free(rt);
    return NULL;
}

void fn_runtime_stop(fn_runtime_t *rt)
{
    if (rt == NULL)
        return;
    if (rt->thread_started) {
        event_active(rt->stop_ev, EV_READ, 0);
        pthread_join(rt->thread, NULL);
    }
    rt_free(rt);
    brk_log_info("function runtime stopped", "status", "ok");
}
