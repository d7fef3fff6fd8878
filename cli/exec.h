/*
 * exec: `gsap-broker exec`, a gsh-compatible governed-execution client. It obtains an
 * Authorization Context from a broker (or takes a pre-issued one from GSAP_AC or --ac), checks
 * it offline against the broker's published keys, runs the command with `sh -c` (without any
 * GSAP_* or CHRONICLE_* variable or inherited descriptor), and posts the Completion Receipt;
 * with GSAP_SELF_AUTH=1 and no broker it spools the receipt instead (`--flush-spool` posts the
 * spool). Configured from the environment as gsh is (GSAP_BROKER_URL, GSAP_TOKEN,
 * GSAP_CORPUS_CID, ...; see cli/exec.c and docs/exec.md).
 */
#ifndef CLI_EXEC_H
#define CLI_EXEC_H

/* Exit codes, the same as gsh's. */
enum cli_exec_exit {
    CLI_EXEC_OK = 0,          /* the command ran, exited 0, and its receipt was accepted */
    CLI_EXEC_FAILED = 1,      /* the command exited non-zero (its receipt was accepted) */
    CLI_EXEC_AUTH = 2,        /* denied, expired, revoked, consumed or replayed, bad signature */
    CLI_EXEC_VIOLATION = 3,   /* corpus or command mismatch, or a receipt judged violated */
    CLI_EXEC_UNREACHABLE = 4, /* the broker cannot be reached (refused, timed out, retried) */
    CLI_EXEC_INTERNAL = 125,  /* bad configuration, TLS failure, a bug */
};

/*
 * cli_exec: runs `exec [--json] [--dry-run] [--ac FILE] --exec COMMAND` or
 * `exec [--json] --flush-spool`. argv[0] is "exec"; argc counts
 * it. Returns the process exit code (enum cli_exec_exit). Reads the environment, writes the
 * command's output (or one JSON object with --json) to stdout and diagnostics to stderr, and
 * waits for the command. Main thread of a CLI process only: it forks, changes the
 * disposition of SIGPIPE, SIGINT and SIGQUIT while the command runs, and blocks.
 */
int cli_exec(int argc, char **argv);

#endif
