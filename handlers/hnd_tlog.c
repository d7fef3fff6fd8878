/*
 * hnd_tlog: the tenant's transparency log (roles auditor and finance; docs/protocol.md
 * "Transparency log"):
 *
 *   GET /governance/log/checkpoint            the latest signed checkpoint: a C2SP
 *                                             tlog-checkpoint note (text/plain), or JSON on
 *                                             Accept: application/json
 *   GET /governance/log/proof?cid=&size=      inclusion proof of a lineage CID (RFC 9162
 *                                             2.1.3) against the latest checkpoint, or the
 *                                             tree of size `size`
 *   GET /governance/log/consistency?from=&to= consistency proof (RFC 9162 2.1.4)
 *
 * Checkpoints are made lazily: a request finds the latest one and, when the log has grown
 * and that one is at least GSAP_TLOG_CHECKPOINT_S old (or there is none), signs a note for
 * the current head (its root is stored with the last entry) and stores it, one per size
 * (a concurrent request that stored the same size first wins; both answer the stored one).
 * Finalizing an invoice stores one too (bill_invoice.h), covering the invoice's lines.
 *
 * Proofs are computed by brk_merkle over the leaf hashes of the tree, read in one statement:
 * O(size) hashes and 32 bytes per leaf, so a tree is served up to HND_TLOG_PROOF_MAX_LEAVES
 * leaves (413 log_too_large beyond; storing interior nodes would lift this).
 * Hashes are standard padded base64 (RFC 4648 §4), as in the checkpoint note.
 */
#include "hnd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_http.h"
#include "brk_jcs.h"
#include "brk_merkle.h"
#include "brk_note.h"
#include "brk_server.h"
#include "hnd_tlog.h"
#include "banned.h"

#define TLOG_SIZE_PARAM_MAX 20           /* decimal digits of a size parameter */
#define TLOG_B64_HASH (4 * ((BRK_MERKLE_HASH_LEN + 2) / 3) + 1)

/* q_state's columns, by name (its SELECT order). */
enum state_col { ST_SIZE, ST_ROOT, ST_CP_SIZE, ST_CP_ROOT, ST_CP_NOTE, ST_CP_AGE };
enum proof_col { PR_IDX, PR_ROOT, PR_LEAVES };

/* clang-format off */
static brk_db_stmt_t q_state = {
    "tlog_state",
    "SELECT coalesce(h.size, 0), encode(e.root_hash, 'hex'), c.size, encode(c.root_hash, 'hex'), "
    "  c.note, extract(epoch FROM now() - c.created_at)::bigint "
    "FROM (SELECT $1::text AS t) x "
    "LEFT JOIN tlog_heads h ON h.tenant_id = x.t "
    "LEFT JOIN tlog_entries e ON e.tenant_id = x.t AND e.idx = h.size - 1 "
    "LEFT JOIN LATERAL (SELECT size, root_hash, note, created_at FROM tlog_checkpoints "
    "  WHERE tenant_id = x.t ORDER BY size DESC LIMIT 1) c ON true",
    0};
static brk_db_stmt_t q_cp_put = {
    "tlog_checkpoint_put",
    "WITH ins AS (INSERT INTO tlog_checkpoints (tenant_id, size, root_hash, note) "
    "  VALUES ($1, $2::bigint, decode($3, 'hex'), $4) ON CONFLICT DO NOTHING RETURNING note) "
    "SELECT note FROM ins UNION ALL "
    "SELECT note FROM tlog_checkpoints WHERE tenant_id = $1 AND size = $2::bigint LIMIT 1",
    0};
/* $1 tenant, $2 lineage CID (or NULL), $3 tree size. */
static brk_db_stmt_t q_proof = {
    "tlog_proof",
    "SELECT (SELECT min(idx) FROM tlog_entries WHERE tenant_id = $1 AND lineage_cid = $2), "
    "  (SELECT encode(root_hash, 'hex') FROM tlog_entries WHERE tenant_id = $1 "
    "     AND idx = $3::bigint - 1), "
    "  (SELECT string_agg(encode(leaf_hash, 'hex'), '' ORDER BY idx) FROM tlog_entries "
    "     WHERE tenant_id = $1 AND idx < $3::bigint)",
    0};
/* $1 tenant, $2 size: the root of that size (NULL beyond the log). */
static brk_db_stmt_t q_root = {
    "tlog_root",
    "SELECT encode(root_hash, 'hex') FROM tlog_entries WHERE tenant_id = $1 "
    "AND idx = $2::bigint - 1",
    0};
/* clang-format on */

/* The request state is hnd_tlog_req_t (hnd_tlog.h): the audit bundle reuses the checkpoint
 * step with its own state, which starts with one. */
typedef hnd_tlog_req_t tlog_req_t;

/* A copy of s in request memory. */
static const char *req_strdup(brk_req_t *r, const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(brk_req_alloc(r, n), s, n);
}

static void b64(const brk_mhash_t h, char out[TLOG_B64_HASH])
{
    brk_b64_std(h, BRK_MERKLE_HASH_LEN, out);
}

static json_t *hashes_json(const brk_mhash_t *p, size_t n)
{
    json_t *a = json_array();
    char s[TLOG_B64_HASH];
    for (size_t i = 0; i < n; i++) {
        b64(p[i], s);
        json_array_append_new(a, json_string(s));
    }
    return a;
}

/* The key name and origin of this tenant's log; 500 when the broker id cannot be one. */
int hnd_tlog_names(brk_req_t *r, tlog_req_t *x)
{
    const brk_config_t *cfg = brk_server_config(r->server);
    if (brk_note_key_name(cfg->broker_id, x->key_name) != 0 ||
        snprintf(x->origin, sizeof x->origin, "%s/%s", x->key_name, r->principal.tenant) >=
            (int)sizeof x->origin) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the broker id cannot name a log");
        return -1;
    }
    return 0;
}

/* A decimal size parameter in [1, max]: 1 when given (into *out), 0 when absent, -1 when
 * answered with 400. */
static int size_param(brk_req_t *r, const char *name, unsigned long long max,
                      unsigned long long *out)
{
    char v[TLOG_SIZE_PARAM_MAX + 2], *end;
    size_t len;
    int rc = brk_req_query(r, name, v, sizeof v, &len);
    if (rc == BRK_ENOTFOUND)
        return 0;
    errno = 0;
    unsigned long long n = rc == 0 && len > 0 && v[0] >= '0' && v[0] <= '9'
                               ? strtoull(v, &end, 10) : 0;
    if (rc != 0 || len == 0 || v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n == 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query", "%s is a tree size: a positive integer",
                        name);
        return -1;
    }
    if (n > max) {
        brk_reply_error(r, BRK_ETOOBIG, "log_too_large",
                        "%s is over %llu: proofs are served for trees up to %u entries", name,
                        max, HND_TLOG_PROOF_MAX_LEAVES);
        return -1;
    }
    *out = n;
    return 1;
}

static int unhex_hash(const char *s, brk_mhash_t out)
{
    return brk_unhex(s, strlen(s), out, BRK_MERKLE_HASH_LEN);
}

/* ---- the latest checkpoint, made when due ---- */

static void on_cp_put(brk_req_t *r, const brk_db_result_t *res)
{
    tlog_req_t *x = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    x->cp_note = req_strdup(r, PQgetvalue(res->res[0], 0, 0));
    x->then(r);
}

static void on_state(brk_req_t *r, const brk_db_result_t *res)
{
    tlog_req_t *x = r->ctx;
    char note[BRK_NOTE_MAX], size_s[24], root_hex[2 * BRK_MERKLE_HASH_LEN + 1];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    unsigned long long head = strtoull(PQgetvalue(p, 0, ST_SIZE), NULL, 10);
    if (head == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "log_empty",
                        "the log of this tenant has no entry yet: there is no checkpoint");
        return;
    }
    int have = !PQgetisnull(p, 0, ST_CP_SIZE);
    unsigned long long cp = have ? strtoull(PQgetvalue(p, 0, ST_CP_SIZE), NULL, 10) : 0;
    long long age = have ? strtoll(PQgetvalue(p, 0, ST_CP_AGE), NULL, 10) : 0;
    unsigned every = brk_server_config(r->server)->tlog_checkpoint_s;
    if (have && (cp >= head || age < (long long)every)) {
        x->cp_size = cp;
        x->cp_note = req_strdup(r, PQgetvalue(p, 0, ST_CP_NOTE));
        if (unhex_hash(PQgetvalue(p, 0, ST_CP_ROOT), x->cp_root) != 0) {
            brk_reply_error(r, BRK_EINTERNAL, NULL, "a stored checkpoint root is malformed");
            return;
        }
        x->then(r);
        return;
    }
    x->cp_size = head;
    if (PQgetisnull(p, 0, ST_ROOT) || unhex_hash(PQgetvalue(p, 0, ST_ROOT), x->cp_root) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the log head has no stored root");
        return;
    }
    if (brk_note_checkpoint(brk_server_keys(r->server), x->key_name, x->origin, head, x->cp_root,
                            note) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the checkpoint could not be signed");
        return;
    }
    snprintf(size_s, sizeof size_s, "%llu", head);
    brk_hex(x->cp_root, BRK_MERKLE_HASH_LEN, root_hex);
    brk_db_op_t op = {&q_cp_put, 4, {r->principal.tenant, size_s, root_hex, note}};
    brk_req_db(r, &op, 1, on_cp_put);
}

void hnd_tlog_latest(brk_req_t *r, tlog_req_t *x, void (*then)(brk_req_t *r))
{
    x->then = then;
    brk_db_op_t op = {&q_state, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_state);
}

/* ---- GET /governance/log/checkpoint ---- */

static int wants_json(brk_req_t *r)
{
    h2o_iovec_t a = brk_req_header(r, "accept");
    return a.base != NULL && h2o_strstr(a.base, a.len, H2O_STRLIT("application/json")) != SIZE_MAX;
}

/* The verifier key of the ring's key that signed note (its key hash on the last line), or
 * of the current key when none matches. */
static void verifier_key_of(brk_req_t *r, const tlog_req_t *x, char out[BRK_NOTE_VKEY_MAX])
{
    const brk_keyring_t *kr = brk_server_keys(r->server);
    const char *last = strstr(x->cp_note, "\n\xe2\x80\x94 ");
    uint8_t sig[4 + BRK_ED25519_SIG_LEN + 8];
    uint32_t kh = 0;
    size_t best = 0;
    if (last != NULL && (last = strrchr(last + 5, ' ')) != NULL) {
        const char *b = last + 1;
        int n = brk_b64_decode_lenient(b, strcspn(b, "\n"), sig, sizeof sig);
        if (n >= 4)
            kh = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
    }
    for (size_t i = 0; i < brk_keyring_count(kr); i++)
        if (brk_note_key_hash(x->key_name, brk_keyring_public(kr, i)) == kh)
            best = i;
    brk_note_verifier_key(x->key_name, brk_keyring_public(kr, best), out);
}

static void checkpoint_reply(brk_req_t *r)
{
    tlog_req_t *x = r->ctx;
    char root[TLOG_B64_HASH], vkey[BRK_NOTE_VKEY_MAX];
    if (!wants_json(r)) {
        brk_reply_raw(r, 200, "text/plain; charset=utf-8", x->cp_note, strlen(x->cp_note));
        return;
    }
    b64(x->cp_root, root);
    verifier_key_of(r, x, vkey);
    json_t *b = json_pack("{s:s,s:I,s:s,s:s,s:s,s:s}", "origin", x->origin, "size",
                          (json_int_t)x->cp_size, "root_hash", root, "note", x->cp_note,
                          "key_name", x->key_name, "verifier_key", vkey);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void get_checkpoint(brk_req_t *r)
{
    tlog_req_t *x = r->ctx = brk_req_alloc(r, sizeof *x);
    if (hnd_tlog_names(r, x) != 0)
        return;
    hnd_tlog_latest(r, x, checkpoint_reply);
}

/* ---- GET /governance/log/proof ---- */

/* The leaf hashes column (hex, concatenated) into a heap array of want hashes. */
brk_mhash_t *hnd_tlog_leaves_of(const char *hex, unsigned long long want)
{
    if (strlen(hex) != want * 2 * BRK_MERKLE_HASH_LEN)
        return NULL;
    brk_mhash_t *l = malloc(want ? want * sizeof *l : 1);
    for (unsigned long long i = 0; l != NULL && i < want; i++)
        if (brk_unhex(hex + i * 2 * BRK_MERKLE_HASH_LEN, 2 * BRK_MERKLE_HASH_LEN, l[i],
                      BRK_MERKLE_HASH_LEN) != 0) {
            free(l);
            return NULL;
        }
    return l;
}

static void on_proof(brk_req_t *r, const brk_db_result_t *res)
{
    tlog_req_t *x = r->ctx;
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF], root;
    size_t plen = 0;
    char root64[TLOG_B64_HASH];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    if (PQgetisnull(p, 0, PR_ROOT)) {
        brk_reply_error(r, BRK_ENOTFOUND, "size_not_in_log",
                        "the log of this tenant has fewer than %llu entries", x->size);
        return;
    }
    if (PQgetisnull(p, 0, PR_IDX)) {
        brk_reply_error(r, BRK_ENOTFOUND, "cid_not_in_log",
                        "lineage CID %s is not in the log of this tenant", x->cid);
        return;
    }
    unsigned long long idx = strtoull(PQgetvalue(p, 0, PR_IDX), NULL, 10);
    if (idx >= x->size) {
        brk_reply_error(r, BRK_ENOTFOUND, "cid_not_in_checkpoint",
                        "lineage CID %s is entry %llu, past the tree of size %llu: ask again "
                        "after the next checkpoint",
                        x->cid, idx, x->size);
        return;
    }
    brk_mhash_t *leaves = hnd_tlog_leaves_of(PQgetvalue(p, 0, PR_LEAVES), x->size);
    if (leaves == NULL || unhex_hash(PQgetvalue(p, 0, PR_ROOT), root) != 0 ||
        brk_merkle_inclusion_proof((const brk_mhash_t *)leaves, x->size, idx, proof, &plen) != 0) {
        free(leaves);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored log cannot prove entry %llu", idx);
        return;
    }
    free(leaves);
    b64(root, root64);
    json_t *b = json_pack("{s:s,s:I,s:I,s:s,s:o}", "lineage_cid", x->cid, "leaf_index",
                          (json_int_t)idx, "tree_size", (json_int_t)x->size, "root_hash", root64,
                          "hashes", hashes_json((const brk_mhash_t *)proof, plen));
    if (x->cp_note != NULL)
        json_object_set_new(b, "checkpoint", json_string(x->cp_note));
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void proof_at(brk_req_t *r)
{
    tlog_req_t *x = r->ctx;
    char size_s[24];
    if (x->size == 0)
        x->size = x->cp_size;
    if (x->size > HND_TLOG_PROOF_MAX_LEAVES) {
        brk_reply_error(r, BRK_ETOOBIG, "log_too_large",
                        "proofs are served for trees up to %u entries", HND_TLOG_PROOF_MAX_LEAVES);
        return;
    }
    snprintf(size_s, sizeof size_s, "%llu", x->size);
    brk_db_op_t op = {&q_proof, 3, {r->principal.tenant, x->cid, size_s}};
    brk_req_db(r, &op, 1, on_proof);
}

static void get_proof(brk_req_t *r)
{
    tlog_req_t *x = r->ctx = brk_req_alloc(r, sizeof *x);
    size_t len;
    int rc = brk_req_query(r, "cid", x->cid, sizeof x->cid, &len);
    if (rc != 0 || !brk_cid_valid(x->cid)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query",
                        "cid is a lineage CID: \"sha256:\" and 64 lowercase hex digits");
        return;
    }
    if (size_param(r, "size", HND_TLOG_PROOF_MAX_LEAVES, &x->size) < 0 || hnd_tlog_names(r, x) != 0)
        return;
    if (x->size != 0)
        proof_at(r);
    else
        hnd_tlog_latest(r, x, proof_at);
}

/* ---- GET /governance/log/consistency ---- */

static void on_consistency(brk_req_t *r, const brk_db_result_t *res)
{
    tlog_req_t *x = r->ctx;
    brk_mhash_t proof[BRK_MERKLE_MAX_PROOF], r1, r2;
    size_t plen = 0;
    char s1[TLOG_B64_HASH], s2[TLOG_B64_HASH];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *from = res->res[0], *to = res->res[1];
    if (PQntuples(from) != 1 || PQntuples(to) != 1 || PQgetisnull(to, 0, PR_ROOT)) {
        brk_reply_error(r, BRK_ENOTFOUND, "size_not_in_log",
                        "the log of this tenant has fewer than %llu entries", x->to);
        return;
    }
    brk_mhash_t *leaves = hnd_tlog_leaves_of(PQgetvalue(to, 0, PR_LEAVES), x->to);
    if (leaves == NULL || unhex_hash(PQgetvalue(from, 0, 0), r1) != 0 ||
        unhex_hash(PQgetvalue(to, 0, PR_ROOT), r2) != 0 ||
        brk_merkle_consistency_proof((const brk_mhash_t *)leaves, x->to, x->from, proof, &plen) !=
            0) {
        free(leaves);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the stored log cannot prove consistency");
        return;
    }
    free(leaves);
    b64(r1, s1);
    b64(r2, s2);
    json_t *b = json_pack("{s:I,s:I,s:s,s:s,s:o}", "from", (json_int_t)x->from, "to",
                          (json_int_t)x->to, "from_root_hash", s1, "to_root_hash", s2, "hashes",
                          hashes_json((const brk_mhash_t *)proof, plen));
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void get_consistency(brk_req_t *r)
{
    tlog_req_t *x = r->ctx = brk_req_alloc(r, sizeof *x);
    char f[24], t[24];
    int hf = size_param(r, "from", HND_TLOG_PROOF_MAX_LEAVES, &x->from);
    if (hf < 0)
        return;
    int ht = size_param(r, "to", HND_TLOG_PROOF_MAX_LEAVES, &x->to);
    if (ht < 0)
        return;
    if (hf == 0 || ht == 0 || x->from > x->to) {
        brk_reply_error(r, BRK_EINVAL, "invalid_query",
                        "from and to are tree sizes with 1 <= from <= to");
        return;
    }
    snprintf(f, sizeof f, "%llu", x->from);
    snprintf(t, sizeof t, "%llu", x->to);
    brk_db_op_t ops[2] = {{&q_root, 2, {r->principal.tenant, f}},
                          {&q_proof, 3, {r->principal.tenant, NULL, t}}};
    brk_req_db(r, ops, 2, on_consistency);
}

static const brk_route_t routes[] = {
    {"GET", "/governance/log/checkpoint", BRK_ROLE_AUDITOR | BRK_ROLE_FINANCE, 0, get_checkpoint},
    {"GET", "/governance/log/proof", BRK_ROLE_AUDITOR | BRK_ROLE_FINANCE, 0, get_proof},
    {"GET", "/governance/log/consistency", BRK_ROLE_AUDITOR | BRK_ROLE_FINANCE, 0,
     get_consistency},
};

int hnd_tlog_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_state, &q_cp_put, &q_proof, &q_root};
    int rc;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((rc = brk_db_register(stmts[i])) != 0)
            return rc;
    return brk_router_add(routes, sizeof routes / sizeof routes[0]);
}
