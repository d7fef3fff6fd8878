/*
 * hnd_accords: the tenant's accords (policies) over HTTP, role admin. The same validation
 * (gov_accord_parse) serves `gsap-broker accords put`, so an accord means one thing whichever
 * way it was stored. The stored form is normalized: every field present, masks as "0x%08x".
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "gov_accord.h"
#include "gov_doc.h"
#include "hnd_gov.h"
#include "banned.h"

static brk_db_stmt_t q_put = {
    "accord_put",
    "INSERT INTO accords (tenant_id, name, body) VALUES ($1, $2, $3::jsonb) "
    "ON CONFLICT (tenant_id, name) DO UPDATE SET body = EXCLUDED.body, updated_at = now()",
    0};
static brk_db_stmt_t q_get = {
    "accord_get", "SELECT body::text FROM accords WHERE tenant_id = $1 AND name = $2", 0};
static brk_db_stmt_t q_list = {
    "accord_list",
    "SELECT coalesce(json_agg(body ORDER BY name), '[]')::text FROM accords WHERE tenant_id = $1",
    0};

static int name_param(brk_req_t *r, char *out)
{
    h2o_iovec_t p = brk_req_param(r, 0);
    if (p.len == 0 || p.len > GOV_ACCORD_NAME_MAX) {
        brk_reply_error(r, BRK_ENOTFOUND, "accord_not_found", "no such accord");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

static void on_put(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *b = gov_accord_doc(r->ctx);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void put_accord(brk_req_t *r)
{
    char *name = brk_req_alloc(r, GOV_ACCORD_NAME_MAX + 1), msg[256];
    const char *code;
    gov_accord_t a;
    int rc;
    if (name_param(r, name) != 0)
        return;
    if ((rc = gov_accord_parse(r->body, name, &a, &code, msg, sizeof msg)) != 0) {
        brk_reply_error(r, rc, code, "%s", msg);
        return;
    }
    r->ctx = (void *)hnd_json_dump(r, a.body);
    brk_db_op_t op = {&q_put, 3, {r->principal.tenant, name, r->ctx}};
    brk_req_db(r, &op, 1, on_put);
    gov_accord_clear(&a);
}

static void on_get(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "accord_not_found", "no such accord");
        return;
    }
    json_t *b = gov_accord_doc(PQgetvalue(res->res[0], 0, 0));
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void get_accord(brk_req_t *r)
{
    char *name = brk_req_alloc(r, GOV_ACCORD_NAME_MAX + 1);
    if (name_param(r, name) != 0)
        return;
    brk_db_op_t op = {&q_get, 2, {r->principal.tenant, name}};
    brk_req_db(r, &op, 1, on_get);
}

static void on_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *list = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL), *out = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        char *s = json_dumps(a, JSON_COMPACT);
        json_array_append_new(out, gov_accord_doc(s));
        free(s);
    }
    json_t *b = json_pack("{s:o}", "accords", out);
    brk_reply_json(r, 200, b);
    json_decref(b);
    json_decref(list);
}

static void list_accords(brk_req_t *r)
{
    brk_db_op_t op = {&q_list, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_list);
}

static const brk_route_t routes[] = {
    {"PUT", "/admin/accords/{name}", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, put_accord},
    {"GET", "/admin/accords/{name}", BRK_ROLE_ADMIN, 0, get_accord},
    {"GET", "/admin/accords", BRK_ROLE_ADMIN, 0, list_accords},
};

int hnd_accords_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_put, &q_get, &q_list};
    for (size_t i = 0; i < 3; i++)
        if (brk_db_register(stmts[i]) != 0)
            return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
