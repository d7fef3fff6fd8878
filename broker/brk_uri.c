/*
 * brk_uri: request-text checks for paths and query strings; see brk_uri.h.
 *
 * The UTF-8 decoder follows the Unicode table of well-formed byte sequences (Unicode 15,
 * table 3-7): the second byte's range depends on the first (E0: A0..BF, ED: 80..9F, F0:
 * 90..BF, F4: 80..8F), which rules out overlong forms, surrogates and code points past
 * U+10FFFF without decoding them first.
 */
#include "brk_uri.h"

#include <stdint.h>
#include <string.h>

#include "brk_crypto.h" /* brk_hex_digit */
#include "brk_err.h"
#include "banned.h"

/* The length of the well-formed sequence at p (at most n bytes), its code point in *cp; 0
 * when the bytes there are not one. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t len;
    uint32_t c;

    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        len = 2;
        c = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
        len = 3;
        c = b & 0x0f;
        if (b == 0xe0)
            lo = 0xa0;
        else if (b == 0xed)
            hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        len = 4;
        c = b & 0x07;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        unsigned char x = p[i];
        if (x < (i == 1 ? lo : 0x80) || x > (i == 1 ? hi : 0xbf))
            return 0;
        c = (c << 6) | (x & 0x3f);
    }
    *cp = c;
    return len;
}

static int is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

int brk_utf8_text_ok(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        size_t l = utf8_seq(s + i, n - i, &c);
        if (l == 0 || is_control(c))
            return 0;
        i += l;
    }
    return 1;
}

size_t brk_utf8_valid_prefix(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        size_t l = utf8_seq(s + i, n - i, &c);
        if (l == 0)
            break;
        i += l;
    }
    return i;
}

size_t brk_utf8_cut(const char *p, size_t n, size_t max)
{
    const unsigned char *s = (const unsigned char *)p;
    if (n <= max)
        return n;
    /* s[max] is the first byte left out: back off while it continues a sequence (at most
     * three continuation bytes belong to one character). */
    size_t k = max;
    while (k > 0 && max - k < 3 && (s[k] & 0xc0) == 0x80)
        k--;
    return (s[k] & 0xc0) == 0x80 ? max : k;
}

size_t brk_utf8_scrub(char *str)
{
    unsigned char *s = (unsigned char *)str;
    size_t n = strlen(str), i = 0, replaced = 0;
    while (i < n) {
        uint32_t c;
        size_t l = utf8_seq(s + i, n - i, &c);
        if (l == 0 || c < 0x20 || c == 0x7f) {
            s[i++] = '?';
            replaced++;
            continue;
        }
        i += l;
    }
    return replaced;
}

/*
 * Percent-decodes the n bytes at p into out (cap bytes; NULL to only check and measure).
 * Returns the decoded length, or BRK_EINVAL for a bad escape, BRK_ETOOBIG past cap.
 */
static long decode(const char *p, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3 || (hi = brk_hex_digit(p[i + 1])) < 0 ||
                (lo = brk_hex_digit(p[i + 2])) < 0)
                return BRK_EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (out != NULL) {
            if (o >= cap)
                return BRK_ETOOBIG;
            out[o] = c;
        }
        o++;
    }
    return (long)o;
}

/* Checks one percent-encoded name or value: 0 or BRK_EINVAL. The decoded bytes are checked
 * as a stream, one character at a time, so no length limit is needed beyond the path's. */
static int part_ok(const char *p, size_t n)
{
    unsigned char seq[4];
    size_t ns = 0;
    if (decode(p, n, NULL, 0) < 0)
        return BRK_EINVAL; /* a bad escape; past this, every '%' has two hex digits */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        uint32_t cp;
        if (c == '%') {
            c = (char)(brk_hex_digit(p[i + 1]) << 4 | brk_hex_digit(p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        seq[ns++] = (unsigned char)c;
        /* the sequence length the lead byte announces; an invalid lead fails below */
        size_t need = seq[0] < 0x80 ? 1 : seq[0] < 0xe0 ? 2 : seq[0] < 0xf0 ? 3 : 4;
        if (ns < need)
            continue;
        if (utf8_seq(seq, ns, &cp) != ns || is_control(cp))
            return BRK_EINVAL;
        ns = 0;
    }
    return ns == 0 ? 0 : BRK_EINVAL;
}

int brk_query_check(const char *q, size_t n)
{
    const char *p = q, *end = q + n;
    size_t parts = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t len = amp ? (size_t)(amp - p) : (size_t)(end - p);
        if (len > 0) {
            if (++parts > BRK_QUERY_MAX_PARAMS)
                return BRK_EINVAL;
            const char *eq = memchr(p, '=', len);
            size_t nl = eq ? (size_t)(eq - p) : len;
            if (part_ok(p, nl) != 0)
                return BRK_EINVAL;
            if (eq != NULL && part_ok(eq + 1, len - nl - 1) != 0)
                return BRK_EINVAL;
        }
        p += len + 1;
    }
    return 0;
}

int brk_query_get(const char *q, size_t n, const char *name, char *out, size_t cap, size_t *len)
{
    const char *p = q, *end = q + n;
    size_t want = strlen(name);
    char nbuf[64];

    if (cap > 0)
        out[0] = '\0';
    *len = 0;
    if (cap == 0)
        return BRK_ETOOBIG;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t plen = amp ? (size_t)(amp - p) : (size_t)(end - p);
        const char *eq = memchr(p, '=', plen);
        size_t nl = eq ? (size_t)(eq - p) : plen;
        long dn = decode(p, nl, nbuf, sizeof nbuf);
        if (plen > 0 && dn >= 0 && (size_t)dn == want && memcmp(nbuf, name, want) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vl = eq ? plen - nl - 1 : 0;
            long dv = decode(v, vl, out, cap - 1);
            if (dv < 0 || !brk_utf8_text_ok(out, (size_t)dv)) {
                out[0] = '\0';
                return dv == BRK_ETOOBIG ? BRK_ETOOBIG : BRK_EINVAL;
            }
            out[dv] = '\0';
            *len = (size_t)dv;
            return 0;
        }
        p += plen + 1;
    }
    return BRK_ENOTFOUND;
}
