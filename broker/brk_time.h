/*
 * brk_time: RFC 3339 timestamps. Pure functions; any thread.
 */
#ifndef BRK_TIME_H
#define BRK_TIME_H

#include <stdint.h>
#include <time.h>

#define BRK_TIME_LEN 20    /* "2026-11-23T10:00:00Z" */
#define BRK_TIME_MS_LEN 24 /* "2026-11-23T10:00:00.123Z" */

/* brk_time_parse_us: RFC 3339 ("T", "t" or " " between date and time; fractions kept to the
 * microsecond; "Z" or a numeric offset) to microseconds since the epoch, UTC. Dates that do
 * not exist (Feb 30), second 60 and years before 1970 are refused. Returns 0 or BRK_EINVAL. */
int brk_time_parse_us(const char *s, int64_t *out);

/* brk_time_fmt: t as RFC 3339 UTC with seconds and "Z" into out. */
void brk_time_fmt(time_t t, char out[BRK_TIME_LEN + 1]);

/* brk_time_fmt_ms: us (microseconds since the epoch, >= 0, as brk_time_parse_us gives) as
 * RFC 3339 UTC with milliseconds (truncated, not rounded) and "Z" into out. */
void brk_time_fmt_ms(int64_t us, char out[BRK_TIME_MS_LEN + 1]);

#endif
