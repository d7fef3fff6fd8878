/*
 * hnd_denials: the denial receipts of a tenant, for its auditors. A denial is the signed
 * record that the broker refused to issue an AC (gov_denial_issue, hnd_authorize.c); the
 * issuing key got it in its 403 answer, and auditors read them all here: a list, newest
 * first, paged by keyset (?after=<denial_id of the last row>&limit=<n>), and each receipt as
 * signed. Another tenant's denial, or one that does not exist, is 404 denial_not_found.
 */
#include "hnd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "banned.h"

#define DENIALS_PAGE_DEFAULT 100 /* denials on a page when ?limit is absent */
#define DENIALS_PAGE_MAX 500     /* the largest ?limit; one more is 400 invalid_query */
#define DENIAL_ID_LEN 36         /* "den_" + 32 hex digits (the table's CHECK) */
#define DENIALS_NUM_LEN 24
#define DENIALS_URL_MAX 128      /* "/governance/denials/?after=<id>&limit=<n>" */

/* One page, newest first; $3 is the last denial of the previous page (NULL: the first page).
 * A cursor that is not a denial of this tenant yields an empty page. */
static brk_db_stmt_t q_denials = {
    "gov_denials_list",
    "SELECT coalesce(json_agg(json_build_object('denial_id', denial_id, 'reason_code', "
    "reason_code, 'accord_name', accord_name, 'issuer_key_id', issuer_key_id, 'denial_cid', "
    "denial_cid, 'created_at', created_at) ORDER BY created_at DESC, denial_id DESC), "
    "'[]')::text FROM (SELECT * FROM denials d WHERE tenant_id = $1 AND ($3::text IS NULL OR "
    "(created_at, denial_id) < (SELECT created_at, denial_id FROM denials WHERE tenant_id = $1 "
    "AND denial_id = $3)) ORDER BY created_at DESC, denial_id DESC LIMIT $2::int) s",
    0};
static brk_db_stmt_t q_denial = {
    "gov_denial_get",
    "SELECT json_build_object('denial_id', denial_id, 'reason_code', reason_code, "
    "'accord_name', accord_name, 'issuer_key_id', issuer_key_id, 'denial_cid', denial_cid, "
    "'created_at', created_at, 'receipt', receipt)::text FROM denials "
    "WHERE tenant_id = $1 AND denial_id = $2",
    0};

typedef struct denials_req {
    long long limit;
    char fetch_s[DENIALS_NUM_LEN]; /* limit + 1: one more tells whether a next page exists */
} denials_req_t;

/* den_ + 32 lowercase hex digits. */
static int denial_id_ok(const char *s, size_t n)
{
    if (n != DENIAL_ID_LEN || memcmp(s, "den_", 4) != 0)
        return 0;
    for (size_t i = 4; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void bad_query(brk_req_t *r, const char *what)
{
    brk_reply_error(r, BRK_EINVAL, "invalid_query", "%s", what);
}

static void on_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const denials_req_t *q = r->ctx;
    json_t *list = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL), *next = json_null();
    if (list == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot read the denials");
        return;
    }
    if ((long long)json_array_size(list) > q->limit) {
        char url[DENIALS_URL_MAX];
        json_array_remove(list, json_array_size(list) - 1);
        const char *last = json_string_value(
            json_object_get(json_array_get(list, json_array_size(list) - 1), "denial_id"));
        snprintf(url, sizeof url, "/governance/denials/?after=%s&limit=%lld", last ? last : "",
                 q->limit);
        next = json_string(url);
    }
    json_t *b = json_pack("{s:o,s:I,s:o}", "denials", list, "limit", (json_int_t)q->limit,
                          "next", next);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void list(brk_req_t *r)
{
    denials_req_t *q = brk_req_alloc(r, sizeof *q);
    char *after = brk_req_alloc(r, DENIAL_ID_LEN + 2), num[DENIALS_NUM_LEN], *e;
    size_t len;
    r->ctx = q;
    q->limit = DENIALS_PAGE_DEFAULT;
    int rc = brk_req_query(r, "limit", num, sizeof num, &len);
    if (rc == 0 && len > 0) {
        errno = 0;
        long long v = num[0] >= '0' && num[0] <= '9' ? strtoll(num, &e, 10) : -1;
        if (v < 1 || v > DENIALS_PAGE_MAX || errno != 0 || *e != '\0') {
            bad_query(r, "\"limit\" must be an integer from 1 to 500");
            return;
        }
        q->limit = v;
    } else if (rc != 0 && rc != BRK_ENOTFOUND) {
        bad_query(r, "\"limit\" must be an integer from 1 to 500");
        return;
    }
    rc = brk_req_query(r, "after", after, DENIAL_ID_LEN + 2, &len);
    if (rc == BRK_ENOTFOUND || (rc == 0 && len == 0)) {
        after = NULL;
    } else if (rc != 0 || !denial_id_ok(after, len)) {
        bad_query(r, "\"after\" must be a denial id (den_ and 32 hex digits)");
        return;
    }
    snprintf(q->fetch_s, sizeof q->fetch_s, "%lld", q->limit + 1);
    brk_db_op_t op = {&q_denials, 3, {r->principal.tenant, q->fetch_s, after}};
    brk_req_db(r, &op, 1, on_list);
}

static void on_get(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *d = PQntuples(res->res[0]) == 1
                    ? json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL)
                    : NULL;
    if (d == NULL) {
        brk_reply_error(r, BRK_ENOTFOUND, "denial_not_found", "no such denial");
        return;
    }
    brk_reply_json(r, 200, d);
    json_decref(d);
}

static void get(brk_req_t *r)
{
    h2o_iovec_t p = brk_req_param(r, 0);
    /* a malformed id is just another id that does not exist */
    if (!denial_id_ok(p.base, p.len)) {
        brk_reply_error(r, BRK_ENOTFOUND, "denial_not_found", "no such denial");
        return;
    }
    char *id = brk_req_alloc(r, DENIAL_ID_LEN + 1);
    memcpy(id, p.base, DENIAL_ID_LEN);
    brk_db_op_t op = {&q_denial, 2, {r->principal.tenant, id}};
    brk_req_db(r, &op, 1, on_get);
}

static const brk_route_t routes[] = {
    {"GET", "/governance/denials", BRK_ROLE_AUDITOR, BRK_ROUTE_REPLICA_OK, list},
    {"GET", "/governance/denials/{denial_id}", BRK_ROLE_AUDITOR, BRK_ROUTE_REPLICA_OK, get},
};

int hnd_denials_register(void)
{
    int rc = brk_db_register(&q_denials);
    if (rc == 0)
        rc = brk_db_register(&q_denial);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
