/*
 * unit_fn_backoff: the function runtime's retry delay (fn_runtime_backoff_ms): doubling from
 * the base per attempt, the 300 s cap on both sides, and the jitter's bounds (80%..120%).
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "tst_check.h"
#include "fn_runtime.h"

#define CAP_MS 300000u
#define LOW 0u   /* draw giving the smallest factor, 80% */
#define MID 20u  /* 100% */
#define HIGH 40u /* 120% */

START_TEST(doubles_per_attempt)
{
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 1, MID), 500);
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 2, MID), 1000);
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 3, MID), 2000);
    ck_assert_uint_eq(fn_runtime_backoff_ms(100, 8, MID), 12800);
    /* attempt 0 (never passed by the runtime) behaves as the first */
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 0, MID), 500);
}
END_TEST

START_TEST(capped)
{
    /* 500 * 2^9 = 256000 is under the cap, 2^10 would be 512000: capped */
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 10, MID), 256000);
    ck_assert_uint_eq(fn_runtime_backoff_ms(500, 11, MID), CAP_MS);
    ck_assert_uint_eq(fn_runtime_backoff_ms(CAP_MS, 1, MID), CAP_MS);
    ck_assert_uint_eq(fn_runtime_backoff_ms(CAP_MS - 1, 1, MID), CAP_MS - 1);
    /* huge attempt counts neither overflow nor loop long */
    ck_assert_uint_eq(fn_runtime_backoff_ms(1, 1000000, MID), CAP_MS);
    ck_assert_uint_eq(fn_runtime_backoff_ms(CAP_MS, 1000000, HIGH), CAP_MS * 12 / 10);
}
END_TEST

START_TEST(jitter_bounds)
{
    ck_assert_uint_eq(fn_runtime_backoff_ms(1000, 1, LOW), 800);
    ck_assert_uint_eq(fn_runtime_backoff_ms(1000, 1, HIGH), 1200);
    ck_assert_uint_eq(fn_runtime_backoff_ms(1000, 1, HIGH + 1), 800); /* the draw wraps */
    for (uint32_t d = 0; d < 1000; d++) {
        uint64_t v = fn_runtime_backoff_ms(1000, 1, d * 2654435761u);
        ck_assert_uint_ge(v, 800);
        ck_assert_uint_le(v, 1200);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fn_backoff");
    TCase *tc = tcase_create("backoff");
    tcase_add_test(tc, doubles_per_attempt);
    tcase_add_test(tc, capped);
    tcase_add_test(tc, jitter_bounds);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
