/*
 * brk_metrics: Prometheus counters for the HTTP front and gauges the other modules publish.
 *
 * Hot-path updates are relaxed atomic adds on fixed arrays indexed by route and status
 * class, so recording a request costs a few uncontended atomic operations and no lock.
 * Gauges are named slots a module sets (the database pools, the function runtime).
 * Any thread.
 */
#ifndef BRK_METRICS_H
#define BRK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define BRK_METRICS_GAUGES_MAX 64
#define BRK_METRICS_NAME_MAX 96

/* brk_metrics_observe: one finished request. route is the router index, -1 for none. */
void brk_metrics_observe(int route, int status, uint64_t duration_ns);

/* brk_metrics_gauge: a gauge slot for name (static string, a valid Prometheus name with
 * optional {labels}), created on first use; help is its HELP text. Returns the slot or -1
 * when the table is full. Thread-safe. */
int brk_metrics_gauge(const char *name, const char *help);

/* brk_metrics_counter: the same for a value that only grows (TYPE counter; name it _total). */
int brk_metrics_counter(const char *name, const char *help);

/* brk_metrics_set / brk_metrics_add: set or add to a gauge slot (ignored for -1). */
void brk_metrics_set(int slot, int64_t v);
void brk_metrics_add(int slot, int64_t v);

/* brk_metrics_render: the text exposition format into a new malloc'd buffer (caller frees);
 * route names come from the router. */
char *brk_metrics_render(size_t *len);

#endif
