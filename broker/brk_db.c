/*
 * brk_db: asynchronous libpq pipelines driven by an h2o evloop.
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
#include "brk_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_log.h"
#include "banned.h"

#define DB_TICK_MS 100
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
    struct {
        int stmt_id, nparams;
        const char *params[BRK_DB_MAX_PARAMS];
    } ops[BRK_DB_MAX_OPS];
    PGresult *res[BRK_DB_MAX_OPS];
    char *param_buf;
    int err;              /* of a batch on the done list */
    char why[DB_WHY_MAX]; /* copied: libpq's message dies with its connection */
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
};

static brk_db_stmt_t *g_stmts[BRK_DB_MAX_STMTS];
static int g_nstmts;

static void conn_connect(db_conn_t *c);
static void conn_broken(db_conn_t *c, int err, const char *why);
static void conn_fill(db_conn_t *c);
static void on_readable(h2o_socket_t *sock, const char *err);

int brk_db_register(brk_db_stmt_t *stmt)
{
    for (int i = 0; i < g_nstmts; i++)
        if (g_stmts[i] == stmt)
            return 0;
    if (g_nstmts == BRK_DB_MAX_STMTS)
        return BRK_ENOMEM;
    stmt->id = g_nstmts;
    g_stmts[g_nstmts++] = stmt;
    return 0;
}

static uint64_t now_ms(brk_db_t *db)
{
    return h2o_now(db->loop);
}

static void job_free(db_job_t *j)
{
    for (size_t i = 0; i < j->nops; i++)
        if (j->res[i] != NULL)
            PQclear(j->res[i]);
    free(j->param_buf);
    free(j);
}

/* Unlinks nothing: the caller has already taken j off its list. */
static void job_finish(db_job_t *j, int err, const char *sqlstate, const char *message)
{
    if (j->cb != NULL) {
        brk_db_result_t r = {.err = err,
                             .n = j->nops,
                             .res = j->res,
                             .sqlstate = sqlstate ? sqlstate : "",
                             .message = message ? message : "",
                             .failed_op = j->failed_op};
        j->cb(j->arg, &r);
    }
    job_free(j);
}

static void job_complete(db_job_t *j)
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

/* fail_list: moves every batch of list to the done list with err; callbacks come later. */
static void fail_list(brk_db_t *db, h2o_linklist_t *list, int err, const char *why)
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

static int any_conn_in(const brk_db_t *db, enum conn_state s)
{
    for (unsigned i = 0; i < db->nconns; i++)
        if (db->conns[i].state == s)
            return 1;
    return 0;
}

static void conn_broken(db_conn_t *c, int err, const char *why)
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
    c->retry_at = now_ms(db) + BRK_DB_RECONNECT_MS;
    db->st.failures += c->ninflight;
    c->ninflight = 0;
    fail_list(db, &c->inflight, err, why);
    if (!any_conn_in(db, C_READY) && !any_conn_in(db, C_CONNECTING) &&
        !any_conn_in(db, C_PREPARING)) {
        h2o_linklist_init_anchor(&failed);
        h2o_linklist_insert_list(&failed, &db->waitq);
        db->nqueued = 0;
        fail_list(db, &failed, BRK_EDB, why);
    }
}

static void flush_done(h2o_socket_t *sock, const char *err);

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
        conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
}

static int job_send(db_conn_t *c, db_job_t *j)
{
    for (size_t i = 0; i < j->nops; i++) {
        brk_db_stmt_t *s = g_stmts[j->ops[i].stmt_id];
        int ok = j->is_prepare ? PQsendPrepare(c->pg, s->name, s->sql, 0, NULL)
                               : PQsendQueryPrepared(c->pg, s->name, j->ops[i].nparams,
                                                     j->ops[i].params, NULL, NULL, 0);
        if (!ok)
            return BRK_EDB;
    }
    if (!PQpipelineSync(c->pg))
        return BRK_EDB;
    h2o_linklist_insert(&c->inflight, &j->link);
    c->ninflight++;
    return conn_flush(c);
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
        PGresult *r = PQgetResult(c->pg);
        switch (j->phase) {
        case J_WANT_RESULT:
            if (r == NULL)
                goto protocol_error;
            if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                goto protocol_error;
            }
            j->res[j->got] = r;
            if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK &&
                j->failed_op < 0)
                j->failed_op = (int)j->got;
            j->phase = J_WANT_NULL;
            break;
        case J_WANT_NULL:
            if (r != NULL) {
                PQclear(r);
                goto protocol_error;
            }
            j->phase = ++j->got == j->nops ? J_WANT_SYNC : J_WANT_RESULT;
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
                    brk_log_error("cannot prepare statement", "statement",
                                  g_stmts[j->ops[failed].stmt_id]->name, "error", msg);
                    job_free(j);
                    conn_broken(c, BRK_EDB, "cannot prepare statements");
                    return;
                }
                job_free(j);
                if (!h2o_linklist_is_empty(&c->inflight))
                    break; /* more prepare batches to come */
                c->state = C_READY;
                if (c->logged_down)
                    brk_log_info("database connection ready", NULL, NULL);
                c->logged_down = 0;
            } else {
                c->db->st.batches++;
                if (j->failed_op >= 0)
                    c->db->st.failures++;
                job_complete(j);
            }
            break;
        }
    }
    if (c->pg != NULL)
        conn_fill(c);
    return;
protocol_error:
    conn_broken(c, BRK_EDB, "unexpected pipeline result");
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    db_conn_t *c = sock->data;
    if (err != NULL || !PQconsumeInput(c->pg)) {
        conn_broken(c, BRK_EDB, c->pg ? PQerrorMessage(c->pg) : "socket error");
        return;
    }
    conn_drain(c);
}

/* Moves queued batches onto c while it has room. */
static void conn_fill(db_conn_t *c)
{
    brk_db_t *db = c->db;
    while (c->state == C_READY && c->ninflight < BRK_DB_PIPELINE_MAX &&
           !h2o_linklist_is_empty(&db->waitq)) {
        db_job_t *j = H2O_STRUCT_FROM_MEMBER(db_job_t, link, db->waitq.next);
        h2o_linklist_unlink(&j->link);
        db->nqueued--;
        if (job_send(c, j) != 0) {
            if (!h2o_linklist_is_linked(&j->link))
                h2o_linklist_insert(&c->inflight, &j->link), c->ninflight++;
            conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
            return;
        }
    }
}

static void start_prepare(db_conn_t *c)
{
    c->state = C_PREPARING;
    if (!PQenterPipelineMode(c->pg))
        goto fail;
    if (g_nstmts == 0) {
        c->state = C_READY;
        conn_fill(c);
        return;
    }
    /* Every registered statement, in batches of BRK_DB_MAX_OPS; READY after the last sync. */
    for (int base = 0; base < g_nstmts; base += BRK_DB_MAX_OPS) {
        db_job_t *j = brk_calloc(1, sizeof(*j));
        j->is_prepare = 1;
        j->failed_op = -1;
        for (int i = base; i < g_nstmts && i < base + BRK_DB_MAX_OPS; i++)
            j->ops[j->nops++].stmt_id = i;
        if (job_send(c, j) != 0) {
            if (!h2o_linklist_is_linked(&j->link))
                job_free(j);
            goto fail;
        }
    }
    h2o_socket_read_start(c->sock, on_readable);
    return;
fail:
    conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
}

static void on_connect_io(h2o_socket_t *sock, const char *err);

static void connect_step(db_conn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_FAILED) {
        conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
        return;
    }
    if (conn_watch(c) != 0) {
        conn_broken(c, BRK_EDB, "no database socket");
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
            conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
            return;
        }
        start_prepare(c);
        break;
    default:
        conn_broken(c, BRK_EDB, "unexpected connect state");
    }
}

static void on_connect_io(h2o_socket_t *sock, const char *err)
{
    db_conn_t *c = sock->data;
    if (err != NULL) {
        conn_broken(c, BRK_EDB, err);
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

static void conn_connect(db_conn_t *c)
{
    c->db->st.reconnects++;
    c->pg = PQconnectStart(c->db->conninfo);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_broken(c, BRK_EDB, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, NULL);
    c->state = C_CONNECTING;
    if (conn_watch(c) != 0) {
        conn_broken(c, BRK_EDB, "no database socket");
        return;
    }
    /* libpq's protocol: after PQconnectStart, behave as if PQconnectPoll said WRITING. */
    h2o_socket_notify_write(c->sock, on_connect_io);
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
    uint64_t now = now_ms(db);
    for (unsigned i = 0; i < db->nconns && !db->closing; i++) {
        db_conn_t *c = &db->conns[i];
        if (c->state == C_DOWN && now >= c->retry_at) {
            conn_connect(c);
        } else if (!h2o_linklist_is_empty(&c->inflight)) {
            db_job_t *head = H2O_STRUCT_FROM_MEMBER(db_job_t, link, c->inflight.next);
            if (head->deadline <= now) {
                db->st.timeouts++;
                conn_broken(c, BRK_ETIMEDOUT, "database batch timed out");
            }
        }
    }
    expire_list(db, &db->waitq, now, &db->nqueued);
    if (!db->closing)
        h2o_timeout_link(db->loop, &db->tick, &db->tick_entry);
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
    for (unsigned i = 0; i < db->nconns; i++) {
        db->conns[i].db = db;
        h2o_linklist_init_anchor(&db->conns[i].inflight);
        conn_connect(&db->conns[i]);
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
            conn_broken(c, BRK_EDB, "shutting down");
    }
    fail_list(db, &db->waitq, BRK_EDB, "shutting down");
    if (h2o_timeout_is_linked(&db->done_entry))
        h2o_timeout_unlink(&db->done_entry);
    drain_done(db);
    h2o_timeout_dispose(db->loop, &db->tick);
    h2o_timeout_dispose(db->loop, &db->zero);
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

int brk_db_submit(brk_db_t *db, const brk_db_op_t *ops, size_t n, brk_db_cb cb, void *arg)
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
    db_conn_t *c = pick_conn(db);
    if (c == NULL) {
        if (!any_conn_in(db, C_READY) && !any_conn_in(db, C_CONNECTING) &&
            !any_conn_in(db, C_PREPARING))
            return BRK_EDB;
        if (db->nqueued >= db->queue_max)
            return BRK_EAGAIN;
    }
    db_job_t *j = brk_calloc(1, sizeof(*j));
    char *p = j->param_buf = brk_malloc(bytes + 1);
    j->cb = cb;
    j->arg = arg;
    j->nops = n;
    j->failed_op = -1;
    j->deadline = now_ms(db) + db->timeout_ms;
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
    if (c == NULL) {
        h2o_linklist_insert(&db->waitq, &j->link);
        db->nqueued++;
        return 0;
    }
    if (job_send(c, j) != 0) {
        /* Never call back from inside submit: the caller learns of this failure here. */
        if (h2o_linklist_is_linked(&j->link)) {
            h2o_linklist_unlink(&j->link);
            c->ninflight--;
        }
        job_free(j);
        conn_broken(c, BRK_EDB, PQerrorMessage(c->pg));
        return BRK_EDB;
    }
    return 0;
}

int brk_db_is_up(const brk_db_t *db)
{
    return any_conn_in(db, C_READY);
}

int brk_db_idle(const brk_db_t *db)
{
    if (db->nqueued != 0 || db->done.next != &db->done)
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
