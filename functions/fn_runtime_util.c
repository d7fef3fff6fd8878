/*
 * fn_runtime_util: the function runtime's small shared pieces: clocks, the error-text
 * cleaner, text[] literals, the retry backoff and the per-run log line.
 *
 * Everything here is pure (any thread: fn_runtime_backoff_ms, fn__copy_err, ...). See
 * fn_runtime_int.h for how the runtime's files divide the work.
 */
#include "fn_runtime_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_log.h"
#include "brk_metrics.h"
#include "banned.h"

uint64_t fn__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timeval fn__ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Error text goes into a text column and a log line: keep printable ASCII only, so a cut
 * never splits a UTF-8 sequence and a message never carries control characters. */
void fn__copy_err(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src != NULL && *src != '\0' && i + 1 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        char out = c > 0x20 && c < 0x7f ? (char)c : ' ';
        if (out == ' ' && (i == 0 || dst[i - 1] == ' '))
            continue; /* libpq's messages carry newlines and tabs: one space for each run */
        dst[i++] = out;
    }
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

int fn__array_literal(char *buf, size_t cap, const char *const *names, size_t n)
{
    size_t len = 0;
    int w = snprintf(buf, cap, "{");
    for (size_t i = 0; w >= 0 && (size_t)w < cap - len && i < n; i++) {
        len += (size_t)w;
        w = snprintf(buf + len, cap - len, "%s\"%s\"", i ? "," : "", names[i]);
    }
    if (w < 0 || (size_t)w >= cap - len)
        return BRK_ETOOBIG;
    len += (size_t)w;
    if (len + 2 > cap)
        return BRK_ETOOBIG;
    buf[len++] = '}';
    buf[len] = '\0';
    return 0;
}

uint64_t fn_runtime_backoff_ms(unsigned base_ms, unsigned attempt, uint32_t draw)
{
    uint64_t d = base_ms;
    for (unsigned i = 1; i < attempt && d < FN_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > FN_BACKOFF_CAP_MS)
        d = FN_BACKOFF_CAP_MS;
    /* draw picks the factor: 100 - JITTER .. 100 + JITTER percent */
    return d * (100 - FN_BACKOFF_JITTER_PCT + draw % (2 * FN_BACKOFF_JITTER_PCT + 1)) / 100;
}

uint64_t fn__backoff(const fn_runtime_t *rt, unsigned attempt)
{
    return fn_runtime_backoff_ms(rt->backoff_ms, attempt, arc4random());
}

const fn_slot_t *fn__slot_of(const fn_runtime_t *rt, const char *name)
{
    for (size_t i = 0; i < rt->nslots; i++)
        if (strcmp(rt->slots[i].def->name, name) == 0)
            return &rt->slots[i];
    return NULL;
}

void fn__log_run(const char *function, const char *tenant, const char *event_id, const char *type,
                 const char *outcome, int attempt, uint64_t dur_ns, const char *err)
{
    char att[16], dur[32];
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(dur, sizeof dur, "%.3f", (double)dur_ns / 1e6);
    brk_log_info("function run", "function", function, "event_id", event_id, "tenant", tenant,
                 "type", type, "outcome", outcome, "attempt", att, "duration_ms", dur, "error",
                 err && *err ? err : NULL);
}
