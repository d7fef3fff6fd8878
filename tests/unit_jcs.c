/*
 * unit_jcs: RFC 8785 canonical JSON and CIDs.
 *
 * Every vector in $GSAP_TESTDATA/jcs/input is canonicalized and compared byte for byte with
 * jcs/output/<same name>; the directory is listed at run time, so a new vector is tested by
 * dropping it in. The other tests pin what the vectors do not reach: ES6 number formatting
 * at its edges, UTF-16 member order, the depth limit on both sides, and CIDs.
 */
#include "tst_check.h"
#include "brk_jcs.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

#define PARSE_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)
#define JCS_VECTOR_FILES 6 /* tests/data/jcs/input: every file shipped must be read */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    ck_assert_msg(f != NULL, "cannot open '%s': %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* Canonical text of v, asserting success. Caller frees. */
static char *canon(json_t *v)
{
    char *out = NULL;
    size_t len = 0;

    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(brk_jcs_canonicalize(v, &out, &len), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

static void assert_canon_json(const char *in, const char *want)
{
    json_error_t err;
    json_t *v = json_loads(in, PARSE_FLAGS, &err);
    char *got;

    ck_assert_msg(v != NULL, "cannot parse %s: %s", in, err.text);
    got = canon(v);
    ck_assert_str_eq(got, want);
    free(got);
    json_decref(v);
}

/* Checks both the formatting entry point and the number inside a canonicalized value. */
static void assert_number(double d, const char *want)
{
    char buf[BRK_JCS_NUM_MAX];
    json_t *v = json_real(d);
    char *got = canon(v);

    ck_assert_msg(strcmp(got, want) == 0, "%.17g: got %s, want %s", d, got, want);
    ck_assert_int_eq(brk_jcs_format_number(d, buf), (int)strlen(want));
    ck_assert_str_eq(buf, want);
    free(got);
    json_decref(v);
}

START_TEST(test_vectors)
{
    const char *base = getenv("GSAP_TESTDATA");
    char indir[4096], inpath[4096], outpath[4096];
    struct dirent *de;
    int count = 0;
    DIR *d;

    ck_assert_msg(base != NULL, "GSAP_TESTDATA is not set");
    ck_assert_int_lt(snprintf(indir, sizeof indir, "%s/jcs/input", base), (int)sizeof indir);
    d = opendir(indir);
    ck_assert_msg(d != NULL, "cannot list '%s': %s", indir, strerror(errno));
    while ((de = readdir(d)) != NULL) {
        json_error_t err;
        size_t inlen, wantlen, gotlen;
        char *in, *want, *got = NULL;
        json_t *v;

        if (de->d_name[0] == '.')
            continue;
        ck_assert_int_lt(snprintf(inpath, sizeof inpath, "%s/%s", indir, de->d_name),
                         (int)sizeof inpath);
        ck_assert_int_lt(snprintf(outpath, sizeof outpath, "%s/jcs/output/%s", base, de->d_name),
                         (int)sizeof outpath);
        in = read_file(inpath, &inlen);
        want = read_file(outpath, &wantlen);
        v = json_loadb(in, inlen, PARSE_FLAGS, &err);
        ck_assert_msg(v != NULL, "cannot parse '%s': %s", inpath, err.text);
        ck_assert_int_eq(brk_jcs_canonicalize(v, &got, &gotlen), 0);
        ck_assert_msg(gotlen == wantlen && memcmp(got, want, wantlen) == 0,
                      "vector '%s': got %s, want %s", de->d_name, got, want);
        free(got);
        free(in);
        free(want);
        json_decref(v);
        count++;
    }
    closedir(d);
    ck_assert_int_eq(count, JCS_VECTOR_FILES);
}
END_TEST

START_TEST(test_numbers_es6)
{
    assert_number(1e21, "1e+21");
    assert_number(1e20, "100000000000000000000");
    assert_number(999999999999999900000.0, "999999999999999900000");
    assert_number(1e-7, "1e-7");
    assert_number(1.5e-7, "1.5e-7");
    assert_number(0.000001, "0.000001");
    assert_number(0.0000012345, "0.0000012345");
    assert_number(123456789012345680000.0, "123456789012345680000");
    assert_number(5e-324, "5e-324");
    assert_number(-5e-324, "-5e-324");
    assert_number(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_number(2.2250738585072014e-308, "2.2250738585072014e-308");
    assert_number(-0.0, "0");
    assert_number(0.0, "0");
    assert_number(0.1 + 0.2, "0.30000000000000004");
    assert_number(0.1, "0.1");
    assert_number(1.0, "1");
    assert_number(-1.0, "-1");
    assert_number(4.5, "4.5");
    assert_number(0.002, "0.002");
    assert_number(1e30, "1e+30");
    assert_number(1e-27, "1e-27");
    assert_number(333333333.33333329, "333333333.3333333");
    assert_number(9007199254740992.0, "9007199254740992");
    assert_number(9007199254740994.0, "9007199254740994");
    assert_number(295147905179352830000.0, "295147905179352830000");
    assert_number(1e23, "1e+23");
    assert_number(-1.2345e-10, "-1.2345e-10");
    /* Powers of two where the closest decimal at some precision does not read back but its
     * other neighbour does (lopsided rounding interval); a naive shortest search prints 17
     * digits here. Expected values from node's String(2 ** e). */
    assert_number(ldexp(1, -24), "5.960464477539063e-8");
    assert_number(ldexp(1, -44), "5.684341886080802e-14");
    assert_number(ldexp(1, 89), "6.189700196426902e+26");
    assert_number(ldexp(1, 122), "5.316911983139664e+36");
}
END_TEST

START_TEST(test_integers_as_es6)
{
    json_t *v;
    char *got;

    /* json_int_t goes through double exactly as a JavaScript number would. */
    v = json_integer(0);
    got = canon(v);
    ck_assert_str_eq(got, "0");
    free(got);
    json_decref(v);

    v = json_integer(-42);
    got = canon(v);
    ck_assert_str_eq(got, "-42");
    free(got);
    json_decref(v);

    v = json_integer(9007199254740993LL); /* 2^53 + 1 rounds to 2^53 */
    got = canon(v);
    ck_assert_str_eq(got, "9007199254740992");
    free(got);
    json_decref(v);

    v = json_integer(1000000000000000000LL);
    got = canon(v);
    ck_assert_str_eq(got, "1000000000000000000");
    free(got);
    json_decref(v);

    /* The same text parsed as integer or as real gives the same canonical form. */
    assert_canon_json("[12345678901234567890, -0, 1E2, 1.0]",
                      "[12345678901234567000,0,100,1]");
}
END_TEST

START_TEST(test_non_finite_refused)
{
    char buf[BRK_JCS_NUM_MAX];

    /* jansson will not hold NaN or infinities (json_real refuses them), so the refusal is
     * tested on the formatting entry point the canonicalizer uses. */
    ck_assert_ptr_null(json_real(NAN));
    ck_assert_int_eq(brk_jcs_format_number(NAN, buf), BRK_EINVAL);
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(brk_jcs_format_number(INFINITY, buf), BRK_EINVAL);
    ck_assert_int_eq(brk_jcs_format_number(-INFINITY, buf), BRK_EINVAL);
    ck_assert_int_eq(brk_jcs_format_number(-0.0000012345678901234567, buf), 25);
    ck_assert_str_eq(buf, "-0.0000012345678901234567");
}
END_TEST

START_TEST(test_strings)
{
    json_t *v;
    char *got;

    assert_canon_json("\"\\u0000\\u0001\\u001f\\u007f\"", "\"\\u0000\\u0001\\u001f\x7f\"");
    assert_canon_json("\"\\b\\f\\n\\r\\t\\\"\\\\\\/\"", "\"\\b\\f\\n\\r\\t\\\"\\\\/\"");
    assert_canon_json("\"\\u2028\\u2029\\u00e9\\ud83d\\ude00\"",
                      "\"\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xf0\x9f\x98\x80\"");
    assert_canon_json("\"\\u000B\"", "\"\\u000b\"");

    /* Invalid UTF-8 smuggled past jansson's checks is refused. */
    v = json_stringn_nocheck("\xc0\xaf", 2); /* overlong '/' */
    ck_assert_int_eq(brk_jcs_canonicalize(v, &got, NULL), BRK_EINVAL);
    ck_assert_ptr_null(got);
    json_decref(v);
    v = json_stringn_nocheck("\xed\xa0\x80", 3); /* a UTF-8 encoded surrogate */
    ck_assert_int_eq(brk_jcs_canonicalize(v, &got, NULL), BRK_EINVAL);
    json_decref(v);
    v = json_stringn_nocheck("\xf4\x90\x80\x80", 4); /* above U+10FFFF */
    ck_assert_int_eq(brk_jcs_canonicalize(v, &got, NULL), BRK_EINVAL);
    json_decref(v);
    v = json_stringn_nocheck("ab\xe2\x82", 4); /* truncated */
    ck_assert_int_eq(brk_jcs_canonicalize(v, &got, NULL), BRK_EINVAL);
    json_decref(v);

    v = json_object();
    json_object_set_new_nocheck(v, "\xff", json_true()); /* invalid key */
    ck_assert_int_eq(brk_jcs_canonicalize(v, &got, NULL), BRK_EINVAL);
    json_decref(v);

    /* NUL inside a string is data, escaped. */
    v = json_stringn("a\0b", 3);
    got = canon(v);
    ck_assert_str_eq(got, "\"a\\u0000b\"");
    free(got);
    json_decref(v);
}
END_TEST

START_TEST(test_utf16_key_order)
{
    /* U+00E9 < U+20AC < U+1F600 (high surrogate 0xD83D) in every order. */
    assert_canon_json("{\"\\ud83d\\ude00\":1,\"\\u20ac\":2,\"\\u00e9\":3}",
                      "{\"\xc3\xa9\":3,\"\xe2\x82\xac\":2,\"\xf0\x9f\x98\x80\":1}");
    /* Where UTF-16 and byte (or code point) order disagree: a surrogate pair (0xD800..0xDBFF)
     * sorts before U+E000..U+FFFF, whose UTF-8 bytes (0xEE..0xEF) are lower than 0xF0. */
    assert_canon_json("{\"\\uffff\":1,\"\\ud83d\\ude00\":2}",
                      "{\"\xf0\x9f\x98\x80\":2,\"\xef\xbf\xbf\":1}");
    assert_canon_json("{\"\\ufb33\":1,\"\\ud800\\udc00\":2,\"\\ue000\":3}",
                      "{\"\xf0\x90\x80\x80\":2,\"\xee\x80\x80\":3,\"\xef\xac\xb3\":1}");
    /* Two supplementary characters with the same high surrogate order by the low one. */
    assert_canon_json("{\"\\ud83d\\ude01\":1,\"\\ud83d\\ude00\":2}",
                      "{\"\xf0\x9f\x98\x80\":2,\"\xf0\x9f\x98\x81\":1}");
    /* A prefix sorts first; order is by code unit, not locale. */
    assert_canon_json("{\"ab\":1,\"a\":2,\"B\":3,\"\":4}", "{\"\":4,\"B\":3,\"a\":2,\"ab\":1}");
}
END_TEST

static json_t *nest(int depth, int use_objects)
{
    json_t *v = json_integer(1);
    int i;

    for (i = 0; i < depth; i++) {
        json_t *c;
        if (use_objects) {
            c = json_object();
            json_object_set_new(c, "k", v);
        } else {
            c = json_array();
            json_array_append_new(c, v);
        }
        v = c;
    }
    return v;
}

START_TEST(test_depth_limit)
{
    int use_objects;

    for (use_objects = 0; use_objects <= 1; use_objects++) {
        json_t *ok = nest(BRK_JCS_MAX_DEPTH, use_objects);
        json_t *deep = nest(BRK_JCS_MAX_DEPTH + 1, use_objects);
        char *out = NULL;
        size_t len;

        ck_assert_int_eq(brk_jcs_canonicalize(ok, &out, &len), 0);
        ck_assert_ptr_nonnull(out);
        free(out);
        ck_assert_int_eq(brk_jcs_canonicalize(deep, &out, &len), BRK_EINVAL);
        ck_assert_ptr_null(out);
        json_decref(ok);
        json_decref(deep);
    }
}
END_TEST

START_TEST(test_literals_and_empty)
{
    assert_canon_json("null", "null");
    assert_canon_json("true", "true");
    assert_canon_json("false", "false");
    assert_canon_json("[]", "[]");
    assert_canon_json("{}", "{}");
    assert_canon_json("\"\"", "\"\"");
    assert_canon_json(" [ 1 , { \"b\" : [ ] , \"a\" : { } } ] ", "[1,{\"a\":{},\"b\":[]}]");
}
END_TEST

START_TEST(test_cid)
{
    char cid[BRK_CID_LEN + 1], cid2[BRK_CID_LEN + 1];
    json_t *a = json_loads("{\"b\":2,\"a\":1}", 0, NULL);
    json_t *b = json_loads("{ \"a\" : 1.0, \"b\" : 2 }", JSON_DECODE_INT_AS_REAL, NULL);
    json_t *deep = nest(BRK_JCS_MAX_DEPTH + 1, 0);

    ck_assert_int_eq(brk_jcs_cid(a, cid), 0);
    ck_assert_uint_eq(strlen(cid), BRK_CID_LEN);
    ck_assert(brk_cid_valid(cid));
    ck_assert_int_eq(strncmp(cid, "sha256:", 7), 0);
    /* sha256 of the 13 bytes {"a":1,"b":2} */
    brk_cid_of_bytes("{\"a\":1,\"b\":2}", 13, cid2);
    ck_assert_str_eq(cid, cid2);
    ck_assert_str_eq(cid, "sha256:43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777");
    ck_assert_int_eq(brk_jcs_cid(b, cid2), 0);
    ck_assert_str_eq(cid, cid2);

    brk_cid_of_bytes("", 0, cid);
    ck_assert_str_eq(cid, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    {
        /* a digest computed elsewhere (a stream) takes the same form */
        uint8_t d[BRK_SHA256_LEN];
        memset(d, 0xab, sizeof d);
        d[0] = 0x01;
        brk_cid_of_digest(d, cid);
        ck_assert_str_eq(cid,
                         "sha256:01ababababababababababababababababababababababababababababababab");
        ck_assert(brk_cid_valid(cid));
    }

    ck_assert_int_eq(brk_jcs_cid(deep, cid), BRK_EINVAL);

    json_decref(a);
    json_decref(b);
    json_decref(deep);
}
END_TEST

START_TEST(test_cid_valid)
{
    ck_assert(brk_cid_valid(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    ck_assert(brk_cid_valid(
        "sha256:0000000000000000000000000000000000000000000000000000000000000000"));
    ck_assert(!brk_cid_valid(NULL));
    ck_assert(!brk_cid_valid(""));
    ck_assert(!brk_cid_valid("sha256:"));
    ck_assert(!brk_cid_valid( /* uppercase hex */
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
    ck_assert(!brk_cid_valid( /* one digit short */
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
    ck_assert(!brk_cid_valid( /* one digit long */
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"));
    ck_assert(!brk_cid_valid( /* wrong prefix */
        "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    ck_assert(!brk_cid_valid( /* non-hex */
        "sha256:g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    ck_assert(!brk_cid_valid( /* trailing newline */
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"));
    ck_assert(!brk_cid_valid( /* leading space */
        " sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}
END_TEST

static Suite *jcs_suite(void)
{
    Suite *s = suite_create("jcs");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_vectors);
    tcase_add_test(tc, test_numbers_es6);
    tcase_add_test(tc, test_integers_as_es6);
    tcase_add_test(tc, test_non_finite_refused);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_utf16_key_order);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_literals_and_empty);
    tcase_add_test(tc, test_cid);
    tcase_add_test(tc, test_cid_valid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(jcs_suite());
}
