/*
 * hnd_functions: the function runtime's dead letters over HTTP (role admin, the caller's
 * tenant only). A dead letter is an (event, function) pair that failed
 * GSAP_FN_MAX_ATTEMPTS times (functions/fn_runtime.c). Replaying one makes it pending again
 * (attempts 0, next attempt now) and wakes every runtime with NOTIFY gsap_events, in one
 * statement (gsap_fn_replay in migrations/0003_runtime.sql). Another tenant's pair, an
 * unknown one and one that is not dead all answer 404 dead_letter_not_found.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "fn.h"
#include "gov_field.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_DEAD_LETTERS_MAX 1000     /* listed per request; "truncated" says when there are more */
#define HND_DEAD_LETTERS_MAX_S "1001" /* one more, to know whether the list was cut */
#define HND_EVENT_ID_MAX GOV_JSON_INT_MAX

static brk_db_stmt_t q_list = {
    "fn_dead_list",
    "SELECT r.event_id, r.function, r.attempts, r.last_error, "
    "to_char(r.dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.type, "
    "e.context_id FROM fn_runs r JOIN events e "
    "ON e.tenant_id = r.tenant_id AND e.event_id = r.event_id "
    "WHERE r.tenant_id = $1 AND r.dead_at IS NOT NULL "
    "ORDER BY r.dead_at, r.event_id, r.function LIMIT $2::int",
    0};
static brk_db_stmt_t q_replay = {"fn_dead_replay", "SELECT gsap_fn_replay($1, $2::bigint, $3)", 0};

static json_t *text_or_null(const PGresult *res, int i, int col)
{
    return PQgetisnull(res, i, col) ? json_null() : json_string(PQgetvalue(res, i, col));
}

static void on_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const PGresult *pr = res->res[0];
    int n = PQntuples(pr), shown = n > HND_DEAD_LETTERS_MAX ? HND_DEAD_LETTERS_MAX : n;
    json_t *list = json_array();
    for (int i = 0; i < shown; i++)
        json_array_append_new(list, json_pack("{s:I,s:s,s:i,s:o,s:s,s:s,s:o}", "event_id",
                                              (json_int_t)strtoll(PQgetvalue(pr, i, 0), NULL, 10),
                                              "function", PQgetvalue(pr, i, 1), "attempts",
                                              (int)strtol(PQgetvalue(pr, i, 2), NULL, 10),
                                              "last_error", text_or_null(pr, i, 3), "dead_at",
                                              PQgetvalue(pr, i, 4), "type", PQgetvalue(pr, i, 5),
                                              "context_id", text_or_null(pr, i, 6)));
    json_t *b = json_pack("{s:o,s:b}", "dead_letters", list, "truncated", n > shown);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void list_dead(brk_req_t *r)
{
    brk_db_op_t op = {&q_list, 2, {r->principal.tenant, HND_DEAD_LETTERS_MAX_S}};
    brk_req_db(r, &op, 1, on_list);
}

typedef struct replay_ctx {
    char event_id[24];
    char function[FN_NAME_MAX + 1];
} replay_ctx_t;

static void on_replay(brk_req_t *r, const brk_db_result_t *res)
{
    replay_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1 || strcmp(PQgetvalue(res->res[0], 0, 0), "t") != 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "dead_letter_not_found",
                        "no dead letter for event %s and function \"%s\"", c->event_id,
                        c->function);
        return;
    }
    json_t *b = json_pack("{s:I,s:s,s:s}", "event_id", (json_int_t)strtoll(c->event_id, NULL, 10),
                          "function", c->function, "status", "pending");
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void replay_dead(brk_req_t *r)
{
    static const char *const fields[] = {"event_id", "function", NULL};
    const char *function = NULL;
    long long event_id = 0;
    replay_ctx_t *c;

    if (hnd_reject_unknown(r, r->body, fields) != 0)
        return;
    if (json_object_get(r->body, "event_id") == NULL) {
        brk_reply_error(r, BRK_EINVAL, "missing_field", "\"event_id\" is required");
        return;
    }
    if (hnd_opt_int(r, r->body, "event_id", 1, HND_EVENT_ID_MAX, &event_id) != 0 ||
        hnd_req_string(r, r->body, "function", FN_NAME_MAX, &function) != 0)
        return;
    c = brk_req_alloc(r, sizeof *c);
    snprintf(c->event_id, sizeof c->event_id, "%lld", event_id);
    snprintf(c->function, sizeof c->function, "%s", function);
    r->ctx = c;
    brk_db_op_t op = {&q_replay, 3, {r->principal.tenant, c->event_id, c->function}};
    brk_req_db(r, &op, 1, on_replay);
}

static const brk_route_t routes[] = {
    {"GET", "/admin/functions/dead-letters", BRK_ROLE_ADMIN, 0, list_dead},
    {"POST", "/admin/functions/dead-letters/replay", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, replay_dead},
};

int hnd_functions_register(void)
{
    if (brk_db_register(&q_list) != 0 || brk_db_register(&q_replay) != 0)
        return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
