/*
 * unit_billing: money (currencies, half-even rounding at every tie of every exponent,
 * formatting, overflow), rate-card validation on both sides of every limit, rating with
 * multipliers, the incremental Merkle tree head against brk_merkle, CSV records, and the
 * finalizer's signed invoice document.
 */
#include <check.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "bill_csv.h"
#include "bill_invoice.h"
#include "bill_money.h"
#include "bill_rate.h"
#include "brk_time.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_merkle.h"
#include "brk_note.h"
#include "banned.h"

/* ---- currencies ---- */

START_TEST(currency_table)
{
    static const struct {
        const char *code;
        int exponent;
    } want[] = {{"JPY", 0}, {"USD", 2}, {"EUR", 2}, {"GBP", 2}, {"BHD", 3},
                {"KWD", 3}, {"CLF", 4}, {"KRW", 0}, {"JOD", 3}, {"CHF", 2}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const bill_currency_t *c = bill_currency_find(want[i].code);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->exponent, want[i].exponent);
    }
    ck_assert_ptr_null(bill_currency_find("usd"));
    ck_assert_ptr_null(bill_currency_find("XXX"));
    ck_assert_ptr_null(bill_currency_find("USDX"));
    ck_assert_ptr_null(bill_currency_find(""));
    ck_assert_ptr_null(bill_currency_find(NULL));
    /* sorted and unique (bsearch depends on it), every exponent in range */
    ck_assert_uint_gt(bill_currency_count(), 100);
    for (size_t i = 0; i < bill_currency_count(); i++) {
        const bill_currency_t *c = bill_currency_at(i);
        ck_assert_uint_eq(strlen(c->code), BILL_CURRENCY_LEN);
        ck_assert(c->exponent >= 0 && c->exponent <= BILL_EXPONENT_MAX);
        ck_assert_ptr_eq(bill_currency_find(c->code), c);
        if (i > 0)
            ck_assert_int_lt(strcmp(bill_currency_at(i - 1)->code, c->code), 0);
    }
    ck_assert_ptr_null(bill_currency_at(bill_currency_count()));
}
END_TEST

/* ---- rounding ---- */

/* The decimal string of (2m + 1) * 5 * 10^-(e + 1): m + 0.5 minor units of exponent e. */
static void tie_string(long m, int e, char *out, size_t cap)
{
    long long n = (2LL * m + 1) * 5;
    unsigned long long mag = n < 0 ? (unsigned long long)-n : (unsigned long long)n, div = 10;
    for (int i = 0; i < e; i++)
        div *= 10;
    snprintf(out, cap, "%s%llu.%0*llu", n < 0 ? "-" : "", mag / div, e + 1, mag % div);
}

START_TEST(half_even_at_every_tie)
{
    /* the examples everyone checks first */
    int64_t v;
    ck_assert_int_eq(bill_parse_decimal("2.5", 0, 0, &v), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(bill_parse_decimal("3.5", 0, 0, &v), 0);
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(bill_parse_decimal("-2.5", 0, 0, &v), 0);
    ck_assert_int_eq(v, -2);
    ck_assert_int_eq(bill_parse_decimal("-3.5", 0, 0, &v), 0);
    ck_assert_int_eq(v, -4);
    ck_assert_int_eq(bill_parse_decimal("0.5", 0, 0, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(bill_parse_decimal("0.025", 2, 0, &v), 0); /* USD 2.5 cents */
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(bill_parse_decimal("0.0035", 3, 0, &v), 0); /* BHD 3.5 fils */
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(bill_parse_decimal("-0.00025", 4, 0, &v), 0); /* CLF */
    ck_assert_int_eq(v, -2);
    /* every tie m + 0.5 for m in -50..50, for every exponent, both ways money gets rounded:
     * a decimal amount with one digit too many, and a product with a multiplier of 0.5 */
    for (int e = 0; e <= BILL_EXPONENT_MAX; e++) {
        for (long m = -50; m <= 50; m++) {
            char s[64];
            int64_t want = (m % 2 == 0) ? m : m + 1, got;
            tie_string(m, e, s, sizeof s);
            ck_assert_int_eq(bill_parse_decimal(s, e, 0, &got), 0);
            ck_assert_msg(got == want, "\"%s\" at exponent %d: %lld, want %lld", s, e,
                          (long long)got, (long long)want);
            ck_assert_int_eq(bill_parse_decimal(s, e, 1, &got), BRK_EINVAL); /* not exact */
            ck_assert_int_eq(bill_mul_ppm(2 * m + 1, BILL_PPM / 2, &got), 0);
            ck_assert_int_eq(got, want);
        }
    }
    /* just off the tie goes to the nearer neighbour, whatever its parity */
    ck_assert_int_eq(bill_parse_decimal("2.5000001", 0, 0, &v), 0);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(bill_parse_decimal("-2.5000001", 0, 0, &v), 0);
    ck_assert_int_eq(v, -3);
    ck_assert_int_eq(bill_parse_decimal("3.4999999", 0, 0, &v), 0);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(bill_parse_decimal("2.50000", 0, 0, &v), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(bill_mul_ppm(26, 100000, &v), 0); /* 2.6 */
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(bill_mul_ppm(-24, 100000, &v), 0); /* -2.4 */
    ck_assert_int_eq(v, -2);
    ck_assert_int_eq(bill_mul_ppm(1, 1, &v), 0); /* 0.000001 */
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(bill_mul_ppm(1000001, 1, &v), 0); /* 1.000001 */
    ck_assert_int_eq(v, 1);
}
END_TEST

START_TEST(parse_decimal_shapes)
{
    int64_t v;
    const char *bad[] = {"",   "-",  ".",   "1.",   ".5",  "1..2", "1.2.3", "+1",
                         " 1", "1 ", "1e3", "0x10", "1,5", "--1",  NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(bill_parse_decimal(bad[i], 2, 0, &v) == BRK_EINVAL, "\"%s\" parsed", bad[i]);
    ck_assert_int_eq(bill_parse_decimal(NULL, 2, 0, &v), BRK_EINVAL);
    ck_assert_int_eq(bill_parse_decimal("12.34", 2, 1, &v), 0);
    ck_assert_int_eq(v, 1234);
    ck_assert_int_eq(bill_parse_decimal("12", 2, 1, &v), 0);
    ck_assert_int_eq(v, 1200);
    ck_assert_int_eq(bill_parse_decimal("12.3400", 2, 1, &v), 0); /* zeros are exact */
    ck_assert_int_eq(v, 1234);
    ck_assert_int_eq(bill_parse_decimal("-0", 0, 1, &v), 0);
    ck_assert_int_eq(v, 0);
    /* BILL_DECIMAL_MAX characters: 40 accepted, 41 refused */
    char s[64];
    memset(s, '0', 41);
    s[40] = '\0';
    s[39] = '7';
    ck_assert_int_eq(bill_parse_decimal(s, 0, 1, &v), 0);
    ck_assert_int_eq(v, 7);
    s[40] = '0';
    s[41] = '\0';
    ck_assert_int_eq(bill_parse_decimal(s, 0, 1, &v), BRK_EINVAL);
    /* the range of int64_t, both sides */
    ck_assert_int_eq(bill_parse_decimal("9223372036854775807", 0, 1, &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(bill_parse_decimal("9223372036854775808", 0, 1, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_parse_decimal("-9223372036854775808", 0, 1, &v), 0);
    ck_assert_int_eq(v, INT64_MIN);
    ck_assert_int_eq(bill_parse_decimal("-9223372036854775809", 0, 1, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_parse_decimal("92233720368547758.07", 2, 1, &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(bill_parse_decimal("92233720368547758.08", 2, 1, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_parse_decimal("92233720368547758.075", 2, 0, &v), BRK_ERANGE);
}
END_TEST

/* ---- formatting ---- */

START_TEST(format_per_currency)
{
    static const struct {
        const char *code;
        int64_t minor;
        const char *want;
    } cases[] = {
        {"JPY", 1234, "1234"},
        {"JPY", -5, "-5"},
        {"JPY", 0, "0"},
        {"USD", 1234, "12.34"},
        {"USD", -5, "-0.05"},
        {"USD", 0, "0.00"},
        {"USD", 100, "1.00"},
        {"EUR", 1234, "12.34"},
        {"EUR", 7, "0.07"},
        {"GBP", 1234, "12.34"},
        {"GBP", -123456, "-1234.56"},
        {"BHD", 1234, "1.234"},
        {"BHD", 5, "0.005"},
        {"BHD", -1000, "-1.000"},
        {"KWD", 1234, "1.234"},
        {"KWD", 1234567, "1234.567"},
        {"CLF", 1234, "0.1234"},
        {"CLF", 12345678, "1234.5678"},
        {"CLF", -1, "-0.0001"},
        {"USD", INT64_MAX, "92233720368547758.07"},
        {"USD", INT64_MIN, "-92233720368547758.08"},
        {"CLF", INT64_MIN, "-922337203685477.5808"},
        {"JPY", INT64_MIN, "-9223372036854775808"},
    };
    char out[BILL_AMOUNT_STR_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bill_currency_t *c = bill_currency_find(cases[i].code);
        int n = bill_format(cases[i].minor, c->exponent, out);
        ck_assert_str_eq(out, cases[i].want);
        ck_assert_int_eq(n, (int)strlen(cases[i].want));
        /* and it reads back exactly */
        int64_t back;
        ck_assert_int_eq(bill_parse_decimal(out, c->exponent, 1, &back), 0);
        ck_assert_int_eq(back, cases[i].minor);
    }
    /* exponent limits: 0 and BILL_EXPONENT_MAX work, -1 and BILL_EXPONENT_MAX + 1 do not */
    ck_assert_int_eq(bill_format(1, BILL_EXPONENT_MAX, out), 6);
    ck_assert_int_eq(bill_format(1, BILL_EXPONENT_MAX + 1, out), BRK_EINVAL);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(bill_format(1, -1, out), BRK_EINVAL);

    const struct {
        int64_t ppm;
        const char *want;
    } mults[] = {{1500000, "1.5"},     {2000000, "2"},    {1, "0.000001"},  {0, "0"},
                 {1000000000, "1000"}, {1250000, "1.25"}, {-500000, "-0.5"}};
    for (size_t i = 0; i < sizeof mults / sizeof mults[0]; i++) {
        bill_format_ppm(mults[i].ppm, out);
        ck_assert_str_eq(out, mults[i].want);
    }
}
END_TEST

START_TEST(overflow_refused)
{
    int64_t v = 42;
    ck_assert_int_eq(bill_add(INT64_MAX - 1, 1, &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(bill_add(INT64_MAX, 1, &v), BRK_ERANGE);
    ck_assert_int_eq(v, INT64_MAX); /* unchanged */
    ck_assert_int_eq(bill_add(INT64_MIN, -1, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_mul(INT64_MAX / 2, 2, &v), 0);
    ck_assert_int_eq(bill_mul(INT64_MAX / 2 + 1, 2, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_mul_ppm(INT64_MAX, BILL_PPM, &v), 0);
    ck_assert_int_eq(v, INT64_MAX);
    ck_assert_int_eq(bill_mul_ppm(INT64_MAX, BILL_PPM + 1, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_mul_ppm(INT64_MIN, BILL_PPM, &v), 0);
    ck_assert_int_eq(bill_mul_ppm(INT64_MIN, 2 * BILL_PPM, &v), BRK_ERANGE);
    ck_assert_int_eq(bill_mul_ppm(INT64_MAX, BILL_MULT_MAX, &v), BRK_ERANGE);
}
END_TEST

/* ---- rate cards ---- */

#define CARD_OK                                                                                    \
    "{\"per_cr\":{\"completed\":100,\"failed\":50,\"violated\":200,\"timed_out\":60,"              \
    "\"session_end\":0},\"per_second\":3}"

static int parse_card(const char *text, bill_ratecard_t *rc, const char **code)
{
    char msg[BILL_MSG_MAX];
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "test card does not parse: %s", jerr.text);
    int r = bill_ratecard_parse(j, rc, code, msg, sizeof msg);
    json_decref(j);
    return r;
}

/* CARD_OK with one member replaced or added. */
static int card_with(const char *member, const char *value, const char **code)
{
    bill_ratecard_t rc;
    char text[4096];
    json_t *j = json_loads(CARD_OK, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(v);
    json_object_set_new(j, member, v);
    char *s = json_dumps(j, JSON_COMPACT);
    snprintf(text, sizeof text, "%s", s);
    free(s);
    json_decref(j);
    return parse_card(text, &rc, code);
}

START_TEST(ratecard_valid)
{
    bill_ratecard_t rc;
    const char *code = NULL;
    ck_assert_int_eq(parse_card(CARD_OK, &rc, &code), 0);
    ck_assert_int_eq(rc.per_cr[BILL_VIOLATED], 200);
    ck_assert_int_eq(rc.per_second, 3);
    ck_assert_int_eq(rc.flagged_surcharge, 0);
    ck_assert_uint_eq(rc.nshell, 0);
    ck_assert_uint_eq(rc.cap_has, 0);
    /* the normalized form has every member and parses to the same card */
    json_t *n = bill_ratecard_json(&rc);
    char *s = json_dumps(n, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(s, "{\"capability_multipliers\":{},\"flagged_surcharge\":0,\"per_cr\":"
                        "{\"completed\":100,\"failed\":50,\"session_end\":0,\"timed_out\":60,"
                        "\"violated\":200},\"per_second\":3,\"shell_class_multipliers\":{}}");
    free(s);
    json_decref(n);
    ck_assert_int_eq(card_with("shell_class_multipliers", "{\"Privileged\":\"1.50\"}", &code), 0);
    ck_assert_int_eq(parse_card("{\"per_cr\":{\"completed\":1,\"failed\":1,\"violated\":1,"
                                "\"timed_out\":1,\"session_end\":1},\"per_second\":0,"
                                "\"shell_class_multipliers\":{\"Privileged\":\"1.50\"},"
                                "\"capability_multipliers\":{\"7\":\"2\",\"31\":\"0.000001\"},"
                                "\"flagged_surcharge\":9}",
                                &rc, &code),
                     0);
    n = bill_ratecard_json(&rc);
    s = json_dumps(json_object_get(n, "capability_multipliers"), JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(s, "{\"31\":\"0.000001\",\"7\":\"2\"}");
    free(s);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(n, "shell_class_multipliers"), "Privileged")),
                     "1.5");
    json_decref(n);
}
END_TEST

START_TEST(ratecard_limits_both_sides)
{
    const char *code;
    char v[256];
    /* prices: 0 and BILL_PRICE_MAX accepted; -1 and BILL_PRICE_MAX + 1 refused; reals refused */
    const char *price_members[] = {"per_second", "flagged_surcharge"};
    const long long price_max[] = {BILL_PER_SECOND_MAX, BILL_PRICE_MAX};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(card_with(price_members[i], "0", &code), 0);
        snprintf(v, sizeof v, "%lld", price_max[i]);
        ck_assert_int_eq(card_with(price_members[i], v, &code), 0);
        snprintf(v, sizeof v, "%lld", price_max[i] + 1);
        ck_assert_int_eq(card_with(price_members[i], v, &code), BRK_ERANGE);
        ck_assert_str_eq(code, "out_of_range");
        ck_assert_int_eq(card_with(price_members[i], "-1", &code), BRK_ERANGE);
        ck_assert_int_eq(card_with(price_members[i], "1.5", &code), BRK_EINVAL);
        ck_assert_str_eq(code, "invalid_field");
        ck_assert_int_eq(card_with(price_members[i], "\"1\"", &code), BRK_EINVAL);
    }
    snprintf(v, sizeof v,
             "{\"completed\":%lld,\"failed\":0,\"violated\":0,\"timed_out\":0,\"session_end\":0}",
             BILL_PRICE_MAX);
    ck_assert_int_eq(card_with("per_cr", v, &code), 0);
    snprintf(v, sizeof v,
             "{\"completed\":%lld,\"failed\":0,\"violated\":0,\"timed_out\":0,\"session_end\":0}",
             BILL_PRICE_MAX + 1);
    ck_assert_int_eq(card_with("per_cr", v, &code), BRK_ERANGE);
    ck_assert_int_eq(card_with("per_cr",
                               "{\"completed\":1,\"failed\":0,\"violated\":0,"
                               "\"timed_out\":0}",
                               &code),
                     BRK_EINVAL);
    ck_assert_str_eq(code, "missing_field");
    ck_assert_int_eq(card_with("per_cr",
                               "{\"completed\":1,\"failed\":0,\"violated\":0,"
                               "\"timed_out\":0,\"session_end\":0,\"exploded\":1}",
                               &code),
                     BRK_EINVAL);
    ck_assert_str_eq(code, "unknown_field");
    ck_assert_int_eq(card_with("per_cr", "[]", &code), BRK_EINVAL);

    /* multipliers: 0 and 1000 accepted, 1000.000001 and -0.000001 refused; 6 fractional
     * digits accepted, 7 refused; numbers refused (binary floating point) */
    const char *ok_mult[] = {"\"0\"", "\"1000\"", "\"1000.000000\"", "\"0.000001\"",
                             "\"1.999999\""};
    const char *range_mult[] = {"\"1000.000001\"", "\"-0.000001\"", "\"1001\""};
    const char *bad_mult[] = {"\"1.0000001\"", "1.5", "2", "\"\"", "\"1,5\"", "null"};
    for (size_t i = 0; i < sizeof ok_mult / sizeof ok_mult[0]; i++) {
        snprintf(v, sizeof v, "{\"Privileged\":%s}", ok_mult[i]);
        ck_assert_msg(card_with("shell_class_multipliers", v, &code) == 0, "%s refused", v);
        snprintf(v, sizeof v, "{\"3\":%s}", ok_mult[i]);
        ck_assert_msg(card_with("capability_multipliers", v, &code) == 0, "%s refused", v);
    }
    for (size_t i = 0; i < sizeof range_mult / sizeof range_mult[0]; i++) {
        snprintf(v, sizeof v, "{\"3\":%s}", range_mult[i]);
        ck_assert_msg(card_with("capability_multipliers", v, &code) == BRK_ERANGE, "%s", v);
        ck_assert_str_eq(code, "out_of_range");
    }
    for (size_t i = 0; i < sizeof bad_mult / sizeof bad_mult[0]; i++) {
        snprintf(v, sizeof v, "{\"Privileged\":%s}", bad_mult[i]);
        ck_assert_msg(card_with("shell_class_multipliers", v, &code) == BRK_EINVAL, "%s", v);
    }

    /* capability keys: "0" and "31" accepted; "32", "-1", "01", "x", "" refused */
    ck_assert_int_eq(card_with("capability_multipliers", "{\"0\":\"2\",\"31\":\"2\"}", &code), 0);
    const char *bad_keys[] = {"32", "-1", "01", "x", "", "100", "3 "};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        snprintf(v, sizeof v, "{\"%s\":\"2\"}", bad_keys[i]);
        ck_assert_msg(card_with("capability_multipliers", v, &code) == BRK_EINVAL, "%s", v);
    }

    /* shell classes: BILL_SHELL_CLASSES_MAX entries accepted, one more refused; a name of
     * BILL_SHELL_CLASS_MAX bytes accepted, one more refused; bad characters refused */
    json_t *many = json_object();
    for (int i = 0; i < BILL_SHELL_CLASSES_MAX; i++) {
        snprintf(v, sizeof v, "Class%d", i);
        json_object_set_new(many, v, json_string("1.5"));
    }
    char *s = json_dumps(many, JSON_COMPACT);
    ck_assert_int_eq(card_with("shell_class_multipliers", s, &code), 0);
    free(s);
    json_object_set_new(many, "OneTooMany", json_string("1.5"));
    s = json_dumps(many, JSON_COMPACT);
    ck_assert_int_eq(card_with("shell_class_multipliers", s, &code), BRK_ERANGE);
    free(s);
    json_decref(many);
    char name[BILL_SHELL_CLASS_MAX + 2];
    memset(name, 'A', sizeof name);
    name[BILL_SHELL_CLASS_MAX] = '\0';
    snprintf(v, sizeof v, "{\"%s\":\"2\"}", name);
    ck_assert_int_eq(card_with("shell_class_multipliers", v, &code), 0);
    name[BILL_SHELL_CLASS_MAX] = 'A';
    name[BILL_SHELL_CLASS_MAX + 1] = '\0';
    snprintf(v, sizeof v, "{\"%s\":\"2\"}", name);
    ck_assert_int_eq(card_with("shell_class_multipliers", v, &code), BRK_EINVAL);
    ck_assert_int_eq(card_with("shell_class_multipliers", "{\"Sh ell\":\"2\"}", &code), BRK_EINVAL);
    ck_assert_int_eq(card_with("shell_class_multipliers", "[]", &code), BRK_EINVAL);

    /* required and unknown members */
    bill_ratecard_t rc;
    ck_assert_int_eq(parse_card("{\"per_second\":1}", &rc, &code), BRK_EINVAL);
    ck_assert_str_eq(code, "missing_field");
    ck_assert_int_eq(parse_card("{\"per_cr\":{\"completed\":1,\"failed\":1,\"violated\":1,"
                                "\"timed_out\":1,\"session_end\":1}}",
                                &rc, &code),
                     BRK_EINVAL);
    ck_assert_str_eq(code, "missing_field");
    ck_assert_int_eq(card_with("per_minute", "1", &code), BRK_EINVAL);
    ck_assert_str_eq(code, "unknown_field");
    ck_assert_int_eq(parse_card("[]", &rc, &code), BRK_EINVAL);
}
END_TEST

START_TEST(account_parse)
{
    bill_account_t a;
    const char *code;
    char msg[BILL_MSG_MAX];
    json_t *j =
        json_pack("{s:s,s:o}", "currency", "BHD", "rate_card", json_loads(CARD_OK, 0, NULL));
    ck_assert_int_eq(bill_account_parse(j, &a, &code, msg, sizeof msg), 0);
    ck_assert_str_eq(a.currency->code, "BHD");
    ck_assert_int_eq(a.currency->exponent, 3);
    json_object_set_new(j, "currency", json_string("bhd"));
    ck_assert_int_eq(bill_account_parse(j, &a, &code, msg, sizeof msg), BRK_ERANGE);
    ck_assert_str_eq(code, "unknown_currency");
    json_object_set_new(j, "currency", json_integer(48));
    ck_assert_int_eq(bill_account_parse(j, &a, &code, msg, sizeof msg), BRK_EINVAL);
    json_object_del(j, "currency");
    ck_assert_int_eq(bill_account_parse(j, &a, &code, msg, sizeof msg), BRK_EINVAL);
    ck_assert_str_eq(code, "missing_field");
    ck_assert_ptr_nonnull(strstr(msg, "currency"));
    json_object_set_new(j, "currency", json_string("JPY"));
    json_object_set_new(j, "colour", json_string("red"));
    ck_assert_int_eq(bill_account_parse(j, &a, &code, msg, sizeof msg), BRK_EINVAL);
    ck_assert_str_eq(code, "unknown_field");
    json_decref(j);

    ck_assert(bill_account_id_valid("default"));
    ck_assert(bill_account_id_valid("a.b_c-9"));
    ck_assert(!bill_account_id_valid(""));
    ck_assert(!bill_account_id_valid("-x"));
    ck_assert(!bill_account_id_valid("a b"));
    char id[BILL_ACCOUNT_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    id[BILL_ACCOUNT_ID_MAX] = '\0';
    ck_assert(bill_account_id_valid(id));
    id[BILL_ACCOUNT_ID_MAX] = 'a';
    id[BILL_ACCOUNT_ID_MAX + 1] = '\0';
    ck_assert(!bill_account_id_valid(id));
}
END_TEST

/* ---- rating ---- */

static bill_cr_t cr_of(const char *payload_text)
{
    bill_cr_t cr;
    char msg[BILL_MSG_MAX];
    json_t *p = json_loads(payload_text, 0, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_msg(bill_cr_from_payload(p, &cr, msg, sizeof msg) == 0, "%s", msg);
    cr.shell_class = cr.shell_class ? strdup(cr.shell_class) : NULL; /* outlives p (test only) */
    json_decref(p);
    return cr;
}

START_TEST(rating_examples)
{
    bill_ratecard_t rc;
    bill_rating_t r;
    const char *code;
    ck_assert_int_eq(parse_card("{\"per_cr\":{\"completed\":100,\"failed\":50,\"violated\":200,"
                                "\"timed_out\":60,\"session_end\":0},\"per_second\":3,"
                                "\"shell_class_multipliers\":{\"Privileged\":\"1.5\"},"
                                "\"capability_multipliers\":{\"2\":\"1.25\",\"5\":\"0.5\"},"
                                "\"flagged_surcharge\":7}",
                                &rc, &code),
                     0);
    /* 2.2 s is 3 started seconds: 100 + 3 * 3 = 109; * 1.5 = 163.5 -> 164 (even);
     * bit 2: * 1.25 = 205; bit 5: * 0.5 = 102.5 -> 102 (even); flagged: + 7 = 109 */
    bill_cr_t cr = cr_of("{\"effective_outcome\":\"completed\",\"flags\":[\"overage\"],"
                         "\"started_at\":\"2026-11-23T10:00:00+00:00\","
                         "\"completed_at\":\"2026-11-23T10:00:02.2+00:00\","
                         "\"shell_class\":\"Privileged\",\"capability_set\":37}");
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, 3);
    ck_assert_int_eq(r.unit_minor, 3);
    ck_assert_int_eq(r.base_minor, 100);
    ck_assert_int_eq(r.surcharge_minor, 7);
    ck_assert_int_eq(r.total_minor, 109);
    ck_assert_uint_eq(r.nmult, 3);
    ck_assert_int_eq(r.mult[0].bit, -1);
    ck_assert_int_eq(r.mult[1].bit, 2);
    ck_assert_int_eq(r.mult[2].bit, 5);
    json_t *j = bill_rating_json(&r, cr.shell_class);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(s, "{\"base_minor\":100,\"multipliers\":[{\"multiplier\":\"1.5\","
                        "\"shell_class\":\"Privileged\"},{\"capability_bit\":2,\"multiplier\":"
                        "\"1.25\"},{\"capability_bit\":5,\"multiplier\":\"0.5\"}],\"quantity\":3,"
                        "\"surcharge_minor\":7,\"total_minor\":109,\"unit_minor\":3}");
    free(s);
    json_decref(j);
    free((char *)cr.shell_class);

    /* exactly 2 s is 2 started seconds; unflagged; bit 0 has no multiplier; the shell class
     * has none; an offset in the timestamps is honoured: 110 + 0 * 3 ... */
    cr = cr_of("{\"effective_outcome\":\"violated\",\"flags\":[],"
               "\"started_at\":\"2026-11-23T11:00:00+01:00\","
               "\"completed_at\":\"2026-11-23T10:00:02Z\","
               "\"shell_class\":\"Application\",\"capability_set\":1}");
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, 2);
    ck_assert_int_eq(r.total_minor, 206);
    ck_assert_uint_eq(r.nmult, 0);
    free((char *)cr.shell_class);
    /* a run of zero length, no shell class at all, session_end priced 0 */
    cr = cr_of(
        "{\"effective_outcome\":\"session_end\",\"flags\":[],"
        "\"started_at\":\"2026-11-23T10:00:00.5Z\",\"completed_at\":\"2026-11-23T10:00:00.5Z\","
        "\"shell_class\":null,\"capability_set\":4}");
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, 0);
    ck_assert_int_eq(r.total_minor, 0);
    ck_assert_uint_eq(r.nmult, 1);
    /* one microsecond is one started second */
    cr.completed_us = cr.started_us + 1;
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, 1);
    ck_assert_int_eq(r.total_minor, 4); /* 3 * 1.25 = 3.75 -> 4 */

    /* such a card is refused now (per_second above BILL_PER_SECOND_MAX, then a factor of
     * 10^6); built by hand, past validation, overflow anywhere is still refused, never
     * wrapped (the second line of defence) */
    const char *huge = "{\"per_cr\":{\"completed\":1000000000000,\"failed\":0,"
                       "\"violated\":0,\"timed_out\":0,\"session_end\":0},"
                       "\"per_second\":1000000000000,"
                       "\"capability_multipliers\":{\"0\":\"1000\",\"1\":\"1000\"}}";
    ck_assert_int_eq(parse_card(huge, &rc, &code), BRK_ERANGE);
    ck_assert_str_eq(code, "out_of_range");
    memset(&rc, 0, sizeof rc);
    rc.per_cr[BILL_COMPLETED] = BILL_PRICE_MAX;
    rc.per_second = 1000000000000LL;
    rc.cap_has = 3;
    rc.cap_ppm[0] = rc.cap_ppm[1] = BILL_MULT_MAX;
    cr.outcome = BILL_COMPLETED;
    cr.capability_set = 0;
    cr.completed_us = cr.started_us + 10000000LL * 1000000; /* 10^7 s: capped at a month */
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, BILL_LINE_SECONDS_MAX);
    ck_assert_int_eq(r.total_minor, BILL_PRICE_MAX + 1000000000000LL * BILL_LINE_SECONDS_MAX);
    cr.capability_set = 3; /* * 1000 * 1000 */
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), BRK_ERANGE);
}
END_TEST


START_TEST(ratecard_factor_bound)
{
    const char *code;
    /* the largest factor of one line: at BILL_MULT_PRODUCT_MAX accepted, one ppm past it
     * refused, however it is made up */
    const char *ok[] = {
        "\"capability_multipliers\":{\"0\":\"1000\"}",
        "\"shell_class_multipliers\":{\"A\":\"1000\",\"B\":\"1000\"}", /* one class per CR */
        "\"shell_class_multipliers\":{\"A\":\"10\"},\"capability_multipliers\":{\"0\":\"10\","
        "\"31\":\"10\"}",
        "\"shell_class_multipliers\":{\"A\":\"1000\"},\"capability_multipliers\":{\"0\":\"0.5\","
        "\"1\":\"1\",\"2\":\"0\"}",
        "\"capability_multipliers\":{\"0\":\"2\",\"1\":\"2\",\"2\":\"2\",\"3\":\"2\",\"4\":\"2\","
        "\"5\":\"2\",\"6\":\"2\",\"7\":\"2\",\"8\":\"2\",\"9\":\"1.953125\"}", /* 2^9 * 1.953125 */
    };
    const char *over[] = {
        "\"capability_multipliers\":{\"0\":\"1000\",\"1\":\"1.000001\"}",
        "\"shell_class_multipliers\":{\"A\":\"1000\"},\"capability_multipliers\":{\"7\":\"1.000001\"}",
        "\"shell_class_multipliers\":{\"A\":\"10\"},\"capability_multipliers\":{\"0\":\"10\","
        "\"31\":\"10.000001\"}",
        "\"capability_multipliers\":{\"0\":\"1000\",\"1\":\"1000\",\"2\":\"1000\",\"3\":\"1000\"}",
        "\"capability_multipliers\":{\"0\":\"2\",\"1\":\"2\",\"2\":\"2\",\"3\":\"2\",\"4\":\"2\","
        "\"5\":\"2\",\"6\":\"2\",\"7\":\"2\",\"8\":\"2\",\"9\":\"1.953126\"}",
    };
    char text[1024];
    bill_ratecard_t rc;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text, "%.*s,%s}", (int)strlen(CARD_OK) - 1, CARD_OK, ok[i]);
        ck_assert_msg(parse_card(text, &rc, &code) == 0, "refused: %s", text);
    }
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        snprintf(text, sizeof text, "%.*s,%s}", (int)strlen(CARD_OK) - 1, CARD_OK, over[i]);
        ck_assert_msg(parse_card(text, &rc, &code) == BRK_ERANGE, "accepted: %s", text);
        ck_assert_str_eq(code, "rate_card_too_large");
    }
}
END_TEST

/* The extreme values: every price at its maximum, a factor of exactly 1000 (and one with
 * roundings at every step), every capability bit set, flagged, a run from 1970 to 9999.
 * bill_rate succeeds, bills at most BILL_LINE_SECONDS_MAX seconds, and the line fits
 * BILL_LINE_MAX; an invoice at its cap plus such a line still fits int64_t. */
START_TEST(extreme_line_fits)
{
    char text[2048];
    const char *code;
    bill_ratecard_t rc;
    bill_rating_t r;
    int64_t sum;
    const char *factors[] = {
        "\"shell_class_multipliers\":{\"X\":\"10\"},\"capability_multipliers\":{\"0\":\"10\","
        "\"1\":\"10\"}",
        /* 9.999999 * 9.999999 * 10 * 0.999999 rounds at every step */
        "\"shell_class_multipliers\":{\"X\":\"9.999999\"},\"capability_multipliers\":{\"0\":"
        "\"9.999999\",\"5\":\"10\",\"6\":\"0.999999\",\"7\":\"1\"}",
        "\"shell_class_multipliers\":{\"X\":\"1000\"}",
    };
    for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
        snprintf(text, sizeof text,
                 "{\"per_cr\":{\"completed\":%lld,\"failed\":%lld,\"violated\":%lld,"
                 "\"timed_out\":%lld,\"session_end\":%lld},\"per_second\":%lld,"
                 "\"flagged_surcharge\":%lld,%s}",
                 BILL_PRICE_MAX, BILL_PRICE_MAX, BILL_PRICE_MAX, BILL_PRICE_MAX, BILL_PRICE_MAX,
                 BILL_PER_SECOND_MAX, BILL_PRICE_MAX, factors[f]);
        ck_assert_msg(parse_card(text, &rc, &code) == 0, "refused: %s", text);
        bill_cr_t cr = cr_of("{\"effective_outcome\":\"violated\",\"flags\":[\"overage\"],"
                             "\"started_at\":\"1970-01-01T00:00:00Z\","
                             "\"completed_at\":\"9999-12-31T23:59:59.999999Z\","
                             "\"shell_class\":\"X\",\"capability_set\":4294967295}");
        ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
        ck_assert_int_eq(r.quantity, BILL_LINE_SECONDS_MAX);
        ck_assert(r.quantity_capped);
        ck_assert_int_le(r.total_minor, BILL_LINE_MAX);
        if (f == 0) /* exact: (10^12 + 10^8 * 2678400) * 1000 + 10^12 */
            ck_assert_int_eq(r.total_minor, 268841000000000000LL);
        json_t *j = bill_rating_json(&r, cr.shell_class);
        ck_assert(json_is_true(json_object_get(j, "quantity_capped")));
        json_decref(j);
        ck_assert_int_eq(bill_add(BILL_INVOICE_TOTAL_MAX, r.total_minor, &sum), 0);
        free((char *)cr.shell_class);
    }
    /* one second under the cap is billed as claimed and not marked */
    bill_cr_t cr = cr_of("{\"effective_outcome\":\"completed\",\"flags\":[],"
                         "\"started_at\":\"2026-01-01T00:00:00Z\","
                         "\"completed_at\":\"2026-02-01T00:00:00Z\","
                         "\"shell_class\":null,\"capability_set\":0}");
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, BILL_LINE_SECONDS_MAX); /* January: exactly 31 days */
    ck_assert(!r.quantity_capped);
    cr.completed_us += 1;
    ck_assert_int_eq(bill_rate(&rc, &cr, &r), 0);
    ck_assert_int_eq(r.quantity, BILL_LINE_SECONDS_MAX);
    ck_assert(r.quantity_capped);
    json_t *j = bill_rating_json(&r, NULL);
    ck_assert(json_is_true(json_object_get(j, "quantity_capped")));
    json_decref(j);
    /* the invoice bound: total + any line fits, and an empty invoice takes any line */
    ck_assert_int_eq(bill_add(BILL_INVOICE_TOTAL_MAX, BILL_LINE_MAX, &sum), 0);
    ck_assert_int_le(BILL_LINE_MAX, BILL_INVOICE_TOTAL_MAX);
}
END_TEST

START_TEST(payload_and_time)
{
    bill_cr_t cr;
    char msg[BILL_MSG_MAX];
    int64_t us;
    ck_assert_int_eq(brk_time_parse_us("1970-01-01T00:00:01Z", &us), 0);
    ck_assert_int_eq(us, 1000000);
    ck_assert_int_eq(brk_time_parse_us("1970-01-01T01:00:01.25+01:00", &us), 0);
    ck_assert_int_eq(us, 1250000);
    ck_assert_int_eq(brk_time_parse_us("1970-01-01T00:00:00.123456789-00:30", &us), 0);
    ck_assert_int_eq(us, 1800123456);
    const char *bad[] = {"",
                         "2026-02-30T00:00:00Z",
                         "2026-11-23T10:00:00",
                         "2026-11-23",
                         "2026-11-23T24:00:00Z",
                         "2026-11-23T10:00:00+0100",
                         "2026-11-23T10:00:00.Z",
                         "yesterday",
                         NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(brk_time_parse_us(bad[i], &us) == BRK_EINVAL, "\"%s\" parsed", bad[i]);
    const char *bad_payloads[] = {
        "{\"effective_outcome\":\"exploded\",\"flags\":[],\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":0}",
        "{\"effective_outcome\":\"failed\",\"flags\":\"x\",\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":0}",
        "{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":\"then\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":0}",
        "{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":4294967296}",
        "{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":0,\"shell_class\":5}",
        NULL};
    for (int i = 0; bad_payloads[i]; i++) {
        json_t *p = json_loads(bad_payloads[i], 0, NULL);
        ck_assert_int_eq(bill_cr_from_payload(p, &cr, msg, sizeof msg), BRK_EINVAL);
        json_decref(p);
    }
    json_t *p = json_loads("{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":"
                           "\"2026-01-01T00:00:00Z\",\"completed_at\":\"2026-01-01T00:00:00Z\","
                           "\"capability_set\":4294967295}",
                           0, NULL);
    ck_assert_int_eq(bill_cr_from_payload(p, &cr, msg, sizeof msg), 0);
    ck_assert_uint_eq(cr.capability_set, 0xffffffffu);
    ck_assert_ptr_null(cr.shell_class);
    json_decref(p);
}
END_TEST

/* Billing rates the span the broker saw (billed_*), never the executor's claimed times. */
START_TEST(payload_billed_span)
{
    bill_cr_t cr;
    char msg[BILL_MSG_MAX];
    json_t *p = json_loads("{\"effective_outcome\":\"violated\",\"flags\":[\"time_implausible\"],"
                           "\"started_at\":\"1970-01-01T00:00:00Z\","
                           "\"completed_at\":\"9999-12-31T23:59:59Z\","
                           "\"billed_started_at\":\"2026-11-30T06:00:00.25+00:00\","
                           "\"billed_completed_at\":\"2026-11-30T06:00:05+00:00\","
                           "\"capability_set\":0}",
                           0, NULL);
    ck_assert_int_eq(bill_cr_from_payload(p, &cr, msg, sizeof msg), 0);
    ck_assert_int_eq(cr.completed_us - cr.started_us, 4750000);
    json_decref(p);
    /* one of the pair missing, or not a time: refused, never a fallback to the claims */
    const char *bad[] = {
        "{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"billed_started_at\":"
        "\"2026-01-01T00:00:00Z\",\"capability_set\":0}",
        "{\"effective_outcome\":\"failed\",\"flags\":[],\"started_at\":\"2026-01-01T00:00:00Z\","
        "\"completed_at\":\"2026-01-01T00:00:00Z\",\"billed_started_at\":null,"
        "\"billed_completed_at\":\"2026-01-01T00:00:00Z\",\"capability_set\":0}",
        NULL};
    for (int i = 0; bad[i]; i++) {
        p = json_loads(bad[i], 0, NULL);
        ck_assert_int_eq(bill_cr_from_payload(p, &cr, msg, sizeof msg), BRK_EINVAL);
        ck_assert_ptr_nonnull(strstr(msg, "billed_started_at"));
        json_decref(p);
    }
}
END_TEST

/* ---- Merkle, CSV, finalizer ---- */

START_TEST(incremental_merkle_matches_rfc6962)
{
    enum { N = 300 };
    static brk_mhash_t leaves[N];
    bill_merkle_t m;
    bill_merkle_init(&m);
    for (size_t n = 0; n <= N; n++) {
        brk_mhash_t a, b;
        bill_merkle_root(&m, a);
        brk_merkle_root(leaves, n, b);
        ck_assert_msg(memcmp(a, b, sizeof a) == 0, "root of %zu leaves differs", n);
        if (n == N)
            break;
        char cid[BRK_CID_LEN + 1];
        brk_cid_of_bytes(&n, sizeof n, cid);
        brk_merkle_leaf_hash(cid, BRK_CID_LEN, leaves[n]);
        bill_merkle_add(&m, cid, BRK_CID_LEN);
    }
}
END_TEST

START_TEST(csv_records)
{
    char out[256];
    const char *plain[] = {"inv_1", "12.34", NULL, "sha256:ab"};
    ck_assert_uint_eq(bill_csv_row(out, sizeof out, plain, 4),
                      strlen("inv_1,12.34,,sha256:ab\r\n"));
    ck_assert_str_eq(out, "inv_1,12.34,,sha256:ab\r\n");
    const char *quoted[] = {"a,b", "say \"hi\"", "two\r\nlines", "lf\n", ""};
    ck_assert_uint_eq(bill_csv_row(out, sizeof out, quoted, 5),
                      strlen("\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",\"lf\n\",\r\n"));
    ck_assert_str_eq(out, "\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",\"lf\n\",\r\n");
    /* a small buffer: cut, NUL-terminated, the full length reported */
    char small[6];
    ck_assert_uint_eq(bill_csv_row(small, sizeof small, plain, 4), 24);
    ck_assert_str_eq(small, "inv_1");
    ck_assert_uint_eq(bill_csv_row(NULL, 0, plain, 4), 24);
}
END_TEST

static char keydir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

START_TEST(finalizer_document)
{
    brk_keyring_t *kr = NULL;
    bill_finalizer_t f;
    json_t *doc = NULL;
    char msg[256], cid[BRK_CID_LEN + 1];
    snprintf(keydir, sizeof keydir, "/tmp/unit_billing.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(keydir));
    char ring[128];
    snprintf(ring, sizeof ring, "%s/keys", keydir);
    ck_assert_int_eq(brk_keyring_load(ring, &kr), 0);

    const char *head[6] = {"default", "2026-11", "BHD", "3", "3", "3500"};
    ck_assert_int_eq(bill_finalizer_init(&f, "acme", "inv_0123456789abcdef0123456789abcdef", head),
                     0);
    brk_mhash_t leaves[3], want;
    const char *totals[3] = {"1000", "2000", "500"};
    /* log indexes 7, 11 (the largest), 3: the checkpoint covers 12 entries */
    const char *log_idx[3] = {"7", "11", "3"};
    char log_roots[3][65];
    for (int i = 0; i < 3; i++) {
        char no[16];
        brk_mhash_t lr;
        brk_sha256(&i, sizeof i, lr);
        brk_hex(lr, sizeof lr, log_roots[i]);
        brk_cid_of_bytes(&i, sizeof i, cid);
        brk_merkle_leaf_hash(cid, BRK_CID_LEN, leaves[i]);
        snprintf(no, sizeof no, "%d", i + 1);
        ck_assert_int_eq(bill_finalizer_add(&f, no, cid, totals[i], log_idx[i], log_roots[i]), 0);
    }
    /* out of order and malformed lines are refused */
    ck_assert_int_eq(bill_finalizer_add(&f, "3", cid, "1", "1", log_roots[0]), BRK_EINVAL);
    ck_assert_int_eq(bill_finalizer_add(&f, "9", "sha256:nope", "1", "1", log_roots[0]),
                     BRK_EINVAL);
    ck_assert_int_eq(bill_finalizer_add(&f, "9", cid, "x", "1", log_roots[0]), BRK_EINVAL);
    ck_assert_int_eq(bill_finalizer_add(&f, "9", cid, "1", "-1", log_roots[0]), BRK_EINVAL);
    ck_assert_int_eq(bill_finalizer_add(&f, "9", cid, "1", "1", "zz"), BRK_EINVAL);
    ck_assert_int_eq(
        bill_finalizer_finish(&f, kr, "gsap-broker", 1795435200, &doc, msg, sizeof msg), 0);
    brk_merkle_root(leaves, 3, want);
    char hex[65], root[BRK_CID_LEN + 1];
    brk_hex(want, sizeof want, hex);
    snprintf(root, sizeof root, "sha256:%s", hex);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "lines_root")), root);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "total_minor")), "3500");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "total")), "3.500");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "period")), "2026-11");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "finalized_at")),
                     "2026-11-23T12:00:00Z");
    ck_assert_str_eq(json_string_value(json_object_get(doc, "key_id")), brk_keyring_current_id(kr));
    /* the log checkpoint covering every line: size 12, the root stored at index 11 */
    json_t *log = json_object_get(doc, "log");
    ck_assert_int_eq(json_integer_value(json_object_get(log, "tree_size")), 12);
    ck_assert_str_eq(json_string_value(json_object_get(log, "origin")), "gsap-broker/acme");
    {
        int one = 1;
        brk_mhash_t lr;
        char b64[64], body[256];
        brk_sha256(&one, sizeof one, lr);
        brk_b64_std(lr, sizeof lr, b64);
        ck_assert_str_eq(json_string_value(json_object_get(log, "root_hash")), b64);
        snprintf(body, sizeof body, "gsap-broker/acme\n12\n%s\n\n", b64);
        ck_assert_int_eq(strncmp(json_string_value(json_object_get(log, "checkpoint")), body,
                                 strlen(body)),
                         0);
    }
    /* the signature covers the canonical document without invoice_cid and signature */
    json_t *bare = json_deep_copy(doc);
    json_object_del(bare, "invoice_cid");
    json_object_del(bare, "signature");
    char *canon;
    size_t clen;
    ck_assert_int_eq(brk_jcs_canonicalize(bare, &canon, &clen), 0);
    brk_cid_of_bytes(canon, clen, cid);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "invoice_cid")), cid);
    const char *sig = json_string_value(json_object_get(doc, "signature"));
    uint8_t raw[BRK_ED25519_SIG_LEN];
    ck_assert_int_eq(strncmp(sig, "ed25519:", 8), 0);
    ck_assert_int_eq(brk_b64url_decode(sig + 8, strlen(sig + 8), raw, sizeof raw),
                     BRK_ED25519_SIG_LEN);
    ck_assert(brk_ed25519_verify(brk_keyring_public(kr, 0), canon, clen, raw));
    canon[10] ^= 1;
    ck_assert(!brk_ed25519_verify(brk_keyring_public(kr, 0), canon, clen, raw));
    free(canon);
    json_decref(bare);
    json_decref(doc);

    /* lines that do not add up to the invoice row are never signed */
    const char *head2[6] = {"default", "2026-11", "BHD", "3", "2", "3500"};
    ck_assert_int_eq(bill_finalizer_init(&f, "acme", "inv_0123456789abcdef0123456789abcdef", head2),
                     0);
    ck_assert_int_eq(bill_finalizer_add(&f, "1", cid, "3500", "0", log_roots[0]), 0);
    ck_assert_int_eq(bill_finalizer_finish(&f, kr, "b", 0, &doc, msg, sizeof msg), BRK_ECONFLICT);
    ck_assert_ptr_null(doc);
    /* a line without a transparency-log index is never signed */
    const char *head5[6] = {"default", "2026-11", "BHD", "3", "2", "3500"};
    ck_assert_int_eq(bill_finalizer_init(&f, "acme", "inv_0123456789abcdef0123456789abcdef", head5),
                     0);
    ck_assert_int_eq(bill_finalizer_add(&f, "1", cid, "3000", "0", log_roots[0]), 0);
    ck_assert_int_eq(bill_finalizer_add(&f, "2", cid, "500", NULL, NULL), 0);
    ck_assert_int_eq(bill_finalizer_finish(&f, kr, "b", 0, &doc, msg, sizeof msg), BRK_EINTERNAL);
    ck_assert_ptr_null(doc);
    ck_assert_ptr_nonnull(strstr(msg, "transparency-log index"));
    /* an overflowing sum is refused */
    const char *head3[6] = {"default", "2026-11", "USD", "2", "2", "0"};
    ck_assert_int_eq(bill_finalizer_init(&f, "acme", "inv_0123456789abcdef0123456789abcdef", head3),
                     0);
    ck_assert_int_eq(bill_finalizer_add(&f, "1", cid, "9223372036854775807", NULL, NULL), 0);
    ck_assert_int_eq(bill_finalizer_add(&f, "2", cid, "1", NULL, NULL), BRK_ERANGE);
    /* a malformed head */
    const char *head4[6] = {"default", "2026-11", "USD", "5", "2", "0"};
    ck_assert_int_eq(bill_finalizer_init(&f, "acme", "inv_x", head4), BRK_EINVAL);
    brk_keyring_free(kr);
    nftw(keydir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("billing");
    TCase *money = tcase_create("money"), *rate = tcase_create("rate"),
          *inv = tcase_create("invoice");
    tcase_add_test(money, currency_table);
    tcase_add_test(money, half_even_at_every_tie);
    tcase_add_test(money, parse_decimal_shapes);
    tcase_add_test(money, format_per_currency);
    tcase_add_test(money, overflow_refused);
    tcase_add_test(rate, ratecard_valid);
    tcase_add_test(rate, ratecard_limits_both_sides);
    tcase_add_test(rate, account_parse);
    tcase_add_test(rate, rating_examples);
    tcase_add_test(rate, ratecard_factor_bound);
    tcase_add_test(rate, extreme_line_fits);
    tcase_add_test(rate, payload_and_time);
    tcase_add_test(rate, payload_billed_span);
    tcase_add_test(inv, incremental_merkle_matches_rfc6962);
    tcase_add_test(inv, csv_records);
    tcase_add_test(inv, finalizer_document);
    suite_add_tcase(s, money);
    suite_add_tcase(s, rate);
    suite_add_tcase(s, inv);
    return tst_run(s);
}
