/*
 * unit_time: brk_time's formatters (the parser is pinned in unit_billing, its first user).
 * Known answers at the edges of the millisecond: truncation, not rounding, and the zero
 * padding a reader of the fixed-width form relies on.
 */
#include "tst_check.h"
#include "brk_time.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#include "banned.h"

START_TEST(test_fmt_ms_known)
{
    char out[BRK_TIME_MS_LEN + 1];

    brk_time_fmt_ms(0, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    brk_time_fmt_ms(INT64_C(1795946400123456), out); /* 2026-11-29T10:00:00.123456 */
    ck_assert_str_eq(out, "2026-11-29T10:00:00.123Z");
    ck_assert_uint_eq(strlen(out), BRK_TIME_MS_LEN);
    brk_time_fmt_ms(INT64_C(1795946400000999), out); /* under a millisecond: .000 */
    ck_assert_str_eq(out, "2026-11-29T10:00:00.000Z");
    brk_time_fmt_ms(INT64_C(1795946400999999), out); /* truncated: never the next second */
    ck_assert_str_eq(out, "2026-11-29T10:00:00.999Z");
    brk_time_fmt_ms(INT64_C(1795946400001000), out);
    ck_assert_str_eq(out, "2026-11-29T10:00:00.001Z");
}
END_TEST

/* What brk_time_fmt_ms writes, brk_time_parse_us reads back to the millisecond. */
START_TEST(test_fmt_ms_roundtrip)
{
    static const int64_t us[] = {0, 1000, 951782400000000 /* 2000-02-29 */,
                                 INT64_C(4102444799999000) /* 2099-12-31T23:59:59.999 */};
    char out[BRK_TIME_MS_LEN + 1];

    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        int64_t back = -1;
        brk_time_fmt_ms(us[i], out);
        ck_assert_int_eq(brk_time_parse_us(out, &back), 0);
        ck_assert_msg(back == us[i], "%s read back as %lld", out, (long long)back);
    }
}
END_TEST

START_TEST(test_fmt_seconds)
{
    char out[BRK_TIME_LEN + 1];

    brk_time_fmt(1795946400, out);
    ck_assert_str_eq(out, "2026-11-29T10:00:00Z");
}
END_TEST

static Suite *time_suite(void)
{
    Suite *s = suite_create("time");
    TCase *tc = tcase_create("fmt");

    tcase_add_test(tc, test_fmt_ms_known);
    tcase_add_test(tc, test_fmt_ms_roundtrip);
    tcase_add_test(tc, test_fmt_seconds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(time_suite());
}
