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
 * Group commit (brk_db_submit_grouped): batches whose caller allows it share one transaction
 * with the other such batches that arrive together: their statements go out back to back
 * before ONE Sync, so a whole group costs one round trip and one commit, and each batch still
 * gets its own results. A group is sent at once when no group is in flight on a ready
 * connection (at the end of the loop iteration that queued it, so the batches of one
 * iteration travel together and a lone request never waits); otherwise it collects batches
 * until a group completes on a connection, it holds group_max batches, or its first batch has
 * waited group_wait_ms, whichever comes first. The batches of a group are ordered by the key
 * their callers give (e.g. the context id), so two groups on two connections take their row
 * locks in the same order and do not deadlock on them. When any statement of a group fails
 * (an error it raises, a deadlock, a serialization failure), the whole transaction has been
 * rolled back and every batch of the group is sent again on its own, as one transaction
 * each, so each gets its own true answer: a caller's batch must therefore be correct when
 * run after other batches in one transaction, and again after a rollback (true of anything
 * that only touches the database).
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
#define BRK_DB_GROUP_MAX_LIMIT 256  /* batches in one group transaction, at most */
#define BRK_DB_GROUP_WAIT_MAX_MS 1000 /* the longest a batch may be made to wait for its group */
#define BRK_DB_GROUP_KEY_MAX 256    /* bytes of a group ordering key that count */

typedef struct brk_db_stmt {
    const char *name; /* unique, prepared under this name */
    const char *sql;
    int id;           /* set by brk_db_register */
    /*
     * then: NULL, or a statement without parameters sent right behind every batch or group
     * that holds this one, as a transaction of its own, without waiting for the first to
     * answer; its result is dropped. It is how the statements that write outbox events wake
     * the function runtimes (handlers/hnd_util.c): a NOTIFY inside their transaction would
     * hold PostgreSQL's notification lock through the commit's WAL flush, so the commits of
     * two connections could never share a flush. Registered along with this one.
     */
    struct brk_db_stmt *then;
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
    uint64_t groups;        /* group transactions sent */
    uint64_t grouped;       /* batches sent inside them */
    uint64_t group_reruns;  /* groups rolled back and re-run one batch per transaction */
} brk_db_stats_t;

/* brk_db_register: registers stmt (static storage, must outlive every pool). Main thread,
 * before brk_db_new. Registering the same struct twice is a no-op. Returns 0 or BRK_ENOMEM
 * (over BRK_DB_MAX_STMTS). */
int brk_db_register(brk_db_stmt_t *stmt);

/* brk_db_set_session: stmt (registered, no parameters) runs on every connection right after
 * its statements are prepared, before any batch: session settings (SET ...). A connection on
 * which it fails is closed and retried like one that cannot prepare. Main thread, before
 * brk_db_new; NULL for none. */
void brk_db_set_session(brk_db_stmt_t *stmt);

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

/*
 * brk_db_set_group: group commit for brk_db_submit_grouped on this pool: at most group_max
 * (1..BRK_DB_GROUP_MAX_LIMIT; 1 turns grouping off) batches per transaction, and a batch
 * waits at most group_wait_ms (0..BRK_DB_GROUP_WAIT_MAX_MS) for its group while another
 * group is in flight. Values out of range are clamped. Call before the first grouped submit;
 * a new pool has grouping off.
 */
void brk_db_set_group(brk_db_t *db, unsigned group_max, unsigned group_wait_ms);

/*
 * brk_db_submit_grouped: brk_db_submit, except that the batch may share its transaction with
 * other grouped batches (see the header); key (may be NULL = "") orders the batches of a
 * group, equal keys in submission order. Same return values; cb is called exactly once with
 * this batch's own results.
 */
int brk_db_submit_grouped(brk_db_t *db, const brk_db_op_t *ops, size_t n, const char *key,
                          brk_db_cb cb, void *arg);

/* brk_db_is_up: 1 when at least one connection is ready. */
int brk_db_is_up(const brk_db_t *db);

/* brk_db_get_stats: a snapshot of the pool's gauges and counters. */
void brk_db_get_stats(const brk_db_t *db, brk_db_stats_t *out);

/* brk_db_idle: 1 when nothing is queued or in flight (used for graceful stop). */
int brk_db_idle(const brk_db_t *db);

#endif
