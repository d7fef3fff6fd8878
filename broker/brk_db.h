/*
 * brk_db: asynchronous PostgreSQL for the HTTP loops.
 *
 * Each h2o loop owns one brk_db_t: a few libpq connections in pipeline mode whose sockets
 * the loop watches. A caller submits a batch: up to BRK_DB_MAX_OPS prepared statements
 * followed by ONE pipeline sync, so the batch runs as one implicit transaction (all or
 * nothing) and a failing batch never poisons its neighbours in the pipeline. Logic that
 * needs a result before deciding the next write lives in SQL (functions in migrations/), so
 * a request never holds a connection across round trips.
 *
 * Statements are registered once (brk_db_register, before any pool starts) and prepared on
 * every connection when it connects. When no connection has room the batch waits in a
 * bounded queue; past the bound, or while the database is down, the batch fails at once with
 * BRK_EAGAIN / BRK_EDB and the caller answers 503 with Retry-After. A broken connection fails
 * its in-flight batches with BRK_EDB and reconnects in the background; a batch older than
 * the timeout breaks its connection (BRK_ETIMEDOUT) the same way. Those failures are called
 * back from the loop on its next iteration, never from inside the call that noticed them
 * (which may be a brk_db_submit of another request).
 *
 * Threads: brk_db_register on the main thread before brk_db_new; everything else on the
 * loop's own thread only.
 */
#ifndef BRK_DB_H
#define BRK_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#define BRK_DB_MAX_OPS 16          /* statements in one batch */
#define BRK_DB_MAX_PARAMS 32       /* parameters of one statement */
#define BRK_DB_MAX_STMTS 256       /* registered statements */
#define BRK_DB_PIPELINE_MAX 128    /* batches in flight on one connection */
#define BRK_DB_MAX_CONNS 16        /* connections per loop */
#define BRK_DB_PARAM_BYTES_MAX (2u << 20) /* all parameters of one batch together */
#define BRK_DB_RECONNECT_MS 500

typedef struct brk_db_stmt {
    const char *name; /* unique, prepared under this name */
    const char *sql;
    int id;           /* set by brk_db_register */
} brk_db_stmt_t;

typedef struct brk_db_op {
    const brk_db_stmt_t *stmt;
    int nparams;
    const char *params[BRK_DB_MAX_PARAMS]; /* NULL is SQL NULL; copied at submit */
} brk_db_op_t;

typedef struct brk_db_result {
    int err;            /* 0; BRK_EDB (connection); BRK_ETIMEDOUT; BRK_EAGAIN; BRK_EINVAL (a
                         * statement failed: sqlstate/message say which) */
    size_t n;           /* results, one per op (valid when err is 0 or BRK_EINVAL) */
    PGresult **res;     /* owned by brk_db; cleared after the callback returns */
    const char *sqlstate; /* of the failed statement, or "" */
    const char *message;  /* of the failure, or "" */
    int failed_op;      /* index of the failed op, or -1 */
} brk_db_result_t;

/* Called exactly once per accepted batch, on the loop's thread, never from inside
 * brk_db_submit itself. */
typedef void (*brk_db_cb)(void *arg, const brk_db_result_t *res);

typedef struct brk_db brk_db_t;

typedef struct brk_db_stats {
    unsigned conns_total, conns_ready, in_flight, queued;
    uint64_t batches, failures, timeouts, reconnects;
} brk_db_stats_t;

/* brk_db_register: registers stmt (static storage, must outlive every pool). Main thread,
 * before brk_db_new. Registering the same struct twice is a no-op. Returns 0 or BRK_ENOMEM
 * (over BRK_DB_MAX_STMTS). */
int brk_db_register(brk_db_stmt_t *stmt);

/* brk_db_new: a pool for loop with nconns connections to conninfo (copied), queue_max
 * waiting batches and timeout_ms per batch; starts connecting at once. Owned by the caller:
 * brk_db_free on the same thread. */
brk_db_t *brk_db_new(h2o_loop_t *loop, const char *conninfo, unsigned nconns, unsigned queue_max,
                     unsigned timeout_ms);

/* brk_db_free: closes every connection; batches still pending get BRK_EDB callbacks first. */
void brk_db_free(brk_db_t *db);

/*
 * brk_db_submit: queues a batch of n ops. Parameters are copied; ops may be stack memory.
 * Returns 0 (cb will be called later), BRK_EINVAL (n or a parameter count out of range, or
 * parameters over BRK_DB_PARAM_BYTES_MAX), BRK_EAGAIN (queue full) or BRK_EDB (database
 * down): on error cb is never called.
 */
int brk_db_submit(brk_db_t *db, const brk_db_op_t *ops, size_t n, brk_db_cb cb, void *arg);

/* brk_db_is_up: 1 when at least one connection is ready. */
int brk_db_is_up(const brk_db_t *db);

/* brk_db_get_stats: a snapshot of the pool's gauges and counters. */
void brk_db_get_stats(const brk_db_t *db, brk_db_stats_t *out);

/* brk_db_idle: 1 when nothing is queued or in flight (used for graceful stop). */
int brk_db_idle(const brk_db_t *db);

#endif
