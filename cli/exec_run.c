/*
 * exec_run: running the governed command of `gsap-broker exec` and capturing its output.
 *
 * `sh -c COMMAND` runs with our stdin, with pipes as stdout and stderr, with no descriptor but
 * 0, 1 and 2 (close_from_3), with the signal dispositions it would have had, and with an
 * environment without GSAP_* and CHRONICLE_* (exec_env.h says why). Both pipes are streamed
 * through SHA-256 into the receipt's stdout_hash and stderr_hash and counted into
 * output_bytes; stdout is passed through to ours, or with --json kept (EXEC_MAX_CAPTURE bytes
 * at most) for the report; stderr is always passed through.
 *
 * Caveat: the output is read until both pipes close, so a command that leaves a background
 * process holding them keeps exec waiting, as with any shell pipeline. A reader of ours that
 * goes away does not stop the reading and hashing (the command must not block on us).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_io.h"
#include "brk_jcs.h"
#include "brk_time.h"
#include "exec.h"
#include "exec_env.h"
#include "exec_int.h"
#include "banned.h"

#define EXEC_IO_CHUNK 65536
#define EXEC_SHELL "/bin/sh"

/* The wall clock as RFC 3339 UTC with milliseconds. */
static void time_now_rfc3339(char out[BRK_TIME_MS_LEN + 1])
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    brk_time_fmt_ms((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, out);
}

/* ---- step 3: run the command --------------------------------------------------------------- */

typedef struct stream {
    int fd;     /* our read end, -1 at EOF */
    int out_fd; /* where it is passed through, -1 when captured or broken */
    brk_sha256_ctx_t *md;
} stream_t;

static void capture(exec_run_t *st, const char *p, size_t n)
{
    size_t room = EXEC_MAX_CAPTURE - st->captured_len;
    if (st->captured == NULL)
        st->captured = brk_malloc(EXEC_MAX_CAPTURE);
    if (n > room) {
        st->captured_truncated = 1;
        n = room;
    }
    memcpy(st->captured + st->captured_len, p, n);
    st->captured_len += n;
}

/* Reads what one pipe has: hash it, count it, pass it on or capture it. */
static int drain(exec_run_t *st, stream_t *s, int capture_it)
{
    char buf[EXEC_IO_CHUNK];
    ssize_t n = read(s->fd, buf, sizeof buf);

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : BRK_EIO;
    if (n == 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    if (brk_sha256_update(s->md, buf, (size_t)n) != 0)
        return BRK_ECRYPTO;
    st->output_bytes += (uint64_t)n;
    if (capture_it)
        capture(st, buf, (size_t)n);
    else if (s->out_fd >= 0 && brk_write_all(s->out_fd, buf, (size_t)n) != 0)
        s->out_fd = -1; /* keep reading and hashing: the command must not block on us */
    return 0;
}

static int pump(const exec_cfg_t *cfg, exec_run_t *st, stream_t s[2])
{
    while (s[0].fd >= 0 || s[1].fd >= 0) {
        struct pollfd p[2] = {{.fd = s[0].fd, .events = POLLIN}, {.fd = s[1].fd, .events = POLLIN}};
        int rc;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return BRK_EIO;
        }
        for (int i = 0; i < 2; i++) {
            if (s[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                (rc = drain(st, &s[i], i == 0 && cfg->json)) != 0)
                return rc;
        }
    }
    return 0;
}

/* The CID of what went through md: "sha256:" + hex, as every CID of the protocol. */
static int digest_cid(brk_sha256_ctx_t *md, char out[BRK_CID_LEN + 1])
{
    uint8_t d[BRK_SHA256_LEN];

    if (brk_sha256_final(md, d) != 0)
        return BRK_ECRYPTO;
    brk_cid_of_digest(d, out);
    return 0;
}

/* Closes every descriptor from 3 up: whatever exec or its own parent left open (a broker
 * connection, a socket gsh was given) is not the command's to use. */
static void close_from_3(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

/* The child: our stdin, the pipes as stdout and stderr, signals as they were, nothing else
 * inherited, and an environment without GSAP_* and CHRONICLE_* (envp, made before fork). */
static void child(const exec_cfg_t *cfg, char **envp, int out_w, int err_w,
                  const struct sigaction *old_int, const struct sigaction *old_quit,
                  const struct sigaction *old_pipe)
{
    char *argv[] = {"sh", "-c", (char *)cfg->command, NULL};

    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGQUIT, old_quit, NULL);
    sigaction(SIGPIPE, old_pipe, NULL);
    if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);
    close_from_3();
    execve(EXEC_SHELL, argv, envp);
    dprintf(2, "gsap-broker exec: cannot run %s: %s\n", EXEC_SHELL, strerror(errno));
    _exit(127);
}

/* SIGINT and SIGQUIT are ignored here while the command runs, as system(3) does: a Ctrl-C
 * stops the command, and exec still reports how it ended. */
int cli_exec__run_command(const exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe)
{
    int op[2] = {-1, -1}, ep[2] = {-1, -1}, wst, rc = 0;
    stream_t s[2] = {{-1, cfg->json ? -1 : 1, NULL}, {-1, 2, NULL}};
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    pid_t pid;
    int code = CLI_EXEC_INTERNAL;
    char **envp = cli_env_for_child();

    s[0].md = brk_sha256_new();
    s[1].md = brk_sha256_new();
    if (!s[0].md || !s[1].md) {
        cli_exec__fail(st, code, "cannot set up SHA-256");
        goto out;
    }
    if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        cli_exec__fail(st, code, "cannot create pipes: %s", strerror(errno));
        goto out;
    }
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    fflush(NULL);
    time_now_rfc3339(st->started_at);
    if ((pid = fork()) < 0) {
        cli_exec__fail(st, code, "cannot fork: %s", strerror(errno));
        goto restore;
    }
    if (pid == 0)
        child(cfg, envp, op[1], ep[1], &old_int, &old_quit, old_pipe);
    st->ran = 1;
    close(op[1]);
    close(ep[1]);
    op[1] = ep[1] = -1;
    s[0].fd = op[0];
    s[1].fd = ep[0];
    op[0] = ep[0] = -1;
    rc = pump(cfg, st, s);
    /* After a failed pump, closing our ends lets a child blocked on a full pipe go on (it
     * gets EPIPE) instead of waiting for us forever. */
    for (int i = 0; i < 2; i++) {
        if (s[i].fd >= 0)
            close(s[i].fd);
        s[i].fd = -1;
    }
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    time_now_rfc3339(st->completed_at);
    st->cmd_exit = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
    if (rc == 0 && (rc = digest_cid(s[0].md, st->stdout_hash)) == 0)
        rc = digest_cid(s[1].md, st->stderr_hash);
    if (rc != 0) {
        cli_exec__fail(st, code, "cannot read the command's output: %s", brk_strerror(rc));
        goto restore;
    }
    code = CLI_EXEC_OK;
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
out:
    for (int i = 0; i < 2; i++) {
        if (op[i] >= 0)
            close(op[i]);
        if (ep[i] >= 0)
            close(ep[i]);
        if (s[i].fd >= 0)
            close(s[i].fd);
        brk_sha256_free(s[i].md);
    }
    free(envp);
    return code;
}
