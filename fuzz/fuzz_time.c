/*
 * fuzz_time: libFuzzer target for hnd_time_parse, which reads the started_at / completed_at
 * of every Completion Receipt.
 *
 * Properties: the result is 0 or BRK_EINVAL; on success the microseconds are in [0, 1e6),
 * and an input that ends in "Z" with no fraction formats back (hnd_time_fmt) to itself when
 * its seconds field is not a leap second. Any violation abort()s.
 */
#include "hnd_gov.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[64], back[HND_TIME_LEN + 1];
    time_t t;
    long us = -1;
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int rc = hnd_time_parse(s, &t, &us);
    if (rc != 0 && rc != BRK_EINVAL)
        abort();
    if (rc != 0)
        return 0;
    if (us < 0 || us >= 1000000)
        abort();
    if (size == HND_TIME_LEN && s[19] == 'Z' && !(s[17] == '6' && s[18] == '0') && s[10] == 'T') {
        hnd_time_fmt(t, back);
        if (strcmp(back, s) != 0) {
            fprintf(stderr, "fuzz_time: %s formats back as %s\n", s, back);
            abort();
        }
    }
    return 0;
}
