/* gov_cr: Completion Receipt validation and redaction; see gov_cr.h. */
#include "gov_cr.h"

#include <stdint.h>
#include <string.h>

#include "brk_err.h"
#include "brk_time.h"
#include "gov_field.h"
#include "banned.h"

const char *const gov_outcome_names[] = {"completed", "failed", "violated", "timed_out",
                                         "session_end", NULL};
const char *const gov_behavior_names[] = {"verified", "violated", "unavailable", NULL};

static int check_metadata(const json_t *md, gov_err_t *e)
{
    const char *k;
    json_t *v;
    if (!json_is_object(md))
        return gov_fail(e, BRK_EINVAL, "invalid_field", "\"metadata\" must be an object");
    if (json_object_size(md) > GOV_CR_METADATA_MAX_KEYS)
        return gov_fail(e, BRK_EINVAL, "field_too_long", "\"metadata\" holds at most %d keys",
                        GOV_CR_METADATA_MAX_KEYS);
    json_object_foreach((json_t *)md, k, v)
    {
        if (strlen(k) > GOV_CR_METADATA_KEY_MAX ||
            !(json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v)) ||
            (json_is_string(v) && json_string_length(v) > GOV_CR_METADATA_VALUE_MAX))
            return gov_fail(e, BRK_EINVAL, "invalid_field",
                            "\"metadata\" values must be scalars of at most %d bytes, keys at "
                            "most %d",
                            GOV_CR_METADATA_VALUE_MAX, GOV_CR_METADATA_KEY_MAX);
    }
    return 0;
}

/* The times must be times; whether they are plausible is the database's verdict (a CR that
 * completes before it starts is stored and flagged time_implausible, not refused: it is
 * evidence too). */
static int check_times(const char *started, const char *completed, gov_err_t *e)
{
    int64_t s, c;
    if (brk_time_parse_us(started, &s) != 0 || brk_time_parse_us(completed, &c) != 0)
        return gov_fail(e, BRK_EINVAL, "invalid_time",
                        "\"started_at\" and \"completed_at\" must be RFC 3339 times");
    return 0;
}

json_t *gov_cr_redact(const json_t *body, const json_t *unknown)
{
    json_t *cr = json_deep_copy(body);
    json_t *md = json_object_get(cr, "metadata"), *n;
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach(md, k, v) if (gov_looks_secret(k))
        json_object_set_new(md, k, json_string(GOV_REDACTED));
    json_array_foreach(unknown, i, n) if (gov_looks_secret(json_string_value(n)))
        json_object_set_new(cr, json_string_value(n), json_string(GOV_REDACTED));
    return cr;
}

/* An agent's signature comes with the agent it claims (gov_passport.h); whether it verifies
 * is not a question of form: a bad one is stored and flagged, evidence like any other. */
static int check_agent(const json_t *b, gov_cr_t *cr, gov_err_t *e)
{
    int rc;
    if ((rc = gov_opt_string(b, "agent_did", GOV_AGENT_DID_MAX, &cr->agent_did, e)) ||
        (rc = gov_opt_string(b, "agent_signature", GOV_AGENT_SIG_MAX, &cr->agent_signature, e)))
        return rc;
    if ((cr->agent_did == NULL) != (cr->agent_signature == NULL))
        return gov_fail(e, BRK_EINVAL, "missing_field",
                        "\"agent_did\" and \"agent_signature\" come together");
    if (cr->agent_did && !gov_agent_did_valid(cr->agent_did))
        return gov_fail(e, BRK_EINVAL, "invalid_field",
                        "\"agent_did\" is a did:aps DID, \"%s\" + base58btc", GOV_AGENT_DID_PREFIX);
    return 0;
}

static int check_fields(const json_t *b, gov_cr_t *cr, gov_err_t *e)
{
    /* The outcomes of a command that ran to its end: they have an exit code. */
    static const int needs_exit_code[] = {1, 1, 0, 0, 0};
    static const char *const ch_fields[] = {"session_id", "behavior_state", "merkle_root", NULL};
    const char *dummy;
    json_t *ch;
    long long bytes = 0;
    int outcome = 0, state = 0, rc;

    if ((rc = gov_req_string(b, "context_id", GOV_CONTEXT_ID_MAX, &cr->context_id, e)) ||
        (rc = gov_req_enum(b, "outcome", gov_outcome_names, &outcome, e)) ||
        (rc = gov_opt_int(b, "exit_code", INT32_MIN, INT32_MAX, &cr->exit_code, e)) ||
        (rc = gov_req_string(b, "started_at", GOV_TIME_STR_MAX, &cr->started_at, e)) ||
        (rc = gov_req_string(b, "completed_at", GOV_TIME_STR_MAX, &cr->completed_at, e)) ||
        (rc = gov_req_cid(b, "command_hash", &cr->command_hash, e)) ||
        (rc = gov_req_cid(b, "corpus_entry_cid", &cr->corpus_entry_cid, e)) ||
        (rc = gov_req_cid(b, "parameters_cid", &cr->parameters_cid, e)) ||
        (rc = gov_opt_cid(b, "stdout_hash", &dummy, e)) ||
        (rc = gov_opt_cid(b, "stderr_hash", &dummy, e)) ||
        (rc = gov_opt_int(b, "output_bytes", 0, GOV_JSON_INT_MAX, &bytes, e)) ||
        (rc = gov_opt_cid(b, "environment_commitment", &cr->environment_commitment, e)) ||
        (rc = gov_opt_bool(b, "self_authorized", &cr->self_authorized, e)) ||
        (rc = gov_opt_string(b, "accord_template", GOV_ACCORD_NAME_MAX, &cr->accord_template,
                             e)))
        return rc;
    cr->outcome = (enum gov_outcome)outcome;
    cr->has_exit_code = json_object_get(b, "exit_code") != NULL;
    /* A missing exit code is not exit 0: a client that lost it must say so, not succeed. */
    if (needs_exit_code[outcome] && !cr->has_exit_code)
        return gov_fail(e, BRK_EINVAL, "missing_field",
                        "\"exit_code\" is required when \"outcome\" is \"%s\"",
                        gov_outcome_names[outcome]);
    if ((rc = gov_req_object(b, "chronicle", &ch, e)) || (rc = gov_reject_unknown(ch, ch_fields, e)) ||
        (rc = gov_opt_string(ch, "session_id", GOV_CR_SESSION_ID_MAX, &dummy, e)) ||
        (rc = gov_req_enum(ch, "behavior_state", gov_behavior_names, &state, e)) ||
        (rc = gov_opt_cid(ch, "merkle_root", &cr->merkle_root, e)))
        return rc;
    cr->behavior = (enum gov_behavior)state;
    if (json_object_get(b, "metadata") && (rc = check_metadata(json_object_get(b, "metadata"), e)))
        return rc;
    if ((rc = check_times(cr->started_at, cr->completed_at, e)))
        return rc;
    /* A self-authorized receipt on a "self-" id may create its context (gsap_complete does,
     * when the id is new); on any other id the flag is only recorded. */
    cr->creates_context =
        cr->self_authorized && strncmp(cr->context_id, GOV_SELF_CONTEXT_PREFIX,
                                       strlen(GOV_SELF_CONTEXT_PREFIX)) == 0;
    if (cr->creates_context && !gov_self_context_valid(cr->context_id))
        return gov_fail(e, BRK_EINVAL, "invalid_field",
                        "a self-authorized \"context_id\" is \"%s\" and 1 to %zu of "
                        "letters, digits, '.', '_' and '-'",
                        GOV_SELF_CONTEXT_PREFIX,
                        GOV_CONTEXT_ID_MAX - strlen(GOV_SELF_CONTEXT_PREFIX));
    if ((rc = check_agent(b, cr, e)) != 0)
        return rc;
    if (cr->creates_context && cr->accord_template == NULL)
        cr->accord_template = GOV_DEFAULT_ACCORD;
    return 0;
}

int gov_cr_check(const json_t *body, gov_cr_t *cr, gov_err_t *e)
{
    static const char *const fields[] = {
        "context_id", "outcome", "exit_code", "started_at", "completed_at", "command_hash",
        "corpus_entry_cid", "parameters_cid", "stdout_hash", "stderr_hash", "output_bytes",
        "chronicle", "environment_commitment", "self_authorized", "metadata", "accord_template",
        "agent_did", "agent_signature", NULL};
    int rc;

    memset(cr, 0, sizeof *cr);
    if ((rc = gov_collect_unknown(body, fields, &cr->unknown, e)) != 0 ||
        (rc = check_fields(body, cr, e)) != 0)
        goto fail;
    cr->stored = gov_cr_redact(body, cr->unknown);
    if (brk_jcs_cid(cr->stored, cr->cr_cid) != 0 ||
        brk_jcs_cid(json_object_get(body, "chronicle"), cr->chronicle_cid) != 0) {
        rc = gov_fail(e, BRK_EINVAL, "invalid_json", "the receipt cannot be canonicalized");
        goto fail;
    }
    return 0;
fail:
    gov_cr_clear(cr);
    return rc;
}

void gov_cr_clear(gov_cr_t *cr)
{
    json_decref(cr->unknown);
    json_decref(cr->stored);
    cr->unknown = cr->stored = NULL;
}
