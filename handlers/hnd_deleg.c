/*
 * hnd_deleg: delegations (docs/protocol.md "Delegation").
 *
 *   POST /delegations/                      create a root (the caller's key delegates; the key
 *                                           needs can_delegate) or a sub-delegation (parent_id:
 *                                           the caller must be the parent's agent), or accept
 *                                           an Agent Passport System delegation (aps_delegation)
 *   GET  /delegations/                      the delegations the caller may see, newest first
 *   GET  /delegations/{delegation_id}       one of them, with its signed document
 *   POST /delegations/{delegation_id}/revoke  revokes it, its subtree and their unused ACs
 *   PUT  /delegations/signing-key           registers the caller's Ed25519 key for SDK
 *                                           delegations (with a proof of possession)
 *
 * Creation runs in two round trips: (1) the parent (when there is one) and the caller's
 * registered signing key; (2) after the narrowing rule (gov_deleg_narrow) and the signature,
 * gsap_deleg_create, which locks the parent's chain and checks again what can have changed.
 * A delegation the caller may not see (another key of the tenant that is neither in its chain
 * nor its owner, or another tenant) is 404 delegation_not_found, as if it did not exist.
 * Auditors of the tenant may read every delegation, but not create or revoke.
 */
#include "hnd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_http.h"
#include "brk_server.h"
#include "brk_time.h"
#include "gov_deleg.h"
#include "gov_field.h"
#include "gov_result.h"
#include "hnd_deleg.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define DELEG_PAGE_DEFAULT 100 /* delegations on a page when ?limit is absent */
#define DELEG_PAGE_MAX 500     /* the largest ?limit; one more is 400 invalid_query */
#define DELEG_NUM_LEN 24
#define DELEG_URL_MAX 128 /* "/delegations/?after=<id>&limit=<n>" */

static brk_db_stmt_t q_parent = {"deleg_parent",
                                 "SELECT " HND_DELEG_ROW_JSON
                                 "::text, d.aps IS NOT NULL FROM delegations d "
                                 "WHERE d.tenant_id = $1 AND d.delegation_id = $2",
                                 0};
static brk_db_stmt_t q_signing_key = {
    "deleg_signing_key",
    "SELECT delegation_public_key FROM api_keys WHERE tenant_id = $1 AND key_id = $2", 0};
enum create_param {
    CP_TENANT,
    CP_ID,
    CP_PARENT,
    CP_CHAIN,
    CP_DEPTH,
    CP_MAX_DEPTH,
    CP_DELEGATOR,
    CP_CREATOR,
    CP_OWNER,
    CP_AGENT,
    CP_CAPS,
    CP_ACCORDS,
    CP_CORPUS,
    CP_PROHIBITED,
    CP_EXPIRES,
    CP_MAX_COMMANDS,
    CP_SPEND,
    CP_DOC,
    CP_CID,
    CP_APS,
    CP__COUNT
};
static brk_db_stmt_t q_create = {
    "deleg_create",
    "SELECT gsap_deleg_create($1, $2, $3, ARRAY(SELECT json_array_elements_text($4::json)), "
    "$5::integer, $6::integer, $7, $8, $9, $10, $11::bigint, "
    "CASE WHEN $12::json IS NULL THEN NULL ELSE ARRAY(SELECT json_array_elements_text($12::json)) "
    "END, CASE WHEN $13::json IS NULL THEN NULL ELSE ARRAY(SELECT "
    "json_array_elements_text($13::json)) END, ARRAY(SELECT json_array_elements_text($14::json)), "
    "to_timestamp($15::bigint), $16::bigint, $17::bigint, $18::jsonb, $19, $20::jsonb)",
    0, &hnd_q_wake};
/* One delegation with its document and what its subtree's ACs were billed, when visible. */
static brk_db_stmt_t q_get = {
    "deleg_get",
    "SELECT json_build_object('delegation', " HND_DELEG_ROW_JSON ", 'document', d.document, "
    "'aps', d.aps, 'billed_minor', (SELECT coalesce(sum(il.total_minor), 0) FROM delegations s "
    "JOIN acs c ON c.tenant_id = s.tenant_id AND c.delegation_id = s.delegation_id "
    "JOIN invoice_lines il ON il.tenant_id = c.tenant_id AND il.context_id = c.context_id "
    "WHERE s.tenant_id = $1 AND s.chain @> ARRAY[d.delegation_id]))::text "
    "FROM delegations d WHERE d.tenant_id = $1 AND d.delegation_id = $4 AND ($5::boolean "
    "OR " HND_DELEG_VISIBLE ")",
    0};
static brk_db_stmt_t q_list = {
    "deleg_list",
    "SELECT coalesce(json_agg(" HND_DELEG_ROW_JSON " ORDER BY d.created_at DESC, "
    "d.delegation_id DESC), '[]')::text FROM (SELECT * FROM delegations d WHERE d.tenant_id = $1 "
    "AND ($5::boolean OR " HND_DELEG_VISIBLE ") AND ($6::text IS NULL OR (d.created_at, "
    "d.delegation_id) < (SELECT created_at, delegation_id FROM delegations WHERE tenant_id = $1 "
    "AND delegation_id = $6)) ORDER BY d.created_at DESC, d.delegation_id DESC "
    "LIMIT $4::int) d",
    0};
static brk_db_stmt_t q_revoke = {
    "deleg_revoke", "SELECT delegations_revoked, acs_revoked FROM gsap_deleg_revoke($1, $2, $3)",
    0, &hnd_q_wake};
static brk_db_stmt_t q_set_key = {
    "deleg_set_key",
    "UPDATE api_keys SET delegation_public_key = $3 WHERE tenant_id = $1 AND key_id = $2", 0};

typedef struct deleg_ctx {
    char did[GOV_DID_MAX + 1];
    char id[GOV_DELEG_ID_LEN + 1];
    const char *parent_id;
    int is_auditor;
    long long limit;
    char fetch_s[DELEG_NUM_LEN];
    const char *reply; /* the answer, serialized before the last round trip */
} deleg_ctx_t;

static deleg_ctx_t *ctx_new(brk_req_t *r)
{
    deleg_ctx_t *c = brk_req_alloc(r, sizeof *c);
    memset(c, 0, sizeof *c);
    hnd_principal_did(r, c->did, sizeof c->did);
    c->is_auditor = (r->principal.roles & BRK_ROLE_AUDITOR) != 0;
    r->ctx = c;
    return c;
}

static void not_found(brk_req_t *r)
{
    brk_reply_error(r, BRK_ENOTFOUND, "delegation_not_found", "no such delegation");
}

/* The {delegation_id} of the path into c->id; a malformed id is one that does not exist. */
static int path_id(brk_req_t *r, deleg_ctx_t *c)
{
    h2o_iovec_t p = brk_req_param(r, 0);
    if (p.len != GOV_DELEG_ID_LEN) {
        not_found(r);
        return -1;
    }
    memcpy(c->id, p.base, p.len);
    c->id[p.len] = '\0';
    if (!gov_deleg_id_valid(c->id)) {
        not_found(r);
        return -1;
    }
    return 0;
}

/* ---- POST /delegations/ ---- */

static void on_created(brk_req_t *r, const brk_db_result_t *res)
{
    deleg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const char *code = PQgetvalue(res->res[0], 0, 0);
    if (strcmp(code, "ok") == 0) {
        brk_reply_raw(r, 201, "application/json", c->reply, strlen(c->reply));
        return;
    }
    if (strcmp(code, "stale") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "delegation_conflict",
                        "the parent delegation changed while this one was made; retry");
        return;
    }
    hnd_reply_result(r, code);
}

/* A JSON array text of a list (NULL stays NULL: "any"). */
static const char *list_text(brk_req_t *r, const json_t *v)
{
    return v ? hnd_json_dump(r, v) : NULL;
}

static void create_checked(brk_req_t *r, gov_deleg_request_t *q, gov_deleg_parent_t *parent,
                           const json_t *prow, int parent_aps, const char *signing_key)
{
    deleg_ctx_t *c = r->ctx;
    gov_deleg_scope_t s = {0};
    gov_err_t e;
    time_t now = time(NULL);
    json_t *chain = NULL, *doc = NULL, *body = NULL;
    char owner[BRK_KEY_ID_HEX + 1], caps[16], depth[16], maxd[16], exp[24], cmds[24], spend[24];
    const char *delegator = c->did;

    snprintf(owner, sizeof owner, "%s", r->principal.key_id);
    if (q->aps != NULL) {
        /* The key that must have signed: the caller's registered key for a root; for a
         * sub-delegation, the key the parent (itself an SDK delegation) was delegated to. */
        const char *signer = signing_key;
        if (prow != NULL)
            signer =
                parent_aps ? json_string_value(json_object_get(prow, "aps_delegated_to")) : NULL;
        if (gov_deleg_aps_parse(q->aps, signer, now, q, &e) != 0) {
            hnd_reply_gov(r, &e);
            goto out;
        }
        if (q->aps_depth != (parent ? parent->depth + 1 : 0)) {
            brk_reply_error(r, BRK_EFORBIDDEN, "narrowing_violation",
                            "\"currentDepth\" is %d, the chain makes it %d", q->aps_depth,
                            parent ? parent->depth + 1 : 0);
            goto out;
        }
    }
    if (prow != NULL) {
        /* Who holds the parent: its agent, or for an SDK delegation (whose signature proves
         * the agent's consent) the key that owns the chain. */
        const char *agent = json_string_value(json_object_get(prow, "agent_did"));
        const char *pown = json_string_value(json_object_get(prow, "owner_key_id"));
        int holder = agent != NULL && strcmp(agent, c->did) == 0;
        if (!holder &&
            !(q->aps != NULL && pown != NULL && strcmp(pown, r->principal.key_id) == 0)) {
            not_found(r);
            goto out;
        }
        if (strcmp(json_string_value(json_object_get(prow, "status")), "active") != 0) {
            hnd_reply_result(r, "delegation_revoked");
            goto out;
        }
        if (json_is_true(json_object_get(prow, "expired"))) {
            hnd_reply_result(r, "delegation_expired");
            goto out;
        }
        delegator = agent;
        snprintf(owner, sizeof owner, "%s", pown);
    } else if (!r->principal.can_delegate) {
        brk_reply_error(r, BRK_EFORBIDDEN, "delegation_forbidden", "this key may not delegate");
        goto out;
    }
    if (gov_deleg_resolve(q, parent, now, &s) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "out of memory");
        goto out;
    }
    if (parent != NULL ? gov_deleg_narrow(&s, parent, &e) != 0
                       : gov_deleg_root_check(&s, now, &e) != 0) {
        hnd_reply_gov(r, &e);
        goto out;
    }
    if (parent == NULL && s.max_depth > GOV_DELEG_DEPTH_MAX) {
        brk_reply_error(r, BRK_ERANGE, "out_of_range", "max_delegation_depth is at most %d",
                        GOV_DELEG_DEPTH_MAX);
        goto out;
    }
    gov_new_id("dlg_", c->id);
    chain = prow ? json_deep_copy(json_object_get(prow, "chain")) : json_array();
    json_array_append_new(chain, json_string(c->id));
    int d = parent ? parent->depth + 1 : 0;
    gov_deleg_doc_args_t a = {c->id,
                              c->parent_id,
                              r->principal.tenant,
                              delegator,
                              r->principal.key_id,
                              q->agent_did,
                              chain,
                              d,
                              now,
                              q->aps};
    doc = gov_deleg_doc(brk_server_keys(r->server), &a, &s);
    if (doc == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the delegation");
        goto out;
    }
    body = json_pack("{s:s,s:s,s:O}", "delegation_id", c->id, "status", "active", "document", doc);
    c->reply = hnd_json_dump(r, body);
    snprintf(caps, sizeof caps, "%u", s.caps);
    snprintf(depth, sizeof depth, "%d", d);
    snprintf(maxd, sizeof maxd, "%d", s.max_depth);
    snprintf(exp, sizeof exp, "%lld", (long long)s.expires);
    snprintf(cmds, sizeof cmds, "%lld", s.max_commands);
    snprintf(spend, sizeof spend, "%lld", s.spend_limit);
    brk_db_op_t op = {&q_create,
                      CP__COUNT,
                      {
                          [CP_TENANT] = r->principal.tenant,
                          [CP_ID] = c->id,
                          [CP_PARENT] = c->parent_id,
                          [CP_CHAIN] = hnd_json_dump(r, chain),
                          [CP_DEPTH] = depth,
                          [CP_MAX_DEPTH] = maxd,
                          [CP_DELEGATOR] = delegator,
                          [CP_CREATOR] = r->principal.key_id,
                          [CP_OWNER] = owner,
                          [CP_AGENT] = q->agent_did,
                          [CP_CAPS] = caps,
                          [CP_ACCORDS] = list_text(r, s.accords),
                          [CP_CORPUS] = list_text(r, s.corpus),
                          [CP_PROHIBITED] = hnd_json_dump(r, s.prohibited),
                          [CP_EXPIRES] = exp,
                          [CP_MAX_COMMANDS] = cmds,
                          [CP_SPEND] = s.spend_limit >= 0 ? spend : NULL,
                          [CP_DOC] = hnd_json_dump(r, doc),
                          [CP_CID] = json_string_value(json_object_get(doc, "delegation_cid")),
                          [CP_APS] = q->aps ? hnd_json_dump(r, q->aps) : NULL,
                      }};
    brk_req_db(r, &op, 1, on_created);
out:
    gov_deleg_scope_clear(&s);
    json_decref(chain);
    json_decref(doc);
    json_decref(body);
}

static void on_create_read(brk_req_t *r, const brk_db_result_t *res)
{
    deleg_ctx_t *c = r->ctx;
    gov_deleg_request_t q;
    gov_deleg_parent_t parent, *pp = NULL;
    gov_err_t e;
    json_t *prow = NULL;
    int parent_aps = 0;

    memset(&parent, 0, sizeof parent);
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (gov_deleg_request_parse(r->body, &q, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    const char *key = PQgetisnull(res->res[0], 0, 0) ? NULL : PQgetvalue(res->res[0], 0, 0);
    if (c->parent_id != NULL) {
        if (res->n < 2 || PQntuples(res->res[1]) != 1) {
            not_found(r);
            goto out;
        }
        prow = json_loads(PQgetvalue(res->res[1], 0, 0), 0, NULL);
        parent_aps = PQgetvalue(res->res[1], 0, 1)[0] == 't';
        if (prow == NULL || gov_deleg_parent_from_row(prow, &parent) != 0) {
            brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored delegation does not parse");
            goto out;
        }
        pp = &parent;
    }
    create_checked(r, &q, pp, prow, parent_aps, key);
out:
    gov_deleg_request_clear(&q);
    gov_deleg_scope_clear(&parent.s);
    json_decref(prow);
}

static void create(brk_req_t *r)
{
    deleg_ctx_t *c = ctx_new(r);
    gov_deleg_request_t q;
    gov_err_t e;

    if (gov_deleg_request_parse(r->body, &q, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    if (q.parent_id != NULL) {
        char *p = brk_req_alloc(r, GOV_DELEG_ID_LEN + 1);
        memcpy(p, q.parent_id, GOV_DELEG_ID_LEN + 1);
        c->parent_id = p;
    }
    gov_deleg_request_clear(&q);
    brk_db_op_t ops[2] = {
        {&q_signing_key, 2, {r->principal.tenant, r->principal.key_id}},
        {&q_parent, 2, {r->principal.tenant, c->parent_id}},
    };
    brk_req_db(r, ops, c->parent_id ? 2 : 1, on_create_read);
}

/* ---- GET /delegations/{delegation_id} ---- */

static void on_get(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        not_found(r);
        return;
    }
    json_t *d = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL);
    if (d == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot read the delegation");
        return;
    }
    json_t *row = json_deep_copy(json_object_get(d, "delegation"));
    json_object_del(row, "expires_epoch");
    json_object_set(row, "document", json_object_get(d, "document"));
    json_object_set(row, "aps", json_object_get(d, "aps"));
    json_object_set(row, "billed_minor", json_object_get(d, "billed_minor"));
    brk_reply_json(r, 200, row);
    json_decref(row);
    json_decref(d);
}

static void get(brk_req_t *r)
{
    deleg_ctx_t *c = ctx_new(r);
    if (path_id(r, c) != 0)
        return;
    brk_db_op_t op = {&q_get,
                      5,
                      {r->principal.tenant, r->principal.key_id, c->did, c->id,
                       c->is_auditor ? "true" : "false"}};
    brk_req_db(r, &op, 1, on_get);
}

/* ---- GET /delegations/ ---- */

static void on_list(brk_req_t *r, const brk_db_result_t *res)
{
    deleg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *list = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL), *next = json_null(), *x;
    size_t i;
    if (list == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot read the delegations");
        return;
    }
    json_array_foreach(list, i, x) json_object_del(x, "expires_epoch");
    if ((long long)json_array_size(list) > c->limit) {
        char url[DELEG_URL_MAX];
        json_array_remove(list, json_array_size(list) - 1);
        const char *last = json_string_value(
            json_object_get(json_array_get(list, json_array_size(list) - 1), "delegation_id"));
        snprintf(url, sizeof url, "/delegations/?after=%s&limit=%lld", last ? last : "", c->limit);
        next = json_string(url);
    }
    json_t *b = json_pack("{s:o,s:I,s:o}", "delegations", list, "limit", (json_int_t)c->limit,
                          "next", next);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void list(brk_req_t *r)
{
    deleg_ctx_t *c = ctx_new(r);
    char *after = brk_req_alloc(r, GOV_DELEG_ID_LEN + 2), num[DELEG_NUM_LEN], *end;
    size_t len;
    c->limit = DELEG_PAGE_DEFAULT;
    int rc = brk_req_query(r, "limit", num, sizeof num, &len);
    if (rc == 0 && len > 0) {
        errno = 0;
        long long v = num[0] >= '0' && num[0] <= '9' ? strtoll(num, &end, 10) : -1;
        if (v < 1 || v > DELEG_PAGE_MAX || errno != 0 || *end != '\0') {
            brk_reply_error(r, BRK_EINVAL, "invalid_query",
                            "\"limit\" must be an integer from 1 to %d", DELEG_PAGE_MAX);
            return;
        }
        c->limit = v;
    } else if (rc != 0 && rc != BRK_ENOTFOUND) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query", "\"limit\" must be an integer from 1 to %d",
                        DELEG_PAGE_MAX);
        return;
    }
    rc = brk_req_query(r, "after", after, GOV_DELEG_ID_LEN + 2, &len);
    if (rc == BRK_ENOTFOUND || (rc == 0 && len == 0)) {
        after = NULL;
    } else if (rc != 0 || !gov_deleg_id_valid(after)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query",
                        "\"after\" must be a delegation id (dlg_ and 32 hex digits)");
        return;
    }
    snprintf(c->fetch_s, sizeof c->fetch_s, "%lld", c->limit + 1);
    brk_db_op_t op = {&q_list,
                      6,
                      {r->principal.tenant, r->principal.key_id, c->did, c->fetch_s,
                       c->is_auditor ? "true" : "false", after}};
    brk_req_db(r, &op, 1, on_list);
}

/* ---- POST /delegations/{delegation_id}/revoke ---- */

static void on_revoked(brk_req_t *r, const brk_db_result_t *res)
{
    deleg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        not_found(r);
        return;
    }
    json_t *b =
        json_pack("{s:s,s:s,s:i,s:i}", "delegation_id", c->id, "status", "revoked",
                  "delegations_revoked", (int)strtol(PQgetvalue(res->res[0], 0, 0), NULL, 10),
                  "acs_revoked", (int)strtol(PQgetvalue(res->res[0], 0, 1), NULL, 10));
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_revoke_check(brk_req_t *r, const brk_db_result_t *res)
{
    deleg_ctx_t *c = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        not_found(r);
        return;
    }
    brk_db_op_t op = {&q_revoke, 3, {r->principal.tenant, c->id, r->principal.key_id}};
    brk_req_db(r, &op, 1, on_revoked);
}

static void revoke_deleg(brk_req_t *r)
{
    deleg_ctx_t *c = ctx_new(r);
    if (path_id(r, c) != 0)
        return;
    /* Auditors read; they do not revoke: visibility here is the chain's own. */
    brk_db_op_t op = {
        &q_get, 5, {r->principal.tenant, r->principal.key_id, c->did, c->id, "false"}};
    brk_req_db(r, &op, 1, on_revoke_check);
}

/* ---- PUT /delegations/signing-key ---- */

static void on_key_set(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    brk_reply_raw(r, 200, "application/json", r->ctx, strlen(r->ctx));
}

static void set_key(brk_req_t *r)
{
    static const char *const fields[] = {"public_key", "proof", NULL};
    char did[GOV_DID_MAX + 1];
    const char *pub, *proof;
    gov_err_t e;

    if (gov_reject_unknown(r->body, fields, &e) != 0 ||
        gov_req_string(r->body, "public_key", GOV_DELEG_PUBHEX_LEN, &pub, &e) != 0 ||
        gov_req_string(r->body, "proof", GOV_DELEG_SIGHEX_LEN, &proof, &e) != 0) {
        hnd_reply_gov(r, &e);
        return;
    }
    hnd_principal_did(r, did, sizeof did);
    if (!gov_deleg_key_proof_ok(pub, proof, did)) {
        brk_reply_error(r, BRK_EFORBIDDEN, "proof_invalid",
                        "\"proof\" must be the key's Ed25519 signature (hex) over \"%s\" + this "
                        "key's DID",
                        GOV_DELEG_KEY_PROOF_PREFIX);
        return;
    }
    json_t *b =
        json_pack("{s:s,s:s,s:s}", "key_id", r->principal.key_id, "did", did, "public_key", pub);
    r->ctx = (void *)hnd_json_dump(r, b);
    json_decref(b);
    brk_db_op_t op = {&q_set_key, 3, {r->principal.tenant, r->principal.key_id, pub}};
    brk_req_db(r, &op, 1, on_key_set);
}

static const brk_route_t routes[] = {
    {"POST", "/delegations", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, create},
    {"GET", "/delegations", BRK_ROLE_ISSUER | BRK_ROLE_AUDITOR, 0, list},
    {"PUT", "/delegations/signing-key", BRK_ROLE_ISSUER, BRK_ROUTE_JSON, set_key},
    {"GET", "/delegations/{delegation_id}", BRK_ROLE_ISSUER | BRK_ROLE_AUDITOR, 0, get},
    {"POST", "/delegations/{delegation_id}/revoke", BRK_ROLE_ISSUER, 0, revoke_deleg},
};

int hnd_deleg_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_parent, &q_signing_key, &q_create, &q_get,
                              &q_list,   &q_revoke,      &q_set_key};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        if (brk_db_register(stmts[i]) != 0)
            return BRK_ENOMEM;
    return brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
