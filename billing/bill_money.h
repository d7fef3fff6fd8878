/*
 * bill_money: integer money. Every amount is an int64_t count of the currency's minor units
 * (cents, yen, fils); nothing in billing ever holds money in binary floating point.
 *
 * Currencies: an ISO 4217 table with each code's minor-unit exponent (JPY 0, USD 2, BHD 3,
 * CLF 4, ...). Formatting puts the decimal point where the exponent says: 1234 is "12.34"
 * in USD, "1234" in JPY and "1.234" in BHD.
 *
 * Multipliers are exact decimals held as integer parts per million (BILL_PPM = 1.0), parsed
 * from decimal strings ("1.25"), never from binary floating point.
 *
 * The one rounding rule: a result that falls between two minor units is rounded half to even
 * (banker's rounding: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4), symmetric around zero, so
 * rounding errors over many lines do not drift in one direction. It applies to every
 * multiplication by a fractional multiplier (bill_mul_ppm) and to every decimal amount with
 * more digits than the currency has (bill_parse_decimal). Additions and integer
 * multiplications are exact; every operation checks overflow and answers BRK_ERANGE instead
 * of wrapping.
 *
 * Pure functions: any thread.
 */
#ifndef BILL_MONEY_H
#define BILL_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define BILL_CURRENCY_LEN 3    /* ISO 4217 alphabetic code */
#define BILL_EXPONENT_MAX 4    /* CLF and UYW; the largest ISO 4217 minor-unit exponent */
#define BILL_PPM 1000000       /* a multiplier of 1.0, in parts per million */
#define BILL_PPM_DIGITS 6      /* fractional digits a multiplier may have */
#define BILL_DECIMAL_MAX 40    /* characters of a decimal string accepted by the parser */
#define BILL_AMOUNT_STR_MAX 24 /* "-9223372036854775808" with a point, and the NUL */

typedef struct bill_currency {
    const char *code; /* "USD" */
    int exponent;     /* minor units per major unit = 10^exponent */
} bill_currency_t;

/* bill_currency_find: the table's entry for an upper-case ISO 4217 code, or NULL when the
 * code is unknown. The entry is static storage. */
const bill_currency_t *bill_currency_find(const char *code);

/* bill_currency_count / bill_currency_at: the whole table (for tests and documentation). */
size_t bill_currency_count(void);
const bill_currency_t *bill_currency_at(size_t i);

/* bill_add / bill_mul: *out = a + b or a * b. Returns 0, or BRK_ERANGE on overflow (then
 * *out is unchanged). */
int bill_add(int64_t a, int64_t b, int64_t *out);
int bill_mul(int64_t a, int64_t b, int64_t *out);

/* bill_mul_ppm: *out = amount * ppm / 10^6, rounded half to even. Returns 0, or BRK_ERANGE
 * when the result does not fit an int64_t. */
int bill_mul_ppm(int64_t amount, int64_t ppm, int64_t *out);

/*
 * bill_parse_decimal: parses "[-]digits[.digits]" (no exponent, no spaces, no '+') as an
 * integer count of 10^-scale units: with scale 2, "12.345" -> 1234 and "12.355" -> 1236
 * (half to even). exact: 1 refuses a string with non-zero digits beyond scale instead of
 * rounding it (multipliers are exact). Returns 0, BRK_EINVAL (not such a string, longer
 * than BILL_DECIMAL_MAX, or inexact when exact is set) or BRK_ERANGE (out of int64_t).
 */
int bill_parse_decimal(const char *s, int scale, int exact, int64_t *out);

/* bill_format: minor as a decimal string with exponent fractional digits into out: 1234 ->
 * "12.34" (2), "1234" (0), "1.234" (3); -5 -> "-0.05" (2). Returns the length, or
 * BRK_EINVAL when exponent is outside 0..BILL_EXPONENT_MAX (out then holds ""). */
int bill_format(int64_t minor, int exponent, char out[BILL_AMOUNT_STR_MAX]);

/* bill_format_ppm: a multiplier in its shortest decimal form: 1500000 -> "1.5", 2000000 ->
 * "2", 1 -> "0.000001". Returns the length. */
int bill_format_ppm(int64_t ppm, char out[BILL_AMOUNT_STR_MAX]);

#endif
