/*
 * unit_json: brk_json_parse_object, the parser of every JSON request body.
 *
 * The depth limit on both sides, for objects and arrays and for both of its checks (the raw
 * pre-check lets one level more through to jansson; the parsed check gives the exact answer),
 * with brk_json's way of counting: the top-level object is level 1 and every node counts, so
 * a scalar or an empty container inside a level-n container is at level n + 1. Then what is
 * refused whatever its depth: duplicate member names, a top level that is not an object, NUL
 * (escaped or raw) in a string, trailing garbage, empty input; and the contract around the
 * refusal (*out NULL, a stable code, a message that fits its buffer or no buffer at all).
 */
#include "tst_check.h"
#include "brk_json.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

/* What *out holds before a call, so that "left untouched" is told apart from NULL. */
static json_t poison;

/* Parses the n bytes at p; returns rc, fills *code (NULL when accepted) and msg. */
static int parse_n(const char *p, size_t n, json_t **out, const char **code, char *msg,
                   size_t mlen)
{
    *out = &poison;
    *code = NULL;
    return brk_json_parse_object(p, n, out, code, msg, mlen);
}

static void assert_accepted(const char *p, size_t n)
{
    json_t *v;
    const char *code;
    char msg[256];
    int rc = parse_n(p, n, &v, &code, msg, sizeof msg);
    ck_assert_msg(rc == 0, "refused (%s: %s): %.80s", code ? code : "?", msg, p);
    ck_assert_ptr_nonnull(v);
    ck_assert(v != &poison);
    ck_assert(json_is_object(v));
    json_decref(v);
}

static void assert_refused(const char *p, size_t n, const char *want)
{
    json_t *v;
    const char *code;
    char msg[256];
    memset(msg, 'x', sizeof msg);
    int rc = parse_n(p, n, &v, &code, msg, sizeof msg);
    ck_assert_msg(rc == BRK_EINVAL, "not refused: %.80s", p);
    ck_assert_ptr_null(v);
    ck_assert_ptr_nonnull(code);
    ck_assert_str_eq(code, want);
    ck_assert_ptr_nonnull(memchr(msg, '\0', sizeof msg));
    ck_assert_uint_gt(strlen(msg), 0);
    ck_assert_msg(!(msg[0] >= 'A' && msg[0] <= 'Z'), "message starts uppercase: %s", msg);
}

#define ACCEPT(s) assert_accepted((s), strlen(s))
#define REFUSE(s, code) assert_refused((s), strlen(s), (code))

/* Container i (0 is the top level) of a nest: objects, arrays after the top, or alternating. */
enum { OBJECTS, ARRAYS, MIXED };

static int is_object(int kind, int i)
{
    return i == 0 || kind == OBJECTS || (kind == MIXED && i % 2 == 0);
}

/*
 * A body of `levels` nested containers, the first the top-level object (an object's member is
 * "a"). With leaf NULL the innermost container is empty, so the deepest node is at level
 * `levels`; with a scalar leaf (such as "1") the innermost container holds it, one level deeper.
 */
static char *nest(int levels, int kind, const char *leaf)
{
    size_t n = (size_t)levels * 6 + (leaf ? strlen(leaf) : 0) + 1;
    char *b = malloc(n), *p = b;
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < levels; i++) {
        int last_empty = i == levels - 1 && leaf == NULL;
        const char *open = is_object(kind, i) ? (last_empty ? "{}" : "{\"a\":")
                                              : (last_empty ? "[]" : "[");
        memcpy(p, open, strlen(open));
        p += strlen(open);
    }
    if (leaf != NULL) {
        memcpy(p, leaf, strlen(leaf));
        p += strlen(leaf);
    }
    for (int i = levels - (leaf == NULL ? 2 : 1); i >= 0; i--)
        *p++ = is_object(kind, i) ? '}' : ']';
    *p = '\0';
    return b;
}

START_TEST(nest_builder)
{
    /* the builder itself, so that the levels below are the levels meant */
    const struct {
        int levels, kind;
        const char *leaf, *want;
    } cases[] = {
        {1, OBJECTS, NULL, "{}"},
        {3, OBJECTS, NULL, "{\"a\":{\"a\":{}}}"},
        {3, ARRAYS, NULL, "{\"a\":[[]]}"},
        {4, MIXED, NULL, "{\"a\":[{\"a\":[]}]}"},
        {2, OBJECTS, "1", "{\"a\":{\"a\":1}}"},
        {3, ARRAYS, "1", "{\"a\":[[1]]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = nest(cases[i].levels, cases[i].kind, cases[i].leaf);
        ck_assert_str_eq(s, cases[i].want);
        free(s);
    }
}
END_TEST

/* Both sides of the limit for one kind of nesting, with an empty innermost container and with
 * a scalar leaf, and two past the limit (refused by the raw pre-check already). */
static void depth_both_sides(int kind)
{
    char *ok = nest(BRK_MAX_JSON_DEPTH, kind, NULL), *deep = nest(BRK_MAX_JSON_DEPTH + 1, kind, NULL);
    ACCEPT(ok);
    REFUSE(deep, "json_too_deep"); /* the raw pre-check lets limit + 1 through: parsed check */
    free(ok), free(deep);
    /* a scalar counts as a level: in a level limit - 1 container accepted, in level limit not */
    ok = nest(BRK_MAX_JSON_DEPTH - 1, kind, "1");
    deep = nest(BRK_MAX_JSON_DEPTH, kind, "\"s\"");
    ACCEPT(ok);
    REFUSE(deep, "json_too_deep");
    free(ok), free(deep);
    deep = nest(BRK_MAX_JSON_DEPTH + 2, kind, NULL);
    REFUSE(deep, "json_too_deep");
    free(deep);
}

START_TEST(depth_objects)
{
    depth_both_sides(OBJECTS);
}
END_TEST

START_TEST(depth_arrays)
{
    depth_both_sides(ARRAYS);
}
END_TEST

START_TEST(depth_mixed_and_hostile)
{
    depth_both_sides(MIXED);
    /* only the deepest branch counts: many members at the limit are fine */
    char *ok = nest(BRK_MAX_JSON_DEPTH - 1, ARRAYS, "[],[],{},1");
    ACCEPT(ok);
    free(ok);
    /* a hostile "[[[[..." or "{\"a\":{..." of 100000 levels, unterminated: refused without
     * being recursed into (ASan would see the stack overflow) */
    size_t n = 100000;
    char *h = malloc(n + 6);
    ck_assert_ptr_nonnull(h);
    memcpy(h, "{\"a\":", 5);
    memset(h + 5, '[', n);
    h[n + 5] = '\0';
    REFUSE(h, "json_too_deep");
    free(h);
    h = nest(50000, OBJECTS, NULL);
    REFUSE(h, "json_too_deep");
    free(h);
    /* brackets inside a string do not nest, also after an escaped quote */
    char s[512], *p = s;
    p += snprintf(p, sizeof s, "{\"a\":\"\\\"");
    for (int i = 0; i < 2 * BRK_MAX_JSON_DEPTH; i++)
        *p++ = (i % 2) ? '{' : '[';
    snprintf(p, 8, "\\\\\"}");
    ACCEPT(s);
}
END_TEST

START_TEST(duplicates)
{
    REFUSE("{\"a\":1,\"a\":1}", "invalid_json");
    REFUSE("{\"a\":1,\"b\":2,\"a\":3}", "invalid_json");
    /* nested duplicates too */
    REFUSE("{\"x\":{\"k\":true,\"k\":false}}", "invalid_json");
    REFUSE("{\"x\":[{\"k\":1,\"k\":1}]}", "invalid_json");
    /* the same name at different levels, or differing by case, is no duplicate */
    ACCEPT("{\"a\":{\"a\":1},\"A\":2}");
    /* an escape spells the same name: still a duplicate */
    REFUSE("{\"a\":1,\"\\u0061\":2}", "invalid_json");
}
END_TEST

START_TEST(top_level_object_only)
{
    const char *bad[] = {"[]", "[{}]", "\"s\"", "1", "-0.5", "true", "false", "null", "[1,2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REFUSE(bad[i], "invalid_json");
    ACCEPT("{}");
    ACCEPT(" \t\r\n{}\n ");
}
END_TEST

START_TEST(nul_bytes)
{
    /* an escaped NUL in a value or in a name */
    REFUSE("{\"a\":\"x\\u0000y\"}", "invalid_json");
    REFUSE("{\"a\\u0000b\":1}", "invalid_json");
    /* a raw NUL byte inside a string, in a name, and between tokens */
    static const char raw1[] = "{\"a\":\"x\0y\"}";
    static const char raw2[] = "{\"a\0b\":1}";
    static const char raw3[] = "{\"a\":\"x\"\0}";
    static const char raw5[] = "{\"a\":1 \0}";
    static const char raw6[] = "{\0\"a\":1}";
    assert_refused(raw1, sizeof raw1 - 1, "invalid_json");
    assert_refused(raw2, sizeof raw2 - 1, "invalid_json");
    assert_refused(raw3, sizeof raw3 - 1, "invalid_json");
    assert_refused(raw5, sizeof raw5 - 1, "invalid_json");
    assert_refused(raw6, sizeof raw6 - 1, "invalid_json");
    /* one raw NUL right after a number or a literal: jansson 2.14 alone would drop it */
    static const char raw7[] = "{\"a\":1\0}";
    static const char raw8[] = "{\"a\":true\0}";
    static const char raw9[] = "{\"a\":[1\0,2]}";
    assert_refused(raw7, sizeof raw7 - 1, "invalid_json");
    assert_refused(raw8, sizeof raw8 - 1, "invalid_json");
    assert_refused(raw9, sizeof raw9 - 1, "invalid_json");
    /* a NUL right after a complete object is trailing garbage */
    static const char raw4[] = "{}\0";
    assert_refused(raw4, sizeof raw4 - 1, "invalid_json");
    /* other escapes are fine */
    ACCEPT("{\"a\":\"\\u0001\\n\\\"\\\\\"}");
}
END_TEST

START_TEST(trailing_garbage)
{
    REFUSE("{}x", "invalid_json");
    REFUSE("{} {}", "invalid_json");
    REFUSE("{\"a\":1}}", "invalid_json");
    REFUSE("{\"a\":1},", "invalid_json");
    REFUSE("{\"a\":1} 1", "invalid_json");
    REFUSE("{\"a\":[1]]}", "invalid_json");
    /* only n bytes are read: what follows them in memory is not the body */
    const char *buf = "{\"a\":1}garbage";
    assert_accepted(buf, 7);
    /* and a body cut short is malformed */
    assert_refused(buf, 6, "invalid_json");
}
END_TEST

START_TEST(empty_input)
{
    assert_refused("", 0, "invalid_json");
    assert_refused("{}", 0, "invalid_json"); /* n = 0 whatever p holds */
    REFUSE(" ", "invalid_json");
    REFUSE("\n\t ", "invalid_json");
    REFUSE("{", "invalid_json");
    REFUSE("}", "invalid_json");
}
END_TEST

START_TEST(message_buffer)
{
    json_t *v;
    const char *code;
    char small[8];
    /* no message buffer at all */
    ck_assert_int_eq(parse_n("[]", 2, &v, &code, NULL, 0), BRK_EINVAL);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(code, "invalid_json");
    char *deep = nest(BRK_MAX_JSON_DEPTH + 1, OBJECTS, NULL);
    ck_assert_int_eq(parse_n(deep, strlen(deep), &v, &code, NULL, 0), BRK_EINVAL);
    ck_assert_str_eq(code, "json_too_deep");
    /* a short buffer: cut and NUL-terminated (ASan sees a write past it) */
    ck_assert_int_eq(parse_n(deep, strlen(deep), &v, &code, small, sizeof small), BRK_EINVAL);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    /* the message names the limit */
    char msg[128];
    ck_assert_int_eq(parse_n(deep, strlen(deep), &v, &code, msg, sizeof msg), BRK_EINVAL);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", BRK_MAX_JSON_DEPTH);
    ck_assert_ptr_nonnull(strstr(msg, lim));
    free(deep);
    /* a syntax error says where */
    ck_assert_int_eq(parse_n("{\"a\":}", 6, &v, &code, msg, sizeof msg), BRK_EINVAL);
    ck_assert_ptr_nonnull(strstr(msg, "line 1"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, nest_builder);
    tcase_add_test(tc, depth_objects);
    tcase_add_test(tc, depth_arrays);
    tcase_add_test(tc, depth_mixed_and_hostile);
    tcase_add_test(tc, duplicates);
    tcase_add_test(tc, top_level_object_only);
    tcase_add_test(tc, nul_bytes);
    tcase_add_test(tc, trailing_garbage);
    tcase_add_test(tc, empty_input);
    tcase_add_test(tc, message_buffer);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
