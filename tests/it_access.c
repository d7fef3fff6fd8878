/*
 * it_access: every registered route x every kind of caller x own/other tenant, against the
 * real binary and PostgreSQL, with the expected statuses read from the tables of
 * docs/access.md (so the document and the broker cannot drift apart).
 *
 * The fixture: tenant acme with one key per role plus the key that issues every AC ("issuing
 * key"), the key that posts the receipt of the consumed AC ("executing key") and a second
 * approver; tenant globex with one key per role. ACs in each state the matrix names, an
 * invoice (billed from the consumed AC's receipt), and the rows run top to bottom, the own
 * tenant's table first (a cell that uses an object, e.g. completes an AC, leaves a later cell
 * a 409, which still counts as "ok").
 *
 * Also checked: every registered route (the router's own list, in process, as it_openapi
 * does) is in both tables and every row names a registered route; a cell that says 404
 * answers exactly as a context that does not exist (same status, code and message), so a
 * refused read tells nothing.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_http.h"
#include "hnd.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define RETRIES_429 5

#define DB "it_access"
#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define MAX_COLS 16
#define MAX_ROWS 96
#define INVOICE_WAIT_S 30

static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", NULL};

static tst_broker_t B;
static PGconn *PG;

/* The callers: a column name of the document and the token it stands for (NULL: none). */
typedef struct caller {
    const char *column;
    char *token;
} caller_t;

static caller_t OWN[] = {
    {"anonymous", NULL}, {"issuer", NULL},  {"executor", NULL},    {"approver", NULL},
    {"finance", NULL},   {"auditor", NULL}, {"admin", NULL},       {"issuing key", NULL},
    {"executing key", NULL},
};
static caller_t OTHER[] = {
    {"issuer", NULL}, {"executor", NULL}, {"approver", NULL},
    {"finance", NULL}, {"auditor", NULL}, {"admin", NULL},
};
#define NOWN (sizeof OWN / sizeof OWN[0])
#define NOTHER (sizeof OTHER / sizeof OTHER[0])
static char *APPROVER2, *ADMIN;

/* The objects: a name of the document, its value, and the code of its not-found 404. */
typedef struct object {
    const char *name;
    char value[128];
    const char *not_found;
} object_t;

static object_t OBJECTS[] = {
    {"-", "x", NULL}, /* nothing named; a {param} gets "x" and any 404 counts as "ok" */
    {"consumed AC", "", "context_not_found"},
    {"open AC", "", "context_not_found"},
    {"pending AC", "", "context_not_found"},
    {"AC this approver refused", "", "context_not_found"},
    {"AC another approver refused", "", "context_not_found"},
    {"AC to decide", "", "context_not_found"},
    {"AC to complete", "", "context_not_found"},
    {"accord default", "default", "accord_not_found"},
    {"accord new", "matrix", "accord_not_found"},
    {"account default", "default", "account_not_found"},
    {"account new", "matrix", "account_not_found"},
    {"invoice", "", "invoice_not_found"},
};
#define NOBJECTS (sizeof OBJECTS / sizeof OBJECTS[0])
static char *DEFAULT_CARD;


static object_t *object(const char *name)
{
    for (size_t i = 0; i < NOBJECTS; i++)
        if (strcmp(OBJECTS[i].name, name) == 0)
            return &OBJECTS[i];
    ck_abort_msg("docs/access.md names an object the test does not know: \"%s\"", name);
    return NULL;
}

static const char *code_of(const tst_resp_t *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "";
}

/* method path with token (may be NULL) and body (may be NULL). */
static void call(const char *method, const char *path, const char *token, const char *body,
                 tst_resp_t *r)
{
    char *hdr = tst_fmt("%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
                    token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "");
    /* This suite sends hundreds of requests in a burst: a rate limiter in front may answer
     * 429 with Retry-After; wait and ask again, as a client should, up to RETRIES_429 times. */
    for (int i = 0;; i++) {
        ck_assert_int_eq(tst_http(B.port, method, path, hdr, body, body ? strlen(body) : 0, r), 0);
        if (r->status != 429 || i == RETRIES_429)
            break;
        char ra[16];
        int secs = tst_resp_header(r, "retry-after", ra, sizeof ra) ? atoi(ra) : 1;
        tst_resp_clear(r);
        sleep((unsigned)(secs < 1 ? 1 : secs > 5 ? 5 : secs));
    }
    free(hdr);
}

static json_t *call_ok(const char *method, const char *path, const char *token, const char *body)
{
    tst_resp_t r;
    call(method, path, token, body, &r);
    ck_assert_msg(r.status == 200, "%s %s: %d %s", method, path, r.status, r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    return j;
}

static char *authorize_body(const char *accord, const char *caps)
{
    return tst_fmt("{\"accord_template\":\"%s\",\"capability_set\":\"%s\",\"operation\":{"
               "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
               "\"parameters_cid\":\"" PARAMS "\"}}",
               accord, caps);
}

static char *cr_body(const char *ctx)
{
    return tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
               "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":\"2030-01-01T00:00:00Z\","
               "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
               "\"parameters_cid\":\"" PARAMS "\",\"chronicle\":{\"session_id\":\"s\","
               "\"behavior_state\":\"unavailable\",\"merkle_root\":null}}",
               ctx);
}

/* Issues an AC with the issuing key into obj; pending when elev. */
static void issue(object_t *obj, int elev)
{
    char *body = authorize_body(elev ? "elev" : "default", elev ? "0x00000081" : "0x00000001");
    json_t *ac = call_ok("POST", "/governance/authorize/", OWN[7].token, body);
    const char *status = json_string_value(json_object_get(ac, "status"));
    ck_assert_str_eq(status, elev ? "pending" : "authorized");
    snprintf(obj->value, sizeof obj->value, "%s",
             json_string_value(json_object_get(ac, "context_id")));
    json_decref(ac);
    free(body);
}

static void refuse(object_t *obj, const char *approver)
{
    char *body = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"refuse\"}", obj->value);
    json_decref(call_ok("POST", "/governance/elevate/", approver, body));
    free(body);
}

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    PG = tst_pg_connect(DB);
    ck_assert_int_eq(hnd_register(), 0);
    static const char *const own_roles[] = {NULL,    "issuer",  "executor", "approver", "finance",
                                            "auditor", "admin", "issuer",   "executor"};
    for (size_t i = 1; i < NOWN; i++)
        OWN[i].token = tst_keys_create(&B, "acme", own_roles[i]);
    for (size_t i = 0; i < NOTHER; i++)
        OTHER[i].token = tst_keys_create(&B, "globex", OTHER[i].column);
    APPROVER2 = tst_keys_create(&B, "acme", "approver");
    ADMIN = OWN[6].token;

    json_decref(call_ok("PUT", "/admin/accords/elev", ADMIN,
                        "{\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"}"));
    issue(object("consumed AC"), 0);
    issue(object("open AC"), 0);
    issue(object("pending AC"), 1);
    issue(object("AC this approver refused"), 1);
    issue(object("AC another approver refused"), 1);
    issue(object("AC to decide"), 1);
    issue(object("AC to complete"), 0);
    refuse(object("AC this approver refused"), OWN[3].token);
    refuse(object("AC another approver refused"), APPROVER2);
    char *cr = cr_body(object("consumed AC")->value);
    json_decref(call_ok("POST", "/governance/complete/", OWN[8].token, cr));
    free(cr);

    /* the receipt is billed by the runtime: wait for acme's open invoice */
    char *inv = NULL;
    for (int i = 0; i < INVOICE_WAIT_S * 10 && inv == NULL; i++) {
        inv = tst_pg_scalar(PG, "SELECT invoice_id FROM invoices WHERE tenant_id = 'acme' "
                                "AND status = 'open' LIMIT 1");
        if (inv == NULL)
            usleep(100 * 1000);
    }
    ck_assert_msg(inv != NULL, "no invoice within %d s", INVOICE_WAIT_S);
    snprintf(object("invoice")->value, sizeof OBJECTS[0].value, "%s", inv);
    free(inv);
    DEFAULT_CARD = tst_pg_scalar(PG, "SELECT rate_card::text FROM billing_accounts WHERE "
                                     "tenant_id = 'acme' AND account_id = 'default'");
    ck_assert_ptr_nonnull(DEFAULT_CARD);
}

static void teardown(void)
{
    PQfinish(PG);
    tst_broker_clear(&B);
    for (size_t i = 0; i < NOWN; i++)
        free(OWN[i].token), OWN[i].token = NULL;
    for (size_t i = 0; i < NOTHER; i++)
        free(OTHER[i].token), OTHER[i].token = NULL;
    free(APPROVER2), free(DEFAULT_CARD);
}

/* ---- the document ---- */

typedef struct row {
    char *cells[MAX_COLS]; /* method, path, object, then one per caller column */
    size_t n;
} row_t;

typedef struct table {
    row_t head;
    row_t rows[MAX_ROWS];
    size_t nrows;
} table_t;

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Splits "| a | b |" into its cells (pointers into line, which it modifies). */
static void split(char *line, row_t *row)
{
    row->n = 0;
    char *p = strchr(line, '|');
    ck_assert_ptr_nonnull(p);
    p++;
    for (char *bar; (bar = strchr(p, '|')) != NULL; p = bar + 1) {
        *bar = '\0';
        ck_assert_uint_lt(row->n, MAX_COLS);
        row->cells[row->n++] = trim(p);
    }
}

/* The table after the marker "<!-- access-matrix: name -->" in doc (modified in place). */
static void parse_table(char *doc, const char *name, table_t *t)
{
    char marker[64];
    snprintf(marker, sizeof marker, "<!-- access-matrix: %s -->", name);
    char *p = strstr(doc, marker);
    ck_assert_msg(p != NULL, "docs/access.md has no \"%s\"", marker);
    p = strchr(p, '\n') + 1;
    int line_no = 0;
    t->nrows = 0;
    while (*p == '|') {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (line_no == 0)
            split(p, &t->head);
        else if (line_no > 1) {
            ck_assert_uint_lt(t->nrows, MAX_ROWS);
            split(p, &t->rows[t->nrows]);
            ck_assert_msg(t->rows[t->nrows].n == t->head.n, "row %zu of \"%s\" has %zu cells, not %zu",
                          t->nrows + 1, name, t->rows[t->nrows].n, t->head.n);
            t->nrows++;
        }
        line_no++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    ck_assert_uint_gt(t->nrows, 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *s = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (cap - n < 4096)
            s = realloc(s, cap = cap * 2 + 4096);
        got = fread(s + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    s[n] = '\0';
    return s;
}

/* ---- the requests ---- */

/* The path of a row (the pattern with its {param} set to the object) and its body. */
static void request_of(const row_t *row, char **path, char **body)
{
    const char *method = row->cells[0], *pattern = row->cells[1];
    const object_t *obj = object(row->cells[2]);
    size_t cap = strlen(pattern) + sizeof obj->value + 2, o = 0;
    char *out = malloc(cap);
    for (const char *p = pattern; *p; p++) {
        if (*p == '{') {
            p = strchr(p, '}');
            o += (size_t)snprintf(out + o, cap - o, "%s", obj->value);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    *path = out;
    *body = NULL;
    if (strcmp(method, "POST") == 0 && strcmp(pattern, "/admin/keys") == 0)
        *body = strdup("{\"roles\":[\"auditor\"]}");
    else if (strcmp(pattern, "/governance/authorize") == 0)
        *body = authorize_body("default", "0x00000001");
    else if (strcmp(pattern, "/governance/elevate") == 0)
        *body = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"refuse\"}", obj->value);
    else if (strcmp(pattern, "/governance/complete") == 0)
        *body = cr_body(obj->value);
    else if (strcmp(method, "PUT") == 0 && strcmp(pattern, "/admin/accords/{name}") == 0)
        *body = strdup("{\"capability_mask\":\"0x0000000f\"}");
    else if (strcmp(method, "PUT") == 0 && strcmp(pattern, "/admin/accounts/{account_id}") == 0)
        *body = tst_fmt("{\"currency\":\"USD\",\"rate_card\":%s}", DEFAULT_CARD);
    else if (strcmp(pattern, "/admin/functions/dead-letters/replay") == 0)
        *body = strdup("{\"event_id\":1,\"function\":\"billing\"}");
    else if (strcmp(pattern, "/billing/invoices/{invoice_id}/credit-notes") == 0)
        *body = strdup("{\"line_no\":1,\"amount_minor\":1,\"reason\":\"matrix\"}");
}

/* Checks one cell; returns 1 when it holds, else 0 with why in msg. */
static int cell_holds(const char *want, const object_t *obj, const tst_resp_t *r, char *msg,
                      size_t cap)
{
    int obj_404 = r->status == 404 && obj->not_found != NULL &&
                  strcmp(code_of(r), obj->not_found) == 0;
    if (strcmp(want, "ok") == 0) {
        if (r->status == 401 || r->status == 403 || obj_404 || r->status >= 500) {
            snprintf(msg, cap, "want ok, got %d %s", r->status, code_of(r));
            return 0;
        }
        return 1;
    }
    if (strcmp(want, "404") == 0) {
        if (!obj_404) {
            snprintf(msg, cap, "want 404 %s, got %d %s", obj->not_found ? obj->not_found : "?",
                     r->status, code_of(r));
            return 0;
        }
        return 1;
    }
    int st = atoi(want);
    ck_assert_msg(st == 401 || st == 403, "docs/access.md: unknown cell \"%s\"", want);
    if (r->status != st) {
        snprintf(msg, cap, "want %d, got %d %s", st, r->status, code_of(r));
        return 0;
    }
    return 1;
}

/* Walks table t with callers; returns the number of failing cells (each printed). */
static int walk(const table_t *t, caller_t *callers, size_t ncallers, const char *which,
                size_t *cells)
{
    int failures = 0;
    caller_t *col[MAX_COLS] = {0};
    ck_assert_str_eq(t->head.cells[0], "method");
    ck_assert_str_eq(t->head.cells[1], "path");
    ck_assert_str_eq(t->head.cells[2], "object");
    ck_assert_uint_eq(t->head.n, 3 + ncallers);
    for (size_t c = 3; c < t->head.n; c++) {
        for (size_t k = 0; k < ncallers; k++)
            if (strcmp(callers[k].column, t->head.cells[c]) == 0)
                col[c] = &callers[k];
        ck_assert_msg(col[c] != NULL, "%s table: unknown column \"%s\"", which, t->head.cells[c]);
    }
    for (size_t i = 0; i < t->nrows; i++) {
        const row_t *row = &t->rows[i];
        const object_t *obj = object(row->cells[2]);
        char *path, *body;
        request_of(row, &path, &body);
        for (size_t c = 3; c < row->n; c++) {
            tst_resp_t r;
            char msg[256];
            call(row->cells[0], path, col[c]->token, body, &r);
            (*cells)++;
            if (!cell_holds(row->cells[c], obj, &r, msg, sizeof msg)) {
                fprintf(stderr, "it_access: %s tenant, %s %s (%s) as %s: %s: %.200s\n", which,
                        row->cells[0], row->cells[1], row->cells[2], col[c]->column, msg, r.body);
                failures++;
            }
            tst_resp_clear(&r);
        }
        free(path), free(body);
    }
    return failures;
}

/* 1 when table t has a row for (method, pattern). */
static int has_route(const table_t *t, const char *method, const char *pattern)
{
    for (size_t i = 0; i < t->nrows; i++)
        if (strcmp(t->rows[i].cells[0], method) == 0 && strcmp(t->rows[i].cells[1], pattern) == 0)
            return 1;
    return 0;
}

static int registered(const char *method, const char *pattern)
{
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        if (strcmp(rt->method, method) == 0 && strcmp(rt->pattern, pattern) == 0)
            return 1;
    }
    return 0;
}

START_TEST(matrix)
{
    char *path = tst_fmt("%s/docs/access.md", getenv("GSAP_SOURCE_DIR"));
    char *doc = slurp(path), *doc2 = slurp(path); /* each parse cuts its copy into cells */
    static table_t own, other;
    parse_table(doc, "own", &own);
    parse_table(doc2, "other", &other);

    /* both tables cover every registered route, and name nothing else */
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        ck_assert_msg(has_route(&own, rt->method, rt->pattern),
                      "docs/access.md (own tenant) lacks %s %s", rt->method, rt->pattern);
        ck_assert_msg(has_route(&other, rt->method, rt->pattern),
                      "docs/access.md (other tenant) lacks %s %s", rt->method, rt->pattern);
    }
    const table_t *tables[] = {&own, &other};
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < tables[k]->nrows; i++)
            ck_assert_msg(registered(tables[k]->rows[i].cells[0], tables[k]->rows[i].cells[1]),
                          "docs/access.md names %s %s, which is not a route",
                          tables[k]->rows[i].cells[0], tables[k]->rows[i].cells[1]);

    size_t cells = 0;
    int failures = walk(&own, OWN, NOWN, "own", &cells);
    failures += walk(&other, OTHER, NOTHER, "other", &cells);
    ck_assert_uint_ge(cells, 400);
    ck_assert_msg(failures == 0, "%d of %zu cells differ from docs/access.md (listed above)",
                  failures, cells);
    free(doc), free(doc2), free(path);
}
END_TEST

/* A refused read answers exactly as an id that does not exist: nothing to learn from it. */
START_TEST(refused_read_is_not_found)
{
    const char *routes[] = {"/governance/authorize/%s/", "/governance/session/%s/"};
    for (size_t i = 0; i < 2; i++) {
        tst_resp_t a, b;
        char *hidden = tst_fmt(routes[i], object("consumed AC")->value);
        char *missing = tst_fmt(routes[i], "ctx_00000000000000000000000000000000");
        call("GET", hidden, OWN[1].token, NULL, &a);      /* another issuer of the tenant */
        call("GET", missing, OWN[1].token, NULL, &b);
        ck_assert_int_eq(a.status, 404);
        ck_assert_int_eq(b.status, 404);
        json_t *ea = json_object_get(a.json, "error"), *eb = json_object_get(b.json, "error");
        ck_assert_str_eq(json_string_value(json_object_get(ea, "code")),
                         json_string_value(json_object_get(eb, "code")));
        ck_assert_str_eq(json_string_value(json_object_get(ea, "message")),
                         json_string_value(json_object_get(eb, "message")));
        tst_resp_clear(&a), tst_resp_clear(&b);
        free(hidden), free(missing);
    }
    /* and the readers that may read it see the AC itself */
    char *p = tst_fmt("/governance/authorize/%s/", object("consumed AC")->value);
    json_t *ac = call_ok("GET", p, OWN[8].token, NULL); /* the executing key */
    ck_assert_str_eq(json_string_value(json_object_get(ac, "status")), "consumed");
    json_decref(ac);
    free(p);
}
END_TEST

/* An approver that recorded a decision in the elevation's "approvals" list (where several
 * approvals are recorded, without a single "approver") reads the AC as well. */
START_TEST(decision_in_approvals_list)
{
    tst_resp_t r;
    const char *ctx = object("AC another approver refused")->value;
    char *path = tst_fmt("/governance/session/%s/", ctx);
    char key_id[17];
    /* the key id is the token's third part: gsap.<tenant>.<key_id>.<secret> */
    ck_assert_int_eq(sscanf(OWN[3].token, "gsap.acme.%16[0-9a-f].", key_id), 1);
    call("GET", path, OWN[3].token, NULL, &r);
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    char *sql = tst_fmt("UPDATE acs SET elevation = (elevation - 'approver') || "
                    "jsonb_build_object('approvals', jsonb_build_array(jsonb_build_object("
                    "'key_id', 'fedcba9876543210', 'decision', 'approve'), jsonb_build_object("
                    "'key_id', '%s', 'decision', 'refuse'))) WHERE context_id = '%s' "
                    "RETURNING 1",
                    key_id, ctx);
    char *one = tst_pg_scalar(PG, sql);
    ck_assert_str_eq(one, "1");
    free(one), free(sql);
    call("GET", path, OWN[3].token, NULL, &r);
    ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
    tst_resp_clear(&r);
    call("GET", path, APPROVER2, NULL, &r); /* its "approver" mark is gone with the edit */
    ck_assert_int_eq(r.status, 404);
    tst_resp_clear(&r);
    free(path);
}
END_TEST

static Suite *access_suite(void)
{
    Suite *s = suite_create("access");
    TCase *tc = tcase_create("access");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, matrix);
    tcase_add_test(tc, refused_read_is_not_found);
    tcase_add_test(tc, decision_in_approvals_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(access_suite());
}
