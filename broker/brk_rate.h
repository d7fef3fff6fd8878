/*
 * brk_rate: bounded tables of token buckets (per API key) and failure counters (per client
 * address), shared by every HTTP worker of one broker.
 *
 * One table serves all workers, so a documented limit is the limit of the broker, not of
 * each thread: a key sending to 4 workers still gets `rate` requests per second in total.
 * The table is set-associative: a key hashes (keyed with a random per-table seed, so an
 * attacker cannot aim many addresses at one set) to one set of BRK_RATE_WAYS entries,
 * and each set has its own mutex. Workers contend only when they touch the same set at the
 * same moment, and a lock is held for a few dozen instructions, so this costs less than the
 * atomic compare-and-swap loops a lock-free bucket would need and stays obviously correct.
 *
 * Memory is bounded: BRK_RATE_TABLE_ENTRIES entries, allocated once. When a set is full the
 * entry to evict is one whose bucket has refilled (indistinguishable from a new entry, so
 * nothing is lost), else the one seen longest ago. Several brokers sharing a database each
 * keep their own table, so N brokers admit up to N times the rate (documented).
 *
 * Times are CLOCK_MONOTONIC nanoseconds passed in by the caller, so the arithmetic is pure
 * and unit-tested with made-up clocks.
 *
 * Threads: brk_rate_table_new / _free on one thread while no other uses the table; every
 * other function from any thread at once.
 */
#ifndef BRK_RATE_H
#define BRK_RATE_H

#include <stddef.h>
#include <stdint.h>

#define BRK_RATE_TABLE_ENTRIES 8192 /* entries per table (keys or addresses); evicts past it */
#define BRK_RATE_WAYS 8             /* entries per set (one mutex each set) */
#define BRK_RATE_KEY_MAX 96         /* bytes of a bucket key ("tenant/key_id", an address) */
#define BRK_RATE_MAX_PER_S 1000000  /* largest rate and burst a setting may name */

typedef struct brk_rate_table brk_rate_table_t;

/* brk_rate_table_new: an empty table of entries slots (rounded down to a multiple of
 * BRK_RATE_WAYS, at least one set). Owned by the caller: brk_rate_table_free. Never NULL. */
brk_rate_table_t *brk_rate_table_new(size_t entries);

/* brk_rate_table_free: releases t (NULL is fine). */
void brk_rate_table_free(brk_rate_table_t *t);

/* brk_rate_table_size: entries in use (for tests and metrics). */
size_t brk_rate_table_size(brk_rate_table_t *t);

typedef struct brk_rate_verdict {
    int allowed;           /* 1: take the request; 0: answer 429 */
    uint32_t remaining;    /* whole tokens left after this request */
    uint32_t retry_after_s; /* when refused: seconds until one token is there (>= 1) */
    uint32_t reset_s;      /* seconds until the bucket is full again (0 when full) */
} brk_rate_verdict_t;

/*
 * brk_rate_take: takes one token from the bucket of key (klen bytes, at most
 * BRK_RATE_KEY_MAX; longer keys are cut) with rate_per_s tokens per second and room for
 * burst tokens (both 1..BRK_RATE_MAX_PER_S; out of range values are clamped). A new bucket
 * starts full. When rate or burst changed since the bucket's last use (an override), the
 * bucket keeps its tokens, capped at the new burst. Fills *v.
 */
void brk_rate_take(brk_rate_table_t *t, const void *key, size_t klen, uint32_t rate_per_s,
                   uint32_t burst, uint64_t now_ns, brk_rate_verdict_t *v);

/*
 * brk_rate_once: 1 when key's bucket (an existing one; see brk_rate_take) has not answered 1
 * within the last every_ns, and then marks it; else 0. Lets one broker issue a periodic
 * write for a key (its last use) once per period instead of once per worker or request.
 */
int brk_rate_once(brk_rate_table_t *t, const void *key, size_t klen, uint64_t every_ns,
                  uint64_t now_ns);

/*
 * brk_rate_fail_blocked: 1 when key has max or more failures recorded in its current window
 * of window_s seconds (then *retry_after_s gets the seconds until the window ends, >= 1),
 * else 0. Records nothing.
 */
int brk_rate_fail_blocked(brk_rate_table_t *t, const void *key, size_t klen, uint32_t max,
                          uint32_t window_s, uint64_t now_ns, uint32_t *retry_after_s);

/*
 * brk_rate_fail_record: counts one failure for key. A window starts at the first failure
 * after the previous window ended, so max failures are allowed per window_s seconds.
 */
void brk_rate_fail_record(brk_rate_table_t *t, const void *key, size_t klen, uint32_t window_s,
                          uint64_t now_ns);

#endif
