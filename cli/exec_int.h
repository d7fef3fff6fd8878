/*
 * exec_int: what the files of `gsap-broker exec` share, and nothing else uses: the
 * configuration, the state of one run, and the step functions, one file per concern:
 *   exec.c         arguments, environment, the order of the steps, cli_exec itself;
 *   exec_ac.c      obtaining the AC (authorize, elevation polling, preflight) and checking it
 *                  offline (signature, ac_cid, expiry, corpus, command, parameters);
 *   exec_run.c     running `sh -c COMMAND` and capturing and hashing its output;
 *   exec_receipt.c the Completion Receipt: building and posting it, the self-authorized
 *                  fallback and its spooling, --flush-spool;
 *   exec_report.c  why a run failed (exit code and message) and how that is printed;
 *   exec_env.c, exec_http.c, exec_spool.c (own headers): the AC's input forms and the
 *                  command's environment, the broker client, the receipt spool.
 * The step functions return an enum cli_exec_exit (choosing the exit code is their job) and
 * record the reason of a failure in exec_run_t.error through cli_exec__fail.
 * Main thread of a CLI process.
 */
#ifndef CLI_EXEC_INT_H
#define CLI_EXEC_INT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "brk_jcs.h"  /* BRK_CID_LEN */
#include "brk_time.h" /* BRK_TIME_MS_LEN */
#include "exec_http.h"
#include "exec_spool.h"

#define EXEC_MAX_CAPTURE (1024 * 1024) /* output bytes kept for --json; hashing covers all */
#define EXEC_ERR_MAX 512
#define EXEC_SELF_ID_MAX 48 /* "self-" + a UUID */

typedef struct exec_cfg {
    int json, dry_run, flush_spool;
    const char *command;
    char command_hash[BRK_CID_LEN + 1];
    const char *url;
    cli_http_t *http; /* the broker (owned by cli_exec) */
    char *token;      /* GSAP_TOKEN, taken out of our environment (owned) */
    char *ac_text;    /* GSAP_AC or the --ac file (owned) */
    size_t ac_len;
    const char *ac_file;    /* --ac */
    const char *corpus_cid; /* NULL when unset */
    const char *accord;
    const char *params_cid; /* NULL when unset */
    char params_default[BRK_CID_LEN + 1];
    const char *capability_set;
    const char *chronicle_session;
    const char *behavior_state;
    const char *merkle_root;
    long elevation_wait_s;
    int self_auth;         /* GSAP_SELF_AUTH=1 */
    const char *spool_dir; /* GSAP_SPOOL_DIR */
} exec_cfg_t;

typedef struct exec_run {
    json_t *ac;      /* the AC in use (owned) */
    json_t *receipt; /* the broker's answer to the CR (owned) */
    int ran;         /* the command was started */
    int cmd_exit;    /* its exit code, 128 + signal when a signal ended it */
    char started_at[BRK_TIME_MS_LEN + 1], completed_at[BRK_TIME_MS_LEN + 1]; /* RFC 3339, ms */
    char stdout_hash[BRK_CID_LEN + 1], stderr_hash[BRK_CID_LEN + 1];
    uint64_t output_bytes;
    char *captured; /* --json: stdout, at most EXEC_MAX_CAPTURE bytes (owned) */
    size_t captured_len;
    int captured_truncated;
    char self_id[EXEC_SELF_ID_MAX];   /* a self-authorized run's context id, else "" */
    char spooled[CLI_SPOOL_NAME_MAX]; /* the spool file of its receipt, else "" */
    char error[EXEC_ERR_MAX];
} exec_run_t;

/* A member of an object as a string, or NULL (not there, not a string, o NULL). */
static inline const char *cli_exec__jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A string member of a member object ("operation.command_hash"), or NULL. */
static inline const char *cli_exec__jstr2(const json_t *o, const char *outer, const char *key)
{
    return cli_exec__jstr(json_object_get(o, outer), key);
}

/* ---- exec.c ---- */

/* cli_exec__load_broker: GSAP_BROKER_URL, GSAP_TOKEN (taken out of our environment) and the
 * TLS trust into cfg (cfg->http must point at a zeroed cli_http_t). Returns CLI_EXEC_OK or
 * CLI_EXEC_INTERNAL with st->error set. */
int cli_exec__load_broker(exec_cfg_t *cfg, exec_run_t *st);

/* ---- exec_ac.c ---- */

/* cli_exec__obtain_ac: the AC into st->ac (owned by st): decoded from cfg->ac_text, or issued
 * by the broker (POST /governance/authorize/) and, while pending, polled until decided or
 * cfg->elevation_wait_s runs out. CLI_EXEC_OK only for an authorized or active AC. */
int cli_exec__obtain_ac(const exec_cfg_t *cfg, exec_run_t *st);

/* cli_exec__verify_ac: st->ac is signed by a key the broker publishes, its ac_cid is the CID
 * of its content, it has not expired, and it covers this command, corpus entry and (when set)
 * parameters. CLI_EXEC_OK, CLI_EXEC_AUTH or CLI_EXEC_VIOLATION (or a transfer failure). */
int cli_exec__verify_ac(const exec_cfg_t *cfg, exec_run_t *st);

/* cli_exec__preflight: asks the broker whether the pre-issued st->ac is still usable (not
 * consumed, expired or revoked), so that a replay is refused before anything runs. */
int cli_exec__preflight(const exec_cfg_t *cfg, exec_run_t *st);

/* ---- exec_run.c ---- */

/* cli_exec__run_command: runs cfg->command and fills st's started_at, completed_at, cmd_exit,
 * hashes, byte count and (--json) captured stdout. old_pipe is the SIGPIPE disposition from
 * before cli_exec ignored it, for the child. CLI_EXEC_OK once the command has run (whatever
 * its exit code), else CLI_EXEC_INTERNAL. */
int cli_exec__run_command(const exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe);

/* ---- exec_receipt.c ---- */

/* cli_exec__complete: posts the run's CR; st->receipt (owned) gets the broker's receipt.
 * Under GSAP_SELF_AUTH a CR the broker cannot be reached for is spooled instead. */
int cli_exec__complete(const exec_cfg_t *cfg, exec_run_t *st);

/* cli_exec__self_authorized: the broker cannot be reached and GSAP_SELF_AUTH=1: checks the
 * spool, runs the command as "self-<uuid>" and spools its receipt. Drops st->ac. */
int cli_exec__self_authorized(const exec_cfg_t *cfg, exec_run_t *st,
                              const struct sigaction *old_pipe);

/* cli_exec__flush_spool: `--flush-spool`: loads the broker, posts the spool, prints the
 * counts (one JSON object with --json). CLI_EXEC_OK when everything was posted. */
int cli_exec__flush_spool(exec_cfg_t *cfg, exec_run_t *st);

/* ---- exec_report.c ---- */

/* cli_exec__fail: records why the run fails in st->error (the last reason wins) and returns
 * code, for `return cli_exec__fail(...)`. */
int cli_exec__fail(exec_run_t *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cli_exec__broker_error: "403 policy_denied: <message>" from an error reply, into buf. */
void cli_exec__broker_error(const cli_http_resp_t *r, char *buf, size_t cap);

/* cli_exec__transfer_failed: a transfer that failed after its retries (rc from cli_http_*)
 * as an exit code with st->error set: CLI_EXEC_UNREACHABLE when the broker cannot be reached
 * (the self-authorized fallback keys on it), CLI_EXEC_INTERNAL for TLS and the rest. */
int cli_exec__transfer_failed(const exec_cfg_t *cfg, exec_run_t *st, int rc, const char *what);

/* cli_exec__unexpected_status: an HTTP answer a step did not expect as an exit code:
 * CLI_EXEC_AUTH for 401, 403 and 404, else CLI_EXEC_INTERNAL. */
int cli_exec__unexpected_status(exec_run_t *st, const cli_http_resp_t *r, const char *what);

/* cli_exec__report: prints the outcome of a run (code, an enum cli_exec_exit): with --json one
 * object on stdout, else the reason of a failure on stderr (or the AC for --dry-run). */
void cli_exec__report(const exec_cfg_t *cfg, const exec_run_t *st, int code);

/* cli_exec__report_flush: prints the outcome of --flush-spool: the counts of rep, with --json
 * one object on stdout, and the reason of a failure on stderr. */
void cli_exec__report_flush(const exec_cfg_t *cfg, const exec_run_t *st,
                            const cli_spool_report_t *rep, int code);

#endif
