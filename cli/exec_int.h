/*
 * exec_int: what the files of `gsap-broker exec` share (exec.c runs the steps, exec_report.c
 * prints the outcome): the configuration and the state of one run. Not for other modules.
 * Main thread of a CLI process.
 */
#ifndef CLI_EXEC_INT_H
#define CLI_EXEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "brk_jcs.h" /* BRK_CID_LEN */
#include "exec_http.h"
#include "exec_spool.h"

#define EXEC_MAX_CAPTURE (1024 * 1024) /* output bytes kept for --json; hashing covers all */
#define EXEC_ERR_MAX 512
#define EXEC_TIME_MAX 32    /* "2026-11-23T10:00:00.123Z" */
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
    char started_at[EXEC_TIME_MAX], completed_at[EXEC_TIME_MAX];
    char stdout_hash[BRK_CID_LEN + 1], stderr_hash[BRK_CID_LEN + 1];
    uint64_t output_bytes;
    char *captured; /* --json: stdout, at most EXEC_MAX_CAPTURE bytes (owned) */
    size_t captured_len;
    int captured_truncated;
    char self_id[EXEC_SELF_ID_MAX];   /* a self-authorized run's context id, else "" */
    char spooled[CLI_SPOOL_NAME_MAX]; /* the spool file of its receipt, else "" */
    char error[EXEC_ERR_MAX];
} exec_run_t;

/* cli_exec__report: prints the outcome of a run (code, an enum cli_exec_exit): with --json one
 * object on stdout, else the reason of a failure on stderr (or the AC for --dry-run). */
void cli_exec__report(const exec_cfg_t *cfg, const exec_run_t *st, int code);

#endif
