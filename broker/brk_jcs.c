/*
 * brk_jcs: RFC 8785 canonical JSON of jansson values, and CIDs over it.
 *
 * The three places where canonical JSON is easy to get subtly wrong:
 *
 * - Member order is by UTF-16 code units, as ECMAScript compares strings, not by UTF-8 bytes
 *   or code points. The two orders differ only when a supplementary-plane character
 *   (U+10000 and up, a surrogate pair in UTF-16, starting 0xD800..0xDBFF) meets a character in
 *   U+E000..U+FFFF: in UTF-16 the pair sorts first. key_cmp decodes code points and compares
 *   their first UTF-16 unit, then the code point itself (which orders low surrogates).
 *
 * - Numbers follow Number.prototype.toString: the fewest significant digits that read back
 *   as the same double (ties to the closest, then to even), then ES6's choice between plain
 *   and exponent notation. The digits come from printf's correctly rounded "%.*e" at 1..17
 *   significant digits; the first precision at which a candidate round-trips through strtod
 *   wins. At each precision the correctly rounded candidate is tried first (it is the
 *   closest), then its neighbour on the other side of the value: near a power of two the
 *   interval of decimals that read back as the value is lopsided, so the closest candidate
 *   can miss it while the other neighbour is inside. jansson integers are converted to
 *   double first, as JavaScript would hold them. -0 prints as "0"; NaN and infinities have
 *   no JSON form and are refused.
 *
 * - Strings: only '"', '\\' and the C0 controls are escaped, the controls with the short
 *   forms \b \f \n \r \t where they exist and \u00xx (lowercase hex) otherwise. Everything
 *   else, U+007F and U+2028 included, is copied as UTF-8. Strings and keys are checked to be
 *   well-formed UTF-8 (jansson can be handed unchecked bytes through its *_nocheck calls).
 *
 * Depth: the top-level value is at depth 0 and each array or object adds one; a container at
 * depth BRK_JCS_MAX_DEPTH is accepted, one deeper is refused. The recursion is therefore
 * bounded by that constant, whatever the input.
 *
 * Output is built in one growing buffer (brk_realloc, which aborts on out-of-memory); its size
 * is bounded by the input value's, which the caller already holds in memory.
 */
#include "brk_jcs.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

/* Scratch size for printf's "%.16e" and candidate texts; results fit BRK_JCS_NUM_MAX. */
#define JCS_NUM_MAX 40
#define JCS_INITIAL_CAP 256

struct jbuf {
    char *p;
    size_t len, cap;
};

static void jb_reserve(struct jbuf *b, size_t more)
{
    size_t need = b->len + more + 1; /* room for the final NUL, always */

    if (need <= b->cap)
        return;
    if (b->cap == 0)
        b->cap = JCS_INITIAL_CAP;
    while (b->cap < need)
        b->cap *= 2;
    b->p = brk_realloc(b->p, b->cap);
}

static void jb_put(struct jbuf *b, const char *s, size_t n)
{
    jb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void jb_putc(struct jbuf *b, char c)
{
    jb_reserve(b, 1);
    b->p[b->len++] = c;
}

/* ---- UTF-8 ---- */

/* 1 when (s, n) is well-formed UTF-8: shortest forms only, no surrogates, <= U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len, k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Decodes the code point at s[*i] of a string already checked by utf8_valid. */
static uint32_t utf8_next(const unsigned char *s, size_t *i)
{
    unsigned char c = s[*i];
    size_t len, k;
    uint32_t cp;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c < 0xe0) {
        len = 2;
        cp = c & 0x1f;
    } else if (c < 0xf0) {
        len = 3;
        cp = c & 0x0f;
    } else {
        len = 4;
        cp = c & 0x07;
    }
    for (k = 1; k < len; k++)
        cp = cp << 6 | (s[*i + k] & 0x3f);
    *i += len;
    return cp;
}

/* The first UTF-16 code unit of cp: itself in the BMP, else its high surrogate. */
static uint32_t utf16_first(uint32_t cp)
{
    return cp < 0x10000 ? cp : 0xd800 + ((cp - 0x10000) >> 10);
}

/* ---- strings ---- */

static int jcs_string(struct jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    if (!utf8_valid((const unsigned char *)s, n))
        return BRK_EINVAL;
    jb_putc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jb_put(b, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0x0f];
            elen = 6;
            break;
        }
        jb_put(b, esc, elen);
    }
    jb_put(b, s + run, n - run);
    jb_putc(b, '"');
    return 0;
}

/* ---- numbers ---- */

/*
 * A decimal candidate: digits d[0..nd) (d[0] != '0') meaning d[0].d[1..] x 10^exp10.
 * Parsed from printf's "%.*e" output, which for a finite positive double reads
 * "D[.DDD]e[+-]XX"; the radix character is skipped whatever it is, and candidates are read
 * back as an integer mantissa with an exponent ("DDDDe-N"), so a program that sets LC_NUMERIC
 * to a comma locale cannot change the result.
 */
struct dec {
    char d[20];
    int nd;
    int exp10;
};

static void dec_parse(const char *s, struct dec *x)
{
    const char *p = s;

    x->nd = 0;
    for (; *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            x->d[x->nd++] = *p;
    x->exp10 = (int)strtol(p + 1, NULL, 10);
}

/* The double nearest to x (strtod rounds to nearest, ties to even). */
static double dec_value(const struct dec *x)
{
    char buf[JCS_NUM_MAX];

    memcpy(buf, x->d, (size_t)x->nd);
    snprintf(buf + x->nd, sizeof buf - (size_t)x->nd, "e%d", x->exp10 - (x->nd - 1));
    return strtod(buf, NULL);
}

/* x + one unit in its last digit. A carry out of the first digit gives 10^(exp10 + 1). */
static void dec_inc(struct dec *x)
{
    int i = x->nd - 1;

    while (i >= 0 && x->d[i] == '9')
        x->d[i--] = '0';
    if (i >= 0) {
        x->d[i]++;
        return;
    }
    x->d[0] = '1'; /* 9.99 -> 10.00 = 1.000e+1, same number of digits */
    x->exp10++;
}

/* x - one unit in its last digit. 1.000e+k becomes 9.999e+(k-1): the next lower decimal
 * with as many significant digits. */
static void dec_dec(struct dec *x)
{
    int i = x->nd - 1;

    while (i > 0 && x->d[i] == '0') /* d[0] is never '0' */
        x->d[i--] = '9';
    x->d[i]--;
    if (i == 0 && x->d[0] == '0') {
        x->d[0] = '9';
        x->exp10--;
    }
}

/* Shortest round-trip digits of a finite v > 0 (ES6 7.1.12.1 steps 5 and on: k, n, s). */
static void shortest_digits(double v, struct dec *out)
{
    char buf[JCS_NUM_MAX];
    int p;

    for (p = 0; p <= 16; p++) {
        struct dec c;
        double back;

        snprintf(buf, sizeof buf, "%.*e", p, v);
        dec_parse(buf, &c);
        back = dec_value(&c);
        if (back == v) {
            *out = c;
            goto trim;
        }
        /* The other decimal with p + 1 digits that brackets v (see the file comment). */
        if (back < v)
            dec_inc(&c);
        else
            dec_dec(&c);
        if (dec_value(&c) == v) {
            *out = c;
            goto trim;
        }
    }
    /* 17 significant digits always identify a double, so the loop cannot fall through. */
    snprintf(buf, sizeof buf, "%.16e", v);
    dec_parse(buf, out);
trim:
    while (out->nd > 1 && out->d[out->nd - 1] == '0')
        out->nd--;
}

/* ES6 Number::toString (7.1.12.1) of d into buf. */
int brk_jcs_format_number(double v, char buf[BRK_JCS_NUM_MAX])
{
    struct dec x;
    size_t len = 0;
    int k, n, i;

    if (!isfinite(v)) {
        buf[0] = '\0';
        return BRK_EINVAL;
    }
    if (v == 0) { /* both zeros */
        buf[0] = '0';
        buf[1] = '\0';
        return 1;
    }
    if (v < 0) {
        buf[len++] = '-';
        v = -v;
    }
    shortest_digits(v, &x);
    k = x.nd;          /* number of significant digits */
    n = x.exp10 + 1;   /* position of the decimal point: value = 0.digits x 10^n */
    if (k <= n && n <= 21) {
        /* integer: the digits then n - k zeros */
        memcpy(buf + len, x.d, (size_t)k);
        len += (size_t)k;
        for (i = 0; i < n - k; i++)
            buf[len++] = '0';
    } else if (0 < n && n <= 21) {
        /* point inside the digits */
        memcpy(buf + len, x.d, (size_t)n);
        len += (size_t)n;
        buf[len++] = '.';
        memcpy(buf + len, x.d + n, (size_t)(k - n));
        len += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        /* 0.000ddd */
        buf[len++] = '0';
        buf[len++] = '.';
        for (i = 0; i < -n; i++)
            buf[len++] = '0';
        memcpy(buf + len, x.d, (size_t)k);
        len += (size_t)k;
    } else {
        /* d[.ddd]e(+|-)exp */
        buf[len++] = x.d[0];
        if (k > 1) {
            buf[len++] = '.';
            memcpy(buf + len, x.d + 1, (size_t)(k - 1));
            len += (size_t)(k - 1);
        }
        len += (size_t)snprintf(buf + len, BRK_JCS_NUM_MAX - len, "e%c%d",
                                n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
    buf[len] = '\0';
    return (int)len;
}

static int jcs_number(struct jbuf *b, double v)
{
    char buf[BRK_JCS_NUM_MAX];
    int len = brk_jcs_format_number(v, buf);

    if (len < 0)
        return len;
    jb_put(b, buf, (size_t)len);
    return 0;
}

/* ---- containers ---- */

struct member {
    const char *key;
    size_t klen;
    json_t *value;
};

/* Orders member names by their UTF-16 code units (see the file comment). */
static int key_cmp(const void *pa, const void *pb)
{
    const struct member *a = pa, *b = pb;
    const unsigned char *sa = (const unsigned char *)a->key, *sb = (const unsigned char *)b->key;
    size_t i = 0, j = 0;

    while (i < a->klen && j < b->klen) {
        uint32_t ca = utf8_next(sa, &i), cb = utf8_next(sb, &j);
        uint32_t ua, ub;

        if (ca == cb)
            continue;
        ua = utf16_first(ca);
        ub = utf16_first(cb);
        if (ua != ub)
            return ua < ub ? -1 : 1;
        return ca < cb ? -1 : 1; /* same high surrogate: low surrogates follow code points */
    }
    return (i < a->klen) - (j < b->klen); /* a proper prefix sorts first */
}

static int jcs_value(struct jbuf *b, const json_t *v, int depth);

static int jcs_object(struct jbuf *b, const json_t *v, int depth)
{
    struct member *m = NULL;
    size_t n = json_object_size(v), i = 0;
    void *it;
    int rc = 0;

    if (n > 0)
        m = brk_malloc(n * sizeof *m);
    /* jansson's iteration API takes a non-const object; it does not modify it. */
    for (it = json_object_iter((json_t *)v); it != NULL && i < n;
         it = json_object_iter_next((json_t *)v, it)) {
        m[i].key = json_object_iter_key(it);
        m[i].klen = json_object_iter_key_len(it);
        m[i].value = json_object_iter_value(it);
        if (!utf8_valid((const unsigned char *)m[i].key, m[i].klen)) {
            rc = BRK_EINVAL;
            goto out;
        }
        i++;
    }
    n = i;
    if (n > 1)
        qsort(m, n, sizeof *m, key_cmp);
    jb_putc(b, '{');
    for (i = 0; i < n; i++) {
        if (i > 0)
            jb_putc(b, ',');
        rc = jcs_string(b, m[i].key, m[i].klen);
        if (rc != 0)
            goto out;
        jb_putc(b, ':');
        rc = jcs_value(b, m[i].value, depth);
        if (rc != 0)
            goto out;
    }
    jb_putc(b, '}');
out:
    free(m);
    return rc;
}

static int jcs_array(struct jbuf *b, const json_t *v, int depth)
{
    size_t i, n = json_array_size(v);
    int rc;

    jb_putc(b, '[');
    for (i = 0; i < n; i++) {
        if (i > 0)
            jb_putc(b, ',');
        rc = jcs_value(b, json_array_get(v, i), depth);
        if (rc != 0)
            return rc;
    }
    jb_putc(b, ']');
    return 0;
}

/* Serializes v; depth is the number of containers enclosing it (see the file comment). */
static int jcs_value(struct jbuf *b, const json_t *v, int depth)
{
    if (v == NULL)
        return BRK_EINVAL;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= BRK_JCS_MAX_DEPTH)
            return BRK_EINVAL;
        return jcs_object(b, v, depth + 1);
    case JSON_ARRAY:
        if (depth >= BRK_JCS_MAX_DEPTH)
            return BRK_EINVAL;
        return jcs_array(b, v, depth + 1);
    case JSON_STRING:
        return jcs_string(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return jcs_number(b, (double)json_integer_value(v));
    case JSON_REAL:
        return jcs_number(b, json_real_value(v));
    case JSON_TRUE:
        jb_put(b, "true", 4);
        return 0;
    case JSON_FALSE:
        jb_put(b, "false", 5);
        return 0;
    case JSON_NULL:
        jb_put(b, "null", 4);
        return 0;
    }
    return BRK_EINVAL;
}

/* ---- public ---- */

int brk_jcs_canonicalize(const json_t *v, char **out, size_t *outlen)
{
    struct jbuf b = {NULL, 0, 0};
    int rc;

    *out = NULL;
    rc = jcs_value(&b, v, 0);
    if (rc != 0)
        goto out;
    jb_reserve(&b, 0);
    b.p[b.len] = '\0';
    *out = b.p;
    if (outlen != NULL)
        *outlen = b.len;
    b.p = NULL;
out:
    free(b.p);
    return rc;
}

void brk_cid_of_digest(const uint8_t digest[BRK_SHA256_LEN], char cid[BRK_CID_LEN + 1])
{
    memcpy(cid, "sha256:", 7);
    brk_hex(digest, BRK_SHA256_LEN, cid + 7);
}

void brk_cid_of_bytes(const void *p, size_t n, char cid[BRK_CID_LEN + 1])
{
    uint8_t d[BRK_SHA256_LEN];

    brk_sha256(p, n, d);
    brk_cid_of_digest(d, cid);
}

int brk_jcs_cid(const json_t *v, char cid[BRK_CID_LEN + 1])
{
    char *canon = NULL;
    size_t len = 0;
    int rc;

    rc = brk_jcs_canonicalize(v, &canon, &len);
    if (rc != 0)
        goto out;
    brk_cid_of_bytes(canon, len, cid);
out:
    free(canon);
    return rc;
}

int brk_cid_valid(const char *s)
{
    size_t i;

    if (s == NULL || strncmp(s, "sha256:", 7) != 0)
        return 0;
    for (i = 7; i < BRK_CID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[BRK_CID_LEN] == '\0';
}
