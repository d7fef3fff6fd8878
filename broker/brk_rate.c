/*
 * brk_rate: token buckets and failure windows in one bounded, set-associative table.
 *
 * A bucket holds micro-tokens (1 token = BRK_RATE_UNIT) so that refills at any rate from
 * 1 to BRK_RATE_MAX_PER_S per second are exact to a millionth of a token without floating
 * point. Every product below is bounded before it is formed: the refill is computed only
 * while the elapsed time is shorter than a full refill (elapsed * rate < burst * 1e9 <=
 * 1e15), so nothing overflows 64 bits whatever the clock says.
 *
 * The same entry layout serves the failure counters: `units` counts failures and `t_ns` is
 * the start of the current window.
 */
#include "brk_rate.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "banned.h"

#define BRK_RATE_UNIT 1000000ull     /* micro-tokens per token */
#define NS_PER_S 1000000000ull

typedef struct entry {
    uint64_t units;   /* bucket: micro-tokens; failure counter: failures in the window */
    uint64_t t_ns;    /* bucket: last refill; failure counter: window start */
    uint64_t seen_ns; /* last use, for eviction */
    uint64_t once_ns; /* last time brk_rate_once said 1; 0: never */
    uint32_t rate, burst, window_s;
    uint8_t used, klen;
    char key[BRK_RATE_KEY_MAX];
} entry_t;

typedef struct set {
    pthread_mutex_t mu;
    entry_t e[BRK_RATE_WAYS];
} set_t;

struct brk_rate_table {
    size_t nsets;
    uint64_t seed;
    set_t *sets;
};

brk_rate_table_t *brk_rate_table_new(size_t entries)
{
    brk_rate_table_t *t = brk_calloc(1, sizeof *t);
    t->nsets = entries / BRK_RATE_WAYS;
    if (t->nsets == 0)
        t->nsets = 1;
    t->sets = brk_calloc(t->nsets, sizeof *t->sets);
    for (size_t i = 0; i < t->nsets; i++)
        pthread_mutex_init(&t->sets[i].mu, NULL);
    /* Without randomness the table still works; only set placement becomes predictable. */
    if (brk_random(&t->seed, sizeof t->seed) < 0)
        t->seed = 0x9e3779b97f4a7c15ull;
    return t;
}

void brk_rate_table_free(brk_rate_table_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nsets; i++)
        pthread_mutex_destroy(&t->sets[i].mu);
    free(t->sets);
    free(t);
}

size_t brk_rate_table_size(brk_rate_table_t *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->nsets; i++) {
        pthread_mutex_lock(&t->sets[i].mu);
        for (size_t w = 0; w < BRK_RATE_WAYS; w++)
            n += t->sets[i].e[w].used;
        pthread_mutex_unlock(&t->sets[i].mu);
    }
    return n;
}

/* hash: FNV-1a over the seed and the key, then a final mix so the low bits spread. */
static uint64_t hash(uint64_t seed, const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static uint32_t clamp_u32(uint32_t v)
{
    return v < 1 ? 1 : v > BRK_RATE_MAX_PER_S ? BRK_RATE_MAX_PER_S : v;
}

/* since: nanoseconds from then to now, 0 when another thread's clock read was later. */
static uint64_t since(uint64_t then_ns, uint64_t now_ns)
{
    return now_ns > then_ns ? now_ns - then_ns : 0;
}

/* refill: the bucket's micro-tokens at now (does not store). */
static uint64_t refill(const entry_t *e, uint64_t now_ns)
{
    uint64_t cap = (uint64_t)e->burst * BRK_RATE_UNIT;
    uint64_t full_ns = (uint64_t)e->burst * NS_PER_S / e->rate;
    uint64_t elapsed = since(e->t_ns, now_ns);
    if (elapsed >= full_ns)
        return cap;
    /* elapsed * rate < burst * NS_PER_S <= 1e15: no overflow. rate/1000 micro-tokens per ns. */
    uint64_t u = e->units + elapsed * e->rate / 1000u;
    return u > cap ? cap : u;
}

/* idle: an entry whose state is what a new entry would have (safe to evict first). */
static int idle(const entry_t *e, uint64_t now_ns)
{
    if (e->window_s != 0)
        return since(e->t_ns, now_ns) >= (uint64_t)e->window_s * NS_PER_S;
    return refill(e, now_ns) == (uint64_t)e->burst * BRK_RATE_UNIT;
}

/*
 * find: the entry for key in its set (locked by the caller), or a slot to reuse (marked
 * unused) when create is set, or NULL. *set_out gets the set to unlock.
 */
static entry_t *find(brk_rate_table_t *t, const void *key, size_t klen, uint64_t now_ns,
                     int create, set_t **set_out)
{
    set_t *s = &t->sets[hash(t->seed, key, klen) % t->nsets];
    entry_t *free_slot = NULL, *idle_slot = NULL, *oldest = NULL;

    pthread_mutex_lock(&s->mu);
    *set_out = s;
    for (size_t w = 0; w < BRK_RATE_WAYS; w++) {
        entry_t *e = &s->e[w];
        if (!e->used) {
            if (free_slot == NULL)
                free_slot = e;
            continue;
        }
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
        if (idle_slot == NULL && idle(e, now_ns))
            idle_slot = e;
        if (oldest == NULL || e->seen_ns < oldest->seen_ns)
            oldest = e;
    }
    if (!create)
        return NULL;
    entry_t *e = free_slot ? free_slot : idle_slot ? idle_slot : oldest;
    memset(e, 0, sizeof *e);
    e->klen = (uint8_t)klen;
    memcpy(e->key, key, klen);
    return e;
}

void brk_rate_take(brk_rate_table_t *t, const void *key, size_t klen, uint32_t rate_per_s,
                   uint32_t burst, uint64_t now_ns, brk_rate_verdict_t *v)
{
    set_t *s;
    uint32_t rate = clamp_u32(rate_per_s);
    burst = clamp_u32(burst);
    if (klen > BRK_RATE_KEY_MAX)
        klen = BRK_RATE_KEY_MAX;

    entry_t *e = find(t, key, klen, now_ns, 1, &s);
    if (!e->used) {
        e->used = 1;
        e->rate = rate;
        e->burst = burst;
        e->units = (uint64_t)burst * BRK_RATE_UNIT; /* a new bucket starts full */
        e->t_ns = now_ns;
    } else {
        /* An override applies at once, to the time since the last request too; tokens
         * above a lowered burst are dropped (refill caps them). */
        e->rate = rate;
        e->burst = burst;
        e->units = refill(e, now_ns);
        e->t_ns = now_ns > e->t_ns ? now_ns : e->t_ns;
    }
    e->seen_ns = now_ns;
    if (e->units >= BRK_RATE_UNIT) {
        e->units -= BRK_RATE_UNIT;
        v->allowed = 1;
        v->retry_after_s = 0;
    } else {
        uint64_t need_ns = ((BRK_RATE_UNIT - e->units) * 1000u + rate - 1) / rate;
        v->allowed = 0;
        v->retry_after_s = (uint32_t)((need_ns + NS_PER_S - 1) / NS_PER_S);
        if (v->retry_after_s == 0)
            v->retry_after_s = 1;
    }
    v->remaining = (uint32_t)(e->units / BRK_RATE_UNIT);
    uint64_t missing = (uint64_t)burst * BRK_RATE_UNIT - e->units;
    uint64_t full_ns = (missing * 1000u + rate - 1) / rate;
    v->reset_s = (uint32_t)((full_ns + NS_PER_S - 1) / NS_PER_S);
    pthread_mutex_unlock(&s->mu);
}

int brk_rate_once(brk_rate_table_t *t, const void *key, size_t klen, uint64_t every_ns,
                  uint64_t now_ns)
{
    set_t *s;
    int due = 0;
    if (klen > BRK_RATE_KEY_MAX)
        klen = BRK_RATE_KEY_MAX;
    entry_t *e = find(t, key, klen, now_ns, 0, &s);
    if (e != NULL && (e->once_ns == 0 || since(e->once_ns, now_ns) >= every_ns)) {
        e->once_ns = now_ns;
        due = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return due;
}

int brk_rate_fail_blocked(brk_rate_table_t *t, const void *key, size_t klen, uint32_t max,
                          uint32_t window_s, uint64_t now_ns, uint32_t *retry_after_s)
{
    set_t *s;
    int blocked = 0;
    if (klen > BRK_RATE_KEY_MAX)
        klen = BRK_RATE_KEY_MAX;
    entry_t *e = find(t, key, klen, now_ns, 0, &s);
    if (e != NULL && e->units >= max) {
        uint64_t end = e->t_ns + (uint64_t)window_s * NS_PER_S;
        if (now_ns < end) {
            blocked = 1;
            *retry_after_s = (uint32_t)((end - now_ns + NS_PER_S - 1) / NS_PER_S);
            e->seen_ns = now_ns;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return blocked;
}

void brk_rate_fail_record(brk_rate_table_t *t, const void *key, size_t klen, uint32_t window_s,
                          uint64_t now_ns)
{
    set_t *s;
    if (window_s == 0)
        window_s = 1;
    if (klen > BRK_RATE_KEY_MAX)
        klen = BRK_RATE_KEY_MAX;
    entry_t *e = find(t, key, klen, now_ns, 1, &s);
    if (!e->used || since(e->t_ns, now_ns) >= (uint64_t)e->window_s * NS_PER_S) {
        e->used = 1;
        e->units = 0;
        e->t_ns = now_ns;
    }
    e->window_s = window_s;
    if (e->units < UINT32_MAX)
        e->units++;
    e->seen_ns = now_ns;
    pthread_mutex_unlock(&s->mu);
}
