/*
 * it_text: bytes that are not text, at every place a request carries text, against the real
 * binary and PostgreSQL (issue 7, "bad bytes give 500").
 *
 *   path      every registered route with a {param} gets NUL (%00), ill-formed UTF-8 (%ff, a
 *             character cut short, an overlong '/', a surrogate), a control character (%0a,
 *             %7f, a C1) and raw ill-formed bytes in each param: 400 invalid_path, before
 *             authentication, with any key, and nothing written. Well-formed UTF-8 passes
 *             on to the route.
 *   query     every registered route gets the same bytes in ?after=, ?cursor=, ?limit= and
 *             in a parameter name, a bad percent escape, and one parameter past
 *             BRK_QUERY_MAX_PARAMS: 400 invalid_query, nothing written; at the limit it is
 *             not refused.
 *   body      a \u0000 escape in a string of the body of every JSON route (and in the real
 *             fields of authorize, complete, elevate, keys, accords, accounts, credit notes,
 *             replay): 400 invalid_json, nothing written; ill-formed UTF-8 in a body is 400
 *             too; an escaped non-ASCII character is kept whole.
 *   messages  an error message quoting a client's multi-byte text at a byte limit is still
 *             the error asked for (it was a 500: the message was cut inside a character).
 * The route list is the router's own (hnd_register in process, as it_openapi does), so a new
 * route is covered without editing this file.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_http.h"
#include "brk_uri.h"
#include "hnd.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define RETRIES_429 5

#define DB "it_text"
#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static tst_broker_t B;
static char *ALL; /* every role, tenant acme */
static PGconn *PG;

/* What a refused request must leave as it was: the row count of every table a route writes. */
#define FINGERPRINT                                                                          \
    "SELECT concat_ws(',', (SELECT count(*) FROM acs), (SELECT count(*) FROM crs), "         \
    "(SELECT count(*) FROM denials), (SELECT count(*) FROM events), "                        \
    "(SELECT count(*) FROM accords), (SELECT count(*) FROM billing_accounts), "              \
    "(SELECT count(*) FROM invoices), (SELECT count(*) FROM credit_notes), "                 \
    "(SELECT count(*) FROM api_keys), (SELECT count(*) FROM tenants), "                      \
    "(SELECT count(*) FROM fn_runs), (SELECT string_agg(a.body::text, '') FROM accords a))"

/* Percent-encoded (and two raw) values that are not request text. */
static const char *const BAD[] = {
    "%00",              /* NUL alone */
    "ctx_ab%00cd",      /* NUL inside: a C string would cut the value */
    "%ff",              /* not UTF-8 at all */
    "x%C3",             /* a 2-byte character cut short */
    "%e2%82",           /* a 3-byte character cut short */
    "%c0%af",           /* an overlong '/' */
    "%ed%a0%80",        /* a surrogate */
    "a%0ab",            /* LF */
    "a%7f",             /* DEL */
    "%c2%85",           /* NEL, a C1 control */
    "\xff\xfe",         /* raw, not percent-encoded */
    "caf\xc3",          /* raw, cut */
};
#define NBAD (sizeof BAD / sizeof BAD[0])

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    ALL = tst_keys_create(&B, "acme", "issuer,executor,approver,finance,auditor,admin");
    PG = tst_pg_connect(DB);
    ck_assert_int_eq(hnd_register(), 0);
}

static void teardown(void)
{
    PQfinish(PG);
    tst_broker_clear(&B);
    free(ALL);
}


static char *fingerprint(void)
{
    return tst_pg_scalar(PG, FINGERPRINT);
}

/* The error code of r, or "" when it is not the error shape. */
static const char *code_of(const tst_resp_t *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}

/* One request with token (may be NULL) and an optional JSON body; returns the response. */
static void do_send(const char *method, const char *path, const char *token, const char *body,
                 size_t blen, tst_resp_t *r)
{
    char *hdr = tst_fmt("%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
                    token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "");
    /* This suite sends hundreds of requests in a burst: a rate limiter in front may answer
     * 429 with Retry-After; wait and ask again, as a client should, up to RETRIES_429 times. */
    for (int i = 0;; i++) {
        ck_assert_int_eq(tst_http(B.port, method, path, hdr, body, blen, r), 0);
        if (r->status != 429 || i == RETRIES_429)
            break;
        char ra[16];
        int secs = tst_resp_header(r, "retry-after", ra, sizeof ra) ? atoi(ra) : 1;
        tst_resp_clear(r);
        sleep((unsigned)(secs < 1 ? 1 : secs > 5 ? 5 : secs));
    }
    free(hdr);
}

/* Asserts method path answers status with code, and wrote nothing. */
static void refused(const char *method, const char *path, const char *token, const char *body,
                    size_t blen, int status, const char *code)
{
    tst_resp_t r;
    char *before = fingerprint();
    do_send(method, path, token, body, blen, &r);
    ck_assert_msg(r.status == status && strcmp(code_of(&r), code) == 0,
                  "%s %s: %d %s (want %d %s)", method, path, r.status, r.body, status, code);
    char rid[128];
    const char *jrid =
        json_string_value(json_object_get(json_object_get(r.json, "error"), "request_id"));
    ck_assert_ptr_nonnull(jrid);
    ck_assert_ptr_nonnull(tst_resp_header(&r, "x-request-id", rid, sizeof rid));
    ck_assert_str_eq(jrid, rid);
    tst_resp_clear(&r);
    char *after = fingerprint();
    ck_assert_msg(strcmp(before, after) == 0, "%s %s wrote: %s -> %s", method, path, before,
                  after);
    free(before), free(after);
}

/* pattern with every {param} replaced by value (malloc'd). */
static char *fill(const char *pattern, const char *value)
{
    size_t cap = strlen(pattern) * 2 + strlen(value) * 4 + 8, o = 0;
    char *out = malloc(cap);
    for (const char *p = pattern; *p; p++) {
        if (*p == '{') {
            p = strchr(p, '}');
            o += (size_t)snprintf(out + o, cap - o, "%s", value);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

START_TEST(bad_path_params)
{
    size_t routes_with_params = 0;
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        if (strchr(rt->pattern, '{') == NULL)
            continue;
        routes_with_params++;
        const char *body = (rt->flags & BRK_ROUTE_JSON) ? "{}" : NULL;
        for (size_t k = 0; k < NBAD; k++) {
            char *path = fill(rt->pattern, BAD[k]);
            /* with every role, with none, and with the trailing slash */
            refused(rt->method, path, ALL, body, body ? 2 : 0, 400, "invalid_path");
            refused(rt->method, path, NULL, body, body ? 2 : 0, 400, "invalid_path");
            char *slash = tst_fmt("%s/", path);
            refused(rt->method, slash, ALL, body, body ? 2 : 0, 400, "invalid_path");
            free(slash), free(path);
        }
    }
    ck_assert_uint_ge(routes_with_params, 7);
    /* a bad byte in a literal segment is refused the same way, not routed */
    refused("GET", "/governance/%00session/ctx_1", ALL, NULL, 0, 400, "invalid_path");
    refused("GET", "/nowhere%ff", NULL, NULL, 0, 400, "invalid_path");
    /* the request log quotes refused paths, raw bytes and all, yet stays well-formed UTF-8 */
    char *log = tst_broker_log(&B);
    ck_assert_ptr_nonnull(log);
    ck_assert_ptr_nonnull(strstr(log, "/admin/accords/??")); /* "\xff\xfe", replaced */
    ck_assert_uint_eq(brk_utf8_valid_prefix(log, strlen(log)), strlen(log));
    free(log);
}
END_TEST

START_TEST(good_utf8_path_params_pass)
{
    tst_resp_t r;
    /* a well-formed non-ASCII param reaches the route, which answers for it */
    do_send("GET", "/admin/accords/caf%C3%A9", ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 404 && strcmp(code_of(&r), "accord_not_found") == 0, "%d %s",
                  r.status, r.body);
    tst_resp_clear(&r);
    do_send("GET", "/governance/authorize/ctx_%E2%82%AC", ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 404 && strcmp(code_of(&r), "context_not_found") == 0, "%d %s",
                  r.status, r.body);
    tst_resp_clear(&r);
    do_send("GET", "/admin/accounts/%F0%9F%98%80", ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 404, "%d %s", r.status, r.body);
    tst_resp_clear(&r);
    do_send("GET", "/governance/session/ctx_%C2%A0x", ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 404 && strcmp(code_of(&r), "context_not_found") == 0, "%d %s",
                  r.status, r.body);
    tst_resp_clear(&r);
}
END_TEST

START_TEST(bad_query_strings)
{
    static const char *const names[] = {"after", "cursor", "limit"};
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        char *base = fill(rt->pattern, "x");
        const char *body = (rt->flags & BRK_ROUTE_JSON) ? "{}" : NULL;
        for (size_t k = 0; k < NBAD; k++) {
            for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
                char *path = tst_fmt("%s?%s=%s", base, names[n], BAD[k]);
                refused(rt->method, path, ALL, body, body ? 2 : 0, 400, "invalid_query");
                free(path);
            }
            char *path = tst_fmt("%s/?ok=1&%s=1", base, BAD[k]); /* in a name */
            refused(rt->method, path, NULL, body, body ? 2 : 0, 400, "invalid_query");
            free(path);
        }
        char *path = tst_fmt("%s?after=%%zz", base);
        refused(rt->method, path, ALL, body, body ? 2 : 0, 400, "invalid_query");
        free(path);
        path = tst_fmt("%s?after=1%%", base);
        refused(rt->method, path, ALL, body, body ? 2 : 0, 400, "invalid_query");
        free(path);
        free(base);
    }

    /* BRK_QUERY_MAX_PARAMS: at the limit the route answers, one more is refused */
    char q[BRK_QUERY_MAX_PARAMS * 8 + 16] = "";
    size_t o = 0;
    tst_resp_t r;
    for (int i = 0; i < BRK_QUERY_MAX_PARAMS; i++)
        o += (size_t)snprintf(q + o, sizeof q - o, "%sp%d=1", i ? "&" : "", i);
    char *path = tst_fmt("/billing/invoices/?%s", q);
    do_send("GET", path, ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    tst_resp_clear(&r);
    free(path);
    path = tst_fmt("/billing/invoices/?%s&one_more", q);
    refused("GET", path, ALL, NULL, 0, 400, "invalid_query");
    free(path);

    /* a well-formed non-ASCII query value is not refused by intake */
    do_send("GET", "/billing/invoices/?note=caf%C3%A9&x=%E2%82%AC", ALL, NULL, 0, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    tst_resp_clear(&r);
}
END_TEST

/* The JSON routes' real bodies, each with one string field holding \u0000 (the test writes
 * the marker NUL as the 6 characters \u0000 into the JSON text). */
static const struct {
    const char *method, *path, *body;
} NUL_BODIES[] = {
    {"POST", "/governance/authorize/",
     "{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"" H("1") "\","
     "\"corpus_entry_cid\":\"" H("2") "\",\"parameters_cid\":\"" H("3") "\","
     "\"description\":\"rm\\u0000-rf\"}}"},
    {"POST", "/governance/authorize/",
     "{\"accord_template\":\"default\\u0000x\",\"operation\":{\"command_hash\":\"" H("1") "\","
     "\"corpus_entry_cid\":\"" H("2") "\",\"parameters_cid\":\"" H("3") "\"}}"},
    {"POST", "/governance/elevate/",
     "{\"context_id\":\"ctx_00000000000000000000000000000000\",\"decision\":\"approve\","
     "\"reason\":\"ok\\u0000\"}"},
    {"POST", "/governance/elevate/",
     "{\"context_id\":\"ctx_0\\u0000\",\"decision\":\"approve\"}"},
    {"POST", "/governance/complete/",
     "{\"context_id\":\"ctx_00000000000000000000000000000000\",\"outcome\":\"completed\","
     "\"exit_code\":0,\"started_at\":\"2026-01-01T00:00:00Z\","
     "\"completed_at\":\"2026-01-01T00:00:01Z\",\"command_hash\":\"" H("1") "\","
     "\"corpus_entry_cid\":\"" H("2") "\",\"parameters_cid\":\"" H("3") "\","
     "\"chronicle\":{\"session_id\":\"s\\u0000\",\"behavior_state\":\"unavailable\","
     "\"merkle_root\":null},\"metadata\":{\"k\":\"v\\u0000\"}}"},
    {"POST", "/admin/keys", "{\"roles\":[\"auditor\"],\"name\":\"n\\u0000ame\"}"},
    {"POST", "/admin/keys", "{\"roles\":[\"audi\\u0000tor\"]}"},
    {"PUT", "/admin/accords/nul", "{\"description\":\"x\\u0000\"}"},
    {"PUT", "/admin/accounts/nul", "{\"currency\":\"US\\u0000D\"}"},
    {"POST", "/billing/invoices/inv_00000000000000000000000000000000/credit-notes",
     "{\"line_no\":1,\"amount_minor\":1,\"reason\":\"r\\u0000\"}"},
    {"POST", "/admin/functions/dead-letters/replay", "{\"function\":\"billing\\u0000\"}"},
    {"POST", "/admin/keys", "{\"roles\\u0000\":[\"auditor\"]}"}, /* in a member name */
};

START_TEST(nul_in_json_strings)
{
    for (size_t i = 0; i < sizeof NUL_BODIES / sizeof NUL_BODIES[0]; i++)
        refused(NUL_BODIES[i].method, NUL_BODIES[i].path, ALL, NUL_BODIES[i].body,
                strlen(NUL_BODIES[i].body), 400, "invalid_json");
    /* every JSON route, whatever its fields: the body layer refuses before the handler */
    size_t json_routes = 0;
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        if (!(rt->flags & BRK_ROUTE_JSON))
            continue;
        json_routes++;
        char *path = fill(rt->pattern, "x");
        const char *bodies[] = {"{\"a\":\"\\u0000\"}", "{\"a\":[\"x\",{\"b\":\"y\\u0000\"}]}",
                                "{\"a\":\"\xff\"}", "{\"a\":\"\xe2\x82\"}",
                                "{\"a\":\"\\ud800\"}"};
        for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++)
            refused(rt->method, path, ALL, bodies[k], strlen(bodies[k]), 400, "invalid_json");
        free(path);
    }
    ck_assert_uint_ge(json_routes, 8);

    /* an escaped non-ASCII character is kept whole: the key's name reads back as sent */
    tst_resp_t r;
    const char *b = "{\"roles\":[\"auditor\"],\"name\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00\"}";
    do_send("POST", "/admin/keys", ALL, b, strlen(b), &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    tst_resp_clear(&r);
    char *name = tst_pg_scalar(PG, "SELECT name FROM api_keys WHERE name LIKE 'caf%'");
    ck_assert_str_eq(name, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    free(name);
}
END_TEST

START_TEST(messages_never_cut_a_character)
{
    /* hnd_reject_unknown quotes at most 64 bytes of an unknown member's name: 30 x "€" (90
     * bytes) used to be cut after 21 characters and one byte, and the reply became a 500 */
    char name[128] = "", *body;
    for (int i = 0; i < 30; i++)
        memcpy(name + i * 3, "\xe2\x82\xac", 4);
    body = tst_fmt("{\"roles\":[\"auditor\"],\"%s\":1}", name);
    refused("POST", "/admin/keys", ALL, body, strlen(body), 400, "unknown_field");
    free(body);
    /* and the message is well-formed UTF-8, the 21 whole characters kept */
    tst_resp_t r;
    body = tst_fmt("{\"roles\":[\"auditor\"],\"%s\":1}", name);
    do_send("POST", "/admin/keys", ALL, body, strlen(body), &r);
    const char *msg =
        json_string_value(json_object_get(json_object_get(r.json, "error"), "message"));
    ck_assert_ptr_nonnull(msg);
    ck_assert(brk_utf8_valid_prefix(msg, strlen(msg)) == strlen(msg));
    ck_assert_ptr_nonnull(strstr(msg, "\xe2\x82\xac\xe2\x82\xac"));
    tst_resp_clear(&r);
    free(body);
}
END_TEST

static Suite *text_suite(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("text");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, bad_path_params);
    tcase_add_test(tc, good_utf8_path_params_pass);
    tcase_add_test(tc, bad_query_strings);
    tcase_add_test(tc, nul_in_json_strings);
    tcase_add_test(tc, messages_never_cut_a_character);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(text_suite());
}
