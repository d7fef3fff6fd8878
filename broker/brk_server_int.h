/*
 * brk_server_int: the worker and server structs, shared by brk_server.c and brk_http*.c only.
 */
#ifndef BRK_SERVER_INT_H
#define BRK_SERVER_INT_H

#include <pthread.h>
#include <stdint.h>

#include <h2o.h>

#include "brk_keys.h"
#include "brk_rate.h"
#include "brk_server.h"

/*
 * What one worker remembers of an API key it verified in the database (brk_http_auth.c), for
 * at most BRK_AUTH_MEMO_TTL_MS and only on routes whose own transaction checks the key again
 * (BRK_ROUTE_KEY_RECHECK). Direct-mapped by tenant and key id: a collision only costs the
 * database lookup it would have cost anyway.
 */
#define BRK_AUTH_MEMO_SLOTS 16
#define BRK_AUTH_MEMO_TTL_MS 1000
#define BRK_AUTH_MEMO_RATE_MAX 16 /* bytes of a rate override as text, NUL included */

typedef struct brk_auth_memo {
    uint64_t verified_ns; /* CLOCK_MONOTONIC of the database check; 0: empty */
    char tenant[BRK_TENANT_MAX + 1];
    char key_id[BRK_KEY_ID_HEX + 1];
    char secret_hash[64]; /* hex SHA-256 of the secret, as stored */
    char name[BRK_KEY_NAME_MAX + 1];
    unsigned roles;
    int can_delegate;
    char rate[BRK_AUTH_MEMO_RATE_MAX], burst[BRK_AUTH_MEMO_RATE_MAX]; /* "": no override */
} brk_auth_memo_t;

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
    brk_auth_memo_t auth_memo[BRK_AUTH_MEMO_SLOTS];    /* brk_http_auth.c */
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
