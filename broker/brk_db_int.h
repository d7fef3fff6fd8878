/*
 * brk_db_int: the pool's and connections' state, shared by brk_db.c (the pool: statement
 * registry, wait queue, submit, timers, the done list) and brk_db_conn.c (one connection:
 * connect, prepare, send, read results, break) only. Everything runs on the pool's loop.
 *
 * Invariants (see also brk_db.c):
 *  - a batch is on exactly one list: the pool's wait queue, one connection's in-flight list,
 *    or the pool's done list;
 *  - c->ninflight counts c->inflight, db->nqueued counts db->waitq.
 */
#ifndef BRK_DB_INT_H
#define BRK_DB_INT_H

#include <stdint.h>

#include "brk_db.h"

#define DB_WHY_MAX 256 /* bytes of a failure message kept for a deferred callback */

enum conn_state { C_DOWN, C_CONNECTING, C_PREPARING, C_READY };
enum job_phase { J_WANT_RESULT, J_WANT_NULL, J_WANT_SYNC };

typedef struct db_job {
    h2o_linklist_t link;
    brk_db_cb cb; /* NULL for the internal prepare batch */
    void *arg;
    uint64_t deadline;
    size_t nops, got;
    enum job_phase phase;
    int failed_op;
    int is_prepare;
    int is_session; /* with is_prepare: runs the session statement (brk_db_set_session) */
    struct {
        int stmt_id, nparams;
        const char *params[BRK_DB_MAX_PARAMS];
    } ops[BRK_DB_MAX_OPS];
    PGresult *res[BRK_DB_MAX_OPS];
    char *param_buf;
    int err;              /* of a batch on the done list */
    char why[DB_WHY_MAX]; /* copied: libpq's message dies with its connection */
    /* Group commit. A group is a job of its own (is_group) that owns its member jobs until
     * it completes; its ops[] and res[] are unused, nops counts the members' ops, and
     * results go to members[cur] in turn. A member's key orders it in its group. */
    int is_group;
    struct db_job **members;
    size_t nmem, cur;
    char *key;
} db_job_t;

typedef struct db_conn {
    struct brk_db *db;
    PGconn *pg;
    h2o_socket_t *sock;
    int sock_src; /* the libpq fd that sock duplicates */
    enum conn_state state;
    h2o_linklist_t inflight;
    unsigned ninflight;
    uint64_t retry_at;
    int logged_down;
    unsigned ngroups; /* groups among the in-flight batches */
} db_conn_t;

struct brk_db {
    h2o_loop_t *loop;
    char *conninfo;
    unsigned nconns, queue_max, timeout_ms;
    db_conn_t conns[BRK_DB_MAX_CONNS];
    h2o_linklist_t waitq;
    unsigned nqueued;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    h2o_linklist_t done;      /* failed batches whose callbacks wait for the loop */
    h2o_timeout_t zero;       /* fires on the loop's next iteration */
    h2o_timeout_entry_t done_entry;
    brk_db_stats_t st;
    int closing;
    /* Group commit (brk_db_set_group): the group collecting batches, not sent yet. */
    unsigned group_max, group_wait_ms;
    db_job_t *open;
    h2o_timeout_entry_t group_now_entry; /* on zero: end of this loop iteration */
    h2o_timeout_t group_wait;            /* group_wait_ms */
    h2o_timeout_entry_t group_wait_entry;
};

/* The statement registry (brk_db_register): prepared on every new connection. Written on the
 * main thread before any pool exists, read-only afterwards. */
extern brk_db_stmt_t *brk__db_stmts[BRK_DB_MAX_STMTS];
extern int brk__db_nstmts;
extern brk_db_stmt_t *brk__db_session; /* brk_db_set_session */

static inline uint64_t brk__db_now_ms(brk_db_t *db)
{
    return h2o_now(db->loop);
}

static inline int brk__db_any_conn_in(const brk_db_t *db, enum conn_state s)
{
    for (unsigned i = 0; i < db->nconns; i++)
        if (db->conns[i].state == s)
            return 1;
    return 0;
}

/* brk__db_group_flush: sends the open group on c when c is ready with room, else on the
 * least busy ready connection, else puts it in the wait queue. No-op without an open group. */
void brk__db_group_flush(brk_db_t *db, db_conn_t *c);

/* brk__db_group_done: a group's Sync arrived (it is on no list): calls its members back, or,
 * when a statement failed, sends each member again as a batch of its own on c. */
void brk__db_group_done(db_conn_t *c, db_job_t *g);

/* brk__db_job_free: releases a batch that is on no list, results included, without a callback. */
void brk__db_job_free(db_job_t *j);

/* brk__db_job_complete: calls a finished batch back with its results, then frees it. The
 * batch is on no list any more. */
void brk__db_job_complete(db_job_t *j);

/* brk__db_fail_list: moves every batch of list to the done list with err and why; their
 * callbacks run later from the loop, never from inside the caller. */
void brk__db_fail_list(brk_db_t *db, h2o_linklist_t *list, int err, const char *why);

/* brk__db_conn_connect: starts connecting c (state C_DOWN) without blocking. */
void brk__db_conn_connect(db_conn_t *c);

/* brk__db_conn_broken: closes c, fails its batches (and the wait queue when no connection
 * is left alive) through the done list, and schedules a reconnect. */
void brk__db_conn_broken(db_conn_t *c, int err, const char *why);

/* brk__db_job_send: sends j's statements and a Sync on c and puts j on c's in-flight list.
 * Returns 0 or BRK_EDB; j may then be on the list or not (check h2o_linklist_is_linked). */
int brk__db_job_send(db_conn_t *c, db_job_t *j);

#endif
