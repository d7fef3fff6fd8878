/*
 * brk_db_conn: one pooled libpq connection, non-blocking, in pipeline mode.
 *
 * Owns: a db_conn_t's life: C_DOWN -> C_CONNECTING (PQconnectPoll driven by the loop) ->
 * C_PREPARING (every registered statement prepared, in batches) -> C_READY, and back to
 * C_DOWN on any failure (brk__db_conn_broken), from where brk_db.c's tick reconnects; the
 * socket watcher (a dup() of libpq's fd, H2O_SOCKET_FLAG_DONT_READ); sending batches and
 * reading their results in order; moving queued batches onto a ready connection.
 * Invariants: results are matched to batches strictly in FIFO order, and anything out of
 * that order breaks the connection; a broken connection never calls back from here (its
 * batches go to the pool's done list); libpq's own messages are copied before PQfinish.
 * Runs on the pool's loop only.
 */
#include "brk_db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

static void conn_fill(db_conn_t *c);
static void flush_done(h2o_socket_t *sock, const char *err);
static void on_connect_io(h2o_socket_t *sock, const char *err);

static void close_sock(db_conn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
}

/* (Re)creates the loop's watcher when libpq's socket changed (it may during connect). */
static int conn_watch(db_conn_t *c)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return BRK_EDB;
    if (c->sock != NULL && c->sock_src == fd)
        return 0;
    close_sock(c);
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return BRK_EDB;
    c->sock = h2o_evloop_socket_create(c->db->loop, dfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->sock_src = fd;
    return 0;
}

void brk__db_conn_broken(db_conn_t *c, int err, const char *why)
{
    brk_db_t *db = c->db;
    h2o_linklist_t failed;
    char msg[DB_WHY_MAX];

    /* why often points into c->pg, which PQfinish frees below */
    snprintf(msg, sizeof msg, "%s", why != NULL ? why : "");
    why = msg;
    if (!c->logged_down) {
        brk_log_warn("database connection lost", "reason", why);
        c->logged_down = 1;
    }
    close_sock(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = C_DOWN;
    c->retry_at = brk__db_now_ms(db) + BRK_DB_RECONNECT_MS;
    db->st.failures += c->ninflight;
    c->ninflight = 0;
    c->ngroups = 0;
    brk__db_fail_list(db, &c->inflight, err, why);
    if (!brk__db_any_conn_in(db, C_READY) && !brk__db_any_conn_in(db, C_CONNECTING) &&
        !brk__db_any_conn_in(db, C_PREPARING)) {
        h2o_linklist_init_anchor(&failed);
        h2o_linklist_insert_list(&failed, &db->waitq);
        db->nqueued = 0;
        brk__db_fail_list(db, &failed, BRK_EDB, why);
    }
}

/* Pushes buffered output; asks the loop for writability while libpq still holds some. */
static int conn_flush(db_conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        return BRK_EDB;
    if (r == 1 && c->sock->_cb.write == NULL)
        h2o_socket_notify_write(c->sock, flush_done);
    return 0;
}

static void flush_done(h2o_socket_t *sock, const char *err)
{
    db_conn_t *c = sock->data;
    if (err != NULL || conn_flush(c) != 0)
        brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
}

static int send_ops(db_conn_t *c, const db_job_t *j)
{
    for (size_t i = 0; i < j->nops; i++) {
        brk_db_stmt_t *s = brk__db_stmts[j->ops[i].stmt_id];
        int ok = j->is_prepare && !j->is_session
                     ? PQsendPrepare(c->pg, s->name, s->sql, 0, NULL)
                     : PQsendQueryPrepared(c->pg, s->name, j->ops[i].nparams, j->ops[i].params,
                                           NULL, NULL, 0);
        if (!ok)
            return BRK_EDB;
    }
    return 0;
}

/* The first "then" statement of j's statements (a group's: its members'), or NULL. */
static brk_db_stmt_t *job_then(const db_job_t *j)
{
    if (j->is_prepare)
        return NULL;
    for (size_t m = 0; m < (j->is_group ? j->nmem : 1); m++) {
        const db_job_t *b = j->is_group ? j->members[m] : j;
        for (size_t i = 0; i < b->nops; i++)
            if (brk__db_stmts[b->ops[i].stmt_id]->then != NULL)
                return brk__db_stmts[b->ops[i].stmt_id]->then;
    }
    return NULL;
}

/* Sends s (no parameters) and a Sync as an internal batch nobody is called back for. */
static int send_then(db_conn_t *c, brk_db_stmt_t *s)
{
    db_job_t *t = brk_calloc(1, sizeof(*t));
    t->failed_op = -1;
    t->deadline = brk__db_now_ms(c->db) + c->db->timeout_ms;
    t->ops[t->nops++].stmt_id = s->id;
    if (send_ops(c, t) != 0 || !PQpipelineSync(c->pg)) {
        brk__db_job_free(t);
        return BRK_EDB;
    }
    h2o_linklist_insert(&c->inflight, &t->link);
    c->ninflight++;
    return 0;
}

int brk__db_job_send(db_conn_t *c, db_job_t *j)
{
    brk_db_stmt_t *then = job_then(j);
    /* A group: every member's statements back to back, one Sync, so one transaction. */
    for (size_t m = 0; m < (j->is_group ? j->nmem : 1); m++)
        if (send_ops(c, j->is_group ? j->members[m] : j) != 0)
            return BRK_EDB;
    if (!PQpipelineSync(c->pg))
        return BRK_EDB;
    h2o_linklist_insert(&c->inflight, &j->link);
    c->ninflight++;
    if (j->is_group) {
        c->ngroups++;
        c->db->st.groups++;
        c->db->st.grouped += j->nmem;
    }
    if (then != NULL && send_then(c, then) != 0)
        return BRK_EDB;
    return conn_flush(c);
}

/* The job the next result belongs to: j itself, or the group member whose turn it is. */
static db_job_t *result_target(db_job_t *j)
{
    return j->is_group ? j->members[j->cur] : j;
}

/* Handles every result libpq has fully received. */
static void conn_drain(db_conn_t *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    while (c->pg != NULL && !h2o_linklist_is_empty(&c->inflight)) {
        if (PQisBusy(c->pg))
            return;
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, c->inflight.next);
        db_job_t *t = j->phase == J_WANT_SYNC ? j : result_target(j);
        PGresult *r = PQgetResult(c->pg);
        switch (j->phase) {
        case J_WANT_RESULT:
            if (r == NULL)
                goto protocol_error;
            if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                goto protocol_error;
            }
            t->res[t->got] = r;
            if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
                if (t->failed_op < 0)
                    t->failed_op = (int)t->got;
                if (j->failed_op < 0)
                    j->failed_op = (int)t->got; /* a group: "some statement failed" */
            }
            j->phase = J_WANT_NULL;
            break;
        case J_WANT_NULL:
            if (r != NULL) {
                PQclear(r);
                goto protocol_error;
            }
            if (++t->got < t->nops)
                j->phase = J_WANT_RESULT;
            else if (j->is_group && ++j->cur < j->nmem)
                j->phase = J_WANT_RESULT;
            else
                j->phase = J_WANT_SYNC;
            break;
        case J_WANT_SYNC:
            if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
                if (r != NULL)
                    PQclear(r);
                goto protocol_error;
            }
            PQclear(r);
            h2o_linklist_unlink(&j->link);
            c->ninflight--;
            if (j->is_prepare) {
                int failed = j->failed_op;
                const char *msg = failed >= 0 ? PQresultErrorMessage(j->res[failed]) : "";
                if (failed >= 0) {
                    brk_log_error(j->is_session ? "cannot set up the session"
                                                : "cannot prepare statement",
                                  "statement", brk__db_stmts[j->ops[failed].stmt_id]->name,
                                  "error", msg);
                    brk__db_job_free(j);
                    brk__db_conn_broken(c, BRK_EDB, "cannot prepare statements");
                    return;
                }
                brk__db_job_free(j);
                if (!h2o_linklist_is_empty(&c->inflight))
                    break; /* more prepare batches to come */
                c->state = C_READY;
                if (c->logged_down)
                    brk_log_info("database connection ready", NULL, NULL);
                c->logged_down = 0;
            } else if (j->is_group) {
                c->ngroups--;
                brk__db_group_done(c, j);
            } else if (j->cb == NULL) { /* a "then" statement: nobody waits for it */
                brk__db_job_free(j);
            } else {
                c->db->st.batches++;
                if (j->failed_op >= 0)
                    c->db->st.failures++;
                brk__db_job_complete(j);
            }
            break;
        }
    }
    if (c->pg != NULL)
        conn_fill(c);
    return;
protocol_error:
    brk__db_conn_broken(c, BRK_EDB, "unexpected pipeline result");
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    db_conn_t *c = sock->data;
    if (err != NULL || !PQconsumeInput(c->pg)) {
        brk__db_conn_broken(c, BRK_EDB, c->pg ? PQerrorMessage(c->pg) : "socket error");
        return;
    }
    conn_drain(c);
}

/* Moves queued batches onto c while it has room; then, when no group is in flight on c any
 * more, the group that collected batches meanwhile. */
static void conn_fill(db_conn_t *c)
{
    brk_db_t *db = c->db;
    while (c->state == C_READY && c->ninflight < BRK_DB_PIPELINE_MAX &&
           !h2o_linklist_is_empty(&db->waitq)) {
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, db->waitq.next);
        h2o_linklist_unlink(&j->link);
        db->nqueued--;
        if (brk__db_job_send(c, j) != 0) {
            if (!h2o_linklist_is_linked(&j->link)) {
                h2o_linklist_insert(&c->inflight, &j->link), c->ninflight++;
                c->ngroups += j->is_group;
            }
            brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
            return;
        }
    }
    if (c->state == C_READY && c->ngroups == 0 && c->ninflight < BRK_DB_PIPELINE_MAX &&
        db->open != NULL)
        brk__db_group_flush(db, c);
}

static void start_prepare(db_conn_t *c)
{
    c->state = C_PREPARING;
    if (!PQenterPipelineMode(c->pg))
        goto fail;
    if (brk__db_nstmts == 0) {
        c->state = C_READY;
        conn_fill(c);
        return;
    }
    /* Every registered statement, in batches of BRK_DB_MAX_OPS; READY after the last sync. */
    for (int base = 0; base < brk__db_nstmts; base += BRK_DB_MAX_OPS) {
        db_job_t *j = brk_calloc(1, sizeof(*j));
        j->is_prepare = 1;
        j->failed_op = -1;
        /* the same timeout as any batch: a deadline of 0 would expire at the next tick */
        j->deadline = brk__db_now_ms(c->db) + c->db->timeout_ms;
        for (int i = base; i < brk__db_nstmts && i < base + BRK_DB_MAX_OPS; i++)
            j->ops[j->nops++].stmt_id = i;
        if (brk__db_job_send(c, j) != 0) {
            if (!h2o_linklist_is_linked(&j->link))
                brk__db_job_free(j);
            goto fail;
        }
    }
    /* The session statement, once prepared: READY comes after its Sync, so before any batch. */
    if (brk__db_session != NULL) {
        db_job_t *j = brk_calloc(1, sizeof(*j));
        j->is_prepare = j->is_session = 1;
        j->failed_op = -1;
        j->deadline = brk__db_now_ms(c->db) + c->db->timeout_ms;
        j->ops[j->nops++].stmt_id = brk__db_session->id;
        if (brk__db_job_send(c, j) != 0) {
            if (!h2o_linklist_is_linked(&j->link))
                brk__db_job_free(j);
            goto fail;
        }
    }
    h2o_socket_read_start(c->sock, on_readable);
    return;
fail:
    brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
}

static void connect_step(db_conn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_FAILED) {
        brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
        return;
    }
    if (conn_watch(c) != 0) {
        brk__db_conn_broken(c, BRK_EDB, "no database socket");
        return;
    }
    h2o_socket_read_stop(c->sock);
    switch (st) {
    case PGRES_POLLING_READING:
        h2o_socket_read_start(c->sock, on_connect_io);
        break;
    case PGRES_POLLING_WRITING:
        if (c->sock->_cb.write == NULL)
            h2o_socket_notify_write(c->sock, on_connect_io);
        break;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0) {
            brk__db_conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
            return;
        }
        start_prepare(c);
        break;
    default:
        brk__db_conn_broken(c, BRK_EDB, "unexpected connect state");
    }
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    db_conn_t *c = sock->data;
    if (err != NULL) {
        brk__db_conn_broken(c, BRK_EDB, err);
        return;
    }
    connect_step(c);
}

/* Server notices (warnings on shutdown, ...) go to the log as JSON, not raw to stderr. */
static void on_notice(void *arg, const char *message)
{
    char msg[512];
    size_t n = strlen(message);
    while (n > 0 && message[n - 1] == '\n')
        n--;
    snprintf(msg, sizeof msg, "%.*s", (int)n, message);
    brk_log_warn("database notice", "notice", msg);
}

void brk__db_conn_connect(db_conn_t *c)
{
    c->db->st.reconnects++;
    c->pg = PQconnectStart(c->db->conninfo);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        brk__db_conn_broken(c, BRK_EDB, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    c->state = C_CONNECTING;
    if (conn_watch(c) != 0) {
        brk__db_conn_broken(c, BRK_EDB, "no database socket");
        return;
    }
    /* libpq's protocol: after PQconnectStart, behave as if PQconnectPoll said WRITING. */
    h2o_socket_notify_write(c->sock, on_connect_io);
}
