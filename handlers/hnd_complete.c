/*
 * hnd_complete: POST /governance/complete/, accepting Completion Receipts.
 *
 * Everything that depends only on the request (validation, redaction, cr_cid,
 * chronicle_cid) happens here; everything that depends on the AC's state happens in one
 * statement, gsap_complete (latest: migrations/0007_receipt_evidence.sql), under the
 * context's row lock: the single-use check, identical-retry detection, flags, the time
 * check against the AC's stored issued_at and the database clock, the lineage link, the CR
 * row, the AC's new status and the GSAP_CR_RECEIVED outbox event commit together or not at
 * all. So 64 concurrent posts on one AC serialize on the lock and exactly one wins.
 *
 * Compatibility with newer clients: top-level members this broker does not know are kept in
 * the stored CR (so cr_cid covers them), bounded (HND_UNKNOWN_*), and listed back as
 * unrecognized_fields. Missing required members are still refused, exit_code included for
 * the outcomes that have one.
 *
 * Self-authorized receipts (gsh ran the command while the broker was unreachable): with
 * "self_authorized": true on a "self-..." context id the broker has never seen, the handler
 * builds the context document (unsigned: the broker did not issue it) and gsap_complete
 * creates the context in the same transaction as the CR.
 */
#include "hnd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_server.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define CR_METADATA_MAX_KEYS 32
#define CR_METADATA_VALUE_MAX 256
#define CR_METADATA_KEY_MAX 64
#define CR_SESSION_ID_MAX 128
#define CR_REDACTED "***"
/* How far back a self-authorized command may have started and still be taken at its word:
 * a spooled receipt posted later than this is flagged time_implausible and billed from this
 * far back at most. A week covers a client offline over a long weekend. */
#define CR_SELF_AUTH_WINDOW_S (7 * 86400)
#define CR_DEFAULT_ACCORD "default"

static brk_db_stmt_t q_complete = {
    "gov_complete",
    "SELECT code, cr_id, sequence, lineage_cid, prev_lineage_cid, ac_status, "
    "array_to_json(flags)::text, effective_outcome, cr_cid, chronicle_cid, ac_cid, outcome "
    "FROM gsap_complete($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14::boolean, $15::integer, $16::timestamptz, $17::timestamptz, $18, $19::integer, "
    "$20::jsonb, $21, $22, $23::integer)",
    0};

static int check_metadata(brk_req_t *r, json_t *md)
{
    const char *k;
    json_t *v;
    if (!json_is_object(md)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"metadata\" must be an object");
        return -1;
    }
    if (json_object_size(md) > CR_METADATA_MAX_KEYS) {
        brk_reply_error(r, BRK_EINVAL, "field_too_long", "\"metadata\" holds at most %d keys",
                        CR_METADATA_MAX_KEYS);
        return -1;
    }
    json_object_foreach(md, k, v)
    {
        if (strlen(k) > CR_METADATA_KEY_MAX ||
            !(json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v)) ||
            (json_is_string(v) && json_string_length(v) > CR_METADATA_VALUE_MAX)) {
            brk_reply_error(r, BRK_EINVAL, "invalid_field",
                            "\"metadata\" values must be scalars of at most %d bytes, keys at "
                            "most %d", CR_METADATA_VALUE_MAX, CR_METADATA_KEY_MAX);
            return -1;
        }
    }
    return 0;
}

/* The CR as stored: the request with the values of secret-looking metadata keys, and of
 * secret-looking unrecognized members, masked. */
static json_t *redacted_copy(json_t *body, const json_t *unknown)
{
    json_t *cr = json_deep_copy(body);
    json_t *md = json_object_get(cr, "metadata"), *n;
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(md, k, v) if (hnd_looks_secret(k))
        json_object_set_new(md, k, json_string(CR_REDACTED));
    json_array_foreach(unknown, i, n) if (hnd_looks_secret(json_string_value(n)))
        json_object_set_new(cr, json_string_value(n), json_string(CR_REDACTED));
    return cr;
}

/* What the response needs besides the database's answer, in request memory (no jansson
 * value outlives the handler, so a client that leaves cannot leak one). */
typedef struct complete_ctx {
    const char *context_id;
    const char *unknown; /* the unrecognized members' names, a JSON array */
} complete_ctx_t;

static void on_completed(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    const char *code = PQgetvalue(p, 0, 0);
    if (strcmp(code, "not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "context_not_found", "no such context");
        return;
    }
    if (strcmp(code, "consumed") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "ac_consumed", "this AC has already been used");
        return;
    }
    /* An AC that was never approved (pending, or pending until it expired) or was revoked
     * takes no CR: 409 with one code each, the same before and after expiry. The attempt
     * was recorded as a GSAP_CR_REFUSED event (migrations/0008_approvals.sql). */
    if (strcmp(code, "not_approved") == 0 || strcmp(code, "pending") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "ac_not_approved",
                        "this AC's elevation was never approved: it cannot be used");
        return;
    }
    if (strcmp(code, "revoked") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "ac_revoked", "this AC was revoked");
        return;
    }
    if (strcmp(code, "accord_not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "accord_not_found",
                        "no accord for this self-authorized receipt");
        return;
    }
    const complete_ctx_t *c = r->ctx;
    char url[512];
    snprintf(url, sizeof url, "%s/governance/session/%s/",
             brk_server_config(r->server)->public_url, c->context_id);
    json_t *flags = json_loads(PQgetvalue(p, 0, 6), 0, NULL);
    json_t *unknown = json_loads(c->unknown, 0, NULL);
    json_t *b = json_pack(
        "{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:o,s:s,s:o}", "receipt_id",
        PQgetvalue(p, 0, 1), "cr_id", PQgetvalue(p, 0, 1), "context_id", c->context_id,
        "sequence", (int)strtol(PQgetvalue(p, 0, 2), NULL, 10), "cr_cid", PQgetvalue(p, 0, 8),
        "chronicle_cid", PQgetvalue(p, 0, 9), "lineage_cid", PQgetvalue(p, 0, 3),
        "prev_lineage_cid", PQgetisnull(p, 0, 4) ? json_null() : json_string(PQgetvalue(p, 0, 4)),
        "ac_cid",
        PQgetvalue(p, 0, 10), "ac_status", PQgetvalue(p, 0, 5), "outcome", PQgetvalue(p, 0, 11),
        "effective_outcome", PQgetvalue(p, 0, 7), "flags", flags ? flags : json_array(),
        "session_url", url, "unrecognized_fields", unknown ? unknown : json_array());
    brk_reply_json(r, 200, b);
    json_decref(b);
}

/* The times must be times; whether they are plausible is the database's verdict (a CR that
 * completes before it starts is stored and flagged time_implausible, not refused: it is
 * evidence too). */
static int check_times(brk_req_t *r, const char *started, const char *completed)
{
    int64_t s, c;
    if (brk_time_parse_us(started, &s) != 0 || brk_time_parse_us(completed, &c) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_time",
                        "\"started_at\" and \"completed_at\" must be RFC 3339 times");
        return -1;
    }
    return 0;
}

/*
 * The document stored for a context a self-authorized receipt creates: the AC's shape as far
 * as the receipt tells it, "self_authorized": true, and "signature": null, since the broker
 * issued nothing. ac_cid is computed as for a signed AC (over the document without ac_cid
 * and signature), so the lineage hashes it the same way. New reference or NULL.
 */
static json_t *self_context_doc(brk_req_t *r, const char *ctx, const char *accord,
                                const char *command, const char *corpus, const char *params)
{
    char did[HND_DID_MAX + 1], url[512], cid[BRK_CID_LEN + 1];
    hnd_principal_did(r, did, sizeof did);
    snprintf(url, sizeof url, "%s/governance/session/%s/",
             brk_server_config(r->server)->public_url, ctx);
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:b,s:{s:s,s:s},s:{s:s},s:{s:s,s:s,s:s},s:{s:s,s:s,s:s},s:b,s:s,s:n,"
        "s:s,s:s,s:s}",
        "gsap_version", "1.0", "context_id", ctx, "status", "authorized", "self_authorized", 1,
        "principal", "did", did, "display_name", r->principal.name, "accord", "template", accord,
        "operation", "command_hash", command, "corpus_entry_cid", corpus, "parameters_cid",
        params, "identity_proof", "driver", "api-key", "key_id", r->principal.key_id, "tenant",
        r->principal.tenant, "session_mode", 0, "capability_set", "0x00000000",
        "environment_commitment", "billing_account", "default", "tenant", r->principal.tenant,
        "session_url", url);
    if (doc == NULL || brk_jcs_cid(doc, cid) != 0) {
        json_decref(doc);
        return NULL;
    }
    json_object_set_new(doc, "ac_cid", json_string(cid));
    json_object_set_new(doc, "signature", json_null());
    return doc;
}

static void complete(brk_req_t *r)
{
    static const char *const fields[] = {
        "context_id", "outcome", "exit_code", "started_at", "completed_at", "command_hash",
        "corpus_entry_cid", "parameters_cid", "stdout_hash", "stderr_hash", "output_bytes",
        "chronicle", "environment_commitment", "self_authorized", "metadata", "accord_template",
        NULL};
    static const char *const ch_fields[] = {"session_id", "behavior_state", "merkle_root", NULL};
    static const char *const outcomes[] = {"completed", "failed", "violated", "timed_out",
                                           "session_end", NULL};
    /* The outcomes of a command that ran to its end: they have an exit code. */
    static const int needs_exit_code[] = {1, 1, 0, 0, 0};
    static const char *const states[] = {"verified", "violated", "unavailable", NULL};
    json_t *b = r->body, *ch = json_object_get(b, "chronicle"), *cr = NULL, *unknown = NULL;
    json_t *self_doc = NULL;
    const char *ctx, *started, *completed, *command, *corpus, *params, *dummy, *env = NULL;
    const char *merkle = NULL, *accord = NULL;
    long long exit_code = 0, bytes = 0;
    int outcome, state, self_auth = 0;
    char cr_id[HND_ID_LEN + 1], cr_cid[BRK_CID_LEN + 1], ch_cid[BRK_CID_LEN + 1], ec[16];
    char skew[16], window[16];

    if ((unknown = hnd_collect_unknown(r, b, fields)) == NULL)
        return;
    if (hnd_req_string(r, b, "context_id", HND_CONTEXT_ID_MAX, &ctx) != 0 ||
        hnd_req_enum(r, b, "outcome", outcomes, &outcome) != 0 ||
        hnd_opt_int(r, b, "exit_code", INT32_MIN, INT32_MAX, &exit_code) != 0 ||
        hnd_req_string(r, b, "started_at", HND_TIME_STR_MAX, &started) != 0 ||
        hnd_req_string(r, b, "completed_at", HND_TIME_STR_MAX, &completed) != 0 ||
        hnd_req_cid(r, b, "command_hash", &command) != 0 ||
        hnd_req_cid(r, b, "corpus_entry_cid", &corpus) != 0 ||
        hnd_req_cid(r, b, "parameters_cid", &params) != 0 ||
        hnd_opt_cid(r, b, "stdout_hash", &dummy) != 0 ||
        hnd_opt_cid(r, b, "stderr_hash", &dummy) != 0 ||
        hnd_opt_int(r, b, "output_bytes", 0, HND_JSON_INT_MAX, &bytes) != 0 ||
        hnd_opt_cid(r, b, "environment_commitment", &env) != 0 ||
        hnd_opt_bool(r, b, "self_authorized", &self_auth) != 0 ||
        hnd_opt_string(r, b, "accord_template", HND_ACCORD_NAME_MAX, &accord) != 0)
        goto out;
    /* A missing exit code is not exit 0: a client that lost it must say so, not succeed. */
    if (needs_exit_code[outcome] && json_object_get(b, "exit_code") == NULL) {
        brk_reply_error(r, BRK_EINVAL, "missing_field",
                        "\"exit_code\" is required when \"outcome\" is \"%s\"",
                        outcomes[outcome]);
        goto out;
    }
    if (!json_is_object(ch)) {
        brk_reply_error(r, BRK_EINVAL, ch ? "invalid_field" : "missing_field",
                        "\"chronicle\" must be an object");
        goto out;
    }
    if (hnd_reject_unknown(r, ch, ch_fields) != 0 ||
        hnd_opt_string(r, ch, "session_id", CR_SESSION_ID_MAX, &dummy) != 0 ||
        hnd_req_enum(r, ch, "behavior_state", states, &state) != 0 ||
        hnd_opt_cid(r, ch, "merkle_root", &merkle) != 0)
        goto out;
    if (json_object_get(b, "metadata") && check_metadata(r, json_object_get(b, "metadata")) != 0)
        goto out;
    if (check_times(r, started, completed) != 0)
        goto out;
    /* A self-authorized receipt on a "self-" id may create its context (gsap_complete does,
     * when the id is new); on any other id the flag is only recorded. */
    if (self_auth && strncmp(ctx, HND_SELF_CONTEXT_PREFIX, strlen(HND_SELF_CONTEXT_PREFIX)) == 0) {
        if (!hnd_self_context_valid(ctx)) {
            brk_reply_error(r, BRK_EINVAL, "invalid_field",
                            "a self-authorized \"context_id\" is \"%s\" and 1 to %zu of "
                            "letters, digits, '.', '_' and '-'",
                            HND_SELF_CONTEXT_PREFIX,
                            HND_CONTEXT_ID_MAX - strlen(HND_SELF_CONTEXT_PREFIX));
            goto out;
        }
        if (accord == NULL)
            accord = CR_DEFAULT_ACCORD;
        if ((self_doc = self_context_doc(r, ctx, accord, command, corpus, params)) == NULL) {
            brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot build the self-authorized context");
            goto out;
        }
    }

    cr = redacted_copy(b, unknown);
    if (brk_jcs_cid(cr, cr_cid) != 0 || brk_jcs_cid(ch, ch_cid) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_json", "the receipt cannot be canonicalized");
        goto out;
    }
    hnd_new_id("cr_", cr_id);
    snprintf(ec, sizeof ec, "%lld", exit_code);
    snprintf(skew, sizeof skew, "%u", brk_server_config(r->server)->time_skew_s);
    snprintf(window, sizeof window, "%d", CR_SELF_AUTH_WINDOW_S);
    complete_ctx_t *c = brk_req_alloc(r, sizeof *c);
    size_t cl = strlen(ctx);
    char *ctx_copy = brk_req_alloc(r, cl + 1);
    memcpy(ctx_copy, ctx, cl + 1);
    c->context_id = ctx_copy;
    c->unknown = hnd_json_dump(r, unknown);
    r->ctx = c;
    brk_db_op_t op = {&q_complete, 23,
                      {r->principal.tenant, ctx, cr_id, hnd_json_dump(r, cr), cr_cid, ch_cid,
                       merkle, outcomes[outcome], states[state], command, corpus, params, env,
                       self_auth ? "true" : "false",
                       json_object_get(b, "exit_code") ? ec : NULL, started, completed,
                       r->principal.key_id, skew, self_doc ? hnd_json_dump(r, self_doc) : NULL,
                       self_doc ? json_string_value(json_object_get(self_doc, "ac_cid")) : NULL,
                       accord ? accord : CR_DEFAULT_ACCORD, window}};
    brk_req_db(r, &op, 1, on_completed);
out:
    json_decref(cr);
    json_decref(unknown);
    json_decref(self_doc);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/complete", BRK_ROLE_EXECUTOR, BRK_ROUTE_JSON, complete},
};

int hnd_complete_register(void)
{
    int rc = brk_db_register(&q_complete);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
