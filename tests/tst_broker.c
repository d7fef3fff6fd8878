/*
 * tst_broker: runs the broker binary for integration tests and speaks HTTP/1.1 to it.
 *
 * The environment a broker gets is computed once by tst_broker_start and written, NUL-separated,
 * to <dir>/harness.env; restart and the CLI read it back, so the three always agree and the
 * public struct stays a plain value. The HTTP client opens one connection per request and
 * sends Connection: close, so a response ends at the latest when the server closes; it still
 * stops as soon as the message is complete by its own framing, so a server that keeps the
 * connection open anyway is caught by the framing tests, not by a timeout.
 */
#include "tst_broker.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "tst_util.h"
#include "banned.h"

#define TST_START_TIMEOUT_MS 30000 /* until /healthz answers 200 */
#define TST_START_POLL_MS 50
#define TST_STOP_TIMEOUT_MS 30000 /* SIGTERM to exit, then SIGKILL */
#define TST_CLI_TIMEOUT_MS 60000
#define TST_HTTP_TIMEOUT_S 30 /* per send/recv call of tst_http */
#define TST_HEALTH_TIMEOUT_S 2
#define TST_RAW_TIMEOUT_S 10
#define TST_LOG_TAIL 6000 /* bytes of the log printed when a start fails */
#define TST_ENV_MAX 64
#define TST_ARGV_MAX 64
#define TST_ENV_FILE "harness.env"
#define TST_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Variables passed through from the test's own environment when set. */
static const char *const inherited_env[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                            NULL};

/* ---- small helpers ---------------------------------------------------------------------- */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "tst_broker: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = xrealloc(NULL, n);
    memcpy(d, s, n);
    return d;
}

/* A growable byte buffer, always NUL-terminated when p is not NULL. */
typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf_t;

static void tbuf_add(tbuf_t *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tbuf_addstr(tbuf_t *b, const char *s)
{
    tbuf_add(b, s, strlen(s));
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The shell convention: exit code, or 128 + signal. */
static int wait_status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

static pid_t waitpid_eintr(pid_t pid, int *st, int flags)
{
    pid_t r;
    do {
        r = waitpid(pid, st, flags);
    } while (r < 0 && errno == EINTR);
    return r;
}

static char *read_file(const char *path, size_t *len_out)
{
    tbuf_t b = {0};
    char chunk[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    tbuf_add(&b, "", 0);
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            close(fd);
            free(b.p);
            return NULL;
        }
        tbuf_add(&b, chunk, (size_t)n);
    }
    close(fd);
    if (len_out)
        *len_out = b.len;
    return b.p;
}

static void print_log_tail(const tst_broker_t *b, const char *why)
{
    size_t len = 0;
    char *log = read_file(b->logpath, &len);
    const char *from = log;
    fprintf(stderr, "tst_broker: %s; tail of %s:\n", why, b->logpath);
    if (!log) {
        fprintf(stderr, "  (no log)\n");
        return;
    }
    if (len > TST_LOG_TAIL)
        from = log + len - TST_LOG_TAIL;
    fprintf(stderr, "%s%s\n", from == log ? "" : "...", from);
    free(log);
}

/* ---- environment ------------------------------------------------------------------------- */

typedef struct tenv {
    char *vars[TST_ENV_MAX + 1]; /* owned, NULL-terminated */
    int n;
} tenv_t;

static void tenv_clear(tenv_t *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->vars[i]);
    memset(e, 0, sizeof *e);
}

/* Sets "NAME=value", replacing a variable of the same name. */
static int tenv_put(tenv_t *e, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t nlen;
    if (!eq || eq == kv) {
        fprintf(stderr, "tst_broker: environment entry \"%s\" is not NAME=value\n", kv);
        return -1;
    }
    nlen = (size_t)(eq - kv) + 1;
    for (int i = 0; i < e->n; i++) {
        if (strncmp(e->vars[i], kv, nlen) == 0) {
            free(e->vars[i]);
            e->vars[i] = xstrdup(kv);
            return 0;
        }
    }
    if (e->n == TST_ENV_MAX) {
        fprintf(stderr, "tst_broker: more than %d environment entries\n", TST_ENV_MAX);
        return -1;
    }
    e->vars[e->n++] = xstrdup(kv);
    e->vars[e->n] = NULL;
    return 0;
}

static int tenv_putf(tenv_t *e, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *kv = xrealloc(NULL, n);
    int rc;
    snprintf(kv, n, "%s=%s", name, value);
    rc = tenv_put(e, kv);
    free(kv);
    return rc;
}

static void env_path(const tst_broker_t *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", b->dir, TST_ENV_FILE);
}

static int tenv_save(const tenv_t *e, const tst_broker_t *b)
{
    char path[320];
    tbuf_t out = {0};
    FILE *f;
    int rc = -1;

    env_path(b, path, sizeof path);
    for (int i = 0; i < e->n; i++)
        tbuf_add(&out, e->vars[i], strlen(e->vars[i]) + 1);
    f = fopen(path, "we");
    if (!f) {
        fprintf(stderr, "tst_broker: cannot create \"%s\": %s\n", path, strerror(errno));
        goto out;
    }
    if (out.len && fwrite(out.p, 1, out.len, f) != out.len) {
        fprintf(stderr, "tst_broker: cannot write \"%s\"\n", path);
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0)
        goto out;
    rc = 0;
out:
    free(out.p);
    return rc;
}

static int tenv_load(tenv_t *e, const tst_broker_t *b)
{
    char path[320];
    size_t len = 0;
    char *data;
    int rc = 0;

    memset(e, 0, sizeof *e);
    env_path(b, path, sizeof path);
    data = read_file(path, &len);
    if (!data) {
        fprintf(stderr, "tst_broker: cannot read \"%s\" (was the broker started?)\n", path);
        return -1;
    }
    for (size_t off = 0; off < len && rc == 0; off += strlen(data + off) + 1)
        rc = tenv_put(e, data + off);
    free(data);
    if (rc)
        tenv_clear(e);
    return rc;
}

/* ---- processes ---------------------------------------------------------------------------- */

static const char *broker_bin(void)
{
    const char *bin = getenv("GSAP_BROKER_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "tst_broker: GSAP_BROKER_BIN is not set (the broker binary's path)\n");
        return NULL;
    }
    return bin;
}

/*
 * Forks and execs bin with argv and envp; stdin is /dev/null, stdout goes to out_fd (or the
 * log when out_fd < 0), stderr to the log. Returns the child's pid or -1.
 */
static pid_t spawn(const tst_broker_t *b, const char *bin, char *const argv[], char *const envp[],
                   int out_fd)
{
    pid_t parent = getpid();
    pid_t pid;
    int logfd = open(b->logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (logfd < 0 || nullfd < 0) {
        fprintf(stderr, "tst_broker: cannot open \"%s\": %s\n", b->logpath, strerror(errno));
        pid = -1;
        goto out;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tst_broker: fork: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* A test that dies (crash, Check timeout) takes its broker with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(nullfd, 0) < 0 || dup2(out_fd >= 0 ? out_fd : logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        close_range(3, ~0U, 0);
        execve(bin, argv, envp);
        dprintf(2, "tst_broker: cannot execute \"%s\": %s\n", bin, strerror(errno));
        _exit(127);
    }
out:
    if (logfd >= 0)
        close(logfd);
    if (nullfd >= 0)
        close(nullfd);
    return pid;
}

static int http_exchange(unsigned short port, const char *req, size_t reqlen, int timeout_s,
                         int is_head, tst_resp_t *out, int quiet);

static int healthz(unsigned short port)
{
    char req[128];
    tst_resp_t r;
    int n =
        snprintf(req, sizeof req,
                 "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", port);
    int ok =
        http_exchange(port, req, (size_t)n, TST_HEALTH_TIMEOUT_S, 0, &r, 1) == 0 && r.status == 200;
    tst_resp_clear(&r);
    return ok;
}

/* Runs `bin serve` with the saved environment and waits until it is healthy. */
static int serve(tst_broker_t *b)
{
    const char *bin = broker_bin();
    tenv_t env;
    long long deadline;
    int st, rc = -1;

    if (!bin)
        return -1;
    if (b->pid > 0) {
        fprintf(stderr, "tst_broker: broker (pid %d) is still running\n", (int)b->pid);
        return -1;
    }
    if (tenv_load(&env, b) < 0)
        return -1;
    {
        char *argv[] = {(char *)bin, "serve", NULL};
        b->pid = spawn(b, bin, argv, env.vars, -1);
    }
    if (b->pid < 0) {
        b->pid = 0;
        goto out;
    }
    deadline = now_ms() + TST_START_TIMEOUT_MS;
    for (;;) {
        pid_t w = waitpid_eintr(b->pid, &st, WNOHANG);
        if (w == b->pid) {
            char why[96];
            snprintf(why, sizeof why, "broker exited (status %d) before it was healthy",
                     wait_status_code(st));
            b->pid = 0;
            print_log_tail(b, why);
            goto out;
        }
        if (healthz(b->port)) {
            rc = 0;
            goto out;
        }
        if (now_ms() > deadline) {
            tst_broker_kill(b);
            print_log_tail(b, "broker not healthy after 30 s (killed)");
            goto out;
        }
        sleep_ms(TST_START_POLL_MS);
    }
out:
    tenv_clear(&env);
    return rc;
}

int tst_free_port(unsigned short *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        goto out;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
        goto out;
    *port = ntohs(a.sin_port);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tst_broker: cannot find a free port: %s\n", strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

int tst_broker_start(tst_broker_t *b, const char *conninfo, const char *const *extra_env)
{
    tenv_t env = {0};
    char val[320];
    int rc = -1;

    memset(b, 0, sizeof *b);
    if (conninfo && strlen(conninfo) >= sizeof b->conninfo) {
        fprintf(stderr, "tst_broker: conninfo too long\n");
        return -1;
    }
    snprintf(b->conninfo, sizeof b->conninfo, "%s", conninfo ? conninfo : "");
    if (tst_free_port(&b->port) < 0)
        return -1;
    snprintf(b->dir, sizeof b->dir, "/tmp/gsapb.XXXXXX");
    if (!mkdtemp(b->dir)) {
        fprintf(stderr, "tst_broker: mkdtemp: %s\n", strerror(errno));
        b->dir[0] = '\0';
        return -1;
    }
    /* Traversable by others: an embedded cluster may run as another user below it. */
    chmod(b->dir, 0711);
    snprintf(b->logpath, sizeof b->logpath, "%s/broker.log", b->dir);

    for (int i = 0; inherited_env[i]; i++) {
        const char *v = getenv(inherited_env[i]);
        if (!v && strcmp(inherited_env[i], "PATH") == 0)
            v = TST_DEFAULT_PATH;
        if (v && tenv_putf(&env, inherited_env[i], v) < 0)
            goto out;
    }
    if (conninfo && tenv_putf(&env, "GSAP_DATABASE_URL", conninfo) < 0)
        goto out;
    snprintf(val, sizeof val, "127.0.0.1:%u", b->port);
    if (tenv_putf(&env, "GSAP_LISTEN", val) < 0 || tenv_putf(&env, "GSAP_DATA_DIR", b->dir) < 0 ||
        tenv_putf(&env, "GSAP_THREADS", "2") < 0)
        goto out;
    for (int i = 0; extra_env && extra_env[i]; i++)
        if (tenv_put(&env, extra_env[i]) < 0)
            goto out;
    if (tenv_save(&env, b) < 0)
        goto out;
    rc = serve(b);
out:
    tenv_clear(&env);
    return rc;
}

int tst_broker_restart(tst_broker_t *b)
{
    return serve(b);
}

int tst_broker_stop(tst_broker_t *b)
{
    long long deadline;
    int st;

    if (b->pid <= 0)
        return -1;
    kill(b->pid, SIGTERM);
    deadline = now_ms() + TST_STOP_TIMEOUT_MS;
    for (;;) {
        pid_t w = waitpid_eintr(b->pid, &st, WNOHANG);
        if (w == b->pid)
            break;
        if (w < 0) {
            fprintf(stderr, "tst_broker: waitpid %d: %s\n", (int)b->pid, strerror(errno));
            b->pid = 0;
            return -1;
        }
        if (now_ms() > deadline) {
            print_log_tail(b, "broker did not stop within 30 s of SIGTERM (killing it)");
            kill(b->pid, SIGKILL);
            waitpid_eintr(b->pid, &st, 0);
            break;
        }
        sleep_ms(10);
    }
    b->pid = 0;
    return wait_status_code(st);
}

void tst_broker_kill(tst_broker_t *b)
{
    int st;
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    waitpid_eintr(b->pid, &st, 0);
    b->pid = 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
        fprintf(stderr, "tst_broker: cannot remove \"%s\": %s\n", path, strerror(errno));
    return 0;
}

void tst_broker_clear(tst_broker_t *b)
{
    tst_broker_kill(b);
    if (b->dir[0] && strncmp(b->dir, "/tmp/gsapb.", 11) == 0 && !getenv("GSAP_TEST_KEEP"))
        nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    memset(b, 0, sizeof *b);
}

char *tst_broker_log(const tst_broker_t *b)
{
    return read_file(b->logpath, NULL);
}

char *tst_broker_cli(tst_broker_t *b, int *exit_status, const char *arg0, ...)
{
    const char *bin = broker_bin();
    char *argv[TST_ARGV_MAX + 2];
    tenv_t env = {0};
    tbuf_t out = {0};
    int pipefd[2] = {-1, -1};
    int argc = 0, st = 0, status = -1;
    long long deadline;
    pid_t pid;
    va_list ap;

    if (exit_status)
        *exit_status = -1;
    if (!bin)
        return NULL;
    argv[argc++] = (char *)bin;
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *)) {
        if (argc == TST_ARGV_MAX) {
            va_end(ap);
            fprintf(stderr, "tst_broker: more than %d arguments\n", TST_ARGV_MAX);
            return NULL;
        }
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;

    if (tenv_load(&env, b) < 0)
        goto out;
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        fprintf(stderr, "tst_broker: pipe: %s\n", strerror(errno));
        goto out;
    }
    pid = spawn(b, bin, argv, env.vars, pipefd[1]);
    close(pipefd[1]);
    pipefd[1] = -1;
    if (pid < 0)
        goto out;

    tbuf_add(&out, "", 0);
    deadline = now_ms() + TST_CLI_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
        long long left = deadline - now_ms();
        char chunk[4096];
        ssize_t n;
        int pr;

        if (left <= 0) {
            fprintf(stderr, "tst_broker: %s %s did not finish in 60 s (killed)\n", bin,
                    arg0 ? arg0 : "");
            kill(pid, SIGKILL);
            break;
        }
        pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        n = read(pipefd[0], chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        tbuf_add(&out, chunk, (size_t)n);
    }
    if (waitpid_eintr(pid, &st, 0) == pid)
        status = wait_status_code(st);
    while (out.len && (out.p[out.len - 1] == '\n' || out.p[out.len - 1] == '\r'))
        out.p[--out.len] = '\0';
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    tenv_clear(&env);
    if (exit_status)
        *exit_status = status;
    if (status < 0) {
        free(out.p);
        return NULL;
    }
    return out.p;
}

char *tst_keys_create(tst_broker_t *b, const char *tenant, const char *roles)
{
    char msg[512];
    int st = -1;
    char *tok = tst_broker_cli(b, &st, "keys", "create", "--tenant", tenant, "--role", roles, NULL);

    if (tok && st == 0 && tok[0] && !strchr(tok, '\n'))
        return tok;
    snprintf(msg, sizeof msg,
             "keys create --tenant %s --role %s failed: exit %d, stdout \"%.200s\"", tenant, roles,
             st, tok ? tok : "(none)");
    free(tok);
    print_log_tail(b, msg);
    ck_abort_msg("%s", msg);
    return NULL; /* not reached */
}

/* ---- HTTP client -------------------------------------------------------------------------- */

static int tcp_connect(unsigned short port, int timeout_s, int quiet)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {.tv_sec = timeout_s};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        goto fail;
    while (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno != EINTR)
            goto fail;
    }
    return fd;
fail:
    if (!quiet)
        fprintf(stderr, "tst_http: cannot connect to 127.0.0.1:%u: %s\n", port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Sends everything; returns 0, or -1 when the peer stopped reading (the reply may still come). */
static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Finds header name in the header lines of head[0..len) (the status line is skipped). */
static int find_header(const char *head, size_t len, const char *name, const char **val,
                       size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *end = head + len;
    const char *line = memchr(head, '\n', len);

    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const char *le = eol ? eol : end;
        if (le > line && le[-1] == '\r')
            le--;
        if ((size_t)(le - line) > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            while (le > v && (le[-1] == ' ' || le[-1] == '\t'))
                le--;
            *val = v;
            *vlen = (size_t)(le - v);
            return 1;
        }
        line = eol;
    }
    return 0;
}

static const char *find_crlf2(const char *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return p + i;
    return NULL;
}

static const char *find_crlf(const char *p, size_t n)
{
    for (size_t i = 0; i + 2 <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return p + i;
    return NULL;
}

/* Decodes a chunked body from p[0..n). 1: complete, 0: needs more, -1: malformed. */
static int dechunk(const char *p, size_t n, tbuf_t *body)
{
    const char *end = p + n;
    for (;;) {
        const char *eol = find_crlf(p, (size_t)(end - p));
        unsigned long long size = 0;
        const char *q = p;
        int digits = 0;

        if (!eol)
            return 0;
        for (; q < eol; q++, digits++) {
            int d = (*q >= '0' && *q <= '9')   ? *q - '0'
                    : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                    : (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10
                                               : -1;
            if (d < 0)
                break;
            if (size > (SIZE_MAX >> 5))
                return -1;
            size = size * 16 + (unsigned)d;
        }
        if (!digits || (q < eol && *q != ';' && *q != ' ' && *q != '\t'))
            return -1;
        p = eol + 2;
        if (size == 0) {
            /* Trailers, then an empty line. */
            if ((size_t)(end - p) >= 2 && p[0] == '\r' && p[1] == '\n')
                return 1;
            return find_crlf2(p, (size_t)(end - p)) ? 1 : 0;
        }
        if ((size_t)(end - p) < size + 2)
            return 0;
        if (p[size] != '\r' || p[size + 1] != '\n')
            return -1;
        tbuf_add(body, p, (size_t)size);
        p += size + 2;
    }
}

/*
 * Parses data[0..n) as a response. 1: complete (out filled), 0: needs more bytes (only when
 * !eof), -1: malformed or cut short.
 */
static int parse_response(const char *data, size_t n, int is_head, int eof, tst_resp_t *out)
{
    const char *p = data, *end = data + n;
    const char *hend, *v;
    size_t vlen;
    tbuf_t body = {0};
    int status, rc;

    for (;;) {
        hend = find_crlf2(p, (size_t)(end - p));
        if (!hend)
            return eof ? -1 : 0;
        if (hend - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' ||
            p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
            return -1;
        status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (status >= 200 || status == 101)
            break;
        p = hend + 4; /* 100 Continue and friends */
    }
    const char *bstart = hend + 4;
    size_t hlen = (size_t)(hend - p) + 2;
    size_t avail = (size_t)(end - bstart);

    tbuf_add(&body, "", 0);
    if (is_head || status == 204 || status == 304 || status == 101) {
        rc = 1;
    } else if (find_header(p, hlen, "Transfer-Encoding", &v, &vlen)) {
        rc = dechunk(bstart, avail, &body);
        if (rc == 0 && eof)
            rc = -1;
    } else if (find_header(p, hlen, "Content-Length", &v, &vlen)) {
        char num[32];
        char *e;
        unsigned long long cl;
        num[0] = '\0';
        if (vlen && vlen < sizeof num) {
            memcpy(num, v, vlen);
            num[vlen] = '\0';
        }
        errno = 0;
        cl = strtoull(num, &e, 10);
        if (!num[0] || *e || errno || num[0] < '0' || num[0] > '9') {
            rc = -1;
        } else if (avail >= cl) {
            tbuf_add(&body, bstart, (size_t)cl);
            rc = 1;
        } else {
            rc = eof ? -1 : 0;
        }
    } else if (eof) {
        tbuf_add(&body, bstart, avail);
        rc = 1;
    } else {
        rc = 0;
    }
    if (rc != 1) {
        free(body.p);
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->status = status;
    out->head = xrealloc(NULL, hlen + 1);
    memcpy(out->head, p, hlen);
    out->head[hlen] = '\0';
    out->body = body.p;
    out->body_len = body.len;
    if (body.len)
        out->json = json_loadb(body.p, body.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    return 1;
}

static int http_exchange(unsigned short port, const char *req, size_t reqlen, int timeout_s,
                         int is_head, tst_resp_t *out, int quiet)
{
    tbuf_t in = {0};
    char chunk[65536];
    int fd, rc = -1, pr = 0;

    memset(out, 0, sizeof *out);
    fd = tcp_connect(port, timeout_s, quiet);
    if (fd < 0)
        return -1;
    /* A server may answer early (413) and stop reading: then just read its answer. */
    send_all(fd, req, reqlen);
    tbuf_add(&in, "", 0);
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!quiet)
                fprintf(stderr, "tst_http: no complete response within %d s (%zu bytes so far)\n",
                        timeout_s, in.len);
            goto out;
        }
        if (n <= 0) {
            pr = parse_response(in.p, in.len, is_head, 1, out);
            break;
        }
        tbuf_add(&in, chunk, (size_t)n);
        pr = parse_response(in.p, in.len, is_head, 0, out);
        if (pr != 0)
            break;
    }
    if (pr == 1)
        rc = 0;
    else if (!quiet)
        fprintf(stderr, "tst_http: malformed or truncated response (%zu bytes): %.300s\n", in.len,
                in.p);
out:
    close(fd);
    free(in.p);
    return rc;
}

int tst_http(unsigned short port, const char *method, const char *path, const char *headers,
             const char *body, size_t body_len, tst_resp_t *out)
{
    tbuf_t req = {0};
    char line[128];
    int rc;

    tbuf_addstr(&req, method);
    tbuf_addstr(&req, " ");
    tbuf_addstr(&req, path);
    snprintf(line, sizeof line, " HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", port);
    tbuf_addstr(&req, line);
    if (headers)
        tbuf_addstr(&req, headers);
    if (body) {
        snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
        tbuf_addstr(&req, line);
    }
    tbuf_addstr(&req, "Connection: close\r\n\r\n");
    if (body)
        tbuf_add(&req, body, body_len);
    rc = http_exchange(port, req.p, req.len, TST_HTTP_TIMEOUT_S, strcmp(method, "HEAD") == 0, out,
                       0);
    free(req.p);
    return rc;
}

const char *tst_resp_header(const tst_resp_t *r, const char *name, char *buf, size_t cap)
{
    const char *v;
    size_t vlen;

    if (!r->head || !cap || !find_header(r->head, strlen(r->head), name, &v, &vlen))
        return NULL;
    if (vlen > cap - 1)
        vlen = cap - 1;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    return buf;
}

void tst_resp_clear(tst_resp_t *r)
{
    free(r->head);
    free(r->body);
    if (r->json)
        json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static void auth_header(tbuf_t *h, const char *token)
{
    if (token) {
        tbuf_addstr(h, "Authorization: Bearer ");
        tbuf_addstr(h, token);
        tbuf_addstr(h, "\r\n");
    }
}

int tst_get(unsigned short port, const char *path, const char *token, tst_resp_t *out)
{
    tbuf_t h = {0};
    int rc;

    tbuf_add(&h, "", 0);
    auth_header(&h, token);
    rc = tst_http(port, "GET", path, h.p, NULL, 0, out);
    free(h.p);
    return rc;
}

int tst_post_json(unsigned short port, const char *path, const char *token, const char *json,
                  tst_resp_t *out)
{
    tbuf_t h = {0};
    int rc;

    tbuf_addstr(&h, "Content-Type: application/json\r\n");
    auth_header(&h, token);
    rc = tst_http(port, "POST", path, h.p, json, strlen(json), out);
    free(h.p);
    return rc;
}

tst_resp_t tst_call(unsigned short port, const char *method, const char *path, const char *token,
                    const char *body, int expect)
{
    tst_resp_t r;
    char *hdr = tst_fmt("%s%s%s%s", token ? "Authorization: Bearer " : "", token ? token : "",
                        token ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "");

    ck_assert_msg(tst_http(port, method, path, hdr, body, body ? strlen(body) : 0, &r) == 0,
                  "%s %s: no response", method, path);
    ck_assert_msg(r.status == expect, "%s %s: %d (want %d) %s", method, path, r.status, expect,
                  r.body ? r.body : "");
    free(hdr);
    return r;
}

json_t *tst_call_json(unsigned short port, const char *method, const char *path, const char *token,
                      const char *body, int expect, const char *code)
{
    tst_resp_t r = tst_call(port, method, path, token, body, expect);
    json_t *j;

    if (code != NULL) {
        const char *got = tst_err_code(r.json);
        ck_assert_msg(got != NULL && strcmp(got, code) == 0, "%s %s: error code %s (want %s) %s",
                      method, path, got ? got : "(none)", code, r.body);
    }
    j = json_incref(r.json);
    tst_resp_clear(&r);
    return j;
}

void tst_expect_status(unsigned short port, const char *method, const char *path, const char *token,
                       const char *body, int status, const char *code)
{
    json_decref(tst_call_json(port, method, path, token, body, status, code));
}

int tst_raw(unsigned short port, const void *bytes, size_t n, char **reply)
{
    tbuf_t in = {0};
    char chunk[65536];
    int fd;

    *reply = NULL;
    fd = tcp_connect(port, TST_RAW_TIMEOUT_S, 0);
    if (fd < 0)
        return -1;
    send_all(fd, bytes, n);
    tbuf_add(&in, "", 0);
    for (;;) {
        ssize_t r = recv(fd, chunk, sizeof chunk, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EOF, reset or the 10 s timeout */
        tbuf_add(&in, chunk, (size_t)r);
    }
    close(fd);
    *reply = in.p;
    return in.len > INT_MAX ? INT_MAX : (int)in.len;
}
