/*
 * brk_server_int: the worker and server structs, shared by brk_server.c and brk_http*.c only.
 */
#ifndef BRK_SERVER_INT_H
#define BRK_SERVER_INT_H

#include <pthread.h>
#include <stdint.h>

#include <h2o.h>

#include "brk_rate.h"
#include "brk_server.h"

struct brk_worker {
    brk_server_t *server;
    unsigned index;
    pthread_t thread;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    h2o_linklist_t conns;  /* struct brk_conn of every open accepted connection (brk_server.c) */
    brk_db_t *db;
    brk_db_t *db_read; /* GSAP_READ_DATABASE_URL's pool, NULL: reads use db */
    brk_db_t *db_ops;  /* BRK_ROUTE_OPS statements (/metrics): one connection of its own */
    h2o_multithread_receiver_t stop_receiver;
    h2o_multithread_message_t stop_msg;
    volatile int stopping; /* set on the worker's own thread from the stop message */
    unsigned inflight;     /* live brk_req_t of this loop */
    uint64_t seq;          /* request id counter */
    int g_conns, g_ready, g_inflight, g_queued; /* metric slots */
    int c_groups, c_grouped, c_reruns; /* group commit counters, shared by all loops */
    uint64_t groups_seen, grouped_seen, reruns_seen; /* this loop's share already added */
};

struct brk_server {
    const brk_config_t *cfg;
    const brk_keyring_t *keys;
    struct brk_worker workers[BRK_MAX_THREADS];
    unsigned nworkers;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl;      /* brk_tls_ctx(tls), NULL: plain HTTP */
    struct brk_tls *tls; /* the certificate SIGHUP reloads */
    int expected_migrations;
    pthread_barrier_t ready; /* workers + main: every stop receiver is registered */
    char boot_id[9]; /* random per process; prefixes request ids */
    brk_rate_table_t *rate_keys; /* token buckets per "tenant/key_id", shared by all workers */
    brk_rate_table_t *rate_fail; /* failed authentications per client address */
    struct brk_jwks_cache *jwks; /* JWKS documents of the jwt driver; NULL: could not start */
};

/* brk__http_register: installs the request handler and error filter on the host's paths. */
void brk__http_register(brk_server_t *s);

/* brk__db_stmts_register: registers the statements brk_http itself runs (auth). */
int brk__http_register_stmts(void);

#endif
