/*
 * fn_runtime_db: the function runtime's two PostgreSQL connections and every statement the
 * runtime itself sends.
 *
 * "listen" runs LISTEN gsap_events; its socket is watched by libevent, and a notification
 * only wakes a claim pass. "work" carries every claim, update and periodic job. Work
 * statements are blocking libpq calls on the runtime thread. That is deliberate and
 * acceptable here: this loop serves no HTTP client, its only other duties (webhook
 * responses, timers) tolerate a pass's latency, and a blocking claim-run-commit sequence is
 * far easier to prove exactly-once than a state machine. The HTTP loops never block; they
 * only meet this thread in PostgreSQL.
 *
 * At every (re)connect the statements are prepared again and each enabled function is
 * subscribed to its types with gsap_fn_subscribe, which backfills runs for stored events the
 * first time. When the database goes away the runtime closes both connections, logs once,
 * and tries again every FN_RECONNECT_MS; asynchronous completions that arrive meanwhile are
 * not recorded (their leases expire and the pairs run again). Each worker (GSAP_FN_WORKERS)
 * has its own two connections and logs its own outage once.
 *
 * Runtime thread only.
 */
#include "fn_runtime_int.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "banned.h"

#define FN_CONNECT_TIMEOUT_S "5"
#define FN_STATEMENT_TIMEOUT_MS "60000"
#define FN_APP_NAME "gsap-fn-runtime"
/* An event's time as the runtime shows it and hashes it into the event CID (see
 * fn_runtime_claim.c): always six fractional digits, e.g. "2026-11-23T10:00:00.123456Z". */
#define FN_TS_FORMAT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

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
    /* Leases, one statement per pass: each attempt is counted and committed before the run
     * starts, so a run that kills the broker still counts; ms is how long other claims leave
     * the pair alone. $1: [{"t","e","f","ms"}, ...]. */
    [S_LEASE_MANY] = {"fn_lease_many",
                      "UPDATE fn_runs r SET attempts = r.attempts + 1, "
                      "next_attempt_at = now() + x.ms * interval '1 millisecond' "
                      "FROM jsonb_to_recordset($1::jsonb) AS x(t text, e bigint, f text, ms bigint) "
                      "WHERE r.tenant_id = x.t AND r.event_id = x.e AND r.function = x.f",
                      1},
    /* A pair claimed again with no attempts left: its last lease ended without a result (the
     * broker died or lost the database mid-run), and running it again could loop forever. */
    [S_LEASE_DEAD] = {"fn_lease_dead",
                      "UPDATE fn_runs SET dead_at = now(), last_error = left(coalesce(last_error "
                      "|| '; ', '') || 'no result within the lease', 512) "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3",
                      3},
    /* The run transaction's hold on its leased synchronous pairs, one statement per pass:
     * returns the position i of each pair it locked; none for a pair whose lease was lost (it
     * expired and another claim counted a newer attempt) or that another run holds.
     * $1: [{"i","t","e","f","a"}, ...]. */
    [S_LOCK_MANY] = {"fn_lock_many",
                     "SELECT x.i FROM jsonb_to_recordset($1::jsonb) "
                     "AS x(i int, t text, e bigint, f text, a int) "
                     "JOIN fn_runs r ON r.tenant_id = x.t AND r.event_id = x.e AND r.function = x.f "
                     "WHERE r.attempts = x.a AND r.done_at IS NULL AND r.dead_at IS NULL "
                     "ORDER BY x.i FOR UPDATE OF r SKIP LOCKED",
                     1},
    /* Outcomes, fenced by the leased attempt count: a completion that lost its lease to a
     * later claim matches no row and changes nothing. */
    [S_LEASE_DONE] = {"fn_lease_done",
                      "UPDATE fn_runs SET done_at = now() "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3 "
                      "AND attempts = $4::int AND done_at IS NULL AND dead_at IS NULL",
                      4},
    /* The done marks of a batch's successful pairs in one statement, fenced the same way.
     * $1: [{"t","e","f","a"}, ...]. */
    [S_DONE_MANY] = {"fn_done_many",
                     "UPDATE fn_runs r SET done_at = now() "
                     "FROM jsonb_to_recordset($1::jsonb) AS x(t text, e bigint, f text, a int) "
                     "WHERE r.tenant_id = x.t AND r.event_id = x.e AND r.function = x.f "
                     "AND r.attempts = x.a AND r.done_at IS NULL AND r.dead_at IS NULL",
                     1},
    [S_LEASE_FAIL] = {"fn_lease_fail",
                      "UPDATE fn_runs SET last_error = $5, "
                      "next_attempt_at = now() + $6::bigint * interval '1 millisecond', "
                      "dead_at = CASE WHEN attempts >= $7::int THEN now() END "
                      "WHERE tenant_id = $1 AND event_id = $2::bigint AND function = $3 "
                      "AND attempts = $4::int AND done_at IS NULL AND dead_at IS NULL "
                      "RETURNING dead_at IS NOT NULL",
                      7},
    [S_SUBSCRIBE] = {"fn_subscribe", "SELECT gsap_fn_subscribe($1, $2::text[], $3)", 3},
};

/* ---- the work connection --------------------------------------------------------------- */

PGresult *fn__exec_p(fn_runtime_t *rt, enum fn_stmt s, const char *const *params, char *err,
                     size_t errlen)
{
    PGresult *res =
        PQexecPrepared(rt->work, k_stmts[s].name, k_stmts[s].nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    fn__copy_err(err, errlen, res ? PQresultErrorMessage(res) : PQerrorMessage(rt->work));
    PQclear(res);
    return NULL;
}

int fn__exec_s(fn_runtime_t *rt, const char *sql, char *err, size_t errlen)
{
    char msg[FN_ERR_MAX];
    int rc = brk_pq_cmd(rt->work, sql, 0, NULL, NULL, msg, sizeof msg);

    if (rc < 0)
        fn__copy_err(err, errlen, msg); /* one line, printable, for the log and last_error */
    return rc;
}

int fn__work_broken(const fn_runtime_t *rt)
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
    fn__copy_err(err, errlen, c ? PQerrorMessage(c) : "cannot connect");
    PQfinish(c);
    return NULL;
}

void fn__db_close(fn_runtime_t *rt)
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

void fn__db_lost(fn_runtime_t *rt, const char *why)
{
    fn__db_close(rt);
    if (!rt->down_logged) {
        char ms[16], w[16];
        snprintf(ms, sizeof ms, "%d", FN_RECONNECT_MS);
        snprintf(w, sizeof w, "%u", rt->worker);
        brk_log_warn("function runtime lost the database", "worker", w, "error", why, "retry_ms",
                     ms);
        rt->down_logged = 1;
    }
    if (!rt->stopping) {
        struct timeval tv = fn__ms_tv(FN_RECONNECT_MS);
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
        if (fn__array_literal(types, sizeof types, d->event_types, nt) != 0) {
            snprintf(err, errlen, "too many event types for function \"%s\"", d->name);
            return BRK_EINVAL;
        }
        const char *p[] = {d->name, types, d->fallback_for};
        PGresult *res = fn__exec_p(rt, S_SUBSCRIBE, p, err, errlen);
        if (res == NULL)
            return BRK_EDB;
        snprintf(n, sizeof n, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (strcmp(n, "0") != 0)
            brk_log_info("function subscribed", "function", d->name, "backfilled_runs", n);
    }
    return 0;
}

void fn__db_connect(fn_runtime_t *rt)
{
    char err[FN_ERR_MAX] = "";
    PGresult *res = NULL;

    if ((rt->work = pg_open(rt, err, sizeof err)) == NULL ||
        (rt->listen = pg_open(rt, err, sizeof err)) == NULL)
        goto fail;
    /* A blocking statement must not hang the runtime forever on a lock or a stuck server. */
    if (fn__exec_s(rt, "SET statement_timeout = " FN_STATEMENT_TIMEOUT_MS, err, sizeof err) != 0)
        goto fail;
    for (int s = 0; s < S_COUNT; s++) {
        res = PQprepare(rt->work, k_stmts[s].name, k_stmts[s].sql, k_stmts[s].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fn__copy_err(err, sizeof err, PQresultErrorMessage(res));
            goto fail;
        }
        PQclear(res);
        res = NULL;
    }
    if (subscribe_all(rt, err, sizeof err) != 0)
        goto fail;
    res = PQexec(rt->listen, "LISTEN gsap_events");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fn__copy_err(err, sizeof err, PQresultErrorMessage(res));
        goto fail;
    }
    PQclear(res);
    res = NULL;
    rt->listen_ev = event_new(rt->base, PQsocket(rt->listen), EV_READ | EV_PERSIST, on_notify, rt);
    if (rt->listen_ev == NULL || event_add(rt->listen_ev, NULL) != 0) {
        fn__copy_err(err, sizeof err, "cannot watch the listen connection");
        goto fail;
    }
    rt->connected = 1;
    if (rt->down_logged) {
        char w[16];
        snprintf(w, sizeof w, "%u", rt->worker);
        brk_log_info("function runtime reconnected", "worker", w, "database", "up");
        rt->down_logged = 0;
    }
    event_active(rt->claim_ev, EV_READ, 0);
    return;
fail:
    PQclear(res);
    fn__db_lost(rt, err);
}

void fn__on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (!rt->stopping && !rt->connected)
        fn__db_connect(rt);
}

/* fn__on_lost: the listen connection failed; handled here rather than inside on_notify, so
 * the listen event is never freed from its own callback. */
void fn__on_lost(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    if (rt->connected)
        fn__db_lost(rt, rt->lost_err);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    fn_runtime_t *rt = arg;
    PGnotify *n;
    if (PQconsumeInput(rt->listen) == 0) {
        fn__copy_err(rt->lost_err, sizeof rt->lost_err, PQerrorMessage(rt->listen));
        event_del(rt->listen_ev);
        event_active(rt->lost_ev, EV_READ, 0);
        return;
    }
    while ((n = PQnotifies(rt->listen)) != NULL)
        PQfreemem(n);
    event_active(rt->claim_ev, EV_READ, 0);
}
