/*
 * brk_log: one JSON object per line on stderr, written with a single write(2) so lines from
 * several threads never interleave. Values are strings; secrets never reach this module
 * (callers pass ids and hashes, not tokens or bodies). Any thread.
 */
#ifndef BRK_LOG_H
#define BRK_LOG_H

#include <stddef.h>

#define BRK_LOG_LINE_MAX 4096 /* longer lines are cut, and say so */

/* brk_log_kv: level and msg, then (key, value) string pairs ending with a NULL key. A NULL
 * value is written as null. */
void brk_log_kv(const char *level, const char *msg, ...);

#define brk_log_info(msg, ...) brk_log_kv("info", (msg), __VA_ARGS__, (const char *)NULL)
#define brk_log_warn(msg, ...) brk_log_kv("warn", (msg), __VA_ARGS__, (const char *)NULL)
#define brk_log_error(msg, ...) brk_log_kv("error", (msg), __VA_ARGS__, (const char *)NULL)

/* brk_log_set_quiet: 1 silences info lines (CLI subcommands). */
void brk_log_set_quiet(int quiet);

/* Levels, most severe first: a line is written when its level is at or above the threshold
 * (GSAP_LOG_LEVEL, default info). */
enum brk_log_level { BRK_LOG_ERROR = 0, BRK_LOG_WARN = 1, BRK_LOG_INFO = 2 };
#define BRK_LOG_LEVEL_DEFAULT BRK_LOG_INFO

/* brk_log_level_parse: "error", "warn" or "info" as a level, or -1 for anything else. */
int brk_log_level_parse(const char *s);

/* brk_log_level_name: the name of a level ("info" for an unknown one). */
const char *brk_log_level_name(int level);

/* brk_log_set_level: the threshold from now on (any thread; an atomic store). */
void brk_log_set_level(int level);

/*
 * brk_log_reopen: opens path for appending (created 0640) and makes it the process's stderr
 * (dup2, atomic for writers on other threads), so a rotated log (renamed by logrotate) is let
 * go and a fresh file is written. Returns 0 or BRK_EIO (stderr unchanged; errno kept).
 */
int brk_log_reopen(const char *path);

/* brk_json_escape: appends s as a JSON string body (no quotes) to buf (cap, *len updated);
 * stops at cap. Returns 0 or BRK_ETOOBIG when cut. */
int brk_json_escape(char *buf, size_t cap, size_t *len, const char *s);

#endif
