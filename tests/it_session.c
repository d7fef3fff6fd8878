/*
 * it_session: the session page as people and auditors read it, against the real binary and
 * PostgreSQL (handlers/hnd_session.c):
 *   - pagination: receipts paged by sequence (?after=&limit=), walking the "next" links
 *     reaches every receipt exactly once; limit at SESSION_PAGE_MAX and one past it, bad
 *     after/limit values are 400 invalid_query;
 *   - HTML pages of large receipts stop before HTML_MAX and link on from the last receipt
 *     shown: walking them still reaches every receipt once, each page complete;
 *   - the HTML page: each receipt with its evidence, its lineage step recomputed in C and
 *     marked verified or broken (a lineage_cid changed in SQL breaks it and the next step, on
 *     one page and across a page boundary), its invoice line linked to the invoice; every
 *     value escaped (a "<script>" in an unknown member and in metadata); no script;
 *   - signed view links: minted by who may read the page, they open it (HTML, JSON, next
 *     pages) without a bearer token; expired (view_link_expired), tampered, another context's
 *     or another tenant's link are 401 invalid_view_link; ttl_s bounded by
 *     SESSION_VIEW_TTL_MAX_S; the link opens nothing else;
 *   - denial receipts for auditors: listed newest first and paged (every denial once), each
 *     served as signed (the signature verifies with the broker's published key); other
 *     roles 403, another tenant's denial 404.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_sign.h"
#include "gov.h"
#include "gov_lineage.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_session"
#define PAGE_DEFAULT 100 /* SESSION_PAGE_DEFAULT in hnd_session.c */
#define PAGE_MAX 500     /* SESSION_PAGE_MAX */
#define MANY 130         /* receipts in the paged context: more than one default page */

static tst_broker_t B;
static char *ISSUER, *EXECUTOR, *AUDITOR, *OTHER_TENANT;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    ISSUER = tst_keys_create(&B, "acme", "issuer");
    EXECUTOR = tst_keys_create(&B, "acme", "executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    OTHER_TENANT = tst_keys_create(&B, "globex", "issuer,executor,auditor");
}

static void teardown(void)
{
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);
    free(ISSUER), free(EXECUTOR), free(AUDITOR), free(OTHER_TENANT);
}

/* ---- helpers ---- */

static void exec_sql(const char *f, ...)
{
    va_list ap;
    char *sql;
    va_start(ap, f);
    ck_assert_int_ge(vasprintf(&sql, f, ap), 0);
    va_end(ap);
    PGconn *pg = tst_pg_connect(DB);
    PGresult *res = PQexec(pg, sql);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(pg);
    free(sql);
}

static long count_of(const char *hay, const char *needle)
{
    long n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static json_t *authorize_session(void)
{
    tst_resp_t r;
    const char *body = "{\"accord_template\":\"default\",\"session_mode\":true,\"operation\":{"
                       "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
                       "\"parameters_cid\":\"" PARAMS "\"}}";
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", ISSUER, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    return j;
}

/* Posts a completed CR on ctx; extra members (may be NULL) make it distinct. Its receipt. */
static json_t *post_cr(const char *ctx, const char *extra)
{
    char now[40];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char *body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                     "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"" CMD
                     "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS
                     "\",\"chronicle\":{\"session_id\":\"c\",\"behavior_state\":\"verified\"}"
                     "%s%s}",
                     ctx, now, now, extra ? "," : "", extra ? extra : "");
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", EXECUTOR, body, &r), 0);
    ck_assert_msg(r.status == 200, "complete: %d %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(body);
    return j;
}

/* GET path as JSON with token (NULL: none); the response. */
static void get_json(const char *path, const char *token, tst_resp_t *r)
{
    char *hdr = token ? tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", token)
                      : strdup("Accept: application/json\r\n");
    ck_assert_int_eq(tst_http(B.port, "GET", path, hdr, NULL, 0, r), 0);
    free(hdr);
}

/* ---- pagination ---- */

/* Walks the "next" links from path; counts how often each sequence was seen. Returns pages. */
static int walk(const char *path, int *seen, int n, int page_max)
{
    char *p = strdup(path);
    int pages = 0;
    while (p != NULL) {
        tst_resp_t r;
        get_json(p, AUDITOR, &r);
        ck_assert_msg(r.status == 200, "%s: %d %s", p, r.status, r.body);
        json_t *crs = json_object_get(r.json, "receipts");
        ck_assert_uint_le(json_array_size(crs), (size_t)page_max);
        size_t i;
        json_t *c;
        json_array_foreach(crs, i, c)
        {
            json_int_t s = json_integer_value(json_object_get(c, "sequence"));
            ck_assert(s >= 1 && s <= n);
            seen[s]++;
        }
        json_t *next = json_object_get(r.json, "next");
        free(p);
        p = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        ck_assert(p != NULL || json_is_null(next));
        /* a full page says where to go on; a last page says there is nothing more */
        ck_assert_int_eq(p != NULL, json_array_size(crs) == (size_t)page_max &&
                                        !(pages == (n - 1) / page_max));
        tst_resp_clear(&r);
        ck_assert_int_lt(++pages, n + 2);
    }
    return pages;
}

START_TEST(pages_reach_every_receipt)
{
    json_t *ac = authorize_session();
    const char *ctx = tst_str(ac, "context_id");
    for (int i = 0; i < MANY; i++) {
        char *extra = tst_fmt("\"n\":%d", i);
        json_decref(post_cr(ctx, extra));
        free(extra);
    }
    char *path = tst_fmt("/governance/session/%s/", ctx);
    int seen[MANY + 1];

    /* the default page, then the next links */
    memset(seen, 0, sizeof seen);
    ck_assert_int_eq(walk(path, seen, MANY, PAGE_DEFAULT), (MANY + PAGE_DEFAULT - 1) / PAGE_DEFAULT);
    for (int s = 1; s <= MANY; s++)
        ck_assert_msg(seen[s] == 1, "sequence %d seen %d times", s, seen[s]);

    /* small pages: many links, still each receipt once */
    memset(seen, 0, sizeof seen);
    char *small = tst_fmt("%s?limit=7", path);
    ck_assert_int_eq(walk(small, seen, MANY, 7), (MANY + 6) / 7);
    for (int s = 1; s <= MANY; s++)
        ck_assert_msg(seen[s] == 1, "sequence %d seen %d times (limit 7)", s, seen[s]);

    /* limit at the maximum: one page, nothing after it */
    tst_resp_t r;
    char *at_max = tst_fmt("%s?limit=%d", path, PAGE_MAX);
    get_json(at_max, AUDITOR, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "receipts")), MANY);
    ck_assert(json_is_null(json_object_get(r.json, "next")));
    tst_resp_clear(&r);

    /* after the last sequence: an empty page; after the middle: the rest */
    char *tail = tst_fmt("%s?after=%d", path, MANY - 3);
    get_json(tail, AUDITOR, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *crs = json_object_get(r.json, "receipts");
    ck_assert_uint_eq(json_array_size(crs), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(crs, 0), "sequence")),
                     MANY - 2);
    tst_resp_clear(&r);

    /* the HTML page links to the next one */
    ck_assert_int_eq(tst_get(B.port, path, AUDITOR, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *link = tst_fmt("href=\"/governance/session/%s/?after=%d&amp;limit=%d\"", ctx, PAGE_DEFAULT,
                     PAGE_DEFAULT);
    ck_assert_msg(strstr(r.body, link) != NULL, "no next link %s", link);
    tst_resp_clear(&r);

    /* bounds: one past the maximum, zero, malformed; nothing else of the page is served */
    const char *bad[] = {"?limit=501", "?limit=0",   "?limit=-1", "?limit=x",
                         "?after=-1",  "?after=abc", "?after=1e3", "?after=99999999999999999999",
                         NULL};
    ck_assert_int_eq(PAGE_MAX, 500);
    for (int i = 0; bad[i]; i++) {
        char *p = tst_fmt("%s%s", path, bad[i]);
        get_json(p, AUDITOR, &r);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        ck_assert_str_eq(tst_err_code(r.json), "invalid_query");
        ck_assert_ptr_null(json_object_get(r.json, "receipts"));
        tst_resp_clear(&r);
        free(p);
    }
    free(path), free(small), free(at_max), free(tail), free(link);
    json_decref(ac);
}
END_TEST

/* Large receipts (8000 escaped characters each): the HTML pages hold fewer than the JSON page
 * but are never cut, and their next links reach every receipt exactly once. */
#define BIG 20
#define HTML_CAP (512 * 1024) /* HTML_MAX in hnd_session.c */

START_TEST(html_pages_of_large_receipts)
{
    json_t *ac = authorize_session();
    const char *ctx = tst_str(ac, "context_id");
    char *lt = malloc(8001);
    memset(lt, '<', 8000);
    lt[8000] = 0;
    for (int i = 0; i < BIG; i++) {
        char *extra = tst_fmt("\"pad\":\"%s\",\"n\":%d", lt, i);
        json_decref(post_cr(ctx, extra));
        free(extra);
    }
    int seen[BIG + 1] = {0}, pages = 0;
    char *p = tst_fmt("/governance/session/%s/", ctx);
    while (p != NULL) {
        tst_resp_t r;
        ck_assert_int_eq(tst_get(B.port, p, AUDITOR, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_lt(r.body_len, HTML_CAP);
        ck_assert_msg(r.body_len > 8 && strcmp(r.body + r.body_len - 8, "</html>\n") == 0,
                      "page %d cut short", pages);
        for (const char *t = strstr(r.body, "<tr id=\"seq-"); t; t = strstr(t + 1, "<tr id=\"seq-")) {
            int seq = atoi(t + strlen("<tr id=\"seq-"));
            ck_assert(seq >= 1 && seq <= BIG);
            seen[seq]++;
        }
        free(p);
        p = NULL;
        const char *a = strstr(r.body, "<a rel=\"next\" href=\"");
        if (a != NULL) {
            a += strlen("<a rel=\"next\" href=\"");
            size_t n = strcspn(a, "\"");
            p = malloc(n + 1);
            size_t o = 0;
            for (size_t i = 0; i < n; i++) {
                p[o++] = a[i];
                if (strncmp(a + i, "&amp;", 5) == 0)
                    i += 4; /* the href is escaped */
            }
            p[o] = 0;
        }
        tst_resp_clear(&r);
        ck_assert_int_lt(++pages, BIG + 2);
    }
    ck_assert_int_gt(pages, 1); /* they did not fit on one page */
    for (int i = 1; i <= BIG; i++)
        ck_assert_msg(seen[i] == 1, "sequence %d seen %d times", i, seen[i]);
    free(lt);
    json_decref(ac);
}
END_TEST

/* ---- the page for people ---- */

#define LINE_WAIT_S 20

/* GET path as HTML (no Accept header) for the auditor; the body (malloc'd). */
static char *get_html(const char *path)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, path, AUDITOR, &r), 0);
    ck_assert_msg(r.status == 200, "%s: %d %s", path, r.status, r.body);
    char ct[128];
    ck_assert_ptr_nonnull(tst_resp_header(&r, "content-type", ct, sizeof ct));
    ck_assert_str_eq(ct, "text/html; charset=utf-8");
    char *b = strdup(r.body);
    tst_resp_clear(&r);
    return b;
}

START_TEST(html_lineage_invoice_escaping)
{
    json_t *ac = authorize_session(), *rc[3];
    const char *ctx = tst_str(ac, "context_id");
    rc[0] = post_cr(ctx, "\"exit_code_note\":\"<script>alert(1)</script>\"");
    rc[1] = post_cr(ctx, "\"metadata\":{\"title\":\"<script>x</script>&\\\"\"}");
    rc[2] = post_cr(ctx, "\"n\":3");
    char *path = tst_fmt("/governance/session/%s/", ctx);

    /* billing runs asynchronously: wait for the three lines */
    for (int i = 0; i < LINE_WAIT_S * 10; i++) {
        if (tst_pg_db_longf(DB, "SELECT count(*) FROM invoice_lines WHERE context_id = '%s'",
                            ctx) == 3)
            break;
        usleep(100 * 1000);
    }
    ck_assert_int_eq(
        tst_pg_db_longf(DB, "SELECT count(*) FROM invoice_lines WHERE context_id = '%s'", ctx), 3);

    char *html = get_html(path);
    /* an honest chain: every step verified, none broken */
    ck_assert_int_eq(count_of(html, "class=\"lineage-verified\""), 3);
    ck_assert_int_eq(count_of(html, "class=\"lineage-broken\""), 0);
    ck_assert_ptr_nonnull(strstr(html, "verified: 3 of 3"));
    /* evidence: the hashes and times of each receipt */
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(strstr(html, tst_str(rc[i], "cr_id")));
        ck_assert_ptr_nonnull(strstr(html, tst_str(rc[i], "lineage_cid")));
        ck_assert_ptr_nonnull(strstr(html, tst_str(rc[i], "chronicle_cid")));
        ck_assert_ptr_nonnull(strstr(html, tst_str(rc[i], "cr_cid")));
    }
    /* each receipt's invoice line links to its invoice */
    PGconn *pg = tst_pg_connect(DB);
    char *sql = tst_fmt("SELECT invoice_id FROM invoice_lines WHERE cr_id = '%s'", tst_str(rc[1], "cr_id"));
    char *inv = tst_pg_scalar(pg, sql);
    PQfinish(pg);
    char *link = tst_fmt("<a href=\"/billing/invoices/%s/\">%s</a> line ", inv, inv);
    ck_assert_ptr_nonnull(strstr(html, link));
    ck_assert_ptr_null(strstr(html, "not billed yet"));
    /* escaped, and the page has no script of its own */
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;x&lt;/script&gt;&amp;"));
    free(html);

    /* JSON carries the same verdicts and lines */
    tst_resp_t r;
    get_json(path, AUDITOR, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *c1 = json_array_get(json_object_get(r.json, "receipts"), 1);
    ck_assert(json_is_true(json_object_get(c1, "lineage_verified")));
    ck_assert_str_eq(tst_str(json_object_get(c1, "invoice_line"), "invoice_id"), inv);
    tst_resp_clear(&r);

    /* across a page boundary the step is checked against the receipt before the page */
    char *second = tst_fmt("%s?after=1&limit=1", path);
    html = get_html(second);
    ck_assert_int_eq(count_of(html, "class=\"lineage-verified\""), 1);
    free(html);

    /* tamper with the second link (as the superuser): it and the step after it break */
    char cid[BRK_CID_LEN + 1];
    ck_assert_int_eq(gov_lineage_cid(tst_str(rc[1], "ac_cid"), tst_str(rc[1], "chronicle_cid"),
                                     tst_str(rc[1], "cr_cid"), NULL, 2, cid),
                     0);
    exec_sql("UPDATE crs SET lineage_cid = '%s' WHERE cr_id = '%s'", cid, tst_str(rc[1], "cr_id"));
    html = get_html(path);
    ck_assert_int_eq(count_of(html, "class=\"lineage-verified\""), 1);
    ck_assert_int_eq(count_of(html, "class=\"lineage-broken\""), 2);
    ck_assert_ptr_nonnull(strstr(html, "verified: 1 of 3"));
    const char *first_broken = strstr(html, "lineage-broken");
    ck_assert_ptr_nonnull(strstr(html, tst_str(rc[0], "lineage_cid")));
    ck_assert(strstr(html, tst_str(rc[0], "lineage_cid")) < first_broken);
    free(html);
    /* on the page of the third receipt alone too: its link to the one before is broken */
    char *third = tst_fmt("%s?after=2&limit=1", path);
    html = get_html(third);
    ck_assert_int_eq(count_of(html, "class=\"lineage-broken\""), 1);
    ck_assert_int_eq(count_of(html, "class=\"lineage-verified\""), 0);
    free(html);

    free(path), free(sql), free(inv), free(link), free(second), free(third);
    for (int i = 0; i < 3; i++)
        json_decref(rc[i]);
    json_decref(ac);
}
END_TEST

/* ---- signed view links ---- */

#define VIEW_TTL_MAX_S (24 * 3600) /* SESSION_VIEW_TTL_MAX_S */

/* POST .../link as token; the response (status checked against expect). */
static json_t *mint(const char *ctx, const char *token, const char *query, int expect)
{
    tst_resp_t r;
    char *path = tst_fmt("/governance/session/%s/link%s", ctx, query ? query : "");
    /* never without a key */
    ck_assert_int_eq(tst_http(B.port, "POST", path, NULL, "", 0, &r), 0);
    ck_assert_int_eq(r.status, 401);
    tst_resp_clear(&r);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n", token);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, "", 0, &r), 0);
    ck_assert_msg(r.status == expect, "mint %s: %d (want %d) %s", path, r.status, expect, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(path), free(hdr);
    return j;
}

/* The path and query of an absolute URL (after "http://host:port"). */
static const char *path_of(const char *url)
{
    const char *p = strstr(url, "://");
    ck_assert_ptr_nonnull(p);
    p = strchr(p + 3, '/');
    ck_assert_ptr_nonnull(p);
    return p;
}

/* GET path without any key, as JSON (json) or HTML; the status, *code the error code. */
static int anon(const char *path, int json, tst_resp_t *r)
{
    ck_assert_int_eq(tst_http(B.port, "GET", path, json ? "Accept: application/json\r\n" : NULL,
                              NULL, 0, r),
                     0);
    return r->status;
}

static void want_401(const char *path, const char *code)
{
    tst_resp_t r;
    ck_assert_msg(anon(path, 1, &r) == 401, "%s: %d %s", path, r.status, r.body);
    ck_assert_str_eq(tst_err_code(r.json), code);
    ck_assert_ptr_null(json_object_get(r.json, "receipts"));
    tst_resp_clear(&r);
}

START_TEST(view_links)
{
    json_t *ac = authorize_session(), *other_ac = authorize_session();
    const char *ctx = tst_str(ac, "context_id");
    json_decref(post_cr(ctx, "\"n\":1"));
    json_decref(post_cr(ctx, "\"n\":2"));
    char *path = tst_fmt("/governance/session/%s/", ctx);
    tst_resp_t r;

    /* today's 401 without a key, and with a key that cannot read it nothing is minted */
    want_401(path, "missing_token");
    char *stranger = tst_keys_create(&B, "acme", "issuer");
    json_decref(mint(ctx, stranger, NULL, 404));
    json_decref(mint(ctx, OTHER_TENANT, NULL, 404));

    /* the issuing key, the executing key and an auditor mint; it lives SESSION_VIEW_TTL_MAX_S */
    json_t *l = mint(ctx, ISSUER, NULL, 200);
    json_decref(mint(ctx, EXECUTOR, NULL, 200));
    json_decref(mint(ctx, AUDITOR, NULL, 200));
    const char *url = tst_str(l, "url");
    char *prefix = tst_fmt("/governance/session/%s/?view=", ctx);
    ck_assert_msg(strncmp(path_of(url), prefix, strlen(prefix)) == 0, "%s", url);
    struct tm tm = {0};
    ck_assert_ptr_nonnull(strptime(tst_str(l, "expires_at"), "%Y-%m-%dT%H:%M:%SZ", &tm));
    long ttl = (long)(timegm(&tm) - time(NULL));
    ck_assert_msg(ttl > VIEW_TTL_MAX_S - 120 && ttl <= VIEW_TTL_MAX_S, "ttl %ld", ttl);

    /* it opens the page without a key: HTML, JSON, and the next pages carry it on */
    ck_assert_int_eq(anon(path_of(url), 0, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "class=\"lineage-verified\""));
    char hv[64];
    ck_assert_ptr_nonnull(tst_resp_header(&r, "referrer-policy", hv, sizeof hv));
    ck_assert_str_eq(hv, "no-referrer");
    tst_resp_clear(&r);
    char *paged = tst_fmt("%s&limit=1", path_of(url));
    ck_assert_int_eq(anon(paged, 1, &r), 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "receipts")), 1);
    const char *next = tst_str(r.json, "next");
    ck_assert_ptr_nonnull(next);
    ck_assert_ptr_nonnull(strstr(next, "&view="));
    char *next_path = strdup(next);
    tst_resp_clear(&r);
    ck_assert_int_eq(anon(next_path, 1, &r), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_array_get(json_object_get(r.json, "receipts"), 0), "sequence")),
                     2);
    tst_resp_clear(&r);

    /* read-only and for this page only: no other route, no other context */
    const char *token = strstr(url, "?view=") + strlen("?view=");
    char *poll = tst_fmt("/governance/authorize/%s/?view=%s", ctx, token);
    want_401(poll, "missing_token");
    char *elsewhere = tst_fmt("/governance/session/%s/?view=%s", tst_str(other_ac, "context_id"), token);
    want_401(elsewhere, "invalid_view_link");

    /* tampered: any byte changed, the signature cut, or empty */
    char *bad = tst_fmt("%s", path_of(url));
    char *t = strstr(bad, "?view=") + strlen("?view=");
    t[10] = t[10] == 'A' ? 'B' : 'A';
    want_401(bad, "invalid_view_link");
    free(bad);
    bad = tst_fmt("%.*s", (int)(strlen(path_of(url)) - 8), path_of(url));
    want_401(bad, "invalid_view_link");
    free(bad);
    bad = tst_fmt("%s?view=", path);
    want_401(bad, "invalid_view_link");
    free(bad);

    /* another tenant's link: not for this context; and re-pointed at it, no longer signed */
    json_t *theirs_ac = NULL;
    {
        const char *body = "{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\""
                           CMD "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\""
                           PARAMS "\"}}";
        ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", OTHER_TENANT, body, &r), 0);
        ck_assert_int_eq(r.status, 200);
        theirs_ac = json_incref(r.json);
        tst_resp_clear(&r);
    }
    const char *their_ctx = tst_str(theirs_ac, "context_id");
    json_t *tl = mint(their_ctx, OTHER_TENANT, NULL, 200);
    const char *their_token = strstr(tst_str(tl, "url"), "?view=") + strlen("?view=");
    char *cross = tst_fmt("%s?view=%s", path, their_token);
    want_401(cross, "invalid_view_link");
    uint8_t raw[512];
    int n = brk_b64url_decode(their_token, strlen(their_token), raw, sizeof raw);
    ck_assert_int_gt(n, 0);
    ck_assert_uint_eq(strlen(their_ctx), strlen(ctx));
    uint8_t *at = memmem(raw, (size_t)n, their_ctx, strlen(their_ctx));
    ck_assert_ptr_nonnull(at);
    memcpy(at, ctx, strlen(ctx));
    char forged[1024];
    brk_b64url_encode(raw, (size_t)n, forged);
    char *forged_path = tst_fmt("%s?view=%s", path, forged);
    want_401(forged_path, "invalid_view_link");
    /* the other tenant's own page opens with its link */
    char *their_path = tst_fmt("/governance/session/%s/?view=%s", their_ctx, their_token);
    ck_assert_int_eq(anon(their_path, 1, &r), 200);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "ac"), "context_id"), their_ctx);
    tst_resp_clear(&r);

    /* lifetime: at the maximum, one past it, zero */
    char *q_max = tst_fmt("?ttl_s=%d", VIEW_TTL_MAX_S), *q_over = tst_fmt("?ttl_s=%d", VIEW_TTL_MAX_S + 1);
    json_decref(mint(ctx, AUDITOR, q_max, 200));
    json_t *e = mint(ctx, AUDITOR, q_over, 400);
    ck_assert_str_eq(tst_err_code(e), "invalid_query");
    json_decref(e);
    json_decref(mint(ctx, AUDITOR, "?ttl_s=0", 400));

    /* expired */
    /* (not opened while fresh: on a loaded machine a second may pass before the request) */
    json_t *shortl = mint(ctx, AUDITOR, "?ttl_s=1", 200);
    sleep(3);
    want_401(path_of(tst_str(shortl, "url")), "view_link_expired");

    free(path), free(stranger), free(prefix), free(paged), free(next_path), free(poll);
    free(elsewhere), free(cross), free(forged_path), free(their_path), free(q_max), free(q_over);
    json_decref(l), json_decref(ac), json_decref(other_ac), json_decref(theirs_ac);
    json_decref(tl), json_decref(shortl);
}
END_TEST

/* ---- denial receipts ---- */

#define DENIALS 7
#define DENIALS_MAX 500 /* DENIALS_PAGE_MAX in hnd_denials.c */

/* An authorize request the default accord denies (a capability it does not grant). */
static json_t *denied(const char *token)
{
    tst_resp_t r;
    const char *body = "{\"accord_template\":\"default\",\"capability_set\":\"0x00010000\","
                       "\"operation\":{\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\""
                       CORPUS "\",\"parameters_cid\":\"" PARAMS "\"}}";
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", token, body, &r), 0);
    ck_assert_msg(r.status == 403, "authorize: %d %s", r.status, r.body);
    json_t *d = json_incref(json_object_get(r.json, "denial"));
    ck_assert_ptr_nonnull(d);
    tst_resp_clear(&r);
    return d;
}

START_TEST(denials_for_auditors)
{
    json_t *mine[DENIALS];
    for (int i = 0; i < DENIALS; i++)
        mine[i] = denied(ISSUER);
    json_t *theirs = denied(OTHER_TENANT);
    tst_resp_t r;

    /* the broker's public key, as published */
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    const char *pub_s = tst_str(json_array_get(json_object_get(r.json, "keys"), 0), "public_key");
    uint8_t pub[BRK_ED25519_PUB_LEN];
    ck_assert_int_eq(brk_b64url_decode(pub_s, strlen(pub_s), pub, sizeof pub), BRK_ED25519_PUB_LEN);
    tst_resp_clear(&r);

    /* pages of 3, newest first, each denial once, the other tenant's never */
    char *p = strdup("/governance/denials/?limit=3");
    int seen[DENIALS] = {0}, pages = 0, order = DENIALS - 1;
    while (p != NULL) {
        get_json(p, AUDITOR, &r);
        ck_assert_msg(r.status == 200, "%s: %d %s", p, r.status, r.body);
        json_t *list = json_object_get(r.json, "denials"), *d;
        size_t i;
        ck_assert_uint_le(json_array_size(list), 3);
        json_array_foreach(list, i, d)
        {
            ck_assert_str_ne(tst_str(d, "denial_id"), tst_str(theirs, "denial_id"));
            /* newest first: the i-th seen is the (DENIALS-1-i)-th made */
            ck_assert_str_eq(tst_str(d, "denial_id"), tst_str(mine[order], "denial_id"));
            ck_assert_str_eq(tst_str(d, "reason_code"), "capability_not_allowed");
            seen[order--]++;
        }
        free(p);
        json_t *next = json_object_get(r.json, "next");
        p = json_is_string(next) ? strdup(json_string_value(next)) : NULL;
        tst_resp_clear(&r);
        ck_assert_int_lt(++pages, 10);
    }
    ck_assert_int_eq(pages, (DENIALS + 2) / 3);
    for (int i = 0; i < DENIALS; i++)
        ck_assert_int_eq(seen[i], 1);

    /* one denial: the receipt as signed, verifying with the published key */
    char *one = tst_fmt("/governance/denials/%s", tst_str(mine[2], "denial_id"));
    get_json(one, AUDITOR, &r);
    ck_assert_int_eq(r.status, 200);
    json_t *rec = json_object_get(r.json, "receipt");
    char cid[BRK_CID_LEN + 1];
    ck_assert_int_eq(brk_doc_verify(pub, rec, "denial_cid", cid), 0);
    ck_assert_str_eq(cid, tst_str(mine[2], "denial_cid"));
    ck_assert_str_eq(tst_str(rec, "signature"), tst_str(mine[2], "signature"));
    tst_resp_clear(&r);
    /* other roles of the tenant: 403; no key: 401 */
    get_json(one, ISSUER, &r);
    ck_assert_int_eq(r.status, 403);
    tst_resp_clear(&r);
    get_json("/governance/denials/", EXECUTOR, &r);
    ck_assert_int_eq(r.status, 403);
    tst_resp_clear(&r);
    get_json(one, NULL, &r);
    ck_assert_int_eq(r.status, 401);
    tst_resp_clear(&r);
    /* another tenant's denial, a made-up one and a malformed id: not found */
    char *other = tst_fmt("/governance/denials/%s", tst_str(theirs, "denial_id"));
    const char *missing[] = {other, "/governance/denials/den_00000000000000000000000000000000",
                             "/governance/denials/den_x", NULL};
    for (int i = 0; missing[i]; i++) {
        get_json(missing[i], AUDITOR, &r);
        ck_assert_msg(r.status == 404, "%s: %d", missing[i], r.status);
        ck_assert_str_eq(tst_err_code(r.json), "denial_not_found");
        tst_resp_clear(&r);
    }
    /* and the other tenant's auditor sees its own only */
    get_json("/governance/denials/", OTHER_TENANT, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "denials")), 1);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(r.json, "denials"), 0), "denial_id"),
                     tst_str(theirs, "denial_id"));
    tst_resp_clear(&r);

    /* bounds */
    char *at_max = tst_fmt("/governance/denials/?limit=%d", DENIALS_MAX);
    get_json(at_max, AUDITOR, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "denials")), DENIALS);
    ck_assert(json_is_null(json_object_get(r.json, "next")));
    tst_resp_clear(&r);
    const char *bad[] = {"?limit=501", "?limit=0", "?limit=x", "?after=den_1", "?after=1",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        char *q = tst_fmt("/governance/denials/%s", bad[i]);
        get_json(q, AUDITOR, &r);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        ck_assert_str_eq(tst_err_code(r.json), "invalid_query");
        tst_resp_clear(&r);
        free(q);
    }
    free(one), free(other), free(at_max);
    for (int i = 0; i < DENIALS; i++)
        json_decref(mine[i]);
    json_decref(theirs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_session");
    TCase *tc = tcase_create("session");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, pages_reach_every_receipt);
    tcase_add_test(tc, html_lineage_invoice_escaping);
    tcase_add_test(tc, html_pages_of_large_receipts);
    tcase_add_test(tc, view_links);
    tcase_add_test(tc, denials_for_auditors);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
