/*
 * fn_runtime_int: what the files of the function runtime share, and nothing else includes.
 *
 * The runtime is one object (struct fn_runtime) driven by one thread; its code is split by
 * duty, each file opening with what it owns:
 *   fn_runtime.c        the thread and its lifecycle: start, stop, registry, periodic jobs
 *   fn_runtime_db.c     the two PostgreSQL connections: statements, connect, LISTEN, outages
 *   fn_runtime_claim.c  the claim pass and synchronous runs (leases, the exactly-once
 *                       argument and its invariants)
 *   fn_runtime_async.c  asynchronous runs: start, completion, recording against the lease
 *   fn_runtime_util.c   small helpers, backoff and the run log line
 *
 * Threads: every fn__ function and every field of struct fn_runtime belong to the runtime
 * thread, except where a field says otherwise (fn_runtime_start fills the struct before the
 * thread exists; fn_runtime_stop only wakes stop_ev and joins).
 */
#ifndef FN_RUNTIME_INT_H
#define FN_RUNTIME_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "brk_limits.h"
#include "fn.h"
#include "fn_runtime.h"

#define FN_BACKOFF_CAP_MS 300000 /* longest retry delay, and largest GSAP_FN_BACKOFF_MS */
#define FN_BACKOFF_JITTER_PCT 20 /* a delay is scaled by a factor in [1 - 20%, 1 + 20%] */
#define FN_ASYNC_LEASE_MS 30000  /* must exceed any async function's own timeout */
#define FN_ASYNC_MAX_INFLIGHT 64 /* asynchronous runs started and not yet finished */
#define FN_STOP_GRACE_MS 30000   /* how long a stop waits for asynchronous runs */
#define FN_RECONNECT_MS 1000
#define FN_PASSES_PER_WAKE 16 /* full passes in a row before yielding to other events */
#define FN_MAX_FUNCTIONS 32
#define FN_MAX_PERIODICS 16
#define FN_EVENT_TYPE_MAX 64
#define FN_NAMES_PARAM_MAX (FN_MAX_FUNCTIONS * (FN_NAME_MAX + 3) + 3)
#define FN_TYPES_PARAM_MAX 2048

/* Prepared statements of the work connection (texts in fn_runtime_db.c). */
enum fn_stmt {
    S_CLAIM,
    S_LEASE_MANY,
    S_LEASE_DEAD,
    S_LOCK_MANY,
    S_LEASE_DONE,
    S_DONE_MANY,
    S_LEASE_FAIL,
    S_SUBSCRIBE,
    S_COUNT
};

/* Columns of S_CLAIM. */
enum { C_TENANT, C_EVENT, C_FUNCTION, C_ATTEMPTS, C_TYPE, C_CONTEXT, C_PAYLOAD, C_CREATED };

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
    char tenant[BRK_TENANT_MAX + 1];
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
    pthread_t thread; /* main thread: start and stop only */
    int thread_started;

    unsigned poll_ms, batch, backoff_ms, max_attempts;
    uint64_t pass_gap_ns;  /* GSAP_FN_PASS_GAP_MS */
    uint64_t next_pass_ns; /* fn__now_ns before which no pass starts (fn__on_claim) */
    fn_slot_t slots[FN_MAX_FUNCTIONS]; /* enabled functions only */
    size_t nslots, nasync;
    fn_timer_t timers[FN_MAX_PERIODICS];
    size_t ntimers;

    PGconn *work, *listen;
    int connected;
    int down_logged; /* the outage was logged; stay quiet until it ends */
    struct event *listen_ev, *poll_ev, *claim_ev, *done_ev, *stop_ev, *grace_ev, *reconnect_ev;
    struct event *lost_ev, *gap_ev;
    char lost_err[FN_ERR_MAX];

    fn_async_t *running;  /* started, not finished */
    fn_async_t *finished; /* finished, waiting for done_ev to record them */
    unsigned inflight;    /* running + finished */
    int starved;          /* a pass left async pairs for lack of slots */
    int stopping;

    unsigned worker;       /* 0: also runs the periodic jobs and the asynchronous functions */
    fn_runtime_t *next;    /* the next worker (fn_runtime_start's list; main thread only) */
};

/* ---- fn_runtime_util.c ---- */

uint64_t fn__now_ns(void);
struct timeval fn__ms_tv(unsigned ms);
/* fn__copy_err: src (may be NULL) into dst as printable ASCII, whitespace runs folded. */
void fn__copy_err(char *dst, size_t cap, const char *src);
/* fn__array_literal: a text[] literal of n names already checked to hold no quotes or
 * backslashes. 0, or BRK_ETOOBIG when it does not fit in cap. */
int fn__array_literal(char *buf, size_t cap, const char *const *names, size_t n);
/* fn__backoff: the retry delay after failed attempt number attempt, with a fresh draw. */
uint64_t fn__backoff(const fn_runtime_t *rt, unsigned attempt);
/* fn__slot_of: the enabled function called name, or NULL. */
const fn_slot_t *fn__slot_of(const fn_runtime_t *rt, const char *name);
/* fn__log_run: one run's log line; err may be NULL or empty. */
void fn__log_run(const char *function, const char *tenant, const char *event_id, const char *type,
                 const char *outcome, int attempt, uint64_t dur_ns, const char *err);

/* ---- fn_runtime_db.c ---- */

/* fn__exec_p: a prepared statement. Returns the result (caller PQclear()s) or NULL with the
 * error in err; the caller checks fn__work_broken for a lost connection. */
PGresult *fn__exec_p(fn_runtime_t *rt, enum fn_stmt s, const char *const *params, char *err,
                     size_t errlen);
/* fn__exec_s: a statement without parameters or result (BEGIN, SAVEPOINT, ...). 0 or BRK_EDB. */
int fn__exec_s(fn_runtime_t *rt, const char *sql, char *err, size_t errlen);
int fn__work_broken(const fn_runtime_t *rt);
/* fn__db_connect: opens both connections, prepares, subscribes, listens, and wakes a claim
 * pass; on failure closes everything again and schedules a reconnect. */
void fn__db_connect(fn_runtime_t *rt);
void fn__db_close(fn_runtime_t *rt);
/* fn__db_lost: closes both connections, logs the outage once, schedules a reconnect unless
 * stopping. Never call it from the listen event's own callback (it frees that event). */
void fn__db_lost(fn_runtime_t *rt, const char *why);
void fn__on_reconnect(evutil_socket_t fd, short what, void *arg); /* reconnect_ev */
void fn__on_lost(evutil_socket_t fd, short what, void *arg);      /* lost_ev */

/* ---- fn_runtime_claim.c ---- */

/* fn__event_from_row: fills ev from row i of an S_CLAIM result (strings point into res;
 * ev->payload is owned by the caller, released with json_decref even on failure). */
int fn__event_from_row(PGresult *res, int i, fn_event_t *ev, char *err, size_t errlen);
void fn__on_claim(evutil_socket_t fd, short what, void *arg); /* claim_ev, gap_ev */
void fn__on_poll(evutil_socket_t fd, short what, void *arg);  /* poll_ev */

/* ---- fn_runtime_async.c ---- */

/* fn__start_job: starts the asynchronous pair of row i of an S_CLAIM result, once its lease
 * has committed. */
void fn__start_job(fn_runtime_t *rt, const fn_slot_t *slot, PGresult *res, int i);
void fn__on_done(evutil_socket_t fd, short what, void *arg); /* done_ev */

#endif
