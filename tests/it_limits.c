/*
 * it_limits: every named limit on request input that no other suite tests on both sides,
 * against the real binary and PostgreSQL. For each: the value at the limit is accepted, one
 * past it is refused with the error shape and a stable code, and the refusal stored nothing
 * (a row count, read back from the database).
 *
 *   front     BRK_MAX_PATH, BRK_PARAM_MAX, BRK_REQUEST_ID_MAX, BRK_MAX_HEADER_BYTES (to the
 *             byte; it_http refuses only far past it), BRK_KEY_NAME_MAX on /admin/keys,
 *             BRK_TENANT_MAX in a token
 *   authorize GOV_ACCORD_NAME_MAX, GOV_DESCRIPTION_MAX, GOV_TTL_MAX, GOV_DID_MAX,
 *             BILL_ACCOUNT_ID_MAX, GOV_IDEMPOTENCY_KEY_MAX, capability_set's 10 characters;
 *             elevate: reason (GOV_DESCRIPTION_MAX) and context_id (GOV_ID_LEN)
 *   complete  exit_code (int32), output_bytes (0..2^53-1), CR_SESSION_ID_MAX,
 *             CR_METADATA_MAX_KEYS, CR_METADATA_VALUE_MAX, CR_METADATA_KEY_MAX,
 *             GOV_CONTEXT_ID_MAX (the GOV_UNKNOWN_* bounds: it_receipts)
 *   accords   GOV_ACCORD_NAME_MAX (HTTP path and CLI), ttl_max_seconds (GOV_TTL_MAX),
 *             posture_level 1..5, GOV_CORPUS_ALLOW_MAX, GOV_SHELL_CLASS_MAX
 *   billing   BILL_ACCOUNT_ID_MAX, BILL_PRICE_MAX, BILL_MULT_MAX, BILL_SHELL_CLASSES_MAX,
 *             BILL_SHELL_CLASS_MAX, capability bits 0..31 over PUT /admin/accounts;
 *             an invoice page's ?after=; dead-letter replay: HND_EVENT_ID_MAX, FN_NAME_MAX
 *
 * The hnd_complete.c and hnd_functions.c constants are private to their files; their values
 * are repeated below, and a change there fails here on purpose.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tst_check.h"
#include "bill_rate.h"
#include "brk_http.h"
#include "brk_keys.h"
#include "fn.h"
#include "gov_accord.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_limits"

/* private to handlers/hnd_complete.c and handlers/hnd_functions.c */
#define CR_METADATA_MAX_KEYS 32
#define CR_METADATA_VALUE_MAX 256
#define CR_METADATA_KEY_MAX 64
#define CR_SESSION_ID_MAX 128
#define HND_EVENT_ID_MAX 9007199254740991LL
#define OUTPUT_BYTES_MAX 9007199254740991LL /* hnd_complete.c, unnamed: 2^53 - 1 */

#define CARD "{\"per_cr\":{\"completed\":1,\"failed\":1,\"violated\":1,\"timed_out\":1," \
             "\"session_end\":1},\"per_second\":1"

static tst_broker_t B;
static char *ADMIN, *ISSUER, *EXECUTOR, *APPROVER, *DELEGATE;
static PGconn *PG;

static void setup(void)
{
    int st;
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
    ISSUER = tst_keys_create(&B, "acme", "issuer");
    EXECUTOR = tst_keys_create(&B, "acme", "executor");
    APPROVER = tst_keys_create(&B, "acme", "approver");
    DELEGATE = tst_broker_cli(&B, &st, "keys", "create", "--tenant", "acme", "--role", "issuer",
                              "--delegate", NULL);
    ck_assert_int_eq(st, 0);
    PG = tst_pg_connect(DB);
}

static void teardown(void)
{
    PQfinish(PG);
    tst_broker_clear(&B);
    free(ADMIN), free(ISSUER), free(EXECUTOR), free(APPROVER), free(DELEGATE);
}

/* ---- helpers ---- */


/* n copies of c (malloc'd). */
static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static long count(const char *sql)
{
    return tst_pg_long(PG, sql);
}

/*
 * One request: method path with "Authorization: Bearer token" (token may be NULL), a JSON
 * body (may be NULL) and more header lines (may be NULL). Asserts the status; for an error
 * with code, asserts the error shape: that code, a message, the request id of the header.
 * Returns the parsed body (a new reference, NULL when none), for more checks.
 */
static json_t *req(const char *method, const char *path, const char *token, const char *body,
                   const char *more, int status, const char *code)
{
    tst_resp_t r;
    char rid[128];
    char *hdr = tst_fmt("%s%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
                    token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "",
                    more ? more : "");
    ck_assert_int_eq(tst_http(B.port, method, path, hdr, body, body ? strlen(body) : 0, &r), 0);
    ck_assert_msg(r.status == status, "%s %.80s: %d (want %d) %.300s", method, path, r.status,
                  status, r.body);
    if (code != NULL) {
        json_t *e = json_object_get(r.json, "error");
        ck_assert_msg(e != NULL, "no error object: %.300s", r.body);
        ck_assert_str_eq(tst_str(e, "code"), code);
        ck_assert_uint_gt(strlen(tst_str(e, "message")), 0);
        ck_assert_ptr_nonnull(tst_resp_header(&r, "x-request-id", rid, sizeof rid));
        ck_assert_str_eq(tst_str(e, "request_id"), rid);
    }
    json_t *j = r.json ? json_incref(r.json) : NULL;
    tst_resp_clear(&r);
    free(hdr);
    return j;
}

static void expect(const char *method, const char *path, const char *token, const char *body,
                   int status, const char *code)
{
    json_decref(req(method, path, token, body, NULL, status, code));
}

/* POST /governance/authorize/ on accord (NULL: "default") for corpus entry corpus (NULL:
 * CORPUS) with operation.description desc (may be NULL) and more members extra (may be NULL);
 * more: more header lines. */
static json_t *authorize_x(const char *token, const char *accord, const char *corpus,
                           const char *desc, const char *extra, const char *more, int status,
                           const char *code)
{
    char *body = tst_fmt("{\"accord_template\":\"%s\",\"operation\":{\"command_hash\":\"" CMD "\","
                     "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"" PARAMS "\"%s%s%s}%s%s}",
                     accord ? accord : "default", corpus ? corpus : CORPUS,
                     desc ? ",\"description\":\"" : "", desc ? desc : "", desc ? "\"" : "",
                     extra ? "," : "", extra ? extra : "");
    json_t *j = req("POST", "/governance/authorize/", token, body, more, status, code);
    free(body);
    return j;
}

static json_t *authorize(const char *token, const char *extra, const char *more, int status,
                         const char *code)
{
    return authorize_x(token, NULL, NULL, NULL, extra, more, status, code);
}

/* ---- the HTTP front ---- */

START_TEST(front_limits)
{
    char *pad, *path, *body;
    const char *keys = "SELECT count(*) FROM api_keys";
    long n = count(keys);

    /* BRK_MAX_PATH counts the query too: POST /admin/keys?p=... of exactly 2048 bytes creates
     * a key, 2049 bytes is 414 and creates none */
    pad = rep('a', BRK_MAX_PATH - strlen("/admin/keys?p="));
    path = tst_fmt("/admin/keys?p=%s", pad);
    ck_assert_uint_eq(strlen(path), BRK_MAX_PATH);
    expect("POST", path, ADMIN, "{\"roles\":[\"auditor\"]}", 200, NULL);
    ck_assert_int_eq(count(keys), ++n);
    free(path);
    path = tst_fmt("/admin/keys?p=%sa", pad);
    expect("POST", path, ADMIN, "{\"roles\":[\"auditor\"]}", 414, "path_too_long");
    ck_assert_int_eq(count(keys), n);
    free(path), free(pad);
    /* without a query: 2048 bytes reach the router (no such route), 2049 do not */
    pad = rep('b', BRK_MAX_PATH - 1);
    path = tst_fmt("/%s", pad);
    expect("GET", path, NULL, NULL, 404, "not_found");
    free(path);
    path = tst_fmt("/%sb", pad);
    expect("GET", path, NULL, NULL, 414, "path_too_long");
    free(path), free(pad);

    /* BRK_PARAM_MAX: a {param} of 128 bytes reaches the route (which has a tighter limit of
     * its own and answers for it), 129 bytes match no route */
    pad = rep('c', BRK_PARAM_MAX);
    path = tst_fmt("/governance/authorize/%s/", pad);
    expect("GET", path, ISSUER, NULL, 404, "context_not_found");
    free(path);
    path = tst_fmt("/governance/authorize/%sc/", pad);
    expect("GET", path, ISSUER, NULL, 404, "not_found");
    free(path);
    const char *accords = "SELECT count(*) FROM accords";
    long na = count(accords);
    path = tst_fmt("/admin/accords/%s", pad);
    expect("PUT", path, ADMIN, "{}", 404, "accord_not_found");
    free(path);
    path = tst_fmt("/admin/accords/%sc", pad);
    expect("PUT", path, ADMIN, "{}", 404, "not_found");
    ck_assert_int_eq(count(accords), na);
    free(path), free(pad);

    /* BRK_REQUEST_ID_MAX: a caller's id of 64 bytes is kept, one of 65 replaced */
    tst_resp_t r;
    char got[256];
    pad = rep('r', BRK_REQUEST_ID_MAX);
    char *hdr = tst_fmt("X-Request-Id: %s\r\n", pad);
    ck_assert_int_eq(tst_http(B.port, "GET", "/nowhere", hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(tst_resp_header(&r, "x-request-id", got, sizeof got), pad);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "error"), "request_id"), pad);
    tst_resp_clear(&r);
    free(hdr);
    hdr = tst_fmt("X-Request-Id: %sr\r\n", pad);
    ck_assert_int_eq(tst_http(B.port, "GET", "/nowhere", hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(tst_resp_header(&r, "x-request-id", got, sizeof got));
    ck_assert_ptr_null(strstr(got, "rrrr"));
    ck_assert_uint_le(strlen(got), BRK_REQUEST_ID_MAX);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "error"), "request_id"), got);
    tst_resp_clear(&r);
    free(hdr), free(pad);

    /* BRK_MAX_HEADER_BYTES: names + values of all headers, Host (the authority) included and
     * Content-Length not (h2o keeps it apart). Exactly the limit creates a key; one more byte
     * is 431 and creates none. Our headers: Authorization, Content-Type, X-Pad; tst_http adds
     * Host, Content-Length and Connection: close. */
    char authority[32];
    snprintf(authority, sizeof authority, "127.0.0.1:%u", B.port);
    size_t fixed = strlen(authority) + strlen("authorization") + strlen("Bearer ") +
                   strlen(ADMIN) + strlen("content-type") + strlen("application/json") +
                   strlen("connection") + strlen("close") + strlen("x-pad");
    pad = rep('h', BRK_MAX_HEADER_BYTES - fixed);
    hdr = tst_fmt("X-Pad: %s\r\n", pad);
    json_decref(req("POST", "/admin/keys", ADMIN, "{\"roles\":[\"auditor\"]}", hdr, 200, NULL));
    ck_assert_int_eq(count(keys), ++n);
    free(hdr);
    hdr = tst_fmt("X-Pad: %sh\r\n", pad);
    json_decref(req("POST", "/admin/keys", ADMIN, "{\"roles\":[\"auditor\"]}", hdr, 431,
                    "headers_too_large"));
    ck_assert_int_eq(count(keys), n);
    free(hdr), free(pad);

    /* BRK_KEY_NAME_MAX on POST /admin/keys */
    pad = rep('n', BRK_KEY_NAME_MAX);
    body = tst_fmt("{\"roles\":[\"auditor\"],\"name\":\"%s\"}", pad);
    expect("POST", "/admin/keys", ADMIN, body, 200, NULL);
    ck_assert_int_eq(count(keys), ++n);
    ck_assert_int_eq(count("SELECT max(length(name)) FROM api_keys"), BRK_KEY_NAME_MAX);
    free(body);
    body = tst_fmt("{\"roles\":[\"auditor\"],\"name\":\"%sn\"}", pad);
    expect("POST", "/admin/keys", ADMIN, body, 400, "field_too_long");
    ck_assert_int_eq(count(keys), n);
    free(body), free(pad);

    /* BRK_TENANT_MAX: a tenant of 63 characters gets keys that work; 64 is refused by the
     * CLI (no tenant, no key), and a token naming such a tenant is 401 */
    int st;
    const char *tenants = "SELECT count(*) FROM tenants";
    long nt = count(tenants);
    pad = rep('t', BRK_TENANT_MAX);
    char *tok = tst_keys_create(&B, pad, "admin");
    ck_assert_int_eq(count(tenants), ++nt);
    ck_assert_int_eq(count(keys), ++n);
    expect("GET", "/admin/accords/default", tok, NULL, 200, NULL);
    char *long_tenant = tst_fmt("%st", pad);
    free(tst_broker_cli(&B, &st, "keys", "create", "--tenant", long_tenant, "--role", "admin",
                        NULL));
    ck_assert_int_ne(st, 0);
    ck_assert_int_eq(count(tenants), nt);
    ck_assert_int_eq(count(keys), n);
    char *forged = tst_fmt("gsap.%s%s", long_tenant, tok + strlen("gsap.") + BRK_TENANT_MAX);
    expect("GET", "/admin/accords/default", forged, NULL, 401, "invalid_token");
    free(forged), free(long_tenant), free(tok), free(pad);
}
END_TEST

/* ---- issuing and elevating ---- */

START_TEST(authorize_limits)
{
    const char *acs = "SELECT count(*) FROM acs";
    const char *events = "SELECT count(*) FROM events";
    long n0 = count(acs), n = n0, ne = count(events);
    char *v, *extra, *path, *body;
    json_t *ac;

    /* GOV_ACCORD_NAME_MAX: an accord named with 64 characters is issued against; 65 is 400 */
    char *name = rep('A', GOV_ACCORD_NAME_MAX);
    path = tst_fmt("/admin/accords/%s", name);
    expect("PUT", path, ADMIN, "{}", 200, NULL);
    free(path);
    ac = authorize_x(ISSUER, name, NULL, NULL, NULL, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(json_object_get(ac, "accord"), "template"), name);
    json_decref(ac);
    ck_assert_int_eq(count(acs), ++n);
    extra = tst_fmt("%sA", name);
    json_decref(authorize_x(ISSUER, extra, NULL, NULL, NULL, NULL, 400, "field_too_long"));
    ck_assert_int_eq(count(acs), n);
    free(extra), free(name);

    /* GOV_DESCRIPTION_MAX: operation.description, stored with the AC */
    v = rep('d', GOV_DESCRIPTION_MAX);
    json_decref(authorize_x(ISSUER, NULL, NULL, v, NULL, NULL, 200, NULL));
    ck_assert_int_eq(count(acs), ++n);
    ck_assert_int_eq(count("SELECT max(length(description)) FROM acs"), GOV_DESCRIPTION_MAX);
    extra = tst_fmt("%sd", v);
    json_decref(authorize_x(ISSUER, NULL, NULL, extra, NULL, NULL, 400, "field_too_long"));
    ck_assert_int_eq(count(acs), n);
    free(extra), free(v);

    /* GOV_TTL_MAX: ttl_seconds 1..86400 (then clamped to the accord's cap), 0 and 86401 422 */
    json_decref(authorize(ISSUER, "\"ttl_seconds\":86400", NULL, 200, NULL));
    json_decref(authorize(ISSUER, "\"ttl_seconds\":1", NULL, 200, NULL));
    n += 2;
    ck_assert_int_eq(count(acs), n);
    ck_assert_int_eq(count("SELECT count(*) FROM acs WHERE ttl_seconds = 900"), 1);
    json_decref(authorize(ISSUER, "\"ttl_seconds\":86401", NULL, 422, "out_of_range"));
    json_decref(authorize(ISSUER, "\"ttl_seconds\":0", NULL, 422, "out_of_range"));
    ck_assert_int_eq(GOV_TTL_MAX, 86400);
    ck_assert_int_eq(count(acs), n);

    /* GOV_DID_MAX: a delegation's agent of 256 bytes becomes the principal of an AC asked
     * on its behalf; 257 is 400, for the delegation and for on_behalf_of */
    v = rep('x', GOV_DID_MAX - strlen("did:"));
    extra = tst_fmt("{\"agent_did\":\"did:%s\"}", v);
    json_t *dl = req("POST", "/delegations/", DELEGATE, extra, NULL, 201, NULL);
    free(extra);
    extra = tst_fmt("\"on_behalf_of\":\"did:%s\",\"delegation_id\":\"%s\"", v,
                    tst_str(dl, "delegation_id"));
    ac = authorize(DELEGATE, extra, NULL, 200, NULL);
    ck_assert_uint_eq(strlen(tst_str(json_object_get(ac, "principal"), "did")), GOV_DID_MAX);
    json_decref(ac);
    ck_assert_int_eq(count(acs), ++n);
    free(extra);
    extra = tst_fmt("{\"agent_did\":\"did:%sx\"}", v);
    expect("POST", "/delegations/", DELEGATE, extra, 400, "field_too_long");
    free(extra);
    extra = tst_fmt("\"on_behalf_of\":\"did:%sx\",\"delegation_id\":\"%s\"", v,
                    tst_str(dl, "delegation_id"));
    json_decref(authorize(DELEGATE, extra, NULL, 400, "field_too_long"));
    ck_assert_int_eq(count(acs), n);
    json_decref(dl);
    free(extra), free(v);

    /* BILL_ACCOUNT_ID_MAX: billing_account naming an account of 64 characters; 65 is 400 */
    v = rep('B', BILL_ACCOUNT_ID_MAX);
    path = tst_fmt("/admin/accounts/%s", v);
    expect("PUT", path, ADMIN, "{\"currency\":\"USD\",\"rate_card\":" CARD "}}", 200, NULL);
    free(path);
    extra = tst_fmt("\"billing_account\":\"%s\"", v);
    ac = authorize(ISSUER, extra, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(ac, "billing_account"), v);
    json_decref(ac);
    ck_assert_int_eq(count(acs), ++n);
    free(extra);
    extra = tst_fmt("\"billing_account\":\"%sB\"", v);
    json_decref(authorize(ISSUER, extra, NULL, 400, "field_too_long"));
    ck_assert_int_eq(count(acs), n);
    free(extra), free(v);

    /* GOV_IDEMPOTENCY_KEY_MAX: 128 printable characters; 129 is 400 */
    char key[GOV_IDEMPOTENCY_KEY_MAX + 2];
    for (int i = 0; i < GOV_IDEMPOTENCY_KEY_MAX + 1; i++)
        key[i] = (char)('!' + i % ('~' - '!' + 1));
    key[GOV_IDEMPOTENCY_KEY_MAX] = '\0';
    char *hdr = tst_fmt("Idempotency-Key: %s\r\n", key);
    json_t *a1 = authorize(ISSUER, NULL, hdr, 200, NULL);
    json_t *a2 = authorize(ISSUER, NULL, hdr, 200, NULL); /* the retry: the same AC */
    ck_assert_str_eq(tst_str(a1, "context_id"), tst_str(a2, "context_id"));
    json_decref(a1), json_decref(a2);
    ck_assert_int_eq(count(acs), ++n);
    ck_assert_int_eq(count("SELECT max(length(idempotency_key)) FROM acs"), GOV_IDEMPOTENCY_KEY_MAX);
    free(hdr);
    key[GOV_IDEMPOTENCY_KEY_MAX] = '!';
    key[GOV_IDEMPOTENCY_KEY_MAX + 1] = '\0';
    hdr = tst_fmt("Idempotency-Key: %s\r\n", key);
    json_decref(authorize(ISSUER, NULL, hdr, 400, "invalid_idempotency_key"));
    ck_assert_int_eq(count(acs), n);
    free(hdr);

    /* capability_set: "0x" and 8 hex digits (10 characters, an unnamed limit); 11 is 400 */
    json_decref(authorize(ISSUER, "\"capability_set\":\"0x0000000f\"", NULL, 200, NULL));
    ck_assert_int_eq(count(acs), ++n);
    json_decref(authorize(ISSUER, "\"capability_set\":\"0x00000000f\"", NULL, 400, "field_too_long"));
    ck_assert_int_eq(count(acs), n);

    /* refusals wrote no event and no denial either (one event is the delegation's) */
    ck_assert_int_eq(count(events), ne + (n - n0) + 1);
    ck_assert_int_eq(count("SELECT count(*) FROM events WHERE type = 'GSAP_DELEGATION_CREATED'"),
                     1);
    ck_assert_int_eq(count("SELECT count(*) FROM denials"), 0);

    /* elevate: reason of GOV_DESCRIPTION_MAX bytes; one more is 400 and decides nothing */
    expect("PUT", "/admin/accords/elev", ADMIN,
           "{\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\"}", 200, NULL);
    ac = authorize_x(ISSUER, "elev", NULL, NULL, "\"capability_set\":\"0x00000080\"", NULL, 200,
                     NULL);
    ck_assert_str_eq(tst_str(ac, "status"), "pending");
    const char *ctx = tst_str(ac, "context_id");
    ne = count(events);
    v = rep('w', GOV_DESCRIPTION_MAX);
    body = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"approve\",\"reason\":\"%sw\"}", ctx, v);
    expect("POST", "/governance/elevate/", APPROVER, body, 400, "field_too_long");
    free(body);
    /* context_id: GOV_ID_LEN characters reach the lookup, one more is 400 */
    body = tst_fmt("{\"context_id\":\"%sf\",\"decision\":\"approve\"}", ctx);
    expect("POST", "/governance/elevate/", APPROVER, body, 400, "field_too_long");
    free(body);
    body = tst_fmt("{\"context_id\":\"ctx_%032d\",\"decision\":\"approve\"}", 0);
    expect("POST", "/governance/elevate/", APPROVER, body, 404, "context_not_found");
    free(body);
    char *sql = tst_fmt("SELECT count(*) FROM acs WHERE context_id = '%s' AND status = 'pending' "
                    "AND (elevation->>'status') = 'pending'", ctx);
    ck_assert_int_eq(count(sql), 1);
    ck_assert_int_eq(count(events), ne);
    body = tst_fmt("{\"context_id\":\"%s\",\"decision\":\"approve\",\"reason\":\"%s\"}", ctx, v);
    json_t *dec = req("POST", "/governance/elevate/", APPROVER, body, NULL, 200, NULL);
    ck_assert_uint_eq(strlen(tst_str(json_object_get(dec, "elevation"), "reason")), GOV_DESCRIPTION_MAX);
    json_decref(dec);
    free(sql);
    sql = tst_fmt("SELECT length(elevation->>'reason') FROM acs WHERE context_id = '%s'", ctx);
    ck_assert_int_eq(count(sql), GOV_DESCRIPTION_MAX);
    ck_assert_int_eq(count(events), ne + 1);
    free(sql), free(body), free(v);
    json_decref(ac);
}
END_TEST

/* ---- receipts ---- */

/* A CR on ctx; each part NULL for absent: exit_code (then 0: "completed" requires one),
 * output_bytes (JSON numbers as text), chronicle.session_id (a JSON string's contents),
 * metadata (a JSON object) and context_id override. */
static char *cr(const char *ctx, const char *exit_code, const char *bytes, const char *session,
                const char *metadata)
{
    return tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",%s%s%s%s%s%s"
               "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":\"2026-01-01T00:00:01Z\","
               "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
               "\"parameters_cid\":\"" PARAMS "\",\"chronicle\":{%s%s%s\"behavior_state\":\"verified\"}"
               "%s%s}",
               ctx, "\"exit_code\":", exit_code ? exit_code : "0", ",", bytes ? "\"output_bytes\":" : "", bytes ? bytes : "",
               bytes ? "," : "", session ? "\"session_id\":\"" : "", session ? session : "",
               session ? "\"," : "", metadata ? ",\"metadata\":" : "", metadata ? metadata : "");
}

/* Posts body; on 200 one more CR is stored, otherwise none. */
static void post_cr(char *body, int status, const char *code, long *n, const char *ctx)
{
    char *sql = tst_fmt("SELECT count(*) FROM crs WHERE context_id = '%s'", ctx);
    expect("POST", "/governance/complete/", EXECUTOR, body, status, code);
    if (status == 200)
        ++*n;
    ck_assert_msg(count(sql) == *n, "after %.200s: %ld CRs, want %ld", body, count(sql), *n);
    ck_assert_int_eq(count("SELECT count(*) FROM events WHERE type = 'GSAP_CR_RECEIVED'"),
                     count("SELECT count(*) FROM crs"));
    free(sql);
    free(body);
}

/* A metadata object of keys keys, each key klen bytes (then made unique), values vlen bytes. */
static char *metadata(int keys, size_t klen, size_t vlen)
{
    size_t cap = (size_t)keys * (klen + vlen + 8) + 3;
    char *s = malloc(cap), *p = s;
    ck_assert_ptr_nonnull(s);
    *p++ = '{';
    for (int i = 0; i < keys; i++) {
        char k[8];
        snprintf(k, sizeof k, "%02d", i);
        *p++ = i ? ',' : '"';
        if (i)
            *p++ = '"';
        memset(p, 'm', klen);
        memcpy(p + klen - 2, k, 2); /* unique: the last two characters number the key */
        p += klen;
        *p++ = '"';
        *p++ = ':';
        *p++ = '"';
        memset(p, 'v', vlen);
        p += vlen;
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* cr() with metadata md, which it frees. */
static char *cr_meta(const char *ctx, char *md)
{
    char *b = cr(ctx, NULL, NULL, NULL, md);
    free(md);
    return b;
}

START_TEST(complete_limits)
{
    json_t *ac = authorize(ISSUER, "\"session_mode\":true", NULL, 200, NULL);
    const char *ctx = tst_str(ac, "context_id");
    long n = 0;
    char *v;

    /* exit_code: -2^31 .. 2^31 - 1 */
    post_cr(cr(ctx, "-2147483648", NULL, NULL, NULL), 200, NULL, &n, ctx);
    post_cr(cr(ctx, "2147483647", NULL, NULL, NULL), 200, NULL, &n, ctx);
    post_cr(cr(ctx, "-2147483649", NULL, NULL, NULL), 422, "out_of_range", &n, ctx);
    post_cr(cr(ctx, "2147483648", NULL, NULL, NULL), 422, "out_of_range", &n, ctx);
    char *sql = tst_fmt("SELECT count(*) FROM crs WHERE context_id = '%s' AND "
                    "(cr->>'exit_code')::bigint IN (-2147483648, 2147483647)", ctx);
    ck_assert_int_eq(count(sql), 2);
    free(sql);

    /* output_bytes: 0 .. 2^53 - 1 */
    post_cr(cr(ctx, NULL, "0", NULL, NULL), 200, NULL, &n, ctx);
    post_cr(cr(ctx, NULL, "9007199254740991", NULL, NULL), 200, NULL, &n, ctx);
    post_cr(cr(ctx, NULL, "-1", NULL, NULL), 422, "out_of_range", &n, ctx);
    post_cr(cr(ctx, NULL, "9007199254740992", NULL, NULL), 422, "out_of_range", &n, ctx);
    sql = tst_fmt("SELECT count(*) FROM crs WHERE context_id = '%s' AND "
              "(cr->>'output_bytes')::bigint = %lld", ctx, OUTPUT_BYTES_MAX);
    ck_assert_int_eq(count(sql), 1);
    free(sql);

    /* CR_SESSION_ID_MAX: chronicle.session_id */
    v = rep('s', CR_SESSION_ID_MAX);
    post_cr(cr(ctx, NULL, NULL, v, NULL), 200, NULL, &n, ctx);
    char *v1 = tst_fmt("%ss", v);
    post_cr(cr(ctx, NULL, NULL, v1, NULL), 400, "field_too_long", &n, ctx);
    free(v), free(v1);

    /* CR_METADATA_MAX_KEYS */
    post_cr(cr_meta(ctx, metadata(CR_METADATA_MAX_KEYS, 4, 1)), 200, NULL, &n, ctx);
    post_cr(cr_meta(ctx, metadata(CR_METADATA_MAX_KEYS + 1, 4, 1)), 400,
            "field_too_long", &n, ctx);
    sql = tst_fmt("SELECT max((SELECT count(*) FROM jsonb_object_keys(cr->'metadata'))) FROM crs "
              "WHERE context_id = '%s' AND cr ? 'metadata'", ctx);
    ck_assert_int_eq(count(sql), CR_METADATA_MAX_KEYS);
    free(sql);

    /* CR_METADATA_VALUE_MAX: a string value's bytes */
    post_cr(cr_meta(ctx, metadata(1, 4, CR_METADATA_VALUE_MAX)), 200, NULL, &n, ctx);
    post_cr(cr_meta(ctx, metadata(1, 4, CR_METADATA_VALUE_MAX + 1)), 400,
            "invalid_field", &n, ctx);

    /* CR_METADATA_KEY_MAX: a key's bytes */
    post_cr(cr_meta(ctx, metadata(1, CR_METADATA_KEY_MAX, 1)), 200, NULL, &n, ctx);
    post_cr(cr_meta(ctx, metadata(1, CR_METADATA_KEY_MAX + 1, 1)), 400,
            "invalid_field", &n, ctx);
    sql = tst_fmt("SELECT max(length(k)) FROM crs, jsonb_object_keys(cr->'metadata') k "
              "WHERE context_id = '%s' AND cr ? 'metadata'", ctx);
    ck_assert_int_eq(count(sql), CR_METADATA_KEY_MAX);
    free(sql);
    sql = tst_fmt("SELECT max(length(v)) FROM crs, jsonb_each_text(cr->'metadata') AS e(k, v) "
              "WHERE context_id = '%s' AND cr ? 'metadata'", ctx);
    ck_assert_int_eq(count(sql), CR_METADATA_VALUE_MAX);
    free(sql);

    /* context_id: GOV_CONTEXT_ID_MAX characters are looked up (a self-authorized id may be
     * that long), one more is 400 */
    char *other = tst_fmt("ctx_%060d", 0);
    long none = 0;
    ck_assert_uint_eq(strlen(other), GOV_CONTEXT_ID_MAX);
    post_cr(cr(other, NULL, NULL, NULL, NULL), 404, "context_not_found", &none, other);
    free(other);
    other = tst_fmt("ctx_%061d", 0);
    post_cr(cr(other, NULL, NULL, NULL, NULL), 400, "field_too_long", &none, other);
    free(other);
    ck_assert_int_eq(count("SELECT count(*) FROM crs"), n);
    json_decref(ac);
}
END_TEST

/* ---- accords ---- */

START_TEST(accord_limits)
{
    const char *accords = "SELECT count(*) FROM accords";
    long n = count(accords);
    char *name, *path, *body, *v;

    /* GOV_ACCORD_NAME_MAX over HTTP: 64 stored; 65 refused (as no such accord), nothing stored */
    name = rep('a', GOV_ACCORD_NAME_MAX);
    path = tst_fmt("/admin/accords/%s", name);
    expect("PUT", path, ADMIN, "{}", 200, NULL);
    ck_assert_int_eq(count(accords), ++n);
    expect("GET", path, ADMIN, NULL, 200, NULL);
    free(path);
    path = tst_fmt("/admin/accords/%sa", name);
    expect("PUT", path, ADMIN, "{}", 404, "accord_not_found");
    ck_assert_int_eq(count(accords), n);
    free(path);

    /* ... and from the CLI, where the name is read from the file */
    char file[] = "/tmp/gsap-lim-XXXXXX";
    int fd = mkstemp(file), st;
    ck_assert_int_ge(fd, 0);
    close(fd);
    FILE *f = fopen(file, "w");
    fprintf(f, "{\"name\":\"%sb\"}", name);
    fclose(f);
    free(tst_broker_cli(&B, &st, "accords", "put", "--tenant", "acme", "--file", file, NULL));
    ck_assert_int_ne(st, 0);
    ck_assert_int_eq(count(accords), n);
    name[0] = 'c';
    f = fopen(file, "w");
    fprintf(f, "{\"name\":\"%s\"}", name);
    fclose(f);
    free(tst_broker_cli(&B, &st, "accords", "put", "--tenant", "acme", "--file", file, NULL));
    ck_assert_int_eq(st, 0);
    ck_assert_int_eq(count(accords), ++n);
    unlink(file);
    free(name);

    /* value limits: each accepted one stores an accord of its own, each refused one none */
    const struct {
        const char *name, *body;
        int status;
        const char *code;
    } cases[] = {
        {"ttl-max", "{\"ttl_max_seconds\":86400}", 200, NULL},
        {"ttl-min", "{\"ttl_max_seconds\":1}", 200, NULL},
        {"ttl-over", "{\"ttl_max_seconds\":86401}", 422, "out_of_range"},
        {"ttl-zero", "{\"ttl_max_seconds\":0}", 422, "out_of_range"},
        {"posture-5", "{\"posture_level\":5}", 200, NULL},
        {"posture-1", "{\"posture_level\":1}", 200, NULL},
        {"posture-6", "{\"posture_level\":6}", 422, "out_of_range"},
        {"posture-0", "{\"posture_level\":0}", 422, "out_of_range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        path = tst_fmt("/admin/accords/%s", cases[i].name);
        expect("PUT", path, ADMIN, cases[i].body, cases[i].status, cases[i].code);
        n += cases[i].status == 200;
        ck_assert_msg(count(accords) == n, "after %s", cases[i].name);
        free(path);
    }
    ck_assert_int_eq(
        count("SELECT (body->>'ttl_max_seconds')::int FROM accords WHERE name = 'ttl-max'"),
        GOV_TTL_MAX);

    /* GOV_CORPUS_ALLOW_MAX: 1024 CIDs; 1025 is 422 */
    size_t cap = (GOV_CORPUS_ALLOW_MAX + 1) * 80 + 64;
    body = malloc(cap);
    char *p = body;
    p += snprintf(p, cap, "{\"corpus_allow\":[");
    for (int i = 0; i < GOV_CORPUS_ALLOW_MAX; i++)
        p += snprintf(p, cap - (size_t)(p - body), "%s\"sha256:%064x\"", i ? "," : "", i);
    char *tail = p;
    snprintf(p, cap - (size_t)(p - body), "]}");
    expect("PUT", "/admin/accords/corpus-max", ADMIN, body, 200, NULL);
    ck_assert_int_eq(count(accords), ++n);
    ck_assert_int_eq(count("SELECT jsonb_array_length(body->'corpus_allow') FROM accords "
                           "WHERE name = 'corpus-max'"),
                     GOV_CORPUS_ALLOW_MAX);
    snprintf(tail, cap - (size_t)(tail - body), ",\"sha256:%064x\"]}", GOV_CORPUS_ALLOW_MAX);
    expect("PUT", "/admin/accords/corpus-over", ADMIN, body, 422, "out_of_range");
    ck_assert_int_eq(count(accords), n);
    free(body);
    /* the full allow-list is in force: its last entry is allowed, CORPUS is not */
    char *last = tst_fmt("sha256:%064x", GOV_CORPUS_ALLOW_MAX - 1);
    json_decref(authorize_x(ISSUER, "corpus-max", last, NULL, NULL, NULL, 200, NULL));
    json_t *den = authorize_x(ISSUER, "corpus-max", NULL, NULL, NULL, NULL, 403, "policy_denied");
    ck_assert_str_eq(tst_str(json_object_get(den, "denial"), "reason_code"), "corpus_not_allowed");
    json_decref(den);
    free(last);

    /* GOV_SHELL_CLASS_MAX */
    v = rep('S', GOV_SHELL_CLASS_MAX);
    body = tst_fmt("{\"shell_class\":\"%s\"}", v);
    json_t *acc = req("PUT", "/admin/accords/shell-max", ADMIN, body, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(acc, "shell_class"), v);
    json_decref(acc);
    ck_assert_int_eq(count(accords), ++n);
    free(body);
    body = tst_fmt("{\"shell_class\":\"%sS\"}", v);
    expect("PUT", "/admin/accords/shell-over", ADMIN, body, 400, "invalid_field");
    ck_assert_int_eq(count(accords), n);
    free(body), free(v);
    ck_assert_int_eq(count("SELECT count(*) FROM accords WHERE name LIKE '%-over' OR name LIKE "
                           "'%-zero' OR name IN ('posture-6', 'posture-0')"),
                     0);
}
END_TEST

/* ---- billing accounts and dead letters ---- */

START_TEST(billing_and_replay_limits)
{
    const char *accounts = "SELECT count(*) FROM billing_accounts";
    long n = count(accounts);
    char *id, *path, *body, *v;

    /* BILL_ACCOUNT_ID_MAX: 64 stored; 65 refused (as no such account) */
    id = rep('a', BILL_ACCOUNT_ID_MAX);
    path = tst_fmt("/admin/accounts/%s", id);
    expect("PUT", path, ADMIN, "{\"currency\":\"USD\",\"rate_card\":" CARD "}}", 200, NULL);
    ck_assert_int_eq(count(accounts), ++n);
    free(path);
    path = tst_fmt("/admin/accounts/%sa", id);
    expect("PUT", path, ADMIN, "{\"currency\":\"USD\",\"rate_card\":" CARD "}}", 404,
           "account_not_found");
    ck_assert_int_eq(count(accounts), n);
    free(path), free(id);

    /* rate card limits: each accepted card stores an account of its own, each refused none */
    char classes_ok[1024], classes_over[2048], *p;
    p = classes_ok;
    for (int i = 0; i < BILL_SHELL_CLASSES_MAX; i++)
        p += snprintf(p, sizeof classes_ok - (size_t)(p - classes_ok), "%s\"C%02d\":\"1\"",
                      i ? "," : "", i);
    snprintf(classes_over, sizeof classes_over, "%s,\"C%02d\":\"1\"", classes_ok,
             BILL_SHELL_CLASSES_MAX);
    v = rep('K', BILL_SHELL_CLASS_MAX);
    struct {
        const char *id;
        char *card;
        int status;
        const char *code;
    } cases[] = {
        {"price-max", tst_fmt(CARD ",\"flagged_surcharge\":%lld}", BILL_PRICE_MAX), 200, NULL},
        {"price-over", tst_fmt(CARD ",\"flagged_surcharge\":%lld}", BILL_PRICE_MAX + 1), 422,
         "out_of_range"},
        {"mult-max", tst_fmt(CARD ",\"capability_multipliers\":{\"0\":\"1000\"}}"), 200, NULL},
        {"mult-over", tst_fmt(CARD ",\"capability_multipliers\":{\"0\":\"1000.000001\"}}"), 422,
         "out_of_range"},
        {"bit-31", tst_fmt(CARD ",\"capability_multipliers\":{\"31\":\"2\"}}"), 200, NULL},
        {"bit-32", tst_fmt(CARD ",\"capability_multipliers\":{\"32\":\"2\"}}"), 400, "invalid_field"},
        {"classes-max", tst_fmt(CARD ",\"shell_class_multipliers\":{%s}}", classes_ok), 200, NULL},
        {"classes-over", tst_fmt(CARD ",\"shell_class_multipliers\":{%s}}", classes_over), 422,
         "out_of_range"},
        {"class-max", tst_fmt(CARD ",\"shell_class_multipliers\":{\"%s\":\"2\"}}", v), 200, NULL},
        {"class-over", tst_fmt(CARD ",\"shell_class_multipliers\":{\"%sK\":\"2\"}}", v), 400,
         "invalid_field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        path = tst_fmt("/admin/accounts/%s", cases[i].id);
        body = tst_fmt("{\"currency\":\"USD\",\"rate_card\":%s}", cases[i].card);
        expect("PUT", path, ADMIN, body, cases[i].status, cases[i].code);
        n += cases[i].status == 200;
        ck_assert_msg(count(accounts) == n, "after %s", cases[i].id);
        free(path), free(body), free(cases[i].card);
    }
    free(v);
    ck_assert_int_eq(count("SELECT (rate_card->>'flagged_surcharge')::bigint FROM billing_accounts "
                           "WHERE account_id = 'price-max'"),
                     BILL_PRICE_MAX);
    ck_assert_int_eq(count("SELECT count(*) FROM billing_accounts, "
                           "jsonb_object_keys(rate_card->'shell_class_multipliers') "
                           "WHERE account_id = 'classes-max'"),
                     BILL_SHELL_CLASSES_MAX);

    /* ?after= of an invoice page: 0..2^63 - 1 (strtoll's range, unnamed) pass validation and
     * reach the lookup; 2^63 is 400 */
    const char *inv = "/billing/invoices/inv_00000000000000000000000000000000/";
    char *finance = tst_keys_create(&B, "acme", "finance");
    path = tst_fmt("%s?after=9223372036854775807", inv);
    expect("GET", path, finance, NULL, 404, "invoice_not_found");
    free(path);
    path = tst_fmt("%s?after=9223372036854775808", inv);
    expect("GET", path, finance, NULL, 400, "invalid_query");
    free(path), free(finance);

    /* dead-letter replay: HND_EVENT_ID_MAX and FN_NAME_MAX pass validation (and find no dead
     * letter); one past each is refused; no run is touched either way */
    const char *runs = "SELECT count(*) FROM fn_runs";
    long nr = count(runs);
    v = rep('f', FN_NAME_MAX);
    body = tst_fmt("{\"event_id\":%lld,\"function\":\"%s\"}", HND_EVENT_ID_MAX, v);
    expect("POST", "/admin/functions/dead-letters/replay", ADMIN, body, 404, "dead_letter_not_found");
    free(body);
    body = tst_fmt("{\"event_id\":%lld,\"function\":\"%s\"}", HND_EVENT_ID_MAX + 1, v);
    expect("POST", "/admin/functions/dead-letters/replay", ADMIN, body, 422, "out_of_range");
    free(body);
    body = tst_fmt("{\"event_id\":1,\"function\":\"%sf\"}", v);
    expect("POST", "/admin/functions/dead-letters/replay", ADMIN, body, 400, "field_too_long");
    free(body), free(v);
    ck_assert_int_eq(count(runs), nr);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_limits");
    TCase *tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, front_limits);
    tcase_add_test(tc, authorize_limits);
    tcase_add_test(tc, complete_limits);
    tcase_add_test(tc, accord_limits);
    tcase_add_test(tc, billing_and_replay_limits);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
