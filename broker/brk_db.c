/*
 * brk_db: asynchronous libpq pipelines driven by an h2o evloop (public API in brk_db.h);
 * this file is the pool: the statement registry, the wait queue, submit, the timers and the
 * done list. One connection's protocol (connect, prepare, send, results) is brk_db_conn.c.
 *
 * Each connection keeps a FIFO of batches it has sent. A batch is N prepared statements and
 * one Sync; its results arrive in order as (result, NULL) per statement and then
 * PGRES_PIPELINE_SYNC, so a small per-batch state machine (want result -> want NULL -> ...
 * -> want sync) is all the parsing needed. The loop watches a dup() of the libpq socket
 * with H2O_SOCKET_FLAG_DONT_READ: h2o only reports readiness, libpq does the reading.
 *
 * Invariants:
 *  - a batch is on exactly one list: the pool's wait queue or one connection's in-flight list;
 *  - a callback runs after its batch left every list, so it may submit new batches;
 *  - a batch failed by a broken connection is not called back there and then: it moves to
 *    the pool's done list, which a zero timeout drains from the loop. A connection can break
 *    inside brk_db_submit (libpq notices the closed socket while sending), and the callers
 *    of brk_db_submit hold state that another request's callback must not see half-made
 *    (libuv makes the same promise for its callbacks). brk_db_free drains it at once.
 *  - a connection that misbehaves in any way is closed and every batch on it fails: nothing
 *    is retried here, because only the caller knows whether its batch is safe to repeat.
 */
#include "brk_db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

#define DB_TICK_MS 100

brk_db_stmt_t *brk__db_stmts[BRK_DB_MAX_STMTS];
int brk__db_nstmts;
brk_db_stmt_t *brk__db_session;

int brk_db_register(brk_db_stmt_t *stmt)
{
    for (int i = 0; i < brk__db_nstmts; i++)
        if (brk__db_stmts[i] == stmt)
            return 0;
    if (brk__db_nstmts == BRK_DB_MAX_STMTS)
        return BRK_ENOMEM;
    stmt->id = brk__db_nstmts;
    brk__db_stmts[brk__db_nstmts++] = stmt;
    return stmt->then != NULL ? brk_db_register(stmt->then) : 0;
}

void brk_db_set_session(brk_db_stmt_t *stmt)
{
    brk__db_session = stmt;
}

void brk__db_job_free(db_job_t *j)
{
    if (j->is_group) {
        for (size_t i = 0; i < j->nmem; i++)
            brk__db_job_free(j->members[i]);
        free(j->members);
        free(j);
        return;
    }
    for (size_t i = 0; i < j->nops; i++)
        if (j->res[i] != NULL)
            PQclear(j->res[i]);
    free(j->param_buf);
    free(j->key);
    free(j);
}

/* Unlinks nothing: the caller has already taken j off its list. */
static void job_finish(db_job_t *j, int err, const char *sqlstate, const char *message)
{
    if (j->is_group) {
        /* every member gets the group's fate (a broken connection, a timeout, shutdown) */
        for (size_t i = 0; i < j->nmem; i++)
            job_finish(j->members[i], err, sqlstate, message);
        j->nmem = 0;
        brk__db_job_free(j);
        return;
    }
    if (j->cb != NULL) {
        brk_db_result_t r = {.err = err,
                             .n = j->nops,
                             .res = j->res,
                             .sqlstate = sqlstate ? sqlstate : "",
                             .message = message ? message : "",
                             .failed_op = j->failed_op};
        j->cb(j->arg, &r);
    }
    brk__db_job_free(j);
}

void brk__db_job_complete(db_job_t *j)
{
    const char *state = NULL, *msg = NULL;
    int err = 0;
    if (j->failed_op >= 0) {
        PGresult *f = j->res[j->failed_op];
        err = BRK_EINVAL;
        state = f ? PQresultErrorField(f, PG_DIAG_SQLSTATE) : NULL;
        msg = f ? PQresultErrorField(f, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    }
    job_finish(j, err, state, msg);
}

/* brk__db_fail_list: moves every batch of list to the done list with err; callbacks come later. */
void brk__db_fail_list(brk_db_t *db, h2o_linklist_t *list, int err, const char *why)
{
    while (!h2o_linklist_is_empty(list)) {
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, list->next);
        h2o_linklist_unlink(&j->link);
        j->err = err;
        snprintf(j->why, sizeof j->why, "%s", why != NULL ? why : "");
        h2o_linklist_insert(&db->done, &j->link);
    }
    if (!h2o_linklist_is_empty(&db->done) && !h2o_timeout_is_linked(&db->done_entry) &&
        !db->closing)
        h2o_timeout_link(db->loop, &db->zero, &db->done_entry);
}

/* drain_done: calls back every batch of the done list, in the order they failed. A callback
 * may submit, and a new failure may add to the list: it is drained too. */
static void drain_done(brk_db_t *db)
{
    while (!h2o_linklist_is_empty(&db->done)) {
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, db->done.next);
        h2o_linklist_unlink(&j->link);
        job_finish(j, j->err, "", j->why);
    }
}

static void on_done(h2o_timeout_entry_t *entry)
{
    drain_done(H2O_STRUCT_FROM_MEMBER(brk_db_t, done_entry, entry));
}

static void expire_list(brk_db_t *db, h2o_linklist_t *list, uint64_t now, unsigned *count)
{
    while (!h2o_linklist_is_empty(list)) {
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, list->next);
        if (j->deadline > now)
            return;
        h2o_linklist_unlink(&j->link);
        (*count)--;
        db->st.timeouts++;
        job_finish(j, BRK_ETIMEDOUT, "", "database batch timed out in the wait queue");
    }
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    brk_db_t *db = H2O_STRUCT_FROM_MEMBER(brk_db_t, tick_entry, entry);
    uint64_t now = brk__db_now_ms(db);
    for (unsigned i = 0; i < db->nconns && !db->closing; i++) {
        db_conn_t *c = &db->conns[i];
        if (c->state == C_DOWN && now >= c->retry_at) {
            brk__db_conn_connect(c);
        } else if (!h2o_linklist_is_empty(&c->inflight)) {
            db_job_t *head = H2O_STRUCT_FROM_MEMBER(db_job_t, link, c->inflight.next);
            if (head->deadline <= now) {
                db->st.timeouts++;
                brk__db_conn_broken(c, BRK_ETIMEDOUT, "database batch timed out");
            }
        }
    }
    expire_list(db, &db->waitq, now, &db->nqueued);
    if (!db->closing)
        h2o_timeout_link(db->loop, &db->tick, &db->tick_entry);
}

/* ---- group commit ---- */

static void group_unlink_timers(brk_db_t *db)
{
    if (h2o_timeout_is_linked(&db->group_now_entry))
        h2o_timeout_unlink(&db->group_now_entry);
    if (h2o_timeout_is_linked(&db->group_wait_entry))
        h2o_timeout_unlink(&db->group_wait_entry);
}

/* A ready connection with room and no group in flight, the least busy one; or NULL. */
static db_conn_t *idle_group_conn(brk_db_t *db)
{
    db_conn_t *best = NULL;
    for (unsigned i = 0; i < db->nconns; i++) {
        db_conn_t *c = &db->conns[i];
        if (c->state == C_READY && c->ngroups == 0 && c->ninflight < BRK_DB_PIPELINE_MAX &&
            (best == NULL || c->ninflight < best->ninflight))
            best = c;
    }
    return best;
}

static db_conn_t *pick_conn(brk_db_t *db);

void brk__db_group_flush(brk_db_t *db, db_conn_t *c)
{
    db_job_t *g = db->open;
    if (g == NULL)
        return;
    db->open = NULL;
    group_unlink_timers(db);
    if (c == NULL || c->state != C_READY || c->ninflight >= BRK_DB_PIPELINE_MAX)
        c = pick_conn(db);
    g->deadline = UINT64_MAX;
    for (size_t i = 0; i < g->nmem; i++)
        if (g->members[i]->deadline < g->deadline)
            g->deadline = g->members[i]->deadline;
    if (c == NULL) {
        /* every connection is busy or (re)connecting: the group waits as one batch */
        h2o_linklist_insert(&db->waitq, &g->link);
        db->nqueued++;
        return;
    }
    if (brk__db_job_send(c, g) != 0) {
        if (!h2o_linklist_is_linked(&g->link)) {
            h2o_linklist_insert(&c->inflight, &g->link);
            c->ninflight++;
            c->ngroups++;
        }
        brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
    }
}

/* End of the loop iteration that opened the group: send it now unless a group is in flight
 * on every connection, in which case it collects batches until one completes or the wait
 * runs out. */
static void on_group_now(h2o_timeout_entry_t *entry)
{
    brk_db_t *db = H2O_STRUCT_FROM_MEMBER(brk_db_t, group_now_entry, entry);
    db_conn_t *c;
    if (db->open == NULL)
        return;
    if ((c = idle_group_conn(db)) != NULL || db->group_wait_ms == 0)
        brk__db_group_flush(db, c);
    else if (!h2o_timeout_is_linked(&db->group_wait_entry))
        h2o_timeout_link(db->loop, &db->group_wait, &db->group_wait_entry);
}

static void on_group_wait(h2o_timeout_entry_t *entry)
{
    brk_db_t *db = H2O_STRUCT_FROM_MEMBER(brk_db_t, group_wait_entry, entry);
    brk__db_group_flush(db, NULL);
}

/* Adds j to the open group (opening one), after the members with keys <= its key. */
static void group_add(brk_db_t *db, db_job_t *j)
{
    db_job_t *g = db->open;
    if (g == NULL) {
        g = db->open = brk_calloc(1, sizeof(*g));
        g->is_group = 1;
        g->failed_op = -1;
        g->members = brk_calloc(db->group_max, sizeof(*g->members));
    }
    size_t at = g->nmem;
    while (at > 0 && strcmp(g->members[at - 1]->key, j->key) > 0)
        at--;
    memmove(&g->members[at + 1], &g->members[at], (g->nmem - at) * sizeof(*g->members));
    g->members[at] = j;
    g->nmem++;
    g->nops += j->nops;
    if (g->nmem >= db->group_max) {
        brk__db_group_flush(db, NULL);
        return;
    }
    if (!h2o_timeout_is_linked(&db->group_now_entry) &&
        !h2o_timeout_is_linked(&db->group_wait_entry))
        h2o_timeout_link(db->loop, &db->zero, &db->group_now_entry);
}

/* Makes a member ready to be sent again on its own: its results of the rolled-back group go. */
static void job_reset(db_job_t *j)
{
    for (size_t i = 0; i < j->nops; i++) {
        if (j->res[i] != NULL)
            PQclear(j->res[i]);
        j->res[i] = NULL;
    }
    j->got = 0;
    j->phase = J_WANT_RESULT;
    j->failed_op = -1;
}

void brk__db_group_done(db_conn_t *c, db_job_t *g)
{
    brk_db_t *db = c->db;
    db->st.batches++;
    if (g->failed_op >= 0 && g->nmem > 1) {
        /* The transaction was rolled back as a whole: its members' results (of statements
         * that ran, then were undone, or were skipped) are not their answers. Each is run
         * again as one transaction of its own, in group order, on this connection. */
        db->st.group_reruns++;
        size_t i = 0;
        for (; i < g->nmem; i++) {
            db_job_t *m = g->members[i];
            job_reset(m);
            if (brk__db_job_send(c, m) != 0) {
                if (!h2o_linklist_is_linked(&m->link))
                    h2o_linklist_insert(&c->inflight, &m->link), c->ninflight++;
                for (i++; i < g->nmem; i++)
                    h2o_linklist_insert(&c->inflight, &g->members[i]->link), c->ninflight++;
                g->nmem = 0;
                brk__db_job_free(g);
                brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
                return;
            }
        }
        g->nmem = 0;
        brk__db_job_free(g);
        return;
    }
    if (g->failed_op >= 0)
        db->st.failures++;
    /* The members leave the group before any callback runs: a callback may submit, or
     * even break this connection, and every member is answered all the same. */
    size_t n = g->nmem;
    db_job_t **mem = g->members;
    g->nmem = 0;
    g->members = NULL;
    brk__db_job_free(g);
    for (size_t i = 0; i < n; i++)
        brk__db_job_complete(mem[i]);
    free(mem);
}

brk_db_t *brk_db_new(h2o_loop_t *loop, const char *conninfo, unsigned nconns, unsigned queue_max,
                     unsigned timeout_ms)
{
    brk_db_t *db = brk_calloc(1, sizeof(*db));
    db->loop = loop;
    db->conninfo = brk_strdup(conninfo);
    db->nconns = nconns == 0 ? 1 : nconns > BRK_DB_MAX_CONNS ? BRK_DB_MAX_CONNS : nconns;
    db->queue_max = queue_max;
    db->timeout_ms = timeout_ms;
    h2o_linklist_init_anchor(&db->waitq);
    h2o_linklist_init_anchor(&db->done);
    h2o_timeout_init(loop, &db->zero, 0);
    db->done_entry.cb = on_done;
    db->group_max = 1;
    db->group_now_entry.cb = on_group_now;
    h2o_timeout_init(loop, &db->group_wait, 0);
    db->group_wait_entry.cb = on_group_wait;
    for (unsigned i = 0; i < db->nconns; i++) {
        db->conns[i].db = db;
        h2o_linklist_init_anchor(&db->conns[i].inflight);
        brk__db_conn_connect(&db->conns[i]);
    }
    h2o_timeout_init(loop, &db->tick, DB_TICK_MS);
    db->tick_entry.cb = on_tick;
    h2o_timeout_link(loop, &db->tick, &db->tick_entry);
    return db;
}

void brk_db_free(brk_db_t *db)
{
    if (db == NULL)
        return;
    db->closing = 1;
    if (h2o_timeout_is_linked(&db->tick_entry))
        h2o_timeout_unlink(&db->tick_entry);
    for (unsigned i = 0; i < db->nconns; i++) {
        db_conn_t *c = &db->conns[i];
        c->logged_down = 1; /* a deliberate close is not worth a warning */
        if (c->state != C_DOWN)
            brk__db_conn_broken(c, BRK_EDB, "shutting down");
    }
    group_unlink_timers(db);
    if (db->open != NULL) {
        h2o_linklist_insert(&db->waitq, &db->open->link);
        db->open = NULL;
    }
    brk__db_fail_list(db, &db->waitq, BRK_EDB, "shutting down");
    if (h2o_timeout_is_linked(&db->done_entry))
        h2o_timeout_unlink(&db->done_entry);
    drain_done(db);
    h2o_timeout_dispose(db->loop, &db->tick);
    h2o_timeout_dispose(db->loop, &db->zero);
    h2o_timeout_dispose(db->loop, &db->group_wait);
    free(db->conninfo);
    free(db);
}

static db_conn_t *pick_conn(brk_db_t *db)
{
    db_conn_t *best = NULL;
    for (unsigned i = 0; i < db->nconns; i++) {
        db_conn_t *c = &db->conns[i];
        if (c->state == C_READY && c->ninflight < BRK_DB_PIPELINE_MAX &&
            (best == NULL || c->ninflight < best->ninflight))
            best = c;
    }
    return best;
}

/* job_make: checks a batch and copies it into a new job (*out); with key, a group member.
 * Returns 0, or the error brk_db_submit returns. */
static int job_make(brk_db_t *db, const brk_db_op_t *ops, size_t n, const char *key,
                    brk_db_cb cb, void *arg, db_job_t **out)
{
    size_t bytes = 0;
    if (n == 0 || n > BRK_DB_MAX_OPS)
        return BRK_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].nparams < 0 || ops[i].nparams > BRK_DB_MAX_PARAMS || ops[i].stmt == NULL)
            return BRK_EINVAL;
        for (int k = 0; k < ops[i].nparams; k++)
            if (ops[i].params[k] != NULL)
                bytes += strlen(ops[i].params[k]) + 1;
    }
    if (bytes > BRK_DB_PARAM_BYTES_MAX)
        return BRK_EINVAL;
    if (!brk__db_any_conn_in(db, C_READY) && !brk__db_any_conn_in(db, C_CONNECTING) &&
        !brk__db_any_conn_in(db, C_PREPARING))
        return BRK_EDB;
    db_job_t *j = brk_calloc(1, sizeof(*j));
    if (key != NULL)
        j->key = brk_strndup(key, strnlen(key, BRK_DB_GROUP_KEY_MAX));
    char *p = j->param_buf = brk_malloc(bytes + 1);
    j->cb = cb;
    j->arg = arg;
    j->nops = n;
    j->failed_op = -1;
    j->deadline = brk__db_now_ms(db) + db->timeout_ms;
    for (size_t i = 0; i < n; i++) {
        j->ops[i].stmt_id = ops[i].stmt->id;
        j->ops[i].nparams = ops[i].nparams;
        for (int k = 0; k < ops[i].nparams; k++) {
            const char *v = ops[i].params[k];
            if (v == NULL) {
                j->ops[i].params[k] = NULL;
                continue;
            }
            size_t l = strlen(v) + 1;
            memcpy(p, v, l);
            j->ops[i].params[k] = p;
            p += l;
        }
    }
    *out = j;
    return 0;
}

int brk_db_submit(brk_db_t *db, const brk_db_op_t *ops, size_t n, brk_db_cb cb, void *arg)
{
    db_conn_t *c = pick_conn(db);
    db_job_t *j;
    int rc;
    if ((rc = job_make(db, ops, n, NULL, cb, arg, &j)) != 0)
        return rc;
    if (c == NULL && db->nqueued >= db->queue_max) {
        brk__db_job_free(j);
        return BRK_EAGAIN;
    }
    if (c == NULL) {
        h2o_linklist_insert(&db->waitq, &j->link);
        db->nqueued++;
        return 0;
    }
    if (brk__db_job_send(c, j) != 0) {
        /* Never call back from inside submit: the caller learns of this failure here. */
        if (h2o_linklist_is_linked(&j->link)) {
            h2o_linklist_unlink(&j->link);
            c->ninflight--;
        }
        brk__db_job_free(j);
        brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
        return BRK_EDB;
    }
    return 0;
}

void brk_db_set_group(brk_db_t *db, unsigned group_max, unsigned group_wait_ms)
{
    if (db->open != NULL)
        return; /* not while a group collects: its members array has the old size */
    db->group_max = group_max < 1 ? 1
                    : group_max > BRK_DB_GROUP_MAX_LIMIT ? BRK_DB_GROUP_MAX_LIMIT
                                                         : group_max;
    db->group_wait_ms =
        group_wait_ms > BRK_DB_GROUP_WAIT_MAX_MS ? BRK_DB_GROUP_WAIT_MAX_MS : group_wait_ms;
    h2o_timeout_dispose(db->loop, &db->group_wait);
    h2o_timeout_init(db->loop, &db->group_wait, db->group_wait_ms);
}

int brk_db_submit_grouped(brk_db_t *db, const brk_db_op_t *ops, size_t n, const char *key,
                          brk_db_cb cb, void *arg)
{
    db_job_t *j;
    int rc;
    if (db->group_max <= 1)
        return brk_db_submit(db, ops, n, cb, arg);
    if ((rc = job_make(db, ops, n, key != NULL ? key : "", cb, arg, &j)) != 0)
        return rc;
    /* The open group will be one waiting batch when no connection can take it. */
    if (pick_conn(db) == NULL && db->open == NULL && db->nqueued >= db->queue_max) {
        brk__db_job_free(j);
        return BRK_EAGAIN;
    }
    group_add(db, j);
    return 0;
}

int brk_db_is_up(const brk_db_t *db)
{
    return brk__db_any_conn_in(db, C_READY);
}

int brk_db_idle(const brk_db_t *db)
{
    if (db->nqueued != 0 || db->open != NULL || db->done.next != &db->done)
        return 0;
    for (unsigned i = 0; i < db->nconns; i++)
        if (db->conns[i].ninflight != 0 && db->conns[i].state == C_READY)
            return 0;
    return 1;
}

void brk_db_get_stats(const brk_db_t *db, brk_db_stats_t *out)
{
    *out = db->st;
    out->conns_total = db->nconns;
    out->conns_ready = 0;
    out->in_flight = 0;
    for (unsigned i = 0; i < db->nconns; i++) {
        if (db->conns[i].state == C_READY)
            out->conns_ready++;
        out->in_flight += db->conns[i].ninflight;
    }
    out->queued = db->nqueued;
}
