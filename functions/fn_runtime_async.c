/*
 * fn_runtime_async: asynchronous runs (an outbound webhook) and how their leases end.
 *
 * The claim pass leases an asynchronous pair as it leases every pair (attempts + 1,
 * next_attempt_at = now() + the lease, committed), then fn__start_job starts it. Unlike a
 * synchronous run, no transaction and no row lock hold the pair while it runs (a webhook
 * cannot join a transaction), so the lease alone keeps other claims off: FN_ASYNC_LEASE_MS
 * is longer than any asynchronous function's own timeout. Its completion (fn_async_done,
 * from the function, on the runtime thread) is queued and recorded later from done_ev, in
 * one autocommitted statement that only applies while attempts still equals the leased
 * value: a completion that lost its lease to another claim changes nothing ("stale").
 * At-least-once: receivers dedupe by the event CID. At most FN_ASYNC_MAX_INFLIGHT runs are
 * in flight; the claim pass leaves the rest pending, and a completion wakes a pass that had
 * to leave some.
 *
 * A job is owned by the runtime from fn__start_job until on_done frees it (or thread_main,
 * for jobs still running when a stop gave up waiting). Runtime thread only.
 */
#include "fn_runtime_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "banned.h"

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
    fn__copy_err(job->err, sizeof job->err, err);
    if (err != NULL && job->err[0] == '\0')
        fn__copy_err(job->err, sizeof job->err, "failed");
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
    uint64_t dur = fn__now_ns() - job->started_ns;

    snprintf(att, sizeof att, "%d", job->attempts);
    if (!rt->connected) {
        outcome = "unrecorded"; /* the lease expires and the pair runs again */
    } else if (!job->failed) {
        const char *p[] = {job->tenant, job->event_id, job->slot->def->name, att};
        res = fn__exec_p(rt, S_LEASE_DONE, p, err, sizeof err);
        outcome = res == NULL                          ? "unrecorded"
                  : strcmp(PQcmdTuples(res), "1") == 0 ? "done"
                                                       : "stale";
    } else {
        snprintf(delay, sizeof delay, "%" PRIu64, fn__backoff(rt, (unsigned)job->attempts));
        snprintf(maxa, sizeof maxa, "%u", rt->max_attempts);
        const char *p[] = {job->tenant, job->event_id, job->slot->def->name, att, job->err,
                           delay,       maxa};
        res = fn__exec_p(rt, S_LEASE_FAIL, p, err, sizeof err);
        outcome = res == NULL                               ? "unrecorded"
                  : PQntuples(res) == 0                     ? "stale"
                  : strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "dead"
                                                            : "retry";
    }
    brk_metrics_add(job->slot->m_runs, 1);
    if (job->failed)
        brk_metrics_add(job->slot->m_failures, 1);
    fn__log_run(job->slot->def->name, job->tenant, job->event_id, job->type, outcome, job->attempts,
                dur, job->failed ? job->err : err);
    PQclear(res);
    if (res == NULL && rt->connected && fn__work_broken(rt))
        fn__db_lost(rt, err);
}

void fn__on_done(evutil_socket_t fd, short what, void *arg)
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

void fn__start_job(fn_runtime_t *rt, const fn_slot_t *slot, PGresult *res, int i)
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
    job->started_ns = fn__now_ns();
    job->state = JOB_STARTING;
    job->next = rt->running;
    rt->running = job;
    rt->inflight++;

    rc = fn__event_from_row(res, i, &ev, err, sizeof err);
    if (rc == 0)
        rc = slot->def->start(&rt->env, &ev, job, err, sizeof err);
    json_decref(ev.payload);
    if (rc != 0) /* it never calls fn_async_done then: finish it here */
        fn_async_done(job, err[0] ? err : brk_strerror(rc));
    else if (job->state == JOB_STARTING)
        job->state = JOB_RUNNING;
}
