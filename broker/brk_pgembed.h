/*
 * brk_pgembed: the embedded default database, a private PostgreSQL 15 cluster under
 * GSAP_DATA_DIR/pg (or, when its user cannot reach that directory, under
 * BRK_PGEMBED_SYSTEM_DIR) that the broker creates on first start, starts, and stops on exit.
 *
 * Unix socket only (listen_addresses=''), socket in GSAP_DATA_DIR/pg/run, fsync on. When the
 * broker runs as root the cluster runs as the unprivileged "postgres" user (PostgreSQL refuses
 * root). The data directory is mode 0700. Main thread only; blocking (start-up and exit).
 */
#ifndef BRK_PGEMBED_H
#define BRK_PGEMBED_H

#include <stddef.h>

#include "brk_config.h"

#define BRK_PGEMBED_PORT 5432 /* names the socket file only; nothing listens on TCP */
#define BRK_PGEMBED_START_TIMEOUT_S 60
/* Where the cluster lives when its user (postgres, for a root broker) cannot reach
 * GSAP_DATA_DIR: BRK_PGEMBED_SYSTEM_DIR/pg-<hex of the first BRK_PGEMBED_KEY_BYTES of
 * SHA-256 of GSAP_DATA_DIR's real path>. Not under /var/lib/gsap-broker: that is the
 * packaged service's data directory, owned by its system user, while a directory in which
 * root keeps clusters must be root's alone. */
#define BRK_PGEMBED_SYSTEM_DIR "/var/lib/gsap-broker-clusters"
#define BRK_PGEMBED_KEY_BYTES 8

typedef struct brk_pgembed {
    char root[512];     /* GSAP_DATA_DIR/pg, or BRK_PGEMBED_SYSTEM_DIR/pg-<key> */
    char datadir[512];  /* .../data */
    char sockdir[512];  /* .../run */
    char logfile[512];  /* .../server.log */
    int created;        /* 1 when this start ran initdb (first start) */
    int started;        /* 1 when this process started the server and must stop it */
} brk_pgembed_t;

/*
 * brk_pgembed_start: creates the cluster if missing, starts it unless already running, waits
 * until it accepts connections, creates the database "gsap" if missing, and writes the libpq
 * conninfo into cfg->conninfo (owned by cfg). Returns 0, BRK_EIO (a step failed; its output
 * is on stderr), BRK_ETIMEDOUT.
 */
int brk_pgembed_start(brk_pgembed_t *pe, brk_config_t *cfg);

/* brk_pgembed_stop: stops the server if this process started it (fast shutdown). */
void brk_pgembed_stop(brk_pgembed_t *pe, const brk_config_t *cfg);

#endif
