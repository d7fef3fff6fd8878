/*
 * unit_uri: request text (broker/brk_uri.h): the UTF-8 and control-character rule for decoded
 * paths and query strings, the query parser, and cutting/scrubbing text without splitting a
 * character. Pure functions, no database.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tst_check.h"
#include "brk_err.h"
#include "brk_uri.h"
#include "banned.h"

static int ok(const char *s)
{
    return brk_utf8_text_ok(s, strlen(s));
}

START_TEST(text_accepts)
{
    ck_assert(ok(""));
    ck_assert(ok("ctx_0123456789abcdef0123456789abcdef"));
    ck_assert(ok("caf\xc3\xa9"));                  /* é, 2 bytes */
    ck_assert(ok("\xe2\x82\xac"));                 /* €, 3 bytes */
    ck_assert(ok("\xf0\x9f\x98\x80"));             /* U+1F600, 4 bytes */
    ck_assert(ok("\xf4\x8f\xbf\xbf"));             /* U+10FFFF, the last code point */
    ck_assert(ok("\xed\x9f\xbf"));                 /* U+D7FF, just below the surrogates */
    ck_assert(ok("\xc2\xa0"));                     /* U+00A0, just past C1 */
    ck_assert(ok(" ~"));                           /* U+0020 and U+007E, around the controls */
}
END_TEST

START_TEST(text_refuses)
{
    ck_assert(!brk_utf8_text_ok("a\0b", 3));  /* NUL */
    ck_assert(!ok("a\x01"));                   /* C0 */
    ck_assert(!ok("\x1f"));                    /* last C0 */
    ck_assert(!ok("\n"));
    ck_assert(!ok("\x7f"));                    /* DEL */
    ck_assert(!ok("\xc2\x80"));                /* U+0080, first C1 */
    ck_assert(!ok("\xc2\x9f"));                /* U+009F, last C1 */
    ck_assert(!ok("\xff"));
    ck_assert(!ok("\xfe\xff"));
    ck_assert(!ok("\x80"));                    /* lone continuation */
    ck_assert(!ok("\xc3"));                    /* cut 2-byte sequence */
    ck_assert(!ok("\xe2\x82"));                /* cut 3-byte sequence */
    ck_assert(!ok("\xf0\x9f\x98"));            /* cut 4-byte sequence */
    ck_assert(!ok("\xc0\xaf"));                /* overlong '/' */
    ck_assert(!ok("\xc1\xbf"));
    ck_assert(!ok("\xe0\x80\xaf"));            /* overlong, 3 bytes */
    ck_assert(!ok("\xf0\x80\x80\xaf"));        /* overlong, 4 bytes */
    ck_assert(!ok("\xed\xa0\x80"));            /* U+D800, a surrogate */
    ck_assert(!ok("\xed\xbf\xbf"));            /* U+DFFF */
    ck_assert(!ok("\xf4\x90\x80\x80"));        /* U+110000, one past the last */
    ck_assert(!ok("\xf5\x80\x80\x80"));
    ck_assert(!ok("\xc3\x28"));                /* bad continuation */
}
END_TEST

START_TEST(cut_at_boundaries)
{
    const char *s = "a\xe2\x82\xac" "b"; /* a € b: 5 bytes, € at 1..3 */
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 10), 5);
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 5), 5);
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 4), 4);
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 3), 1); /* inside €: back to before it */
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 2), 1);
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 1), 1);
    ck_assert_uint_eq(brk_utf8_cut(s, 5, 0), 0);
    /* a run of continuation bytes longer than a character: cut where asked */
    ck_assert_uint_eq(brk_utf8_cut("\x80\x80\x80\x80\x80\x80", 6, 5), 5);
    ck_assert_uint_eq(brk_utf8_valid_prefix("ab\xe2\x82", 4), 2);
    ck_assert_uint_eq(brk_utf8_valid_prefix("ab\xe2\x82\xac", 5), 5);
}
END_TEST

START_TEST(scrub)
{
    char a[] = "ok \xe2\x82\xac";
    ck_assert_uint_eq(brk_utf8_scrub(a), 0);
    ck_assert_str_eq(a, "ok \xe2\x82\xac");
    char b[] = "x\xe2\x82";                    /* cut € at the end */
    ck_assert_uint_eq(brk_utf8_scrub(b), 2);
    ck_assert_str_eq(b, "x??");
    char c[] = "a\x01\x7f" "b\xff";
    ck_assert_uint_eq(brk_utf8_scrub(c), 3);
    ck_assert_str_eq(c, "a??b?");
}
END_TEST

static int qc(const char *s)
{
    return brk_query_check(s, strlen(s));
}

START_TEST(query_check)
{
    ck_assert_int_eq(qc(""), 0);
    ck_assert_int_eq(qc("after=10"), 0);
    ck_assert_int_eq(qc("a=1&&b=2&flag&=x&"), 0);
    ck_assert_int_eq(qc("name=caf%C3%A9+ok"), 0);
    ck_assert_int_eq(qc("name=caf\xc3\xa9"), 0);   /* raw UTF-8 is fine too */
    ck_assert_int_eq(qc("a=%00"), BRK_EINVAL);
    ck_assert_int_eq(qc("%00=1"), BRK_EINVAL);     /* names are checked too */
    ck_assert_int_eq(qc("a=%ff"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%e2%82"), BRK_EINVAL);  /* a character cut by the query's end */
    ck_assert_int_eq(qc("a=%e2%82&b=%ac"), BRK_EINVAL); /* ... or by '&' */
    ck_assert_int_eq(qc("a=\xff"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%0a"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%7F"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%c2%85"), BRK_EINVAL);  /* NEL, a C1 control */
    ck_assert_int_eq(qc("a=%"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%4"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%zz"), BRK_EINVAL);
    ck_assert_int_eq(qc("a=%ed%a0%80"), BRK_EINVAL); /* a surrogate */
}
END_TEST

START_TEST(query_long_value)
{
    /* a value much longer than any internal buffer, valid, then with one bad character last */
    size_t n = 4000;
    char *q = malloc(n + 16);
    memcpy(q, "v=", 2);
    for (size_t i = 0; i < n; i += 3)
        memcpy(q + 2 + i, "%41", 3);
    q[2 + n - n % 3] = '\0';
    ck_assert_int_eq(qc(q), 0);
    size_t l = strlen(q);
    memcpy(q + l, "%01", 4);
    ck_assert_int_eq(qc(q), BRK_EINVAL);
    free(q);
}
END_TEST

START_TEST(query_param_count)
{
    char q[BRK_QUERY_MAX_PARAMS * 4 + 8] = "";
    size_t o = 0;
    for (int i = 0; i < BRK_QUERY_MAX_PARAMS; i++)
        o += (size_t)snprintf(q + o, sizeof q - o, "%sa=1", i ? "&" : "");
    ck_assert_int_eq(qc(q), 0);
    snprintf(q + o, sizeof q - o, "&b");
    ck_assert_int_eq(qc(q), BRK_EINVAL);
}
END_TEST

START_TEST(query_get)
{
    char out[8];
    size_t len;
    const char *q = "x=1&after=42&name=caf%C3%A9&flag&sp=a+b&bad=%00&long=12345678";
    size_t n = strlen(q);
    ck_assert_int_eq(brk_query_get(q, n, "after", out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "42");
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(brk_query_get(q, n, "name", out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "caf\xc3\xa9");
    ck_assert_int_eq(brk_query_get(q, n, "flag", out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(brk_query_get(q, n, "sp", out, sizeof out, &len), 0);
    ck_assert_str_eq(out, "a b");
    ck_assert_int_eq(brk_query_get(q, n, "missing", out, sizeof out, &len), BRK_ENOTFOUND);
    ck_assert_int_eq(brk_query_get(q, n, "bad", out, sizeof out, &len), BRK_EINVAL);
    ck_assert_str_eq(out, "");
    /* 7 bytes fit an 8-byte buffer, 8 do not */
    ck_assert_int_eq(brk_query_get("v=1234567", 9, "v", out, sizeof out, &len), 0);
    ck_assert_int_eq(brk_query_get(q, n, "long", out, sizeof out, &len), BRK_ETOOBIG);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(len, 0);
}
END_TEST

static Suite *uri_suite(void)
{
    Suite *s = suite_create("uri");
    TCase *tc = tcase_create("text");
    tcase_add_test(tc, text_accepts);
    tcase_add_test(tc, text_refuses);
    tcase_add_test(tc, cut_at_boundaries);
    tcase_add_test(tc, scrub);
    suite_add_tcase(s, tc);
    tc = tcase_create("query");
    tcase_add_test(tc, query_check);
    tcase_add_test(tc, query_long_value);
    tcase_add_test(tc, query_param_count);
    tcase_add_test(tc, query_get);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(uri_suite());
}
