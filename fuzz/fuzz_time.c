/*
 * fuzz_time: libFuzzer target for brk_time_parse_us, which reads the started_at /
 * completed_at of every Completion Receipt and every billed run time.
 *
 * Properties: the result is 0 or BRK_EINVAL; an input of the exact form
 * "YYYY-MM-DDTHH:MM:SSZ" that parses formats back (brk_time_fmt) to itself, and a parsed
 * value with a fraction lies within the second its integer part names. Any violation abort()s.
 */
#include "brk_time.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[64], back[BRK_TIME_LEN + 1];
    int64_t us;
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int rc = brk_time_parse_us(s, &us);
    if (rc != 0 && rc != BRK_EINVAL)
        abort();
    if (rc != 0)
        return 0;
    if (size == BRK_TIME_LEN && s[19] == 'Z' && s[10] == 'T') {
        if (us % 1000000 != 0)
            abort();
        brk_time_fmt((time_t)(us / 1000000), back);
        if (strcmp(back, s) != 0) {
            fprintf(stderr, "fuzz_time: %s formats back as %s\n", s, back);
            abort();
        }
    }
    return 0;
}
