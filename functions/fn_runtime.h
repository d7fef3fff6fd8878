/*
 * fn_runtime: the in-process function runtime (see fn.h for the contract with functions).
 *
 * GSAP_FN_WORKERS threads (workers), each with its own libevent event_base and its own
 * PostgreSQL connections, claiming side by side exactly as several brokers would. Each wakes
 * on NOTIFY gsap_events and on a timer, claims pending (event, function) pairs from fn_runs
 * with FOR UPDATE SKIP LOCKED, runs them, and records the outcome; failures retry with
 * exponential backoff and jitter until GSAP_FN_MAX_ATTEMPTS, then the pair is dead-lettered.
 * Periodic jobs (fn_periodics) run on their own timers. It shares nothing mutable with the
 * HTTP threads: they meet only in PostgreSQL.
 *
 * Environment (read by fn_runtime_start; README.md documents them):
 *   GSAP_FN_POLL_MS       claim timer (besides NOTIFY), default 1000
 *   GSAP_FN_BATCH         pairs claimed per pass, default 256
 *   GSAP_FN_PASS_GAP_MS   least time from a pass that emptied the backlog to the next, default 50
 *   GSAP_FN_WORKERS       runtime threads claiming side by side, default 1
 *   GSAP_FN_BACKOFF_MS    first retry delay, doubled per attempt (capped, jittered), default 500
 *   GSAP_FN_MAX_ATTEMPTS  attempts before a pair is dead-lettered, default 8
 */
#ifndef FN_RUNTIME_H
#define FN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "brk_config.h"
#include "brk_crypto.h"

typedef struct fn_runtime fn_runtime_t;

/* The GSAP_FN_* settings, as fn_runtime_start reads them. */
typedef struct fn_settings {
    unsigned poll_ms, batch, backoff_ms, max_attempts, workers, pass_gap_ms;
} fn_settings_t;

/* fn_runtime_settings: reads and checks the GSAP_FN_* variables (defaults when unset). Returns
 * 0, or BRK_EINVAL with a message naming the variable in err. Any thread. */
int fn_runtime_settings(fn_settings_t *out, char *err, size_t errlen);

/*
 * fn_runtime_start: validates the registry and the GSAP_FN_* variables, then starts the
 * runtime's worker threads (each connects, and reconnects, on its own). cfg and keys are borrowed and
 * must outlive the runtime. Returns the runtime, owned by the caller (fn_runtime_stop), or
 * NULL with a message in err. Main thread; start it before brk_server_run, which expects
 * every thread that exists to block SIGTERM (this one does).
 */
fn_runtime_t *fn_runtime_start(const brk_config_t *cfg, const brk_keyring_t *keys, char *err,
                               size_t errlen);

/*
 * fn_runtime_stop: stops claiming, waits for asynchronous runs in flight (at most
 * FN_STOP_GRACE_MS), joins the thread and frees rt. A synchronous pass in progress finishes
 * first. NULL is a no-op. Main thread (the one that started it).
 */
void fn_runtime_stop(fn_runtime_t *rt);

/*
 * fn_runtime_backoff_ms: the retry delay after failed attempt number attempt (1-based):
 * base_ms doubled per earlier attempt, capped at 300 s, scaled by 80% + (draw mod 41)%, so
 * a uniform draw gives a uniform factor in [0.8, 1.2]. Pure; any thread.
 */
uint64_t fn_runtime_backoff_ms(unsigned base_ms, unsigned attempt, uint32_t draw);

#endif
