/*
 * hnd_complete: POST /governance/complete/, accepting Completion Receipts.
 *
 * Everything that depends only on the request (validation, redaction, cr_cid,
 * chronicle_cid) happens here; everything that depends on the AC's state happens in one
 * statement, gsap_complete (migrations/0002_protocol.sql), under the context's row lock: the
 * single-use check, identical-retry detection, flags, the lineage link, the CR row, the AC's
 * new status and the GSAP_CR_RECEIVED outbox event commit together or not at all. So 64
 * concurrent posts on one AC serialize on the lock and exactly one wins.
 */
#include "hnd.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
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

static brk_db_stmt_t q_complete = {
    "gov_complete",
    "SELECT code, cr_id, sequence, lineage_cid, prev_lineage_cid, ac_status, "
    "array_to_json(flags)::text, effective_outcome, cr_cid, chronicle_cid, ac_cid, outcome "
    "FROM gsap_complete($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14::boolean, $15::integer, $16::timestamptz, $17::timestamptz, $18)",
    0};

/* Metadata keys that look like they carry a secret are stored masked. */
static int looks_secret(const char *k)
{
    static const char *const words[] = {"token", "password", "passwd", "secret", "key",
                                        "authorization", "auth", "credential", "cookie",
                                        "private", "signature", NULL};
    for (int i = 0; words[i]; i++) {
        size_t wl = strlen(words[i]);
        for (const char *p = k; *p; p++)
            if (strncasecmp(p, words[i], wl) == 0)
                return 1;
    }
    return 0;
}

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

/* The CR as stored: the request with secret-looking metadata masked. */
static json_t *redacted_copy(json_t *body)
{
    json_t *cr = json_deep_copy(body);
    json_t *md = json_object_get(cr, "metadata");
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) if (looks_secret(k))
        json_object_set_new(md, k, json_string(CR_REDACTED));
    return cr;
}

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
    char url[512];
    snprintf(url, sizeof url, "%s/governance/session/%s/",
             brk_server_config(r->server)->public_url, (const char *)r->ctx);
    json_t *flags = json_loads(PQgetvalue(p, 0, 6), 0, NULL);
    json_t *b = json_pack(
        "{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:s,s:o,s:s}", "receipt_id",
        PQgetvalue(p, 0, 1), "cr_id", PQgetvalue(p, 0, 1), "context_id", (const char *)r->ctx,
        "sequence", (int)strtol(PQgetvalue(p, 0, 2), NULL, 10), "cr_cid", PQgetvalue(p, 0, 8),
        "chronicle_cid", PQgetvalue(p, 0, 9), "lineage_cid", PQgetvalue(p, 0, 3),
        "prev_lineage_cid", PQgetisnull(p, 0, 4) ? json_null() : json_string(PQgetvalue(p, 0, 4)),
        "ac_cid",
        PQgetvalue(p, 0, 10), "ac_status", PQgetvalue(p, 0, 5), "outcome", PQgetvalue(p, 0, 11),
        "effective_outcome", PQgetvalue(p, 0, 7), "flags", flags ? flags : json_array(),
        "session_url", url);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static int check_times(brk_req_t *r, const char *started, const char *completed)
{
    int64_t s, c;
    if (brk_time_parse_us(started, &s) != 0 || brk_time_parse_us(completed, &c) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_time",
                        "\"started_at\" and \"completed_at\" must be RFC 3339 times");
        return -1;
    }
    if (c < s) {
        brk_reply_error(r, BRK_ERANGE, "out_of_range", "\"completed_at\" precedes \"started_at\"");
        return -1;
    }
    return 0;
}

static void complete(brk_req_t *r)
{
    static const char *const fields[] = {
        "context_id", "outcome", "exit_code", "started_at", "completed_at", "command_hash",
        "corpus_entry_cid", "parameters_cid", "stdout_hash", "stderr_hash", "output_bytes",
        "chronicle", "environment_commitment", "self_authorized", "metadata", NULL};
    static const char *const ch_fields[] = {"session_id", "behavior_state", "merkle_root", NULL};
    static const char *const outcomes[] = {"completed", "failed", "violated", "timed_out",
                                           "session_end", NULL};
    static const char *const states[] = {"verified", "violated", "unavailable", NULL};
    json_t *b = r->body, *ch = json_object_get(b, "chronicle"), *cr = NULL;
    const char *ctx, *started, *completed, *command, *corpus, *params, *dummy, *env = NULL;
    const char *merkle = NULL;
    long long exit_code = 0, bytes = 0;
    int outcome, state, self_auth = 0;
    char cr_id[HND_ID_LEN + 1], cr_cid[BRK_CID_LEN + 1], ch_cid[BRK_CID_LEN + 1], ec[16];

    if (hnd_reject_unknown(r, b, fields) != 0 ||
        hnd_req_string(r, b, "context_id", HND_ID_LEN, &ctx) != 0 ||
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
        hnd_opt_bool(r, b, "self_authorized", &self_auth) != 0)
        return;
    if (!json_is_object(ch)) {
        brk_reply_error(r, BRK_EINVAL, ch ? "invalid_field" : "missing_field",
                        "\"chronicle\" must be an object");
        return;
    }
    if (hnd_reject_unknown(r, ch, ch_fields) != 0 ||
        hnd_opt_string(r, ch, "session_id", CR_SESSION_ID_MAX, &dummy) != 0 ||
        hnd_req_enum(r, ch, "behavior_state", states, &state) != 0 ||
        hnd_opt_cid(r, ch, "merkle_root", &merkle) != 0)
        return;
    if (json_object_get(b, "metadata") && check_metadata(r, json_object_get(b, "metadata")) != 0)
        return;
    if (check_times(r, started, completed) != 0)
        return;

    cr = redacted_copy(b);
    if (brk_jcs_cid(cr, cr_cid) != 0 || brk_jcs_cid(ch, ch_cid) != 0) {
        brk_reply_error(r, BRK_EINVAL, "invalid_json", "the receipt cannot be canonicalized");
        goto out;
    }
    hnd_new_id("cr_", cr_id);
    snprintf(ec, sizeof ec, "%lld", exit_code);
    char *ctx_copy = brk_req_alloc(r, strlen(ctx) + 1);
    memcpy(ctx_copy, ctx, strlen(ctx));
    r->ctx = ctx_copy;
    brk_db_op_t op = {&q_complete, 18,
                      {r->principal.tenant, ctx, cr_id, hnd_json_dump(r, cr), cr_cid, ch_cid,
                       merkle, outcomes[outcome], states[state], command, corpus, params, env,
                       self_auth ? "true" : "false", ec, started, completed,
                       r->principal.key_id}};
    brk_req_db(r, &op, 1, on_completed);
out:
    json_decref(cr);
}

static const brk_route_t routes[] = {
    {"POST", "/governance/complete", BRK_ROLE_EXECUTOR, BRK_ROUTE_JSON, complete},
};

int hnd_complete_register(void)
{
    int rc = brk_db_register(&q_complete);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
