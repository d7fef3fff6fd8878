/*
 * hnd_bundle: the audit bundle of one governance context,
 *   GET /governance/session/{context_id}/bundle
 * one JSON document (format in gov_bundle.h) with the signed AC, every receipt as stored with
 * its lineage links, the inclusion proof of each lineage CID against one signed checkpoint of
 * the tenant's log, and the broker's public keys: what `gsap-broker verify` checks offline.
 *
 * Who may read it: exactly who may read the session page (hnd_access.h, HND_VIEW_SESSION);
 * anyone else of the tenant, and another tenant, get 404 context_not_found. No view link:
 * a bundle is fetched with a key.
 *
 * The checkpoint is the tenant's latest, made when due as GET /governance/log/checkpoint makes
 * it (hnd_tlog_latest): a receipt sequenced after it has "inclusion": null, which the verifier
 * reports as not yet proven (export again after the next checkpoint). Proofs are computed in
 * the database from the log's stored interior nodes (tlog_inclusion_path, migration 0018:
 * O(log^2 n) reads a receipt), one statement for the whole context, so there is no cap on the
 * size of the tenant's log.
 *
 * Agents (gov_passport.h): each receipt carries the CID of the passport its agent_signature
 * was verified with (null when none was), and "passports" holds those passports.
 *
 * Denial receipts: a denial refuses an AC before any context exists, so no denial belongs to a
 * context and a session bundle's "denials" is always empty (the verifier checks any it finds).
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_server.h"
#include "gov_bundle.h"
#include "hnd_access.h"
#include "hnd_gov.h"
#include "hnd_tlog.h"
#include "hnd_util.h"
#include "banned.h"

#define BUNDLE_B64_HASH (4 * ((BRK_MERKLE_HASH_LEN + 2) / 3) + 1)
#define BUNDLE_NUM_LEN 24 /* a decimal int64 and its NUL */

static brk_db_stmt_t q_bundle_ac = {
    "bundle_ac", HND_AC_ROW_SELECT " FROM acs WHERE tenant_id = $1 AND context_id = $2", 0};
/* Every receipt of the context in sequence, with its log index (NULL until sequenced). */
static brk_db_stmt_t q_bundle_crs = {
    "bundle_crs",
    "SELECT coalesce(json_agg(json_build_object('sequence', c.sequence, 'cr_cid', c.cr_cid, "
    "'chronicle_cid', c.chronicle_cid, 'prev_lineage_cid', c.prev_lineage_cid, 'lineage_cid', "
    "c.lineage_cid, 'cr', c.cr, 'agent_passport_cid', c.agent_passport_cid, 'log_index', e.idx) "
    "ORDER BY c.sequence), '[]')::text "
    "FROM crs c LEFT JOIN tlog_entries e ON e.tenant_id = c.tenant_id AND e.cr_id = c.cr_id "
    "WHERE c.tenant_id = $1 AND c.context_id = $2",
    0};
/* The passports the context's receipts were verified with (0013), as stored: signed members
 * only, so the verifier checks every byte of them. */
static brk_db_stmt_t q_bundle_passports = {
    "bundle_passports",
    "SELECT coalesce(json_agg(p.passport ORDER BY p.passport_cid), '[]')::text "
    "FROM agent_passports p WHERE p.tenant_id = $1 AND p.passport_cid IN "
    "(SELECT agent_passport_cid FROM crs WHERE tenant_id = $1 AND context_id = $2)",
    0};
/* The leaf hashes of the tree of size $2, hex, concatenated in index order. */
/* The inclusion path of every receipt of the context that the checkpoint of size $3 covers:
 * {"<log index>": [base64 hashes, leaf first]}. */
static brk_db_stmt_t q_bundle_proofs = {
    "bundle_proofs",
    "SELECT coalesce(json_object_agg(e.idx, (SELECT coalesce(json_agg(encode(p.h, 'base64') "
    "ORDER BY p.o), '[]') FROM unnest(tlog_inclusion_path($1, e.idx, $3::bigint)) "
    "WITH ORDINALITY AS p(h, o))), '{}')::text "
    "FROM crs c JOIN tlog_entries e ON e.tenant_id = c.tenant_id AND e.cr_id = c.cr_id "
    "WHERE c.tenant_id = $1 AND c.context_id = $2 AND e.idx < $3::bigint",
    0};

typedef struct bundle_req {
    hnd_tlog_req_t tl; /* first: hnd_tlog_latest reads r->ctx as this */
    char ctx[GOV_CONTEXT_ID_MAX + 1];
    const char *ac, *status, *elevation, *crs; /* request memory; elevation may be NULL */
    const char *passports;
    char size_s[BUNDLE_NUM_LEN];
} bundle_req_t;

static const char *req_strdup(brk_req_t *r, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(brk_req_alloc(r, n), s, n);
}

json_t *hnd_bundle_broker_keys(brk_req_t *r)
{
    const brk_keyring_t *kr = brk_server_keys(r->server);
    json_t *keys = json_array();
    for (size_t i = 0; i < brk_keyring_count(kr); i++) {
        char pub[BRK_ED25519_PUB_LEN * 2];
        brk_b64url_encode(brk_keyring_public(kr, i), BRK_ED25519_PUB_LEN, pub);
        json_array_append_new(keys,
                              json_pack("{s:s,s:s,s:s,s:b}", "key_id", brk_keyring_key_id(kr, i),
                                        "alg", "Ed25519", "public_key", pub, "current", i == 0));
    }
    return json_pack("{s:s,s:s,s:o}", "broker_id", brk_server_config(r->server)->broker_id,
                     "current_key_id", brk_keyring_current_id(kr), "keys", keys);
}

/* Builds and sends the bundle; proofs (may be NULL: no checkpoint yet) maps a log index to
 * its inclusion path in the checkpoint's tree. */
static void reply_bundle(brk_req_t *r, const json_t *proofs)
{
    bundle_req_t *q = r->ctx;
    json_t *ac = json_loads(q->ac, 0, NULL), *crs = json_loads(q->crs, 0, NULL);
    json_t *el = q->elevation ? json_loads(q->elevation, 0, NULL) : NULL, *cp = json_null();
    json_t *pps = json_loads(q->passports, 0, NULL);
    size_t i;
    json_t *c;
    if (ac == NULL || !json_is_array(crs) || !json_is_array(pps)) {
        json_decref(ac), json_decref(crs), json_decref(el), json_decref(pps);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "a stored AC or receipt does not parse");
        return;
    }
    if (proofs != NULL) {
        char root[BUNDLE_B64_HASH];
        brk_b64_std(q->tl.cp_root, BRK_MERKLE_HASH_LEN, root);
        cp = json_pack("{s:s,s:I,s:s,s:s,s:s}", "origin", q->tl.origin, "size",
                       (json_int_t)q->tl.cp_size, "root_hash", root, "key_name", q->tl.key_name,
                       "note", q->tl.cp_note);
    }
    json_array_foreach(crs, i, c)
    {
        json_t *idx = json_object_get(c, "log_index"), *inc = json_null();
        if (proofs != NULL && json_is_integer(idx) &&
            (unsigned long long)json_integer_value(idx) < q->tl.cp_size) {
            char key[BUNDLE_NUM_LEN];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(idx));
            json_t *hs = json_object_get(proofs, key);
            if (json_is_array(hs))
                inc = json_pack("{s:I,s:I,s:O}", "leaf_index", json_integer_value(idx),
                                "tree_size", (json_int_t)q->tl.cp_size, "hashes", hs);
        }
        json_object_del(c, "log_index");
        json_object_set_new(c, "inclusion", inc);
    }
    json_t *b =
        json_pack("{s:s,s:s,s:s,s:o,s:[{s:o,s:s,s:o}],s:o,s:[],s:o,s:o}", "format",
                  GOV_BUNDLE_FORMAT, "kind", GOV_BUNDLE_KIND_SESSION, "context_id", q->ctx,
                  "broker", hnd_bundle_broker_keys(r), "acs", "ac", ac, "status", q->status,
                  "elevation", el ? el : json_null(), "receipts", crs, "denials", "checkpoint",
                  cp, "passports", pps);
    if (b == NULL) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot build the bundle");
        return;
    }
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_proofs(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    json_t *proofs = json_loads(PQgetvalue(res->res[0], 0, 0), 0, NULL);
    if (!json_is_object(proofs)) {
        json_decref(proofs);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored log cannot prove the receipts");
        return;
    }
    reply_bundle(r, proofs);
    json_decref(proofs);
}

/* The checkpoint is known: the proofs of the context's receipts in its tree. */
static void with_checkpoint(brk_req_t *r)
{
    bundle_req_t *q = r->ctx;
    snprintf(q->size_s, sizeof q->size_s, "%llu", q->tl.cp_size);
    brk_db_op_t op = {&q_bundle_proofs, 3, {r->principal.tenant, q->ctx, q->size_s}};
    brk_req_db(r, &op, 1, on_proofs);
}

static void on_context(brk_req_t *r, const brk_db_result_t *res)
{
    bundle_req_t *q = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *a = res->res[0];
    /* the session page's rule: a context the caller may not read does not exist for it */
    if (PQntuples(a) != 1 || !hnd_ctx_row_readable(r, a, HND_VIEW_SESSION)) {
        hnd_reply_result(r, "not_found");
        return;
    }
    q->ac = req_strdup(r, PQgetvalue(a, 0, HND_AC_COL_AC));
    q->status = req_strdup(r, PQgetvalue(a, 0, HND_AC_COL_STATUS));
    q->elevation = PQgetisnull(a, 0, HND_AC_COL_ELEVATION)
                       ? NULL
                       : req_strdup(r, PQgetvalue(a, 0, HND_AC_COL_ELEVATION));
    q->crs = req_strdup(r, PQgetvalue(res->res[1], 0, 0));
    q->passports = req_strdup(r, PQgetvalue(res->res[2], 0, 0));
    /* no receipt sequenced yet: nothing to prove, no checkpoint needed (nor maybe existing) */
    json_t *crs = json_loads(q->crs, 0, NULL);
    size_t i;
    json_t *c;
    int any = 0;
    json_array_foreach(crs, i, c) any |= json_is_integer(json_object_get(c, "log_index"));
    json_decref(crs);
    if (!any) {
        reply_bundle(r, NULL);
        return;
    }
    if (hnd_tlog_names(r, &q->tl) != 0)
        return;
    hnd_tlog_latest(r, &q->tl, with_checkpoint);
}

static void bundle(brk_req_t *r)
{
    bundle_req_t *q = brk_req_alloc(r, sizeof *q);
    memset(q, 0, sizeof *q);
    r->ctx = q;
    if (hnd_context_param(r, q->ctx) != 0)
        return;
    const char *t = r->principal.tenant;
    brk_db_op_t ops[3] = {{&q_bundle_ac, 3, {t, q->ctx, r->principal.key_id}},
                          {&q_bundle_crs, 2, {t, q->ctx}},
                          {&q_bundle_passports, 2, {t, q->ctx}}};
    brk_req_db(r, ops, 3, on_context);
}

static const brk_route_t routes[] = {
    {"GET", "/governance/session/{context_id}/bundle",
     BRK_ROLE_AUDITOR | BRK_ROLE_ISSUER | BRK_ROLE_EXECUTOR | BRK_ROLE_APPROVER, 0, bundle},
};

int hnd_bundle_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_bundle_ac, &q_bundle_crs, &q_bundle_passports, &q_bundle_proofs};
    int rc;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((rc = brk_db_register(stmts[i])) != 0)
            return rc;
    return brk_router_add(routes, sizeof routes / sizeof routes[0]);
}
