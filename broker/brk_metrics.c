#include "brk_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "brk_alloc.h"
#include "brk_router.h"
#include "banned.h"

/* Status codes we count one by one; anything else lands in "other". */
static const int k_statuses[] = {200, 201, 400, 401, 403, 404, 405, 409, 413,
                                 414, 415, 422, 429, 431, 500, 503, 0};
#define NSTATUS (sizeof(k_statuses) / sizeof(k_statuses[0]))
/* Latency buckets in microseconds (upper bounds), Prometheus "le" in seconds. */
static const uint64_t k_buckets_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000,
                                        100000, 250000, 500000, 1000000, 2500000};
#define NBUCKET (sizeof(k_buckets_us) / sizeof(k_buckets_us[0]))
#define NROUTE (BRK_ROUTE_MAX + 1) /* last slot: requests no route matched */

static uint64_t g_count[NROUTE][NSTATUS];
static uint64_t g_hist[NROUTE][NBUCKET + 1];
static uint64_t g_sum_us[NROUTE];

static struct {
    const char *name, *help, *type; /* type: "gauge" or "counter" */
    int64_t value;
} g_gauges[BRK_METRICS_GAUGES_MAX];
static int g_ngauges;
static pthread_mutex_t g_gauge_lock = PTHREAD_MUTEX_INITIALIZER;

void brk_metrics_observe(int route, int status, uint64_t duration_ns)
{
    size_t ri = route < 0 || route >= BRK_ROUTE_MAX ? BRK_ROUTE_MAX : (size_t)route, si, b;
    uint64_t us = duration_ns / 1000;
    for (si = 0; si < NSTATUS - 1 && k_statuses[si] != status; si++)
        ;
    for (b = 0; b < NBUCKET && us > k_buckets_us[b]; b++)
        ;
    __atomic_add_fetch(&g_count[ri][si], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_hist[ri][b], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g_sum_us[ri], us, __ATOMIC_RELAXED);
}

static int slot_for(const char *name, const char *help, const char *type)
{
    int slot = -1;
    pthread_mutex_lock(&g_gauge_lock);
    for (int i = 0; i < g_ngauges; i++)
        if (strcmp(g_gauges[i].name, name) == 0)
            slot = i;
    if (slot < 0 && g_ngauges < BRK_METRICS_GAUGES_MAX) {
        slot = g_ngauges++;
        g_gauges[slot].name = name;
        g_gauges[slot].help = help;
        g_gauges[slot].type = type;
    }
    pthread_mutex_unlock(&g_gauge_lock);
    return slot;
}

int brk_metrics_gauge(const char *name, const char *help)
{
    return slot_for(name, help, "gauge");
}

int brk_metrics_counter(const char *name, const char *help)
{
    return slot_for(name, help, "counter");
}

void brk_metrics_set(int slot, int64_t v)
{
    if (slot >= 0 && slot < BRK_METRICS_GAUGES_MAX)
        __atomic_store_n(&g_gauges[slot].value, v, __ATOMIC_RELAXED);
}

void brk_metrics_add(int slot, int64_t v)
{
    if (slot >= 0 && slot < BRK_METRICS_GAUGES_MAX)
        __atomic_add_fetch(&g_gauges[slot].value, v, __ATOMIC_RELAXED);
}

typedef struct {
    char *p;
    size_t len, cap;
} out_t;

static void outf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(out_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (n > 0 ? (size_t)n : 0);
        o->p = brk_realloc(o->p, o->cap);
    }
}

static const char *route_label(size_t ri, char *buf, size_t cap)
{
    const brk_route_t *rt = ri < BRK_ROUTE_MAX ? brk_router_get(ri) : NULL;
    if (rt == NULL)
        return "unmatched";
    snprintf(buf, cap, "%s %s", rt->method, rt->pattern);
    return buf;
}

char *brk_metrics_render(size_t *len)
{
    out_t o = {brk_malloc(8192), 0, 8192};
    char lb[256];
    size_t nroutes = brk_router_count();

    outf(&o, "# HELP gsap_http_requests_total HTTP requests by route and status.\n"
             "# TYPE gsap_http_requests_total counter\n");
    for (size_t ri = 0; ri < NROUTE; ri++) {
        if (ri >= nroutes && ri != BRK_ROUTE_MAX)
            continue;
        for (size_t si = 0; si < NSTATUS; si++) {
            uint64_t v = __atomic_load_n(&g_count[ri][si], __ATOMIC_RELAXED);
            if (v == 0)
                continue;
            char st[8];
            if (k_statuses[si])
                snprintf(st, sizeof st, "%d", k_statuses[si]);
            else
                memcpy(st, "other", 6);
            outf(&o, "gsap_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                 route_label(ri, lb, sizeof lb), st, (unsigned long long)v);
        }
    }
    outf(&o, "# HELP gsap_http_request_duration_seconds Time from request to response.\n"
             "# TYPE gsap_http_request_duration_seconds histogram\n");
    for (size_t ri = 0; ri < NROUTE; ri++) {
        uint64_t cum = 0, total = 0;
        for (size_t b = 0; b <= NBUCKET; b++)
            total += __atomic_load_n(&g_hist[ri][b], __ATOMIC_RELAXED);
        if (total == 0)
            continue;
        const char *rl = route_label(ri, lb, sizeof lb);
        for (size_t b = 0; b <= NBUCKET; b++) {
            cum += __atomic_load_n(&g_hist[ri][b], __ATOMIC_RELAXED);
            if (b < NBUCKET)
                outf(&o, "gsap_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                     rl, (double)k_buckets_us[b] / 1e6, (unsigned long long)cum);
            else
                outf(&o, "gsap_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                     rl, (unsigned long long)cum);
        }
        outf(&o, "gsap_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", rl,
             (double)__atomic_load_n(&g_sum_us[ri], __ATOMIC_RELAXED) / 1e6);
        outf(&o, "gsap_http_request_duration_seconds_count{route=\"%s\"} %llu\n", rl,
             (unsigned long long)cum);
    }
    pthread_mutex_lock(&g_gauge_lock);
    for (int i = 0; i < g_ngauges; i++) {
        size_t base = strcspn(g_gauges[i].name, "{");
        int first = 1;
        for (int k = 0; k < i; k++)
            if (strncmp(g_gauges[k].name, g_gauges[i].name, base) == 0 &&
                strcspn(g_gauges[k].name, "{") == base)
                first = 0;
        if (first)
            outf(&o, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)base, g_gauges[i].name,
                 g_gauges[i].help, (int)base, g_gauges[i].name, g_gauges[i].type);
        outf(&o, "%s %lld\n", g_gauges[i].name,
             (long long)__atomic_load_n(&g_gauges[i].value, __ATOMIC_RELAXED));
    }
    pthread_mutex_unlock(&g_gauge_lock);
    *len = o.len;
    return o.p;
}
