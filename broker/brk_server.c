/*
 * brk_server: worker threads, listeners, TLS and the stop sequence.
 *
 * Listeners are bound on the main thread before any worker starts, so "address in use" is a
 * start-up error with a message, not a worker dying later. Each worker then owns its loop,
 * its listener (SO_REUSEPORT lets the kernel spread connections), its h2o context and its
 * database pool; workers share only the read-only configuration and key ring.
 *
 * Reload: SIGHUP (waited for the same way) reopens GSAP_LOG_FILE and reloads the TLS
 * certificate and key (brk_tls); the workers keep serving throughout.
 *
 * Stop: the main thread waits in sigwait for SIGTERM/SIGINT (blocked in every thread), then
 * messages each worker. A worker closes its listener, asks h2o to wind down its connections,
 * keeps serving what is in flight until nothing is left (or BRK_SHUTDOWN_GRACE_MS passed),
 * then ends the connections that are left, idle keep-alive ones (a load balancer holds them
 * open), and tears its loop down once they are gone.
 */
#include "brk_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brk_alloc.h"
#include "brk_config.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_jwks.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "brk_migrate.h"
#include "brk_notify.h"
#include "brk_server_int.h"
#include "brk_tls.h"
#include "brk_tls_client.h"
#include "banned.h"

#define ACCEPT_BURST 32
#define BRK_OPS_QUEUE_MAX 16 /* scrapes waiting for the ops pool of one loop */

const brk_config_t *brk_server_config(const brk_server_t *s)
{
    return s->cfg;
}

const brk_keyring_t *brk_server_keys(const brk_server_t *s)
{
    return s->keys;
}

int brk_server_expected_migrations(const brk_server_t *s)
{
    return s->expected_migrations;
}

int brk_worker_db_up(const struct brk_worker *w)
{
    return brk_db_is_up(w->db);
}

brk_server_t *brk_server_new(const brk_config_t *cfg, const brk_keyring_t *keys)
{
    brk_server_t *s = brk_calloc(1, sizeof(*s));
    uint8_t rnd[4];
    s->cfg = cfg;
    s->keys = keys;
    s->nworkers = cfg->threads;
    s->expected_migrations = brk_migrate_expected(cfg->migrations_dir);
    brk_random(rnd, sizeof rnd);
    brk_hex(rnd, sizeof rnd, s->boot_id);
    h2o_config_init(&s->globalconf);
    s->globalconf.max_request_entity_size = BRK_MAX_BODY;
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("gsap-broker"));
    s->hostconf = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")),
                                           65535);
    s->rate_keys = brk_rate_table_new(BRK_RATE_TABLE_ENTRIES);
    s->rate_fail = brk_rate_table_new(BRK_RATE_TABLE_ENTRIES);
    if (brk_jwks_cache_new(cfg->jwks_refresh_s, brk_env(BRK_TLS_CA_ENV), &s->jwks) != 0)
        brk_log_error("cannot start the jwks fetch thread", "effect",
                      "jwt tokens of issuers with a jwks_url are answered 503");
    brk__http_register(s);
    brk__http_register_stmts();
    return s;
}

void brk_server_free(brk_server_t *s)
{
    if (s == NULL)
        return;
    h2o_config_dispose(&s->globalconf);
    brk_rate_table_free(s->rate_keys);
    brk_rate_table_free(s->rate_fail);
    brk_jwks_cache_free(s->jwks);
    brk_tls_free(s->tls);
    free(s);
}

static int setup_tls(brk_server_t *s)
{
    const brk_config_t *cfg = s->cfg;
    char err[512];
    if (cfg->tls_cert == NULL)
        return 0;
    if ((s->tls = brk_tls_new(cfg->tls_cert, cfg->tls_key, err, sizeof err)) == NULL) {
        brk_log_error("cannot load the TLS certificate or key", "error", err);
        return BRK_EIO;
    }
    s->ssl = brk_tls_ctx(s->tls);
    h2o_ssl_register_alpn_protocols(s->ssl, h2o_http2_alpn_protocols);
    return 0;
}

/* SIGHUP: what can change without a restart. Each part that fails says so and keeps what it
 * had; the broker keeps serving either way. */
static void reload(brk_server_t *s)
{
    const brk_config_t *cfg = s->cfg;
    char err[512], subject[256];
    if (cfg->log_file != NULL) {
        if (brk_log_reopen(cfg->log_file) != 0)
            brk_log_error("cannot reopen the log file; still writing to the old one", "path",
                          cfg->log_file, "error", strerror(errno));
        else
            brk_log_info("log file reopened", "path", cfg->log_file);
    }
    if (s->tls != NULL) {
        if (brk_tls_reload(s->tls, err, sizeof err) != 0) {
            brk_log_error("TLS certificate not reloaded; the previous one stays in use", "error",
                          err);
        } else {
            brk_tls_subject(s->tls, subject, sizeof subject);
            brk_log_info("TLS certificate reloaded", "cert", cfg->tls_cert, "subject", subject);
        }
    }
}

static int bind_listener(const brk_config_t *cfg)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char port[8];
    int fd = -1, one = 1, rc;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", cfg->listen_port);
    if ((rc = getaddrinfo(cfg->listen_host, port, &hints, &ai)) != 0) {
        brk_log_error("cannot resolve the listen address", "host", cfg->listen_host, "error",
                      gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BRK_LISTEN_BACKLOG) != 0) {
        brk_log_error("cannot listen", "address", cfg->listen_host, "port", port, "error",
                      strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/*
 * Every accepted connection is on its worker's conns list until h2o disposes of its socket
 * (on_close: h2o 2.2 uses that hook only for its client socket pool, never for accepted
 * sockets). h2o 2.2 asks HTTP/2 connections to wind down but leaves idle HTTP/1 keep-alive
 * ones open until their timeout, and its context must have no connection left when it is
 * disposed; the list lets the stop end them (shutdown(2) on the descriptor: h2o reads EOF
 * and closes the connection itself, the one safe way to end it from outside). So the accept
 * is h2o_evloop_socket_accept's own (accept4, TCP_NODELAY, the accepted-connection flag),
 * written out to keep the descriptor.
 */
struct brk_conn {
    h2o_linklist_t link;
    int fd;
};

static void on_conn_close(void *data)
{
    struct brk_conn *c = data;
    h2o_linklist_unlink(&c->link);
    free(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct brk_worker *w = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), on = 1;
        if (fd == -1)
            return;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        h2o_socket_t *sock =
            h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        struct brk_conn *c = brk_calloc(1, sizeof *c);
        c->fd = fd;
        h2o_linklist_insert(&w->conns, &c->link);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&w->accept_ctx, sock);
    }
}

/* Ends the connections still open once nothing is in flight: each reads EOF and h2o closes
 * it (and unlinks it, on_conn_close) on the loop's next turns. */
static void end_idle_conns(struct brk_worker *w)
{
    for (h2o_linklist_t *l = w->conns.next; l != &w->conns; l = l->next)
        (void)shutdown(H2O_STRUCT_FROM_MEMBER(struct brk_conn, link, l)->fd, SHUT_RDWR);
}

static void on_stop_msg(h2o_multithread_receiver_t *rcv, h2o_linklist_t *messages)
{
    struct brk_worker *w = H2O_STRUCT_FROM_MEMBER(struct brk_worker, stop_receiver, rcv);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (w->stopping)
        return;
    w->stopping = 1;
    if (w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener);
        w->listener = NULL;
    }
    h2o_context_request_shutdown(&w->ctx);
}

static void publish_stats(struct brk_worker *w)
{
    brk_db_stats_t st;
    brk_db_get_stats(w->db, &st);
    brk_metrics_set(w->g_conns, st.conns_total);
    brk_metrics_set(w->g_ready, st.conns_ready);
    brk_metrics_set(w->g_inflight, st.in_flight);
    brk_metrics_set(w->g_queued, st.queued);
    /* group commit: every loop adds what its pool counted since the last iteration */
    brk_metrics_add(w->c_groups, (int64_t)(st.groups - w->groups_seen));
    brk_metrics_add(w->c_grouped, (int64_t)(st.grouped - w->grouped_seen));
    brk_metrics_add(w->c_reruns, (int64_t)(st.group_reruns - w->reruns_seen));
    w->groups_seen = st.groups;
    w->grouped_seen = st.grouped;
    w->reruns_seen = st.group_reruns;
}

static int gauge_for(const char *fmt, unsigned idx, const char *help)
{
    char name[BRK_METRICS_NAME_MAX];
    snprintf(name, sizeof name, fmt, idx);
    /* The metrics table keeps the name for the life of the process. */
    return brk_metrics_gauge(brk_strdup(name), help);
}

static void *worker_main(void *arg)
{
    struct brk_worker *w = arg;
    brk_server_t *s = w->server;
    const brk_config_t *cfg = s->cfg;
    struct timespec deadline = {0};
    int ended = 0; /* end_idle_conns done */

    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &s->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = s->globalconf.hosts;
    w->accept_ctx.ssl_ctx = s->ssl;
    h2o_linklist_init_anchor(&w->conns);
    h2o_multithread_register_receiver(w->ctx.queue, &w->stop_receiver, on_stop_msg);
    w->db = brk_db_new(w->loop, cfg->conninfo, cfg->db_conns, cfg->db_queue_max,
                       cfg->db_timeout_ms);
    brk_db_set_group(w->db, cfg->db_group_max, cfg->db_group_wait_ms);
    if (cfg->read_conninfo != NULL)
        w->db_read = brk_db_new(w->loop, cfg->read_conninfo, cfg->db_conns, cfg->db_queue_max,
                                cfg->db_timeout_ms);
    w->db_ops = brk_db_new(w->loop, cfg->conninfo, 1, BRK_OPS_QUEUE_MAX, cfg->db_timeout_ms);
    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    pthread_barrier_wait(&s->ready);

    for (;;) {
        h2o_evloop_run(w->loop, w->stopping ? 50 : INT32_MAX);
        publish_stats(w);
        if (!w->stopping)
            continue;
        if (deadline.tv_sec == 0) {
            clock_gettime(CLOCK_MONOTONIC, &deadline);
            deadline.tv_sec += BRK_SHUTDOWN_GRACE_MS / 1000;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec >= deadline.tv_sec)
            break;
        if (w->inflight != 0 || !brk_db_idle(w->db) || !brk_db_idle(w->db_ops) ||
            (w->db_read != NULL && !brk_db_idle(w->db_read)))
            continue;
        if (h2o_linklist_is_empty(&w->conns))
            break;
        if (!ended) {
            end_idle_conns(w);
            ended = 1;
        }
    }
    if (w->inflight != 0)
        brk_log_warn("stopping with requests still in flight", "loop", "");
    brk_db_free(w->db);
    w->db = NULL;
    if (w->db_read != NULL)
        brk_db_free(w->db_read);
    w->db_read = NULL;
    brk_db_free(w->db_ops);
    w->db_ops = NULL;
    /* Let the loop run the closes it was handed before the context goes. */
    for (int i = 0; i < 4; i++)
        h2o_evloop_run(w->loop, 0);
    /* h2o's HTTP/2 graceful-shutdown timer may still be armed; the context must be idle. */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->stop_receiver);
    if (!h2o_linklist_is_empty(&w->conns)) {
        /* A connection that never read its EOF within the grace period: h2o would abort
         * disposing a context that still has it, and the process is about to exit. */
        brk_log_warn("stopping with connections still open", "loop", "");
        return NULL;
    }
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(w->loop);
    return NULL;
}

int brk_server_run(brk_server_t *s, void (*on_ready)(void *), void *arg)
{
    sigset_t stopset, old;
    int sig, rc = 0;
    unsigned started = 0;

    signal(SIGPIPE, SIG_IGN);
    if (setup_tls(s) != 0)
        return BRK_EIO;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGHUP); /* not a stop: a reload, below */
    pthread_sigmask(SIG_BLOCK, &stopset, &old);
    pthread_barrier_init(&s->ready, NULL, s->nworkers + 1);

    for (unsigned i = 0; i < s->nworkers; i++) {
        struct brk_worker *w = &s->workers[i];
        w->server = s;
        w->index = i;
        w->listen_fd = bind_listener(s->cfg);
        if (w->listen_fd < 0) {
            for (unsigned k = 0; k < i; k++)
                close(s->workers[k].listen_fd);
            rc = BRK_EIO;
            goto out;
        }
        w->g_conns = gauge_for("gsap_db_connections{loop=\"%u\"}", i,
                               "Database connections per loop.");
        w->g_ready = gauge_for("gsap_db_connections_ready{loop=\"%u\"}", i,
                               "Database connections ready per loop.");
        w->g_inflight = gauge_for("gsap_db_batches_in_flight{loop=\"%u\"}", i,
                                  "Statement batches sent and not yet answered.");
        w->g_queued = gauge_for("gsap_db_batches_queued{loop=\"%u\"}", i,
                                "Statement batches waiting for a connection.");
        w->c_groups = brk_metrics_counter("gsap_db_groups_total",
                                          "Group-commit transactions sent (GSAP_DB_GROUP_MAX).");
        w->c_grouped = brk_metrics_counter("gsap_db_grouped_batches_total",
                                           "Requests' batches sent inside group transactions.");
        w->c_reruns = brk_metrics_counter(
            "gsap_db_group_reruns_total",
            "Group transactions rolled back and re-run one batch per transaction.");
    }
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            brk_log_error("cannot start a worker thread", "error", strerror(errno));
            abort(); /* the barrier below would wait forever */
        }
        started++;
    }
    /* Every worker has registered its stop receiver once the barrier opens. */
    pthread_barrier_wait(&s->ready);
    if (on_ready != NULL)
        on_ready(arg);
    /* systemd (Type=notify): serving from now on */
    if (brk_notify("READY=1") != 0)
        brk_log_warn("cannot notify the service manager (NOTIFY_SOCKET)", "state", "READY=1");
    for (;;) {
        if (sigwait(&stopset, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        brk_notify("RELOADING=1");
        reload(s);
        brk_notify("READY=1");
    }
    brk_log_info("stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    brk_notify("STOPPING=1");
    for (unsigned i = 0; i < started; i++)
        h2o_multithread_send_message(&s->workers[i].stop_receiver, &s->workers[i].stop_msg);
    for (unsigned i = 0; i < started; i++)
        pthread_join(s->workers[i].thread, NULL);
out:
    pthread_barrier_destroy(&s->ready);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
