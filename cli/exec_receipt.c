/*
 * exec_receipt: the Completion Receipt of a `gsap-broker exec` run.
 *
 * Owns building the CR (from the run, the configuration and, unless self-authorized, the AC),
 * posting it (POST /governance/complete/, retried on connection errors and 5xx: the body is
 * the same on every try, and the broker answers an identical retry with the same receipt),
 * judging the broker's receipt (a "violated" one is exit 3), and the self-authorized fallback:
 * when GSAP_SELF_AUTH=1 and the broker cannot be reached, the command runs as
 * "self-<uuid>" and its CR ("self_authorized": true) is spooled (exec_spool.h), as is a CR
 * whose broker went away while the command ran; `--flush-spool` posts the spool.
 *
 * Invariant: the spool is checked (owner, mode, room) before a self-authorized command runs,
 * so a run whose receipt could not be kept does not happen; nothing of an unverified AC goes
 * into a self-authorized receipt.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

#include "brk_config.h" /* brk_env */
#include "brk_crypto.h"
#include "brk_err.h"
#include "exec.h"
#include "exec_http.h"
#include "exec_int.h"
#include "exec_spool.h"
#include "gov.h" /* GOV_SELF_CONTEXT_PREFIX */
#include "banned.h"

/* ---- the completion receipt ---------------------------------------------------------------- */

/* The CR of the run. A self-authorized run has no AC to repeat values from: its context is
 * st->self_id, its corpus GSAP_CORPUS_CID (required), its parameters GSAP_PARAMETERS_CID or
 * the CID of {} as in an authorize request. */
static json_t *completion_request(const exec_cfg_t *cfg, const exec_run_t *st)
{
    int self = st->self_id[0] != '\0';
    const char *ctx = self ? st->self_id : cli_exec__jstr(st->ac, "context_id");
    const char *corpus = cfg->corpus_cid ? cfg->corpus_cid
                                         : cli_exec__jstr2(st->ac, "operation", "corpus_entry_cid");
    const char *params = cfg->params_cid ? cfg->params_cid
                         : self          ? cfg->params_default
                                         : cli_exec__jstr2(st->ac, "operation", "parameters_cid");
    /* Without a Chronicle recorder there is no session id to report: the member is left out
     * (the broker takes it as optional), and merkle_root is null. */
    json_t *chronicle =
        json_pack("{s:s*,s:s,s:s?}", "session_id", cfg->chronicle_session, "behavior_state",
                  cfg->behavior_state, "merkle_root", cfg->merkle_root);

    return json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s?,s:s?,s:s,s:s,s:I,s:o,s:b}", "context_id", ctx,
                     "outcome", st->cmd_exit == 0 ? "completed" : "failed", "exit_code",
                     st->cmd_exit, "started_at", st->started_at, "completed_at", st->completed_at,
                     "command_hash", cfg->command_hash, "corpus_entry_cid", corpus,
                     "parameters_cid", params, "stdout_hash", st->stdout_hash, "stderr_hash",
                     st->stderr_hash, "output_bytes", (json_int_t)st->output_bytes, "chronicle",
                     chronicle, "self_authorized", self);
}

/* The broker's judgement of an accepted CR: a violated receipt is a governance violation. */
static int judge_receipt(exec_run_t *st)
{
    const char *eff = cli_exec__jstr(st->receipt, "effective_outcome");
    if (eff && strcmp(eff, "violated") == 0) {
        char *flags = json_dumps(json_object_get(st->receipt, "flags"), JSON_COMPACT);
        int code =
            cli_exec__fail(st, CLI_EXEC_VIOLATION, "the broker judged the run violated (flags %s)",
                           flags ? flags : "?");
        free(flags);
        return code;
    }
    return CLI_EXEC_OK;
}

/* Writes the CR body to the spool (st->spooled gets the file name). CLI_EXEC_OK or 125. */
static int spool_receipt(const exec_cfg_t *cfg, exec_run_t *st, const char *body)
{
    char err[EXEC_ERR_MAX / 2];
    int dirfd = -1, code = CLI_EXEC_OK;

    if (cli_spool_open(cfg->spool_dir, 1, &dirfd, err, sizeof err) != 0 ||
        cli_spool_write(dirfd, body, st->spooled, err, sizeof err) != 0)
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "the command ran, but its receipt cannot be spooled: %s", err);
    else
        fprintf(stderr, "gsap-broker exec: receipt spooled as %s/%s\n", cfg->spool_dir,
                st->spooled);
    if (dirfd >= 0)
        close(dirfd);
    return code;
}

int cli_exec__complete(const exec_cfg_t *cfg, exec_run_t *st)
{
    json_t *req = completion_request(cfg, st);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    cli_http_resp_t r = {0};
    int rc, code;

    if (body == NULL) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "cannot build the completion request");
        goto out;
    }
    /* One body for every try: the broker recognises an identical retry of an accepted CR. */
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_POST, "/governance/complete/", body, NULL, &r);
    if (rc != 0) {
        code = cli_exec__transfer_failed(cfg, st, rc, "post the completion receipt");
        /* The broker went away while the command ran: under GSAP_SELF_AUTH the receipt is
         * kept for --flush-spool rather than lost (it names the broker's own context). */
        if (code == CLI_EXEC_UNREACHABLE && cfg->self_auth) {
            fprintf(stderr, "gsap-broker exec: %s\n", st->error);
            st->error[0] = '\0';
            code = spool_receipt(cfg, st, body);
        }
    } else if (r.status == 200 && r.json != NULL) {
        st->receipt = json_incref(r.json);
        code = judge_receipt(st);
    } else if (r.status == 409) {
        char e[EXEC_ERR_MAX / 2];
        cli_exec__broker_error(&r, e, sizeof e);
        code = cli_exec__fail(st, CLI_EXEC_AUTH,
                              "the broker refused the receipt (replayed or consumed AC): %s", e);
    } else {
        code = cli_exec__unexpected_status(st, &r, "post the completion receipt");
    }
out:
    cli_http_resp_clear(&r);
    free(body);
    if (req)
        json_decref(req);
    return code;
}

/* ---- the self-authorized fallback ---------------------------------------------------------- */

/* A random (version 4) UUID after GOV_SELF_CONTEXT_PREFIX: the context id of a self-authorized run.
 */
static int self_context_id(char out[EXEC_SELF_ID_MAX])
{
    uint8_t u[16];
    char h[33];
    if (brk_random(u, sizeof u) != 0)
        return BRK_ECRYPTO;
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    brk_hex(u, sizeof u, h);
    snprintf(out, EXEC_SELF_ID_MAX, "%s%.8s-%.4s-%.4s-%.4s-%.12s", GOV_SELF_CONTEXT_PREFIX, h,
             h + 8, h + 12, h + 16, h + 20);
    return 0;
}

/* gsh's fallback; the spool is checked before the command runs (see the top). */
int cli_exec__self_authorized(const exec_cfg_t *cfg, exec_run_t *st,
                              const struct sigaction *old_pipe)
{
    char err[EXEC_ERR_MAX / 2];
    json_t *req = NULL;
    char *body = NULL;
    int dirfd = -1, n, code;

    if (cli_spool_open(cfg->spool_dir, 1, &dirfd, err, sizeof err) != 0) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR: %s", err);
        goto out;
    }
    if ((n = cli_spool_count(dirfd)) < 0 || n >= CLI_SPOOL_MAX_FILES) {
        /* cli_exec__fail() rewrites st->error: not an argument of its own */
        char why[EXEC_ERR_MAX / 2];
        snprintf(why, sizeof why, "%.*s", (int)sizeof why - 1, st->error);
        code = cli_exec__fail(st, CLI_EXEC_UNREACHABLE,
                              "%s; not running self-authorized: the spool %s (flush it with "
                              "`gsap-broker exec --flush-spool`)",
                              why, n < 0 ? "cannot be listed" : "is full");
        goto out;
    }
    if (self_context_id(st->self_id) != 0) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "cannot make a context id");
        goto out;
    }
    fprintf(stderr, "gsap-broker exec: %s; running self-authorized as %s (GSAP_SELF_AUTH=1)\n",
            st->error, st->self_id);
    st->error[0] = '\0';
    if (st->ac) { /* unverified: nothing of it goes into the receipt */
        json_decref(st->ac);
        st->ac = NULL;
    }
    if ((code = cli_exec__run_command(cfg, st, old_pipe)) != CLI_EXEC_OK)
        goto out;
    req = completion_request(cfg, st);
    if ((body = req ? json_dumps(req, JSON_COMPACT) : NULL) == NULL) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "the command ran, but its receipt cannot be built");
        goto out;
    }
    if ((code = spool_receipt(cfg, st, body)) != CLI_EXEC_OK)
        goto out;
    code = st->cmd_exit == 0 ? CLI_EXEC_OK
                             : cli_exec__fail(st, CLI_EXEC_FAILED,
                                              "the command exited with status %d", st->cmd_exit);
out:
    if (dirfd >= 0)
        close(dirfd);
    if (req)
        json_decref(req);
    free(body);
    return code;
}

int cli_exec__flush_spool(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    cli_spool_report_t rep = {0};
    int dirfd = -1, code;

    if ((code = cli_exec__load_broker(cfg, st)) != CLI_EXEC_OK)
        goto out;
    if ((cfg->spool_dir = brk_env("GSAP_SPOOL_DIR")) == NULL) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR is not set");
        goto out;
    }
    if (cli_spool_open(cfg->spool_dir, 0, &dirfd, err, sizeof err) != 0) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR: %s", err);
        goto out;
    }
    cli_spool_flush(dirfd, cfg->http, stderr, &rep);
    if (rep.stop_rc != 0)
        code = cli_exec__transfer_failed(cfg, st, rep.stop_rc, "flush the spool");
    else if (rep.stop_status == 401 || rep.stop_status == 403)
        code = cli_exec__fail(st, CLI_EXEC_AUTH, "flush the spool: the broker answered %d",
                              rep.stop_status);
    else if (rep.kept || rep.rejected)
        code =
            cli_exec__fail(st, CLI_EXEC_FAILED, "flush the spool: %d receipt(s) kept, %d rejected",
                           rep.kept, rep.rejected);
    else
        code = CLI_EXEC_OK;
out:
    cli_exec__report_flush(cfg, st, &rep, code);
    if (dirfd >= 0)
        close(dirfd);
    return code;
}
