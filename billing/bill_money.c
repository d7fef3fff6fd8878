/*
 * bill_money: integer money, the ISO 4217 table and the half-even rounding rule; see
 * bill_money.h. Products are formed in 128-bit integers so that amount * multiplier is exact
 * before the one rounding step, and only the final result is range-checked.
 */
#include "bill_money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

/* ISO 4217 (list one, 2024), codes with a minor unit only; sorted by code for bsearch. */
static const bill_currency_t currencies[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2},
    {"AWG", 2}, {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BGN", 2}, {"BHD", 3}, {"BIF", 0},
    {"BMD", 2}, {"BND", 2}, {"BOB", 2}, {"BOV", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2},
    {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2}, {"CHE", 2}, {"CHF", 2}, {"CHW", 2}, {"CLF", 4},
    {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"COU", 2}, {"CRC", 2}, {"CUP", 2}, {"CVE", 2}, {"CZK", 2},
    {"DJF", 0}, {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2}, {"EUR", 2},
    {"FJD", 2}, {"FKP", 2}, {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0},
    {"GTQ", 2}, {"GYD", 2}, {"HKD", 2}, {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2},
    {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0}, {"JMD", 2}, {"JOD", 3}, {"JPY", 0}, {"KES", 2},
    {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0}, {"KWD", 3}, {"KYD", 2}, {"KZT", 2},
    {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3}, {"MAD", 2}, {"MDL", 2},
    {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2}, {"MVR", 2},
    {"MWK", 2}, {"MXN", 2}, {"MXV", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2}, {"NIO", 2},
    {"NOK", 2}, {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2},
    {"PKR", 2}, {"PLN", 2}, {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0},
    {"SAR", 2}, {"SBD", 2}, {"SCR", 2}, {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2},
    {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2}, {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2},
    {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2}, {"TTD", 2}, {"TWD", 2}, {"TZS", 2},
    {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"USN", 2}, {"UYI", 0}, {"UYU", 2}, {"UYW", 4}, {"UZS", 2},
    {"VED", 2}, {"VES", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XOF", 0},
    {"XPF", 0}, {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};
#define NCURRENCIES (sizeof currencies / sizeof currencies[0])

static int cmp_code(const void *key, const void *elem)
{
    return strcmp(key, ((const bill_currency_t *)elem)->code);
}

const bill_currency_t *bill_currency_find(const char *code)
{
    if (code == NULL || strlen(code) != BILL_CURRENCY_LEN)
        return NULL;
    return bsearch(code, currencies, NCURRENCIES, sizeof currencies[0], cmp_code);
}

size_t bill_currency_count(void)
{
    return NCURRENCIES;
}

const bill_currency_t *bill_currency_at(size_t i)
{
    return i < NCURRENCIES ? &currencies[i] : NULL;
}

int bill_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return BRK_ERANGE;
    *out = r;
    return 0;
}

int bill_mul(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return BRK_ERANGE;
    *out = r;
    return 0;
}

/*
 * num / den rounded half to even, den > 0. C division truncates toward zero, so the
 * remainder has num's sign; the magnitude is rounded and the sign put back, which makes the
 * rule symmetric (-2.5 -> -2 exactly as 2.5 -> 2).
 */
static __int128 div_half_even(__int128 num, __int128 den)
{
    __int128 q = num / den, r = num % den;
    __int128 twice = (r < 0 ? -r : r) * 2;
    if (twice > den || (twice == den && (q % 2) != 0))
        q += num < 0 ? -1 : 1;
    return q;
}

static int fits64(__int128 v)
{
    return v >= INT64_MIN && v <= INT64_MAX;
}

int bill_mul_ppm(int64_t amount, int64_t ppm, int64_t *out)
{
    /* |amount * ppm| < 2^126: the product itself cannot overflow 128 bits. */
    __int128 q = div_half_even((__int128)amount * ppm, BILL_PPM);
    if (!fits64(q))
        return BRK_ERANGE;
    *out = (int64_t)q;
    return 0;
}

int bill_parse_decimal(const char *s, int scale, int exact, int64_t *out)
{
    /* 10^37 < 2^127: keeping at most 37 significant digits before range-checking is safe. */
    const __int128 cap = (__int128)INT64_MAX * 10 + 9;
    __int128 v = 0;
    int neg = 0, frac = 0, digits = 0, dot = 0;
    char first_dropped = 0;
    int dropped_nonzero_after = 0;
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > BILL_DECIMAL_MAX || scale < 0 || scale > 18)
        return BRK_EINVAL;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    for (; *s; s++) {
        if (*s == '.') {
            if (dot || digits == 0)
                return BRK_EINVAL;
            dot = 1;
            continue;
        }
        if (*s < '0' || *s > '9')
            return BRK_EINVAL;
        digits++;
        if (dot && frac == scale) {
            /* Beyond the scale: remember what decides the rounding. */
            if (first_dropped == 0)
                first_dropped = *s;
            else if (*s != '0')
                dropped_nonzero_after = 1;
            continue;
        }
        if (dot)
            frac++;
        v = v * 10 + (*s - '0');
        if (v > cap)
            return BRK_ERANGE;
    }
    if (digits == 0 || (dot && s[-1] == '.'))
        return BRK_EINVAL;
    for (; frac < scale; frac++) {
        v *= 10;
        if (v > cap)
            return BRK_ERANGE;
    }
    if (first_dropped != 0 && (first_dropped != '0' || dropped_nonzero_after)) {
        if (exact)
            return BRK_EINVAL;
        if (first_dropped > '5' || (first_dropped == '5' && dropped_nonzero_after) ||
            (first_dropped == '5' && v % 2 != 0))
            v += 1;
    }
    if (neg)
        v = -v;
    if (!fits64(v))
        return BRK_ERANGE;
    *out = (int64_t)v;
    return 0;
}

int bill_format(int64_t minor, int exponent, char out[BILL_AMOUNT_STR_MAX])
{
    /* The magnitude as unsigned, so INT64_MIN formats too. */
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor, div = 1;
    if (exponent < 0 || exponent > BILL_EXPONENT_MAX) {
        out[0] = '\0';
        return BRK_EINVAL;
    }
    if (exponent == 0)
        return snprintf(out, BILL_AMOUNT_STR_MAX, "%s%llu", minor < 0 ? "-" : "",
                        (unsigned long long)mag);
    for (int i = 0; i < exponent; i++)
        div *= 10;
    return snprintf(out, BILL_AMOUNT_STR_MAX, "%s%llu.%0*llu", minor < 0 ? "-" : "",
                    (unsigned long long)(mag / div), exponent, (unsigned long long)(mag % div));
}

int bill_format_ppm(int64_t ppm, char out[BILL_AMOUNT_STR_MAX])
{
    uint64_t mag = ppm < 0 ? (uint64_t)0 - (uint64_t)ppm : (uint64_t)ppm;
    int n = snprintf(out, BILL_AMOUNT_STR_MAX, "%s%llu.%06llu", ppm < 0 ? "-" : "",
                     (unsigned long long)(mag / BILL_PPM), (unsigned long long)(mag % BILL_PPM));
    while (out[n - 1] == '0')
        out[--n] = '\0';
    if (out[n - 1] == '.')
        out[--n] = '\0';
    return n;
}
