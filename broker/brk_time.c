/*
 * brk_time: RFC 3339 timestamps, the one parser every module uses (receipts, billing).
 * Pure; any thread.
 */
#include "brk_time.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int brk_time_parse_us(const char *s, int64_t *out)
{
    int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 1;
    int64_t frac = 0, scale = 100000;
    struct tm tm = {0}, back;
    const char *p;
    size_t n = s ? strlen(s) : 0;

    if (n < 20 || n > 40 || digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) ||
        s[7] != '-' || digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return BRK_EINVAL;
    /* Nothing the broker records happened before 1970; refusing it keeps every value
     * positive and formattable as four digits. */
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 59)
        return BRK_EINVAL;
    p = s + 19;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return BRK_EINVAL;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale; /* digits past microseconds add 0 */
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) == 0 && p[3] == ':' &&
               digits(p + 4, 2, &om) == 0 && oh < 24 && om < 60) {
        sign = *p == '+' ? 1 : -1;
        p += 6;
    } else {
        return BRK_EINVAL;
    }
    if (*p != '\0')
        return BRK_EINVAL;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    /* timegm carries Feb 30 into March: refuse dates that do not exist */
    gmtime_r(&t, &back);
    if (back.tm_mday != D)
        return BRK_EINVAL;
    t -= (time_t)sign * ((time_t)oh * 3600 + (time_t)om * 60);
    *out = (int64_t)t * 1000000 + frac;
    return 0;
}

void brk_time_fmt(time_t t, char out[BRK_TIME_LEN + 1])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, BRK_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void brk_time_fmt_ms(int64_t us, char out[BRK_TIME_MS_LEN + 1])
{
    char base[BRK_TIME_LEN + 1];

    brk_time_fmt((time_t)(us / 1000000), base);
    /* base ends in "Z": the milliseconds go before it */
    snprintf(out, BRK_TIME_MS_LEN + 1, "%.19s.%03uZ", base, (unsigned)(us % 1000000 / 1000));
}
