#include "brk_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "brk_err.h"
#include "banned.h"

static int g_quiet;
static int g_level = BRK_LOG_LEVEL_DEFAULT;

static const char *const k_level_names[] = {"error", "warn", "info"};
#define NLEVELS (sizeof k_level_names / sizeof k_level_names[0])

void brk_log_set_quiet(int quiet)
{
    g_quiet = quiet;
}

int brk_log_level_parse(const char *s)
{
    for (size_t i = 0; s != NULL && i < NLEVELS; i++)
        if (strcmp(s, k_level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *brk_log_level_name(int level)
{
    return level >= 0 && (size_t)level < NLEVELS ? k_level_names[level] : "info";
}

void brk_log_set_level(int level)
{
    __atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
}

int brk_log_reopen(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return BRK_EIO;
    /* dup2 swaps the file under fd 2 in one step: a write on another thread goes to the old
     * file or the new one, never nowhere. fd 2 itself stays open across exec, as stderr. */
    if (fd != STDERR_FILENO && dup2(fd, STDERR_FILENO) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return BRK_EIO;
    }
    if (fd != STDERR_FILENO)
        close(fd);
    return 0;
}

static int put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n > cap - *len)
        return BRK_ETOOBIG; /* the caller drops the whole pair */
    memcpy(buf + *len, s, n);
    *len += n;
    return 0;
}

int brk_json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[7];
        const char *out = esc;
        size_t n = 2;
        esc[0] = '\\';
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (ch < 0x20) {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[ch >> 4];
                esc[5] = hex[ch & 15];
                n = 6;
            } else {
                out = (const char *)s;
                n = 1;
            }
        }
        if (put(buf, cap, len, out, n) != 0)
            return BRK_ETOOBIG;
    }
    return 0;
}

void brk_log_kv(const char *level, const char *msg, ...)
{
    char buf[BRK_LOG_LINE_MAX];
    size_t len = 0, good, cap = sizeof(buf) - 32; /* room for the tail below */
    struct timeval tv;
    struct tm tm;
    char ts[40];
    va_list ap;
    int cut = 0;

    int lv = brk_log_level_parse(level);
    if (g_quiet && lv == BRK_LOG_INFO)
        return;
    if (lv > __atomic_load_n(&g_level, __ATOMIC_RELAXED))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof ts - tl, ".%03dZ", (int)(tv.tv_usec / 1000));

    put(buf, cap, &len, "{\"ts\":\"", 7);
    put(buf, cap, &len, ts, strlen(ts));
    put(buf, cap, &len, "\",\"level\":\"", 11);
    put(buf, cap, &len, level, strlen(level));
    put(buf, cap, &len, "\",\"msg\":\"", 9);
    cut |= brk_json_escape(buf, cap, &len, msg);
    cut |= put(buf, cap, &len, "\"", 1);
    good = len;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        cut |= put(buf, cap, &len, ",\"", 2);
        cut |= brk_json_escape(buf, cap, &len, k);
        if (v == NULL) {
            cut |= put(buf, cap, &len, "\":null", 6);
            if (!cut)
                good = len;
            continue;
        }
        cut |= put(buf, cap, &len, "\":\"", 3);
        cut |= brk_json_escape(buf, cap, &len, v);
        cut |= put(buf, cap, &len, "\"", 1);
        if (!cut)
            good = len;
    }
    va_end(ap);
    if (cut) {
        /* Drop the pair that did not fit, so the line stays valid JSON. */
        len = good;
        memcpy(buf + len, ",\"truncated\":true", 17);
        len += 17;
    }
    buf[len++] = '}';
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}
