/*
 * it_openapi: GET /openapi.json against the real binary, checked three ways.
 *
 * 1. An implementation that is not ours validates it (tests/npm/validate_openapi.mjs:
 *    swagger-parser and the OpenAPI 3.1 schema) and lists its operations.
 * 2. Every listed operation exists on the running broker: the method on the path (each
 *    {param} replaced by "x", with and without the trailing slash) is answered by a route,
 *    never by the router's "no route" 404 or a 405, and with a status the document lists for
 *    that operation. Paths the document leaves out do get the "no route" 404.
 * 3. The converse, in process: every route the handlers register (the same library the
 *    binary links) is documented, with its roles in x-gsap-roles and bearerAuth exactly when
 *    it is not public. So neither side can gain a route the other lacks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tst_check.h"
#include "brk_http.h"
#include "brk_keys.h"
#include "hnd.h"
#include "tst_broker.h"
#include "tst_pg.h"

#define MAX_OPS 128

static tst_broker_t B;
static char *ADMIN;

static void setup(void)
{
    const char *ci = tst_pg_createdb("it_openapi");
    ck_assert_int_eq(tst_broker_start(&B, ci, NULL), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(ADMIN);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0, got;
    if (f == NULL)
        return NULL;
    do {
        if (cap - n < 4096)
            p = realloc(p, cap = cap * 2 + 4096);
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    p[n] = 0;
    if (len)
        *len = n;
    return p;
}

/* The served document, parsed; the raw response stays in *r for the caller to clear. */
static json_t *fetch_doc(tst_resp_t *r)
{
    char v[128];
    ck_assert_int_eq(tst_get(B.port, "/openapi.json", NULL, r), 0);
    ck_assert_int_eq(r->status, 200);
    ck_assert_str_eq(tst_resp_header(r, "content-type", v, sizeof v), "application/json");
    ck_assert_msg(json_is_object(r->json), "/openapi.json is not a JSON object");
    return r->json;
}

/* The router's own 404 for a path no route has, as opposed to a route's 404 for an object. */
static int is_no_route(const tst_resp_t *r)
{
    json_t *e = json_object_get(r->json, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    return r->status == 404 && code != NULL && strcmp(code, "not_found") == 0 && msg != NULL &&
           strncmp(msg, "no route", 8) == 0;
}

START_TEST(served_document)
{
    tst_resp_t r;
    size_t flen;
    char path[1024];
    json_t *doc = fetch_doc(&r);

    /* the binary serves the document of the tree it was built from, byte for byte */
    snprintf(path, sizeof path, "%s/docs/openapi.json", getenv("GSAP_SOURCE_DIR"));
    char *file = slurp(path, &flen);
    ck_assert_ptr_nonnull(file);
    ck_assert_uint_eq(r.body_len, flen);
    ck_assert(memcmp(r.body, file, flen) == 0);
    free(file);

    ck_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    /* the one error shape: {"error": {"code", "message", "request_id"}}, all three required */
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *err = json_object_get(schemas, "Error");
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(err, "required"), 0)), "error");
    json_t *inner = json_object_get(json_object_get(err, "properties"), "error");
    json_t *req = json_object_get(inner, "required");
    const char *want[] = {"code", "message", "request_id"};
    for (size_t i = 0; i < 3; i++) {
        size_t j;
        json_t *v;
        int found = 0;
        json_array_foreach(req, j, v) found |= strcmp(json_string_value(v), want[i]) == 0;
        ck_assert_msg(found, "Error does not require \"%s\"", want[i]);
        ck_assert_ptr_nonnull(json_object_get(json_object_get(inner, "properties"), want[i]));
    }
    json_t *bearer = json_object_get(
        json_object_get(json_object_get(doc, "components"), "securitySchemes"), "bearerAuth");
    ck_assert_str_eq(json_string_value(json_object_get(bearer, "type")), "http");
    ck_assert_str_eq(json_string_value(json_object_get(bearer, "scheme")), "bearer");
    tst_resp_clear(&r);

    /* public: a bad token does not matter, and the path works with a trailing slash too */
    ck_assert_int_eq(tst_get(B.port, "/openapi.json/", "gsap.acme.0000000000000000.x", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_http(B.port, "POST", "/openapi.json", NULL, "{}", 2, &r), 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(tst_resp_header(&r, "allow", path, sizeof path), "GET");
    tst_resp_clear(&r);
}
END_TEST

/* Runs the validator on the served document (an OpenAPI version: "3.1", "3.0" or "2.0");
 * fills ops with "METHOD path" lines (malloc'd). */
static size_t validated_operations_v(const tst_resp_t *r, const char *version, char **ops)
{
    char file[] = "/tmp/gsap-openapi-XXXXXX.json", errfile[64], cmd[2048], line[1024];
    size_t n = 0;
    int fd = mkstemps(file, 5);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, r->body, r->body_len), (ssize_t)r->body_len);
    close(fd);
    snprintf(errfile, sizeof errfile, "%s.err", file);
    snprintf(cmd, sizeof cmd, "node '%s/tests/npm/validate_openapi.mjs' '%s' %s 2>'%s'",
             getenv("GSAP_SOURCE_DIR"), file, version, errfile);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while (fgets(line, sizeof line, p) != NULL && n < MAX_OPS) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] != 0)
            ops[n++] = strdup(line);
    }
    int st = pclose(p);
    char *err = slurp(errfile, NULL);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "validate_openapi.mjs failed (%d): %s",
                  st, err ? err : "(no stderr)");
    free(err);
    unlink(file);
    unlink(errfile);
    return n;
}

static size_t validated_operations(const tst_resp_t *r, char **ops)
{
    return validated_operations_v(r, "3.1", ops);
}

/* path with each {param} segment replaced by "x". */
static void fill_params(const char *path, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = path; *p && o + 2 < cap; p++) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            ck_assert_ptr_nonnull(end);
            out[o++] = 'x';
            p = end;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = 0;
}

/* Sends method to path (admin token, no body) and checks a documented route answered. */
static void try_operation(json_t *op, const char *method, const char *path)
{
    tst_resp_t r;
    char hdr[512], status[8];
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", ADMIN);
    ck_assert_int_eq(tst_http(B.port, method, path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(!is_no_route(&r), "%s %s: the broker has no such route: %s", method, path, r.body);
    ck_assert_msg(r.status != 405, "%s %s: method not allowed: %s", method, path, r.body);
    snprintf(status, sizeof status, "%d", r.status);
    ck_assert_msg(json_object_get(json_object_get(op, "responses"), status) != NULL,
                  "%s %s answered %d, which the document does not list: %s", method, path,
                  r.status, r.body);
    tst_resp_clear(&r);
}

START_TEST(documented_routes_exist)
{
    tst_resp_t r;
    char *ops[MAX_OPS], path[1024], lower[16];
    json_t *doc = fetch_doc(&r);
    json_t *paths = json_object_get(doc, "paths");
    size_t n = validated_operations(&r, ops);

    ck_assert_uint_ge(n, 15);
    for (size_t i = 0; i < n; i++) {
        char *sp = strchr(ops[i], ' ');
        ck_assert_ptr_nonnull(sp);
        *sp = 0;
        const char *method = ops[i], *tmpl = sp + 1;
        size_t k;
        for (k = 0; method[k] && k < sizeof lower - 1; k++)
            lower[k] = (char)(method[k] - 'A' + 'a');
        lower[k] = 0;
        json_t *op = json_object_get(json_object_get(paths, tmpl), lower);
        ck_assert_msg(op != NULL, "listed operation %s %s is not in the document", method, tmpl);
        fill_params(tmpl, path, sizeof path);
        try_operation(op, method, path);
        /* the spec's paths end in "/"; the same path without it is the same route */
        size_t pl = strlen(path);
        if (pl > 1 && path[pl - 1] == '/') {
            path[pl - 1] = 0;
            try_operation(op, method, path);
        }
        free(ops[i]);
    }
    tst_resp_clear(&r);
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* /openapi-3.0.json and /swagger.json: public, byte for byte the committed docs/ copies (so
 * those equal what the build's generator makes from docs/openapi.json), valid for their
 * version by the independent validator (which also wants an operationId and a description on
 * every operation), and with exactly the operations of the 3.1 document. */
START_TEST(derived_documents)
{
    static const struct {
        const char *path, *file, *version, *field, *value;
    } forms[] = {
        {"/openapi-3.0.json", "docs/openapi-3.0.json", "3.0", "openapi", "3.0.3"},
        {"/swagger.json", "docs/swagger.json", "2.0", "swagger", "2.0"},
    };
    tst_resp_t r31, r;
    char *ops31[MAX_OPS], *ops[MAX_OPS], path[1024], v[128];
    size_t n31, n, flen;

    fetch_doc(&r31);
    n31 = validated_operations(&r31, ops31);
    qsort(ops31, n31, sizeof ops31[0], cmp_str);
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        /* public: no token, and a bad one does not matter */
        ck_assert_int_eq(tst_get(B.port, forms[f].path, "gsap.acme.0000000000000000.x", &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(tst_resp_header(&r, "content-type", v, sizeof v), "application/json");
        tst_resp_clear(&r);
        ck_assert_int_eq(tst_get(B.port, forms[f].path, NULL, &r), 0);
        ck_assert_int_eq(r.status, 200);
        snprintf(path, sizeof path, "%s/%s", getenv("GSAP_SOURCE_DIR"), forms[f].file);
        char *file = slurp(path, &flen);
        ck_assert_msg(file != NULL, "%s is missing", forms[f].file);
        ck_assert_msg(r.body_len == flen && memcmp(r.body, file, flen) == 0,
                      "%s differs from what the build generates (%s); regenerate it with "
                      "tools/openapi_convert.py %s docs/openapi.json %s",
                      forms[f].file, forms[f].path, forms[f].version, forms[f].file);
        free(file);
        ck_assert_str_eq(json_string_value(json_object_get(r.json, forms[f].field)),
                         forms[f].value);
        n = validated_operations_v(&r, forms[f].version, ops);
        ck_assert_uint_eq(n, n31);
        qsort(ops, n, sizeof ops[0], cmp_str);
        for (size_t i = 0; i < n; i++) {
            ck_assert_str_eq(ops[i], ops31[i]);
            free(ops[i]);
        }
        tst_resp_clear(&r);
        ck_assert_int_eq(tst_http(B.port, "POST", forms[f].path, NULL, "{}", 2, &r), 0);
        ck_assert_int_eq(r.status, 405);
        tst_resp_clear(&r);
    }
    for (size_t i = 0; i < n31; i++)
        free(ops31[i]);
    tst_resp_clear(&r31);
}
END_TEST

START_TEST(undocumented_paths_have_no_route)
{
    static const char *const paths[] = {
        "/",
        "/nothing",
        "/openapi",
        "/openapi.yaml",
        "/openapi-3.1.json",
        "/swagger.yaml",
        "/swagger.json/x",
        "/openapi.json/x",
        "/healthz/x",
        "/.well-known/other.json",
        "/governance/nothing/",
        "/governance/authorize/x/y/",
        "/governance/session/",
        "/admin/keys/x",
        "/admin/accords/x/y",
    };
    tst_resp_t r;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        ck_assert_int_eq(tst_get(B.port, paths[i], ADMIN, &r), 0);
        ck_assert_msg(is_no_route(&r), "GET %s: expected the no-route 404, got %d %s", paths[i],
                      r.status, r.body);
        tst_resp_clear(&r);
    }
}
END_TEST

/* 1 when the JSON array of strings arr holds exactly the role names of mask. */
static int roles_match(json_t *arr, unsigned mask)
{
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        unsigned bit = s ? brk_role_parse(s, strlen(s)) : 0;
        if (bit == 0 || !(mask & bit))
            return 0;
        n++;
    }
    return n == (size_t)__builtin_popcount(mask);
}

START_TEST(registered_routes_are_documented)
{
    tst_resp_t r;
    char path[512], lower[16];
    size_t documented = 0;
    json_t *doc = fetch_doc(&r);
    json_t *paths = json_object_get(doc, "paths");
    const char *key;
    json_t *item;

    json_object_foreach(paths, key, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op) documented += strcmp(m, "parameters") != 0 &&
                                                         strcmp(m, "summary") != 0 &&
                                                         strcmp(m, "description") != 0;
    }
    ck_assert_int_eq(hnd_register(), 0);
    ck_assert_uint_eq(brk_router_count(), documented);
    for (size_t i = 0; i < brk_router_count(); i++) {
        const brk_route_t *rt = brk_router_get(i);
        size_t k;
        json_t *op = NULL;
        for (k = 0; rt->method[k] && k < sizeof lower - 1; k++)
            lower[k] = (char)(rt->method[k] - 'A' + 'a');
        lower[k] = 0;
        /* documented with the spec's trailing slash, or as registered */
        snprintf(path, sizeof path, "%s/", rt->pattern);
        op = json_object_get(json_object_get(paths, path), lower);
        if (op == NULL)
            op = json_object_get(json_object_get(paths, rt->pattern), lower);
        ck_assert_msg(op != NULL, "route %s %s is not documented", rt->method, rt->pattern);
        ck_assert_msg(roles_match(json_object_get(op, "x-gsap-roles"), rt->roles),
                      "%s %s: x-gsap-roles differ from the route's roles", rt->method, rt->pattern);
        json_t *sec = json_object_get(op, "security");
        ck_assert_msg(json_is_array(sec), "%s %s: no security", rt->method, rt->pattern);
        int bearer = 0, anonymous = 0, view = 0;
        size_t j;
        json_t *req;
        json_array_foreach(sec, j, req)
        {
            bearer |= json_object_get(req, "bearerAuth") != NULL;
            anonymous |= json_object_size(req) == 0;
            view |= json_object_get(req, "viewLink") != NULL;
        }
        /* a signed view link stands in for the token exactly where the route takes one */
        ck_assert_msg(view == ((rt->flags & BRK_ROUTE_VIEW_OK) != 0),
                      "%s %s: viewLink security does not match the route", rt->method, rt->pattern);
        /* public: "security": [] (no scheme); otherwise bearerAuth, plus the anonymous {}
         * alternative exactly where loopback callers need no token */
        if (rt->roles == 0)
            ck_assert_msg(json_array_size(sec) == 0, "%s %s: public but lists security",
                          rt->method, rt->pattern);
        else
            ck_assert_msg(bearer && anonymous == ((rt->flags & BRK_ROUTE_LOCAL_OK) != 0),
                          "%s %s: security does not match the route", rt->method, rt->pattern);
        ck_assert_msg((rt->flags & BRK_ROUTE_JSON) == 0 || json_object_get(op, "requestBody"),
                      "%s %s: takes a JSON body but documents none", rt->method, rt->pattern);
    }
    tst_resp_clear(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_openapi");
    TCase *tc = tcase_create("openapi");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, served_document);
    tcase_add_test(tc, documented_routes_exist);
    tcase_add_test(tc, derived_documents);
    tcase_add_test(tc, undocumented_paths_have_no_route);
    tcase_add_test(tc, registered_routes_are_documented);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
