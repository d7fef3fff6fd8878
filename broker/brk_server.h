/*
 * brk_server: the process's HTTP workers and their lifecycle.
 *
 * brk_server_run starts GSAP_THREADS worker threads (an h2o evloop, context, SO_REUSEPORT
 * listener and brk_db pool each), then waits on the main thread for SIGTERM or SIGINT. On
 * either it stops accepting, lets every worker finish the requests it has (bounded by
 * BRK_SHUTDOWN_GRACE_MS), joins the workers and returns. Hooks let the caller start and stop
 * other threads (the function runtime) inside that lifecycle.
 */
#ifndef BRK_SERVER_H
#define BRK_SERVER_H

#include "brk_config.h"
#include "brk_crypto.h"
#include "brk_db.h"

#define BRK_SHUTDOWN_GRACE_MS 30000
#define BRK_LISTEN_BACKLOG 1024

typedef struct brk_server brk_server_t;

/* brk_server_new: cfg and keys must outlive the server (not owned). Returns the server,
 * owned by the caller (brk_server_free). Main thread. */
brk_server_t *brk_server_new(const brk_config_t *cfg, const brk_keyring_t *keys);
void brk_server_free(brk_server_t *s);

/*
 * brk_server_run: binds, serves until a stop signal, drains, returns 0 or BRK_EIO (cannot
 * bind / TLS setup failed; message on stderr). Blocks the calling (main) thread, which must
 * not have started other threads that could take SIGTERM (it blocks the stop signals for
 * every thread it starts). on_ready runs once every listener is bound (may be NULL).
 */
int brk_server_run(brk_server_t *s, void (*on_ready)(void *), void *arg);

/* brk_server_config / brk_server_keys: the shared, read-only configuration and key ring. */
const brk_config_t *brk_server_config(const brk_server_t *s);
const brk_keyring_t *brk_server_keys(const brk_server_t *s);

/* brk_server_expected_migrations: migrations this binary knows, for /readyz. */
int brk_server_expected_migrations(const brk_server_t *s);

/* brk_server_db_up: 1 when the calling worker's pool has a ready connection. */
struct brk_worker;
int brk_worker_db_up(const struct brk_worker *w);

#endif
