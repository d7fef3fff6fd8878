/*
 * fn_runtime: the function runtime's thread and its lifecycle (see fn.h for the contract
 * with functions, fn_runtime_int.h for how the runtime's files divide the work).
 *
 * fn_runtime_start reads the GSAP_FN_* variables, checks the registry, creates the event_base
 * and every event, and starts one thread that owns all of it from then on: it connects
 * (fn_runtime_db.c), wakes on NOTIFY gsap_events and on the poll timer to run claim passes
 * (fn_runtime_claim.c, fn_runtime_async.c), and runs the periodic jobs (fn_periodics) on their
 * own timers, each in its own transaction on the work connection. It shares nothing mutable
 * with the HTTP threads: they meet only in PostgreSQL.
 *
 * Stopping: fn_runtime_stop wakes stop_ev; the thread stops claiming and every timer, waits
 * for asynchronous runs in flight (at most FN_STOP_GRACE_MS), then leaves its loop, frees its
 * jobs and closes its connections; the main thread joins it and frees the rest. A
 * synchronous pass in progress always finishes first (events run between callbacks).
 */
#include "fn_runtime.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "brk_alloc.h"
#include "brk_config.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "fn_runtime_int.h"
#include "banned.h"

#define FN_DEFAULT_POLL_MS 1000
#define FN_POLL_MS_MIN 10
#define FN_POLL_MS_MAX 60000
#define FN_DEFAULT_BATCH 256 /* pairs per pass: 256 CRs (billing) in a few statements */
#define FN_BATCH_MAX 1000
/* A pass costs a dozen statements and two commits whatever its size: under a steady stream of
 * NOTIFYs (one per group commit), a worker that started a pass on every one ran many small
 * passes, and its backend took the CPU the HTTP side's requests were queueing for. The gap
 * gathers what arrives meanwhile into one pass; it adds at most this much to billing lag, and
 * nothing to an event arriving after a quiet moment. */
#define FN_DEFAULT_PASS_GAP_MS 50
#define FN_PASS_GAP_MS_MAX 1000
#define FN_DEFAULT_BACKOFF_MS 500
#define FN_DEFAULT_MAX_ATTEMPTS 8
#define FN_MAX_ATTEMPTS_MAX 1000000
/* One worker by default: the batches already carry a single tenant's peak, and one worker bills
 * an invoice's lines in event order. More help when many tenants bill at once (workers lock
 * different tenants' log heads); a tenant's billing is serial on its head in any case. With
 * several workers (or brokers) line numbers follow the order billing commits in. */
#define FN_DEFAULT_WORKERS 1
#define FN_WORKERS_MAX 16    /* each holds two database connections */

/* Metric names must be static strings (brk_metrics keeps the pointer); one per registry
 * index, written once. */
static char g_metric_names[FN_MAX_FUNCTIONS][2][BRK_METRICS_NAME_MAX];

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

/* ---- periodic jobs ----------------------------------------------------------------------- */

static void on_periodic(evutil_socket_t fd, short what, void *arg)
{
    fn_timer_t *t = arg;
    fn_runtime_t *rt = t->rt;
    char err[FN_ERR_MAX] = "", ignored[FN_ERR_MAX];
    int rc;

    if (!rt->connected || rt->stopping)
        return;
    if ((rc = fn__exec_s(rt, "BEGIN", err, sizeof err)) == 0) {
        rc = t->def->run(&rt->env, rt->work, err, sizeof err);
        if (rc == 0 && PQtransactionStatus(rt->work) != PQTRANS_INTRANS) {
            fn__copy_err(err, sizeof err, "the job left its transaction aborted");
            rc = BRK_EINTERNAL;
        }
        if (rc == 0)
            rc = fn__exec_s(rt, "COMMIT", err, sizeof err);
        else if (!fn__work_broken(rt))
            fn__exec_s(rt, "ROLLBACK", ignored, sizeof ignored);
    }
    if (rc != 0 && fn__work_broken(rt))
        fn__db_lost(rt, err);
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
    struct timeval tv = fn__ms_tv(FN_STOP_GRACE_MS);

    rt->stopping = 1;
    event_del(rt->poll_ev);
    event_del(rt->claim_ev);
    event_del(rt->gap_ev);
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
    fn__db_connect(rt);
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
    fn__db_close(rt);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------------- */

/* rt_free: releases rt once its thread has ended (or never started). */
static void rt_free(fn_runtime_t *rt)
{
    struct event **evs[] = {&rt->poll_ev,  &rt->claim_ev,     &rt->gap_ev, &rt->done_ev,
                            &rt->stop_ev,  &rt->reconnect_ev, &rt->lost_ev, &rt->grace_ev};
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

/* fallback_ok: d's fallback_for names another registered function, always on (a function
 * that can be off would leave d's events unserved). */
static int fallback_ok(const fn_def_t *d)
{
    for (size_t k = 0; fn_registry[k] != NULL; k++) {
        const fn_def_t *o = fn_registry[k];
        if (o != d && strcmp(o->name, d->fallback_for) == 0)
            return o->enabled == NULL && o->fallback_for == NULL;
    }
    return 0;
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
        if (d->fallback_for != NULL && !fallback_ok(d)) {
            snprintf(err, errlen,
                     "function \"%s\": fallback_for must name another registered function",
                     d->name);
            return BRK_EINVAL;
        }
        if (nt == 0 || (d->enabled != NULL && !d->enabled(&rt->env)))
            continue;
        /* Asynchronous runs are bounded per process (FN_ASYNC_MAX_INFLIGHT): one worker runs
         * them all. */
        if (d->run == NULL && rt->worker > 0)
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
            brk_metrics_counter(g_metric_names[i][0], "Function runs finished (any outcome).");
        s->m_failures = brk_metrics_counter(g_metric_names[i][1], "Function runs that failed.");
        if (d->start != NULL)
            rt->nasync++;
        if (rt->worker == 0)
            brk_log_info("function enabled", "function", d->name, "kind",
                         d->run ? "sync" : "async");
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

int fn_runtime_settings(fn_settings_t *out, char *err, size_t errlen)
{
    int rc;
    if ((rc = brk_env_uint("GSAP_FN_POLL_MS", FN_DEFAULT_POLL_MS, FN_POLL_MS_MIN, FN_POLL_MS_MAX,
                       &out->poll_ms, err, errlen)) != 0 ||
        (rc = brk_env_uint("GSAP_FN_BATCH", FN_DEFAULT_BATCH, 1, FN_BATCH_MAX, &out->batch, err,
                       errlen)) != 0 ||
        (rc = brk_env_uint("GSAP_FN_BACKOFF_MS", FN_DEFAULT_BACKOFF_MS, 1, FN_BACKOFF_CAP_MS,
                       &out->backoff_ms, err, errlen)) != 0 ||
        (rc = brk_env_uint("GSAP_FN_MAX_ATTEMPTS", FN_DEFAULT_MAX_ATTEMPTS, 1, FN_MAX_ATTEMPTS_MAX,
                       &out->max_attempts, err, errlen)) != 0 ||
        (rc = brk_env_uint("GSAP_FN_WORKERS", FN_DEFAULT_WORKERS, 1, FN_WORKERS_MAX,
                           &out->workers, err, errlen)) != 0 ||
        (rc = brk_env_uint("GSAP_FN_PASS_GAP_MS", FN_DEFAULT_PASS_GAP_MS, 0, FN_PASS_GAP_MS_MAX,
                           &out->pass_gap_ms, err, errlen)) != 0)
        return rc;
    return 0;
}

/* worker_start: one worker: its event loop, events and thread (worker 0 also gets the
 * periodic jobs and the asynchronous functions). NULL with err on failure. */
static fn_runtime_t *worker_start(const brk_config_t *cfg, const brk_keyring_t *keys,
                                  const fn_settings_t *s, unsigned worker, char *err,
                                  size_t errlen)
{
    fn_runtime_t *rt = brk_calloc(1, sizeof *rt);
    sigset_t block, old;
    struct timeval tv;
    int rc;
    fn_settings_t set = *s;

    rt->cfg = cfg;
    rt->worker = worker;
    rt->poll_ms = set.poll_ms;
    rt->batch = set.batch;
    rt->backoff_ms = set.backoff_ms;
    rt->max_attempts = set.max_attempts;
    rt->pass_gap_ns = (uint64_t)set.pass_gap_ms * 1000000u;
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
    if (register_functions(rt, err, errlen) != 0 ||
        (worker == 0 && register_periodics(rt, err, errlen) != 0))
        goto fail;
    rt->poll_ev = event_new(rt->base, -1, EV_PERSIST, fn__on_poll, rt);
    rt->claim_ev = event_new(rt->base, -1, 0, fn__on_claim, rt);
    rt->gap_ev = evtimer_new(rt->base, fn__on_claim, rt);
    rt->done_ev = event_new(rt->base, -1, 0, fn__on_done, rt);
    rt->stop_ev = event_new(rt->base, -1, 0, on_stop, rt);
    rt->grace_ev = evtimer_new(rt->base, on_grace, rt);
    rt->reconnect_ev = evtimer_new(rt->base, fn__on_reconnect, rt);
    rt->lost_ev = event_new(rt->base, -1, 0, fn__on_lost, rt);
    tv = fn__ms_tv(rt->poll_ms);
    if (!rt->poll_ev || !rt->claim_ev || !rt->gap_ev || !rt->done_ev || !rt->stop_ev || !rt->grace_ev ||
        !rt->reconnect_ev || !rt->lost_ev || event_add(rt->poll_ev, &tv) != 0) {
        snprintf(err, errlen, "cannot create the function runtime's events");
        goto fail;
    }
    /* brk_server_run waits for SIGTERM (and SIGHUP, a reload) with sigwait: no other thread
     * may take them. SIGPIPE too, since a webhook peer may reset before the server ignores
     * SIGPIPE. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    sigaddset(&block, SIGHUP);
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

fn_runtime_t *fn_runtime_start(const brk_config_t *cfg, const brk_keyring_t *keys, char *err,
                               size_t errlen)
{
    fn_settings_t set;
    fn_runtime_t *first = NULL, **tail = &first;

    if (fn_runtime_settings(&set, err, errlen) != 0)
        return NULL;
    for (unsigned w = 0; w < set.workers; w++) {
        if ((*tail = worker_start(cfg, keys, &set, w, err, errlen)) == NULL) {
            fn_runtime_stop(first);
            return NULL;
        }
        tail = &(*tail)->next;
    }
    return first;
}

void fn_runtime_stop(fn_runtime_t *rt)
{
    if (rt == NULL)
        return;
    /* Wake every worker first, so their passes in progress finish side by side. */
    for (fn_runtime_t *w = rt; w != NULL; w = w->next)
        if (w->thread_started)
            event_active(w->stop_ev, EV_READ, 0);
    while (rt != NULL) {
        fn_runtime_t *next = rt->next;
        if (rt->thread_started)
            pthread_join(rt->thread, NULL);
        rt_free(rt);
        rt = next;
    }
    brk_log_info("function runtime stopped", "status", "ok");
}
