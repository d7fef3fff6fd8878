/*
 * fn: the in-process function runtime's contract with its functions.
 *
 * Every outbox event (table events, written in the same transaction as the change it
 * reports) is delivered to every function registered for its type. For each (event,
 * function) pair the runtime keeps a row in fn_runs: attempts, next attempt time, last
 * error, done time, dead-letter time. A synchronous function's writes and its done mark
 * commit in one transaction, so each pair takes effect exactly once, across crashes and
 * across several brokers sharing one database (claims use FOR UPDATE SKIP LOCKED).
 * An asynchronous function (an outbound webhook) cannot share a transaction with the
 * outside world: it is at-least-once, and carries the event's CID so receivers dedupe.
 *
 * Adding a function: one file in functions/ defining a const fn_def_t, and one line in the
 * table in fn_registry.c.
 *
 * Threads: functions run on the runtime thread only.
 */
#ifndef FN_H
#define FN_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "brk_config.h"
#include "brk_crypto.h"
#include "brk_jcs.h"

#define FN_NAME_MAX 32
#define FN_ERR_MAX 512

/* One event as a function sees it. Everything is owned by the runtime and valid during the
 * call (an async function copies what it keeps). */
typedef struct fn_event {
    const char *tenant;
    long long event_id;
    const char *type;       /* "GSAP_CR_RECEIVED", ... */
    const char *context_id; /* NULL for events without one */
    const char *created_at; /* RFC 3339 UTC */
    json_t *payload;
    char cid[BRK_CID_LEN + 1]; /* CID of {"tenant_id","event_id","type","context_id",
                                *          "payload","created_at"} */
} fn_event_t;

/* What every function may use: the configuration and the broker's signing keys. */
typedef struct fn_env {
    const brk_config_t *cfg;
    const brk_keyring_t *keys;
    struct event_base *base; /* the runtime thread's libevent loop */
} fn_env_t;

typedef struct fn_async fn_async_t;

/* fn_async_done: an asynchronous run finished; err NULL on success. Runtime thread only. */
void fn_async_done(fn_async_t *job, const char *err);

typedef struct fn_def {
    const char *name;               /* unique, <= FN_NAME_MAX, stored in fn_runs */
    const char *const *event_types; /* NULL-terminated */
    /*
     * run: a synchronous function. conn is inside the run transaction, which holds the pair's
     * row lock (a savepoint is open): every write goes through conn and commits with the done
     * mark, or not at all. An attempt that dies with the process still counts (it was
     * committed when the pair was claimed).
     * Returns 0, or a negative brk_err with a message in err (the pair is retried later).
     */
    int (*run)(const fn_env_t *env, PGconn *conn, const fn_event_t *ev, char *err, size_t errlen);
    /*
     * run_batch: optional, a synchronous function's set-based form: the n events of one pass
     * (n >= 1, event order) in a fixed number of statements, not one or more per event. Same
     * transaction rules as run (a savepoint is open around the call). errs[i] is set
     * (non-empty) for an event that fails on its own before anything of it is written (a bad
     * payload, no rate card): that pair is retried like a failed run; left empty, the event
     * succeeded. Returns 0 when the batch's writes stand (they commit with the done marks),
     * or a negative brk_err with a message in err: the runtime then rolls back to the
     * savepoint and runs each event alone with run, so one event whose statement fails
     * (a poison event) costs its batch-mates nothing but the retry in single steps.
     */
    int (*run_batch)(const fn_env_t *env, PGconn *conn, const fn_event_t *evs, size_t n,
                     char (*errs)[FN_ERR_MAX], char *err, size_t errlen);
    /*
     * start: an asynchronous function (run is NULL). It starts its work on env->base and
     * calls fn_async_done(job, ...) exactly once, later or before it returns. Returns 0, or a
     * negative brk_err with a message in err when it could not start (then it never calls
     * fn_async_done).
     */
    int (*start)(const fn_env_t *env, const fn_event_t *ev, fn_async_t *job, char *err,
                 size_t errlen);
    /* enabled: may be NULL (always on); 0 turns the function off for this configuration
     * (the Chronicle emitter without CHRONICLE_WEBHOOK_URL). */
    int (*enabled)(const fn_env_t *env);
    /*
     * fallback_for: NULL, and the function gets a pair for every event of its types. Or the
     * name of another function that does this one's work in its own transaction as it runs
     * (billing appends each CR it bills to the transparency log): then a pair is created only
     * for an event whose run of that function records a failure (or dead-letters), in the
     * same transaction as the failure (gsap_fn_fallback, 20_gsap_fn_fanout.sql), so every
     * event is still served, by the other function or by this one, without a second pair per
     * event on the way that succeeds.
     */
    const char *fallback_for;
} fn_def_t;

/* fn_registry: the registered functions, NULL-terminated (fn_registry.c). */
extern const fn_def_t *const fn_registry[];

/* A periodic job (expire ACs, close months): runs on the runtime thread every interval_s
 * seconds on a blocking connection, in its own transaction. Several brokers may run the same
 * job at once: a job must be safe under that (row locks, conditional updates). */
typedef struct fn_periodic {
    const char *name;
    unsigned interval_s;
    int (*run)(const fn_env_t *env, PGconn *conn, char *err, size_t errlen);
} fn_periodic_t;

/* fn_periodics: the periodic jobs, NULL-terminated (fn_registry.c). */
extern const fn_periodic_t *const fn_periodics[];

#endif
