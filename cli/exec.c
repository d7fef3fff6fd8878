/*
 * exec: `gsap-broker exec [--json] [--dry-run] [--ac FILE] --exec COMMAND` and
 * `gsap-broker exec [--json] --flush-spool`, a gsh-compatible client of this broker.
 *
 * The steps, each of which decides the exit code when it fails:
 *   1. obtain an AC: GSAP_AC or --ac FILE as given (JSON, or base64 of it), or POST
 *      /governance/authorize/ (and, for a pending AC, poll GET /governance/authorize/{id}/
 *      until an approver decides or the wait runs out);
 *   2. check it offline: the Ed25519 signature against /.well-known/gsap-broker.json, the
 *      ac_cid, expires_at, and that it authorizes this command, this corpus entry and (when
 *      GSAP_PARAMETERS_CID is set) these parameters; for a pre-issued AC, ask the broker
 *      whether it is still usable (not consumed, expired or revoked), so a replayed AC does
 *      not run its command a second time;
 *   3. run `sh -c COMMAND` with no GSAP_* or CHRONICLE_* variable and no descriptor but 0, 1
 *      and 2 (exec_env.h says why), streaming stdout and stderr through SHA-256;
 *   4. POST /governance/complete/, retried on connection errors and 5xx (the broker answers
 *      an identical retry with the same receipt).
 * When the broker cannot be reached in steps 1-2 and GSAP_SELF_AUTH=1, the command runs
 * anyway and its receipt ("self_authorized": true, context "self-<uuid>") is spooled
 * (exec_spool.h) for `--flush-spool`.
 * Exit codes are gsh's (enum cli_exec_exit). The step functions return that enum rather than
 * a brk_err because choosing the exit code is their whole job; the helpers below them keep
 * the 0 / negative enum brk_err convention. This file owns the arguments, the environment and
 * the order of the steps; each step lives in its own file (exec_int.h lists them).
 *
 * Environment: GSAP_BROKER_URL (http[s]://host[:port][/prefix]), GSAP_TOKEN, GSAP_CA_FILE,
 * GSAP_INSECURE, GSAP_AC, GSAP_CORPUS_CID, GSAP_ACCORD_TEMPLATE ("default"),
 * GSAP_PARAMETERS_CID (the CID of {} for the authorize request), GSAP_CAPABILITY_SET,
 * GSAP_ELEVATION_WAIT_S (60), GSAP_SELF_AUTH, GSAP_SPOOL_DIR, CHRONICLE_SESSION_ID,
 * CHRONICLE_BEHAVIOR_STATE ("unavailable"), CHRONICLE_MERKLE_ROOT.
 * An empty variable counts as unset. When GSAP_CORPUS_CID or GSAP_PARAMETERS_CID is unset the
 * receipt repeats the AC's value: the client has no observation of its own to report, and
 * inventing one would make the broker flag a mismatch that did not happen.
 *
 * Caveats: the transport is exec_http (one connection per request). The command runs as our
 * user: it cannot see the token in its environment, in /proc/<exec>/environ or through an
 * inherited socket, and exec is not dumpable (no ptrace by the same user), but root can still
 * read our memory.
 */
#include "exec.h"
#include "help.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <jansson.h>

#include "brk_config.h" /* brk_env */
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_tls_client.h"
#include "exec_env.h"
#include "exec_http.h"
#include "exec_int.h"
#include "banned.h"

#define EXEC_ELEVATION_WAIT_S 60 /* default of GSAP_ELEVATION_WAIT_S */
#define EXEC_ELEVATION_WAIT_MAX_S 86400

/* ---- configuration ------------------------------------------------------------------------ */

/* usage: exec's help, from the one table that also makes `gsap-broker help exec` and the man
 * page (cli/help.c). */
static int usage(FILE *f)
{
    cli_help_print(f, "exec");
    return f == stderr ? CLI_EXEC_INTERNAL : CLI_EXEC_OK;
}

/* Returns CLI_EXEC_OK, or -1 after printing the help (exit 0), or an exit code. */
static int parse_args(int argc, char **argv, exec_cfg_t *cfg, exec_run_t *st)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"exec", required_argument, NULL, 'e'},
                                         {"ac", required_argument, NULL, 'a'},
                                         {"flush-spool", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            cfg->json = 1;
            break;
        case 'n':
            cfg->dry_run = 1;
            break;
        case 'e':
            cfg->command = optarg;
            break;
        case 'a':
            cfg->ac_file = optarg;
            break;
        case 'f':
            cfg->flush_spool = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                                  "unknown option or missing argument \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        usage(stderr);
        return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "unexpected argument \"%s\" (quote the command after --exec)",
                              argv[optind]);
    }
    if (cfg->flush_spool) {
        if (cfg->command || cfg->ac_file || cfg->dry_run) {
            usage(stderr);
            return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                                  "--flush-spool takes no --exec, --ac or --dry-run");
        }
        return CLI_EXEC_OK;
    }
    if (cfg->command == NULL) {
        usage(stderr);
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "--exec COMMAND is required");
    }
    brk_cid_of_bytes(cfg->command, strlen(cfg->command), cfg->command_hash);
    return CLI_EXEC_OK;
}

static int env_cid(const char *name, const char **out, exec_run_t *st)
{
    *out = brk_env(name);
    if (*out && !brk_cid_valid(*out))
        return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "%s \"%s\" is not a CID (sha256: + 64 lowercase hex)", name, *out);
    return CLI_EXEC_OK;
}

int cli_exec__load_broker(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    const char *insecure = brk_env("GSAP_INSECURE");

    if ((cfg->url = brk_env("GSAP_BROKER_URL")) == NULL)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_BROKER_URL is not set");
    if ((cfg->token = cli_env_take_secret("GSAP_TOKEN")) == NULL)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_TOKEN is not set");
    if (strpbrk(cfg->token, "\r\n") != NULL || strlen(cfg->token) > CLI_HTTP_TOKEN_MAX)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_TOKEN is not a bearer token");
    if (insecure && strcmp(insecure, "1") != 0 && strcmp(insecure, "0") != 0)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_INSECURE \"%s\" is not 0 or 1",
                              insecure);
    if (cli_http_init(cfg->http, cfg->url, cfg->token, brk_env(BRK_TLS_CA_ENV),
                      insecure && strcmp(insecure, "1") == 0, err, sizeof err) != 0)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s", err);
    return CLI_EXEC_OK;
}

/* The AC's text from --ac FILE, else GSAP_AC (taken out of our environment), else none. */
static int load_ac_text(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    char *env_ac = cli_env_take_secret("GSAP_AC");

    if (cfg->ac_file) {
        free(env_ac);
        if (cli_ac_read_file(cfg->ac_file, &cfg->ac_text, &cfg->ac_len, err, sizeof err) != 0)
            return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s", err);
    } else if (env_ac) {
        cfg->ac_text = env_ac;
        cfg->ac_len = strlen(env_ac);
    }
    return CLI_EXEC_OK;
}

static int load_env(exec_cfg_t *cfg, exec_run_t *st)
{
    const char *wait = brk_env("GSAP_ELEVATION_WAIT_S"), *self = brk_env("GSAP_SELF_AUTH");
    int code;

    if ((code = cli_exec__load_broker(cfg, st)) != CLI_EXEC_OK ||
        (code = load_ac_text(cfg, st)) != CLI_EXEC_OK)
        return code;
    if ((code = env_cid("GSAP_CORPUS_CID", &cfg->corpus_cid, st)) != CLI_EXEC_OK ||
        (code = env_cid("GSAP_PARAMETERS_CID", &cfg->params_cid, st)) != CLI_EXEC_OK ||
        (code = env_cid("CHRONICLE_MERKLE_ROOT", &cfg->merkle_root, st)) != CLI_EXEC_OK)
        return code;
    if (cfg->ac_text == NULL && cfg->corpus_cid == NULL)
        return cli_exec__fail(
            st, CLI_EXEC_INTERNAL,
            "GSAP_CORPUS_CID is not set (needed to request an AC without GSAP_AC)");
    cfg->accord = brk_env("GSAP_ACCORD_TEMPLATE") ? brk_env("GSAP_ACCORD_TEMPLATE") : "default";
    brk_cid_of_bytes("{}", 2, cfg->params_default);
    cfg->capability_set = brk_env("GSAP_CAPABILITY_SET");
    cfg->chronicle_session = brk_env("CHRONICLE_SESSION_ID");
    cfg->behavior_state =
        brk_env("CHRONICLE_BEHAVIOR_STATE") ? brk_env("CHRONICLE_BEHAVIOR_STATE") : "unavailable";
    if (strcmp(cfg->behavior_state, "verified") != 0 &&
        strcmp(cfg->behavior_state, "violated") != 0 &&
        strcmp(cfg->behavior_state, "unavailable") != 0)
        return cli_exec__fail(
            st, CLI_EXEC_INTERNAL,
            "CHRONICLE_BEHAVIOR_STATE \"%s\" is not verified, violated or unavailable",
            cfg->behavior_state);
    cfg->elevation_wait_s = EXEC_ELEVATION_WAIT_S;
    if (wait) {
        char *end;
        errno = 0;
        cfg->elevation_wait_s = strtol(wait, &end, 10);
        if (errno || *end || cfg->elevation_wait_s < 0 ||
            cfg->elevation_wait_s > EXEC_ELEVATION_WAIT_MAX_S)
            return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                                  "GSAP_ELEVATION_WAIT_S \"%s\" is not 0..%d", wait,
                                  EXEC_ELEVATION_WAIT_MAX_S);
    }
    if (self && strcmp(self, "1") != 0 && strcmp(self, "0") != 0)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_SELF_AUTH \"%s\" is not 0 or 1", self);
    cfg->self_auth = self && strcmp(self, "1") == 0;
    cfg->spool_dir = brk_env("GSAP_SPOOL_DIR");
    if (cfg->self_auth && cfg->spool_dir == NULL)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "GSAP_SELF_AUTH=1 needs GSAP_SPOOL_DIR");
    if (cfg->self_auth && cfg->corpus_cid == NULL)
        return cli_exec__fail(
            st, CLI_EXEC_INTERNAL,
            "GSAP_SELF_AUTH=1 needs GSAP_CORPUS_CID (the receipt's corpus_entry_cid)");
    return CLI_EXEC_OK;
}

/* ---- the command ---------------------------------------------------------------------------- */

static int run(exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe)
{
    int code = load_env(cfg, st);

    if (code == CLI_EXEC_OK)
        code = cli_exec__obtain_ac(cfg, st);
    if (code == CLI_EXEC_OK)
        code = cli_exec__verify_ac(cfg, st);
    if (code == CLI_EXEC_OK && cfg->ac_text)
        code = cli_exec__preflight(cfg, st);
    if (code == CLI_EXEC_UNREACHABLE && cfg->self_auth && !cfg->dry_run)
        return cli_exec__self_authorized(cfg, st, old_pipe);
    if (code != CLI_EXEC_OK || cfg->dry_run)
        return code;
    if ((code = cli_exec__run_command(cfg, st, old_pipe)) != CLI_EXEC_OK)
        return code;
    /* The receipt goes in whatever the command did: a failed run is evidence too. */
    if ((code = cli_exec__complete(cfg, st)) != CLI_EXEC_OK)
        return code;
    if (st->cmd_exit != 0)
        return cli_exec__fail(st, CLI_EXEC_FAILED, "the command exited with status %d",
                              st->cmd_exit);
    return CLI_EXEC_OK;
}

int cli_exec(int argc, char **argv)
{
    exec_cfg_t cfg = {0};
    exec_run_t st = {0};
    cli_http_t http = {0};
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    int code = parse_args(argc, argv, &cfg, &st);

    if (code < 0)
        return CLI_EXEC_OK; /* --help */
    cfg.http = &http;
    /* Not dumpable: a process of the same (non-root) user, such as the governed command, may
     * not ptrace us or read /proc/<pid>/mem for the token. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* A reader that went away is an error to handle where it happens (a write to the
     * terminal, a broker socket), not a reason to die before the receipt is posted. */
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    if (code == CLI_EXEC_OK && cfg.flush_spool) {
        code = cli_exec__flush_spool(&cfg, &st);
    } else {
        if (code == CLI_EXEC_OK)
            code = run(&cfg, &st, &old_pipe);
        cli_exec__report(&cfg, &st, code);
    }
    sigaction(SIGPIPE, &old_pipe, NULL);
    cli_http_clear(&http);
    free(cfg.token);
    free(cfg.ac_text);
    if (st.ac)
        json_decref(st.ac);
    if (st.receipt)
        json_decref(st.receipt);
    free(st.captured);
    return code;
}
