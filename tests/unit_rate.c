/*
 * unit_rate: token buckets and failure windows (broker/brk_rate.h) on made-up clocks.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "tst_check.h"
#include "brk_rate.h"
#include "banned.h"

#define S(x) ((uint64_t)(x) * 1000000000ull)
#define MS(x) ((uint64_t)(x) * 1000000ull)
#define T0 S(1000) /* a monotonic clock far from zero */

static void take(brk_rate_table_t *t, const char *key, uint32_t rate, uint32_t burst,
                 uint64_t now, brk_rate_verdict_t *v)
{
    brk_rate_take(t, key, strlen(key), rate, burst, now, v);
}

START_TEST(burst_then_refused_then_refilled)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    brk_rate_verdict_t v;

    /* burst 5 at 1/s: five at once, the sixth waits one second */
    for (uint32_t i = 0; i < 5; i++) {
        take(t, "acme/k1", 1, 5, T0 + MS(i), &v);
        ck_assert_int_eq(v.allowed, 1);
        ck_assert_uint_eq(v.remaining, 4 - i);
    }
    take(t, "acme/k1", 1, 5, T0 + MS(5), &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_uint_eq(v.remaining, 0);
    ck_assert_uint_eq(v.retry_after_s, 1);
    ck_assert_uint_eq(v.reset_s, 5);
    /* another key is not affected */
    take(t, "acme/k2", 1, 5, T0 + MS(5), &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_uint_eq(v.remaining, 4);
    /* one second later one token is back, exactly one */
    take(t, "acme/k1", 1, 5, T0 + MS(1006), &v);
    ck_assert_int_eq(v.allowed, 1);
    take(t, "acme/k1", 1, 5, T0 + MS(1007), &v);
    ck_assert_int_eq(v.allowed, 0);
    brk_rate_table_free(t);
}
END_TEST

START_TEST(retry_after_rounds_up)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    brk_rate_verdict_t v;

    take(t, "k", 3, 1, T0, &v);
    ck_assert_int_eq(v.allowed, 1);
    /* a third of a second per token: Retry-After is whole seconds, rounded up */
    take(t, "k", 3, 1, T0 + MS(100), &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_uint_eq(v.retry_after_s, 1);
    take(t, "k", 3, 1, T0 + MS(334), &v);
    ck_assert_int_eq(v.allowed, 1);
    brk_rate_table_free(t);
}
END_TEST

START_TEST(no_overflow_at_the_bounds)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    brk_rate_verdict_t v;

    take(t, "big", BRK_RATE_MAX_PER_S, BRK_RATE_MAX_PER_S, T0, &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_uint_eq(v.remaining, BRK_RATE_MAX_PER_S - 1);
    /* years later: full, not wrapped */
    take(t, "big", BRK_RATE_MAX_PER_S, BRK_RATE_MAX_PER_S, T0 + S(100000000ull), &v);
    ck_assert_uint_eq(v.remaining, BRK_RATE_MAX_PER_S - 1);
    /* out of range settings are clamped, never divide by zero */
    take(t, "zero", 0, 0, T0, &v);
    ck_assert_int_eq(v.allowed, 1);
    take(t, "zero", 0, 0, T0, &v);
    ck_assert_int_eq(v.allowed, 0);
    ck_assert_uint_eq(v.retry_after_s, 1);
    /* a clock read that is older than the bucket's (another thread) does not underflow */
    take(t, "zero", 1, 1, T0 - S(5), &v);
    ck_assert_int_eq(v.allowed, 0);
    brk_rate_table_free(t);
}
END_TEST

START_TEST(override_applies_at_once)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    brk_rate_verdict_t v;

    take(t, "k", 1, 5, T0, &v);
    ck_assert_uint_eq(v.remaining, 4);
    /* burst lowered to 2: the 4 tokens left are cut to 2, one taken */
    take(t, "k", 1, 2, T0, &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_uint_eq(v.remaining, 1);
    take(t, "k", 1, 2, T0, &v);
    ck_assert_int_eq(v.allowed, 1);
    take(t, "k", 1, 2, T0, &v);
    ck_assert_int_eq(v.allowed, 0);
    /* rate raised to 10/s: a tenth of a second brings a token */
    take(t, "k", 10, 2, T0 + MS(101), &v);
    ck_assert_int_eq(v.allowed, 1);
    brk_rate_table_free(t);
}
END_TEST

START_TEST(bounded_with_eviction)
{
    brk_rate_table_t *t = brk_rate_table_new(BRK_RATE_WAYS * 2);
    brk_rate_verdict_t v;
    char key[32];

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "t/%d", i);
        take(t, key, 1, 5, T0 + MS(i), &v);
        ck_assert_int_eq(v.allowed, 1);
    }
    ck_assert_uint_eq(brk_rate_table_size(t), BRK_RATE_WAYS * 2);
    brk_rate_table_free(t);

    /* the broker's table: full at BRK_RATE_TABLE_ENTRIES, never more */
    t = brk_rate_table_new(BRK_RATE_TABLE_ENTRIES);
    for (int i = 0; i < BRK_RATE_TABLE_ENTRIES * 4; i++) {
        snprintf(key, sizeof key, "t/%d", i);
        take(t, key, 1, 5, T0, &v);
    }
    ck_assert_uint_eq(brk_rate_table_size(t), BRK_RATE_TABLE_ENTRIES);
    brk_rate_table_free(t);

    /* one set: a drained bucket survives while refilled ones are there to evict, even
     * though it is the entry seen longest ago */
    t = brk_rate_table_new(BRK_RATE_WAYS);
    for (int i = 0; i < 5; i++)
        take(t, "drained", 1, 5, T0, &v);
    for (int i = 1; i < BRK_RATE_WAYS; i++) {
        snprintf(key, sizeof key, "other/%d", i);
        take(t, key, 1, 5, T0 + MS(100), &v);
    }
    take(t, "newcomer", 1, 5, T0 + MS(1500), &v);
    ck_assert_uint_eq(brk_rate_table_size(t), BRK_RATE_WAYS);
    take(t, "drained", 1, 5, T0 + MS(1500), &v);
    ck_assert_int_eq(v.allowed, 1);
    ck_assert_uint_eq(v.remaining, 0); /* 1.5 tokens, not a fresh bucket of 5 */
    brk_rate_table_free(t);
}
END_TEST

START_TEST(once_per_period)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    brk_rate_verdict_t v;

    /* only for a bucket that exists */
    ck_assert_int_eq(brk_rate_once(t, "k", 1, S(60), T0), 0);
    take(t, "k", 1, 5, T0, &v);
    ck_assert_int_eq(brk_rate_once(t, "k", 1, S(60), T0), 1);
    ck_assert_int_eq(brk_rate_once(t, "k", 1, S(60), T0 + S(59)), 0);
    ck_assert_int_eq(brk_rate_once(t, "k", 1, S(60), T0 + S(60)), 1);
    ck_assert_int_eq(brk_rate_once(t, "k", 1, S(60), T0 + S(61)), 0);
    brk_rate_table_free(t);
}
END_TEST

START_TEST(failure_window)
{
    brk_rate_table_t *t = brk_rate_table_new(64);
    uint32_t ra = 0;
    const char *a = "198.51.100.7", *b = "198.51.100.8";

    /* max 3 per 60 s: below max nothing is blocked, at max everything is */
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0, &ra), 0);
    brk_rate_fail_record(t, a, strlen(a), 60, T0);
    brk_rate_fail_record(t, a, strlen(a), 60, T0 + S(1));
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0 + S(2), &ra), 0);
    brk_rate_fail_record(t, a, strlen(a), 60, T0 + S(2));
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0 + S(2), &ra), 1);
    ck_assert_uint_eq(ra, 58);
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0 + MS(59500), &ra), 1);
    ck_assert_uint_eq(ra, 1);
    /* another address is not blocked */
    ck_assert_int_eq(brk_rate_fail_blocked(t, b, strlen(b), 3, 60, T0 + S(2), &ra), 0);
    /* the window ends 60 s after its first failure; the next failure starts a new one */
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0 + S(60), &ra), 0);
    brk_rate_fail_record(t, a, strlen(a), 60, T0 + S(61));
    ck_assert_int_eq(brk_rate_fail_blocked(t, a, strlen(a), 3, 60, T0 + S(61), &ra), 0);
    brk_rate_table_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_rate");
    TCase *tc = tcase_create("rate");
    tcase_add_test(tc, burst_then_refused_then_refilled);
    tcase_add_test(tc, retry_after_rounds_up);
    tcase_add_test(tc, no_overflow_at_the_bounds);
    tcase_add_test(tc, override_applies_at_once);
    tcase_add_test(tc, bounded_with_eviction);
    tcase_add_test(tc, once_per_period);
    tcase_add_test(tc, failure_window);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
