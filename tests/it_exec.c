/*
 * it_exec: `gsap-broker exec`, the gsh-compatible client, end to end against the real broker
 * and a real database: a governed run leaves its receipt, a failing command exits 1, replayed,
 * consumed, expired and tampered ACs exit 2 without running, corpus and command mismatches
 * exit 3, and the configuration and transport errors exit 125.
 *
 * The client runs as a child of the test with its own environment (GSAP_BROKER_URL pointing at
 * the test broker, GSAP_TOKEN an issuer+executor key of tenant "acme", plus each test's
 * variables); its stdout and stderr are captured separately.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tst_check.h"
#include "brk_crypto.h"
#include "brk_jcs.h"
#include "../cli/exec_env.h"   /* CLI_AC_MAX (constants only: no link) */
#include "../cli/exec_spool.h" /* CLI_SPOOL_MAX_FILES, ... */
#include "tst_broker.h"
#include "tst_pg.h"

#define DB "it_exec"
#define EXEC_TIMEOUT_MS 60000
#define ENV_MAX 32
#define INHERITED_FD 7

static tst_broker_t B;
static char *TOKEN, *ADMIN, *APPROVER;
static char CORPUS[BRK_CID_LEN + 1], OTHER_CORPUS[BRK_CID_LEN + 1], PARAMS[BRK_CID_LEN + 1];
static char URL[64];

static void setup(void)
{
    const char *ci = tst_pg_createdb(DB);
    ck_assert_int_eq(tst_broker_start(&B, ci, NULL), 0);
    TOKEN = tst_keys_create(&B, "acme", "issuer,executor");
    ADMIN = tst_keys_create(&B, "acme", "admin");
    APPROVER = tst_keys_create(&B, "acme", "approver");
    brk_cid_of_bytes("corpus entry 1", 14, CORPUS);
    brk_cid_of_bytes("corpus entry 2", 14, OTHER_CORPUS);
    brk_cid_of_bytes("{}", 2, PARAMS);
    snprintf(URL, sizeof URL, "GSAP_BROKER_URL=http://127.0.0.1:%u", B.port);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(TOKEN);
    free(ADMIN);
    free(APPROVER);
}

/* ---- running the client ------------------------------------------------------------------- */

typedef struct child {
    pid_t pid;
    int out_fd, err_fd;
} child_t;

typedef struct result {
    int status;   /* exit code, 128 + signal */
    char *out;    /* stdout, NUL-terminated */
    char *err;    /* stderr, NUL-terminated */
    json_t *json; /* stdout parsed, when it is JSON */
} result_t;

static void result_clear(result_t *r)
{
    free(r->out);
    free(r->err);
    if (r->json)
        json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/*
 * Starts `$GSAP_BROKER_BIN exec ARGS...` with PATH, the sanitizer options, the test's
 * GSAP_BROKER_URL and GSAP_TOKEN, and env (NULL-terminated "NAME=value" entries, which come
 * first and so win over the defaults: glibc's getenv returns the first match).
 */
static child_t spawn_exec_fd(const char *const *env, const char *const *args, int extra_fd);

static child_t spawn_exec(const char *const *env, const char *const *args)
{
    return spawn_exec_fd(env, args, -1);
}

/* As spawn_exec; extra_fd (when >= 0) is also inherited by the client, as descriptor
 * INHERITED_FD without close-on-exec, the way a careless parent would leave one open. */
static child_t spawn_exec_fd(const char *const *env, const char *const *args, int extra_fd)
{
    static const char *const pass[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                       NULL};
    const char *bin = getenv("GSAP_BROKER_BIN");
    char *envp[ENV_MAX], *argv[16], tok[512], passed[4][1024];
    int n = 0, a = 0, op[2], ep[2];
    child_t c = {0};

    ck_assert_ptr_nonnull(bin);
    for (int i = 0; env && env[i]; i++)
        envp[n++] = (char *)env[i];
    for (int i = 0; pass[i]; i++) {
        const char *v = getenv(pass[i]);
        if (v) {
            snprintf(passed[i], sizeof passed[i], "%s=%s", pass[i], v);
            envp[n++] = passed[i];
        }
    }
    snprintf(tok, sizeof tok, "GSAP_TOKEN=%s", TOKEN);
    envp[n++] = URL;
    envp[n++] = tok;
    envp[n] = NULL;
    argv[a++] = (char *)bin;
    argv[a++] = "exec";
    for (int i = 0; args[i]; i++)
        argv[a++] = (char *)args[i];
    argv[a] = NULL;
    ck_assert_int_eq(pipe2(op, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(ep, O_CLOEXEC), 0);
    fflush(NULL);
    c.pid = fork();
    ck_assert_int_ge(c.pid, 0);
    if (c.pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(op[1], 1) < 0 || dup2(ep[1], 2) < 0)
            _exit(127);
        if (extra_fd >= 0 && dup2(extra_fd, INHERITED_FD) < 0)
            _exit(127);
        execve(bin, argv, envp);
        _exit(127);
    }
    close(op[1]);
    close(ep[1]);
    c.out_fd = op[0];
    c.err_fd = ep[0];
    return c;
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* Reads the child's output until it closes both pipes, then reaps it (killed after 60 s). */
static result_t wait_exec(child_t c)
{
    result_t r = {0};
    size_t olen = 0, elen = 0;
    int fds[2] = {c.out_fd, c.err_fd}, st = 0;
    struct timespec t0, t;

    append(&r.out, &olen, "", 0);
    append(&r.err, &elen, "", 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 > EXEC_TIMEOUT_MS) {
            kill(c.pid, SIGKILL);
            break;
        }
        if (poll(p, 2, 1000) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            char buf[4096];
            ssize_t n;
            if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(fds[i], buf, sizeof buf);
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
            } else if (i == 0) {
                append(&r.out, &olen, buf, (size_t)n);
            } else {
                append(&r.err, &elen, buf, (size_t)n);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    while (waitpid(c.pid, &st, 0) < 0 && errno == EINTR)
        ;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.json = json_loads(r.out, 0, NULL);
    if (r.err[0])
        fprintf(stderr, "[exec stderr] %s", r.err);
    return r;
}

static result_t run_exec(const char *const *env, const char *const *args)
{
    return wait_exec(spawn_exec(env, args));
}

/* ---- helpers ----------------------------------------------------------------------------------
 */

static void cid_of(const char *s, char out[BRK_CID_LEN + 1])
{
    brk_cid_of_bytes(s, strlen(s), out);
}

/* Issues an AC for command on corpus over HTTP, as an issuer would hand one to gsh. The
 * returned string is the AC's JSON (caller frees). */
static char *issue_ac_mode(const char *command, const char *corpus, int ttl, int session)
{
    char cmd[BRK_CID_LEN + 1], body[1024];
    tst_resp_t r;
    char *ac;

    cid_of(command, cmd);
    snprintf(body, sizeof body,
             "{\"accord_template\":\"default\",\"ttl_seconds\":%d,\"session_mode\":%s,"
             "\"operation\":{\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
             "\"parameters_cid\":\"%s\"}}",
             ttl, session ? "true" : "false", cmd, corpus, PARAMS);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", TOKEN, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    ac = json_dumps(r.json, JSON_COMPACT);
    tst_resp_clear(&r);
    return ac;
}

static char *issue_ac(const char *command, const char *corpus, int ttl)
{
    return issue_ac_mode(command, corpus, ttl, 0);
}

static char *ac_context(const char *ac)
{
    json_t *j = json_loads(ac, 0, NULL);
    char *id = strdup(json_string_value(json_object_get(j, "context_id")));
    json_decref(j);
    return id;
}

static long crs_count(const char *context_id)
{
    char sql[256];
    PGconn *c = tst_pg_connect(DB);
    long n;
    if (context_id)
        snprintf(sql, sizeof sql, "SELECT count(*) FROM crs WHERE context_id = '%s'", context_id);
    else
        snprintf(sql, sizeof sql, "SELECT count(*) FROM crs");
    n = tst_pg_long(c, sql);
    PQfinish(c);
    return n;
}

static char *crs_value(const char *context_id, const char *expr)
{
    char sql[512];
    PGconn *c = tst_pg_connect(DB);
    char *v;
    snprintf(sql, sizeof sql, "SELECT %s FROM crs WHERE context_id = '%s'", expr, context_id);
    v = tst_pg_scalar(c, sql);
    PQfinish(c);
    return v;
}

static const char *jget(const result_t *r, const char *key)
{
    return json_string_value(json_object_get(r->json, key));
}

/* "GSAP_AC=<ac>" (caller frees). */
static char *ac_env(const char *ac)
{
    size_t n = strlen(ac) + 9;
    char *e = malloc(n);
    snprintf(e, n, "GSAP_AC=%s", ac);
    return e;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

START_TEST(governed_run)
{
    char corpus_env[100], hash[BRK_CID_LEN + 1];
    const char *env[] = {corpus_env, NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);

    /* plain: the output passes through, one receipt is stored with the hashes of the run */
    result_t r = run_exec(env, (const char *const[]){"--exec", "echo hello", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "hello\n");
    result_clear(&r);
    ck_assert_int_eq(crs_count(NULL), 1);

    /* --json: one object with the receipt's CIDs, the stdout captured */
    r = run_exec(env, (const char *const[]){"--json", "--exec", "echo hello", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.json);
    ck_assert(json_is_true(json_object_get(r.json, "success")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "exit_code")), 0);
    ck_assert_str_eq(jget(&r, "stdout"), "hello\n");
    ck_assert_str_eq(jget(&r, "output"), "hello\n"); /* gsh's name for it */
    ck_assert_str_eq(jget(&r, "ac_mode"), "single");
    ck_assert(brk_cid_valid(jget(&r, "lineage_cid")));
    ck_assert(brk_cid_valid(jget(&r, "chronicle_cid")));
    ck_assert_ptr_nonnull(jget(&r, "cr_id"));
    ck_assert_ptr_nonnull(strstr(jget(&r, "session_url"), jget(&r, "ac_id")));
    ck_assert_ptr_null(json_object_get(r.json, "error"));
    const char *ctx = jget(&r, "ac_id");
    ck_assert_int_eq(crs_count(ctx), 1);
    char *v = crs_value(ctx, "lineage_cid");
    ck_assert_str_eq(v, jget(&r, "lineage_cid"));
    free(v);
    v = crs_value(ctx, "effective_outcome || ' ' || exit_code");
    ck_assert_str_eq(v, "completed 0");
    free(v);
    v = crs_value(ctx, "cr->>'stdout_hash'");
    cid_of("hello\n", hash);
    ck_assert_str_eq(v, hash);
    free(v);
    v = crs_value(ctx, "cr->>'command_hash'");
    cid_of("echo hello", hash);
    ck_assert_str_eq(v, hash);
    free(v);
    v = crs_value(ctx, "(cr->>'output_bytes') || ' ' || (cr->'chronicle'->>'behavior_state')");
    ck_assert_str_eq(v, "6 unavailable");
    free(v);
    result_clear(&r);
}
END_TEST

START_TEST(failed_command)
{
    char corpus_env[100];
    const char *env[] = {corpus_env, NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);

    result_t r =
        run_exec(env, (const char *const[]){"--json", "--exec", "echo oops >&2; exit 7", NULL});
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(r.json);
    ck_assert(json_is_false(json_object_get(r.json, "success")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "exit_code")), 7);
    ck_assert_ptr_nonnull(jget(&r, "error"));
    ck_assert_ptr_nonnull(strstr(r.err, "oops")); /* stderr still passes through */
    char *v = crs_value(jget(&r, "ac_id"), "outcome || ' ' || exit_code");
    ck_assert_str_eq(v, "failed 7");
    free(v);
    result_clear(&r);

    r = run_exec(env, (const char *const[]){"--exec", "exit 7", NULL});
    ck_assert_int_eq(r.status, 1);
    result_clear(&r);
    /* killed by a signal: 128 + 9 */
    r = run_exec(env, (const char *const[]){"--json", "--exec", "kill -9 $$", NULL});
    ck_assert_int_eq(r.status, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "exit_code")), 137);
    result_clear(&r);
}
END_TEST

START_TEST(replayed_ac)
{
    char *ac = issue_ac("echo once", CORPUS, 300);
    char *ctx = ac_context(ac), *e = ac_env(ac);
    const char *env[] = {e, NULL};

    result_t r = run_exec(env, (const char *const[]){"--exec", "echo once", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "once\n");
    result_clear(&r);
    /* the same AC again: refused before the command runs, and no second receipt */
    r = run_exec(env, (const char *const[]){"--json", "--exec", "echo once", NULL});
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_null(json_object_get(r.json, "stdout"));
    ck_assert_ptr_nonnull(strstr(jget(&r, "error"), "consumed"));
    ck_assert_int_eq(crs_count(ctx), 1);
    result_clear(&r);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST

/* Another executor posts a CR while the command runs: the broker refuses ours with 409. */
START_TEST(consumed_during_run)
{
    char dir[] = "/tmp/it_exec.XXXXXX", cmd[256], marker[128], body[1024];
    char chash[BRK_CID_LEN + 1];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(marker, sizeof marker, "%s/started", dir);
    snprintf(cmd, sizeof cmd, "touch %s; sleep 2", marker);
    cid_of(cmd, chash);
    char *ac = issue_ac(cmd, CORPUS, 300);
    char *ctx = ac_context(ac), *e = ac_env(ac);
    const char *env[] = {e, NULL};
    tst_resp_t hr;
    struct stat sb;

    child_t c = spawn_exec(env, (const char *const[]){"--exec", cmd, NULL});
    for (int i = 0; i < 400 && stat(marker, &sb) != 0; i++)
        usleep(25000);
    ck_assert_int_eq(stat(marker, &sb), 0);
    time_t now = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof body,
             "{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
             "\"started_at\":\"%s\",\"completed_at\":\"%s\","
             "\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\","
             "\"chronicle\":{\"behavior_state\":\"unavailable\"}}",
             ctx, ts, ts, chash, CORPUS, PARAMS);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", TOKEN, body, &hr), 0);
    ck_assert_msg(hr.status == 200, "complete: %d %s", hr.status, hr.body);
    tst_resp_clear(&hr);
    result_t r = wait_exec(c);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "ac_consumed"));
    ck_assert_int_eq(crs_count(ctx), 1);
    result_clear(&r);
    unlink(marker);
    rmdir(dir);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST

START_TEST(expired_ac)
{
    char *ac = issue_ac("echo late", CORPUS, 1);
    char *ctx = ac_context(ac), *e = ac_env(ac);
    const char *env[] = {e, NULL};

    sleep(2);
    result_t r = run_exec(env, (const char *const[]){"--exec", "echo late", NULL});
    ck_assert_int_eq(r.status, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_ptr_nonnull(strstr(r.err, "expired"));
    ck_assert_int_eq(crs_count(ctx), 0);
    result_clear(&r);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST

START_TEST(tampered_ac)
{
    char *ac = issue_ac("echo tamper", CORPUS, 300);
    json_t *j = json_loads(ac, 0, NULL);
    char *bad, *e;

    /* one changed member breaks the signature */
    json_object_set_new(j, "capability_set", json_string("0x0000ffff"));
    bad = json_dumps(j, JSON_COMPACT);
    e = ac_env(bad);
    const char *env[] = {e, NULL};
    result_t r = run_exec(env, (const char *const[]){"--exec", "echo tamper", NULL});
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "signature"));
    ck_assert_str_eq(r.out, "");
    result_clear(&r);
    free(bad);
    free(e);
    /* a signature that is not base64url of 64 bytes */
    json_object_set_new(j, "capability_set", json_string("0x00000000"));
    json_object_set_new(j, "signature", json_string("ed25519:AAAA"));
    bad = json_dumps(j, JSON_COMPACT);
    e = ac_env(bad);
    env[0] = e;
    r = run_exec(env, (const char *const[]){"--exec", "echo tamper", NULL});
    ck_assert_int_eq(r.status, 2);
    result_clear(&r);
    free(bad);
    free(e);
    json_decref(j);
    free(ac);
}
END_TEST

START_TEST(corpus_and_command_mismatch)
{
    char *ac = issue_ac("echo scoped", CORPUS, 300);
    char *ctx = ac_context(ac), *e = ac_env(ac), corpus_env[100];
    const char *env[] = {e, corpus_env, NULL};

    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", OTHER_CORPUS);
    result_t r = run_exec(env, (const char *const[]){"--json", "--exec", "echo scoped", NULL});
    ck_assert_int_eq(r.status, 3);
    ck_assert_ptr_nonnull(strstr(jget(&r, "error"), "corpus"));
    ck_assert_ptr_null(json_object_get(r.json, "stdout"));
    result_clear(&r);
    /* the right corpus, another command */
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    r = run_exec(env, (const char *const[]){"--exec", "echo unscoped", NULL});
    ck_assert_int_eq(r.status, 3);
    ck_assert_str_eq(r.out, "");
    result_clear(&r);
    ck_assert_int_eq(crs_count(ctx), 0);
    /* and the AC is still good for what it authorizes */
    r = run_exec(env, (const char *const[]){"--exec", "echo scoped", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "scoped\n");
    result_clear(&r);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST

START_TEST(dry_run)
{
    char corpus_env[100];
    const char *env[] = {corpus_env, NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);

    result_t r =
        run_exec(env, (const char *const[]){"--dry-run", "--json", "--exec", "echo never", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert(json_is_true(json_object_get(r.json, "success")));
    ck_assert(json_is_true(json_object_get(r.json, "dry_run")));
    ck_assert(json_is_null(json_object_get(r.json, "cr_id")));
    ck_assert_ptr_nonnull(jget(&r, "ac_id"));
    result_clear(&r);
    /* without --json the checked AC itself */
    r = run_exec(env, (const char *const[]){"--dry-run", "--exec", "echo never", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(r.json);
    ck_assert_str_eq(jget(&r, "status"), "authorized");
    result_clear(&r);
    ck_assert_int_eq(crs_count(NULL), 0);
}
END_TEST

START_TEST(bad_config)
{
    char corpus_env[100];
    const char *none[] = {NULL};
    const char *args[] = {"--exec", "echo x", NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);

    /* no corpus and no AC */
    result_t r = run_exec(none, args);
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "GSAP_CORPUS_CID"));
    result_clear(&r);
    /* another scheme, a malformed CID, no command */
    r = run_exec((const char *const[]){"GSAP_BROKER_URL=ftp://127.0.0.1:1", corpus_env, NULL},
                 args);
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    r = run_exec((const char *const[]){"GSAP_SELF_AUTH=1", corpus_env, NULL}, args);
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "GSAP_SPOOL_DIR"));
    result_clear(&r);
    r = run_exec((const char *const[]){"GSAP_CORPUS_CID=sha256:12", NULL}, args);
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    r = run_exec((const char *const[]){corpus_env, NULL}, (const char *const[]){"--json", NULL});
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    /* an unknown accord is the caller's configuration, not a denial */
    r = run_exec((const char *const[]){corpus_env, "GSAP_ACCORD_TEMPLATE=nope", NULL}, args);
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    /* a bad token is an authorization failure */
    r = run_exec((const char *const[]){corpus_env, "GSAP_TOKEN=gsap.acme.x.y", NULL}, args);
    ck_assert_int_eq(r.status, 2);
    result_clear(&r);
}
END_TEST

START_TEST(broker_unreachable)
{
    char corpus_env[100];
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    /* port 1 on loopback: connection refused, retried, then exit 4 (not 125: gsh tells an
     * absent broker from a broken configuration), over http and https alike */
    result_t r =
        run_exec((const char *const[]){"GSAP_BROKER_URL=http://127.0.0.1:1", corpus_env, NULL},
                 (const char *const[]){"--json", "--exec", "echo x", NULL});
    ck_assert_int_eq(r.status, 4);
    ck_assert_ptr_nonnull(strstr(jget(&r, "error"), "cannot reach"));
    ck_assert(json_is_false(json_object_get(r.json, "success")));
    ck_assert(json_is_null(json_object_get(r.json, "exit_code")));
    result_clear(&r);
    r = run_exec((const char *const[]){"GSAP_BROKER_URL=https://127.0.0.1:1", corpus_env, NULL},
                 (const char *const[]){"--exec", "echo x", NULL});
    ck_assert_int_eq(r.status, 4);
    result_clear(&r);
    /* the help names the exit codes */
    r = run_exec((const char *const[]){NULL}, (const char *const[]){"--help", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "4 broker unreachable"));
    result_clear(&r);
}
END_TEST

/* A session AC takes several receipts: the pre-flight check lets an active AC through. */
START_TEST(session_ac)
{
    char *ac = issue_ac_mode("echo again", CORPUS, 300, 1);
    char *ctx = ac_context(ac), *e = ac_env(ac);
    const char *env[] = {e, NULL};

    for (int i = 0; i < 2; i++) {
        result_t r = run_exec(env, (const char *const[]){"--json", "--exec", "echo again", NULL});
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(jget(&r, "ac_mode"), "session");
        result_clear(&r);
    }
    ck_assert_int_eq(crs_count(ctx), 2);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST

/* An accord whose bit 0x80 needs an approver. */
static void put_elevation_accord(void)
{
    const char *accord = "{\"name\":\"elev\",\"ttl_max_seconds\":600,\"session_mode_allowed\":true,"
                         "\"capability_mask\":\"0x000000ff\",\"elevation_required\":\"0x00000080\","
                         "\"corpus_allow\":[],\"environment_commitment\":null,\"posture_level\":3,"
                         "\"shell_class\":\"Application\",\"signed_receipts\":false}";
    char hdr[512];
    tst_resp_t r;
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\nContent-Type: application/json\r\n",
             ADMIN);
    ck_assert_int_eq(
        tst_http(B.port, "PUT", "/admin/accords/elev", hdr, accord, strlen(accord), &r), 0);
    ck_assert_msg(r.status == 200, "put accord: %d %s", r.status, r.body);
    tst_resp_clear(&r);
}

/* Waits for the client's pending AC to appear and decides it as an approver would. */
static char *decide_pending(const char *decision)
{
    PGconn *c = tst_pg_connect(DB);
    char *ctx = NULL, body[256];
    tst_resp_t r;

    for (int i = 0; i < 400 && ctx == NULL; i++) {
        ctx = tst_pg_scalar(c, "SELECT context_id FROM acs WHERE status = 'pending'");
        if (ctx == NULL)
            usleep(25000);
    }
    PQfinish(c);
    ck_assert_ptr_nonnull(ctx);
    snprintf(body, sizeof body, "{\"context_id\":\"%s\",\"decision\":\"%s\"}", ctx, decision);
    ck_assert_int_eq(tst_post_json(B.port, "/governance/elevate/", APPROVER, body, &r), 0);
    ck_assert_msg(r.status == 200, "elevate: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    return ctx;
}

START_TEST(elevation)
{
    char corpus_env[100];
    const char *env[] = {corpus_env, "GSAP_ACCORD_TEMPLATE=elev", "GSAP_CAPABILITY_SET=0x00000080",
                         "GSAP_ELEVATION_WAIT_S=20", NULL};
    const char *args[] = {"--exec", "echo elevated", NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    put_elevation_accord();

    /* approved while the client polls: the re-signed AC verifies and the command runs */
    child_t c = spawn_exec(env, args);
    char *ctx = decide_pending("approve");
    result_t r = wait_exec(c);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "elevated\n");
    ck_assert_int_eq(crs_count(ctx), 1);
    result_clear(&r);
    free(ctx);
    /* refused: revoked, exit 2, nothing runs */
    c = spawn_exec(env, args);
    ctx = decide_pending("refuse");
    r = wait_exec(c);
    ck_assert_int_eq(r.status, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_ptr_nonnull(strstr(r.err, "revoked"));
    ck_assert_int_eq(crs_count(ctx), 0);
    result_clear(&r);
    free(ctx);
    /* nobody decides within the wait */
    env[3] = "GSAP_ELEVATION_WAIT_S=1";
    r = run_exec(env, args);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "not approved within 1 s"));
    result_clear(&r);
}
END_TEST

/* A denial receipt (a capability outside the accord's mask) is exit 2. */
START_TEST(denied)
{
    char corpus_env[100];
    const char *env[] = {corpus_env, "GSAP_CAPABILITY_SET=0x00010000", NULL};
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    result_t r = run_exec(env, (const char *const[]){"--exec", "echo no", NULL});
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "capability_not_allowed"));
    ck_assert_str_eq(r.out, "");
    result_clear(&r);
}
END_TEST


/* ---- the governed command cannot forge its own receipt ------------------------------------ */

/* The whole file (NUL-terminated, caller frees), or NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, n;
    char chunk[4096];
    if (f == NULL)
        return NULL;
    append(&buf, &len, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        append(&buf, &len, chunk, n);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/*
 * Hole 1: the command is what is governed. It looks for credentials everywhere it could (its
 * environment, exec's /proc/<pid>/environ, its descriptors) and posts a CR for the context
 * with whatever token it found, before exec posts the real one. Its environment has no GSAP_*
 * or CHRONICLE_* variable, it inherits no descriptor but 0-2 (exec itself was handed one), the
 * forgery is refused, and the one CR stored is exec's, with the run's hashes.
 */
START_TEST(command_cannot_forge_receipt)
{
    char dir[] = "/tmp/it_exec_forge.XXXXXX", cmd[4096], path[256], hash[BRK_CID_LEN + 1];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(
        cmd, sizeof cmd,
        "D=%s; env > $D/env; ls -l /proc/$$/fd > $D/fds; "
        "tr '\\0' '\\n' < /proc/$PPID/environ > $D/penv; "
        "tok=${GSAP_TOKEN:-$(sed -n 's/^GSAP_TOKEN=//p' $D/penv)}; "
        "ac=${GSAP_AC:-$(sed -n 's/^GSAP_AC=//p' $D/penv)}; "
        "ctx=$(printf '%%s' \"$ac\" | sed -n 's/.*\"context_id\":\"\\([^\"]*\\)\".*/\\1/p'); "
        "now=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ); "
        "curl -s -o $D/forge.body -w '%%{http_code}' -H \"Authorization: Bearer $tok\" "
        "-H 'Content-Type: application/json' -d "
        "\"{\\\"context_id\\\":\\\"$ctx\\\",\\\"outcome\\\":\\\"completed\\\",\\\"exit_code\\\":0,"
        "\\\"started_at\\\":\\\"$now\\\",\\\"completed_at\\\":\\\"$now\\\","
        "\\\"command_hash\\\":\\\"%s\\\",\\\"corpus_entry_cid\\\":\\\"%s\\\","
        "\\\"parameters_cid\\\":\\\"%s\\\",\\\"chronicle\\\":{\\\"behavior_state\\\":"
        "\\\"unavailable\\\"}}\" http://127.0.0.1:%u/governance/complete/ > $D/forge.status; "
        "echo real",
        dir, CORPUS, CORPUS, PARAMS, B.port);
    char *ac = issue_ac(cmd, CORPUS, 300);
    char *ctx = ac_context(ac), *e = ac_env(ac);
    const char *env[] = {e, "CHRONICLE_SESSION_ID=sess-forge", "GSAP_INSECURE=0", NULL};
    snprintf(path, sizeof path, "%s/secret", dir);
    write_file(path, "x", 1);
    int fd = open(path, O_RDONLY); /* no O_CLOEXEC: the client inherits it */
    ck_assert_int_ge(fd, 0);

    result_t r = wait_exec(spawn_exec_fd(env, (const char *const[]){"--exec", cmd, NULL}, fd));
    close(fd);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "real\n");
    result_clear(&r);

    /* what the command saw */
    snprintf(path, sizeof path, "%s/env", dir);
    char *seen = slurp(path);
    ck_assert_ptr_nonnull(seen);
    ck_assert_ptr_nonnull(strstr(seen, "PATH="));
    for (char *l = seen; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        ck_assert_msg(strncmp(l, "GSAP_", 5) != 0 && strncmp(l, "CHRONICLE_", 10) != 0,
                      "the command saw %.40s", l);
    free(seen);
    snprintf(path, sizeof path, "%s/penv", dir);
    seen = slurp(path);
    ck_assert_ptr_nonnull(seen);
    ck_assert_ptr_null(strstr(seen, TOKEN)); /* exec's own environ no longer shows it */
    free(seen);
    snprintf(path, sizeof path, "%s/fds", dir);
    seen = slurp(path);
    /* (the shell keeps descriptors of its own, such as a saved copy of 1 at 10) */
    ck_assert_ptr_nonnull(strstr(seen, " 0 -> "));
    ck_assert_ptr_null(strstr(seen, "secret"));
    ck_assert_ptr_null(strstr(seen, "socket:"));
    free(seen);
    snprintf(path, sizeof path, "%s/forge.status", dir);
    seen = slurp(path);
    ck_assert_ptr_nonnull(seen);
    ck_assert_str_eq(seen, "401");
    free(seen);

    /* the broker holds exactly one CR for the context: exec's */
    ck_assert_int_eq(crs_count(ctx), 1);
    char *v = crs_value(ctx, "exit_code || ' ' || (cr->>'stdout_hash') || ' ' || "
                             "(cr->>'command_hash')");
    char want[3 * BRK_CID_LEN];
    cid_of("real\n", hash);
    snprintf(want, sizeof want, "0 %s ", hash);
    cid_of(cmd, hash);
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s", hash);
    ck_assert_str_eq(v, want);
    free(v);
    rm_rf(dir);
    free(ac);
    free(ctx);
    free(e);
}
END_TEST


/* ---- gsh compatibility: the AC's forms, the plain-http rule --------------------------------- */

/* base64 of s, standard alphabet with padding (url: '-', '_' and no padding). */
static char *b64(const char *s, int url)
{
    size_t n = strlen(s), o = 0;
    char *enc = malloc(brk_b64url_len(n) + 4);
    brk_b64url_encode((const uint8_t *)s, n, enc);
    o = strlen(enc);
    if (!url) {
        for (size_t i = 0; i < o; i++)
            enc[i] = enc[i] == '-' ? '+' : enc[i] == '_' ? '/' : enc[i];
        while (o % 4)
            enc[o++] = '=';
        enc[o] = '\0';
    }
    return enc;
}

/* Runs `echo <word>` under a fresh AC given as env or file (text made by encode). */
static void run_with_ac(const char *word, int as_file, int url, int base64, int want_status)
{
    char cmd[64], dir[] = "/tmp/it_exec_ac.XXXXXX", path[128];
    snprintf(cmd, sizeof cmd, "echo %s", word);
    char *ac = issue_ac(cmd, CORPUS, 300), *ctx = ac_context(ac);
    char *text = base64 ? b64(ac, url) : strdup(ac);
    char *e = ac_env(text);
    result_t r;

    if (as_file) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/ac", dir);
        write_file(path, text, strlen(text));
        r = run_exec((const char *const[]){NULL},
                     (const char *const[]){"--json", "--ac", path, "--exec", cmd, NULL});
        rm_rf(dir);
    } else {
        r = run_exec((const char *const[]){e, NULL},
                     (const char *const[]){"--json", "--exec", cmd, NULL});
    }
    ck_assert_msg(r.status == want_status, "%s: exit %d", word, r.status);
    if (want_status == 0) {
        ck_assert_str_eq(jget(&r, "ac_id"), ctx);
        ck_assert_int_eq(crs_count(ctx), 1);
    }
    result_clear(&r);
    free(ac), free(ctx), free(text), free(e);
}

START_TEST(ac_forms)
{
    run_with_ac("json-env", 0, 0, 0, 0);
    run_with_ac("b64-env", 0, 0, 1, 0);
    run_with_ac("b64url-env", 0, 1, 1, 0);
    run_with_ac("json-file", 1, 0, 0, 0);
    run_with_ac("b64-file", 1, 0, 1, 0);
    run_with_ac("b64url-file", 1, 1, 1, 0);

    /* decoded or not, a changed AC fails its signature (exit 2), and garbage is refused */
    char *ac = issue_ac("echo tampered", CORPUS, 300);
    json_t *j = json_loads(ac, 0, NULL);
    json_object_set_new(j, "capability_set", json_string("0x0000ffff"));
    char *bad = json_dumps(j, JSON_COMPACT), *enc = b64(bad, 0), *e = ac_env(enc);
    result_t r = run_exec((const char *const[]){e, NULL},
                          (const char *const[]){"--exec", "echo tampered", NULL});
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "signature"));
    result_clear(&r);
    r = run_exec((const char *const[]){"GSAP_AC=not*base64", NULL},
                 (const char *const[]){"--exec", "echo tampered", NULL});
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "neither JSON nor base64"));
    result_clear(&r);
    r = run_exec((const char *const[]){NULL}, (const char *const[]){"--ac", "/nonexistent/ac",
                                                                     "--exec", "echo x", NULL});
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    json_decref(j);
    free(ac), free(bad), free(enc), free(e);
}
END_TEST

/* CLI_AC_MAX: an AC padded with white space to exactly the limit is read; one byte more is
 * refused before anything runs. */
START_TEST(ac_size_limit)
{
    char dir[] = "/tmp/it_exec_acmax.XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ac", dir);
    for (int extra = 0; extra <= 1; extra++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "echo max%d", extra);
        char *ac = issue_ac(cmd, CORPUS, 300), *ctx = ac_context(ac);
        size_t n = CLI_AC_MAX + (size_t)extra, len = strlen(ac);
        char *padded = malloc(n + 1);
        ck_assert_uint_lt(len, n);
        memcpy(padded, ac, len);
        memset(padded + len, ' ', n - len);
        padded[n] = '\0';
        write_file(path, padded, n);
        result_t r = run_exec((const char *const[]){NULL},
                              (const char *const[]){"--ac", path, "--exec", cmd, NULL});
        if (extra == 0) {
            ck_assert_int_eq(r.status, 0);
            ck_assert_int_eq(crs_count(ctx), 1);
        } else {
            ck_assert_int_eq(r.status, 125);
            ck_assert_ptr_nonnull(strstr(r.err, "larger than"));
            ck_assert_str_eq(r.out, "");
            ck_assert_int_eq(crs_count(ctx), 0);
        }
        result_clear(&r);
        /* the same through the environment */
        char *e = ac_env(padded);
        if (extra == 1) {
            r = run_exec((const char *const[]){e, NULL},
                         (const char *const[]){"--exec", cmd, NULL});
            ck_assert_int_eq(r.status, 125);
            ck_assert_ptr_nonnull(strstr(r.err, "larger than"));
            result_clear(&r);
        }
        free(e), free(padded), free(ac), free(ctx);
    }
    rm_rf(dir);
}
END_TEST

/*
 * The SandboxExec rule: a token goes over plain http only to loopback. 0.0.0.0 reaches this
 * machine but is not a loopback address, so it shows the refusal (nothing is sent, no AC is
 * issued) and, with GSAP_INSECURE=1, the same broker working.
 */
START_TEST(plain_http_only_to_loopback)
{
    char url0[64], urll[64], corpus_env[100];
    snprintf(url0, sizeof url0, "GSAP_BROKER_URL=http://0.0.0.0:%u", B.port);
    snprintf(urll, sizeof urll, "GSAP_BROKER_URL=http://localhost:%u", B.port);
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    PGconn *c = tst_pg_connect(DB);

    result_t r = run_exec((const char *const[]){url0, corpus_env, NULL},
                          (const char *const[]){"--exec", "echo remote", NULL});
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "refusing to send GSAP_TOKEN over plain http"));
    ck_assert_str_eq(r.out, "");
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM acs"), 0);
    result_clear(&r);
    r = run_exec((const char *const[]){url0, corpus_env, "GSAP_INSECURE=1", NULL},
                 (const char *const[]){"--exec", "echo remote", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "remote\n");
    result_clear(&r);
    r = run_exec((const char *const[]){urll, corpus_env, NULL},
                 (const char *const[]){"--exec", "echo local", NULL});
    ck_assert_int_eq(r.status, 0);
    result_clear(&r);
    r = run_exec((const char *const[]){url0, corpus_env, "GSAP_INSECURE=yes", NULL},
                 (const char *const[]){"--exec", "echo remote", NULL});
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM acs"), 2);
    PQfinish(c);
}
END_TEST


/* ---- https ------------------------------------------------------------------------------------ */

/* A self-signed certificate (its own CA) for the names in san ("DNS:localhost", ...). */
static void make_cert(const char *dir, const char *name, const char *san)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=%s -addext 'subjectAltName=%s' -keyout %s/%s.key -out %s/%s.pem "
             "2>/dev/null",
             name, san, dir, name, dir, name);
    ck_assert_int_eq(system(cmd), 0);
}

/* A second broker on B's database and data directory (so the same keys), serving https with
 * dir/<name>.pem. Returns its pid once GET /healthz answers 200 over https. */
static pid_t start_tls_broker(const char *dir, const char *name, unsigned short port)
{
    char listen[64], db[600], data[300], cert[300], key[300], path[1200], logp[300], cmd[1024];
    const char *bin = getenv("GSAP_BROKER_BIN");
    snprintf(listen, sizeof listen, "GSAP_LISTEN=127.0.0.1:%u", port);
    snprintf(db, sizeof db, "GSAP_DATABASE_URL=%s", B.conninfo);
    snprintf(data, sizeof data, "GSAP_DATA_DIR=%s", B.dir);
    snprintf(cert, sizeof cert, "GSAP_TLS_CERT=%s/%s.pem", dir, name);
    snprintf(key, sizeof key, "GSAP_TLS_KEY=%s/%s.key", dir, name);
    snprintf(path, sizeof path, "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    snprintf(logp, sizeof logp, "%s/tls-broker.log", dir);
    char *envp[] = {listen, db, data, cert, key, path, "GSAP_THREADS=1", NULL};
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execve(bin, (char *[]){(char *)bin, "serve", NULL}, envp);
        _exit(127);
    }
    snprintf(cmd, sizeof cmd,
             "curl -s --cacert %s/%s.pem -o /dev/null -w '%%{http_code}' "
             "https://localhost:%u/healthz",
             dir, name, port);
    for (int i = 0; i < 300; i++) {
        char out[16] = "";
        FILE *p = popen(cmd, "r");
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        pclose(p);
        if (strcmp(out, "200") == 0)
            return pid;
        usleep(100 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("the https broker did not get healthy (see %s)", logp);
    return -1;
}

static void stop_tls_broker(pid_t pid)
{
    int st;
    kill(pid, SIGTERM);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

/*
 * exec over https: the broker's certificate (for DNS:localhost only) verifies against
 * GSAP_CA_FILE and the run is stored; the same broker reached as 127.0.0.1 (a name the
 * certificate does not carry), under another CA, or with the system store (which does not know
 * this CA) is refused before any request is sent: exit 125, no AC issued.
 */
START_TEST(https_broker)
{
    char dir[] = "/tmp/it_exec_tls.XXXXXX", ca[200], wrong_ca[200], url_name[80], url_ip[80];
    char corpus_env[100];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_cert(dir, "broker", "DNS:localhost");
    make_cert(dir, "other", "DNS:localhost");
    unsigned short port;
    ck_assert_int_eq(tst_free_port(&port), 0);
    pid_t pid = start_tls_broker(dir, "broker", port);
    snprintf(ca, sizeof ca, "GSAP_CA_FILE=%s/broker.pem", dir);
    snprintf(wrong_ca, sizeof wrong_ca, "GSAP_CA_FILE=%s/other.pem", dir);
    snprintf(url_name, sizeof url_name, "GSAP_BROKER_URL=https://localhost:%u", port);
    snprintf(url_ip, sizeof url_ip, "GSAP_BROKER_URL=https://127.0.0.1:%u", port);
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    PGconn *c = tst_pg_connect(DB);

    result_t r = run_exec((const char *const[]){url_name, ca, corpus_env, NULL},
                          (const char *const[]){"--json", "--exec", "echo tls", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(jget(&r, "output"), "tls\n");
    ck_assert_int_eq(crs_count(jget(&r, "ac_id")), 1);
    result_clear(&r);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM acs"), 1);

    const char *const *bad[] = {
        (const char *const[]){url_name, wrong_ca, corpus_env, NULL},
        (const char *const[]){url_ip, ca, corpus_env, NULL},
        (const char *const[]){url_name, corpus_env, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run_exec(bad[i], (const char *const[]){"--exec", "echo tls", NULL});
        ck_assert_msg(r.status == 125, "case %zu: exit %d", i, r.status);
        ck_assert_ptr_nonnull(strstr(r.err, "certificate verify failed"));
        ck_assert_str_eq(r.out, "");
        result_clear(&r);
    }
    /* a CA file that is not there is a configuration error */
    r = run_exec((const char *const[]){url_name, "GSAP_CA_FILE=/nonexistent.pem", corpus_env,
                                       NULL},
                 (const char *const[]){"--exec", "echo tls", NULL});
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "CA file"));
    result_clear(&r);
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM acs"), 1);
    PQfinish(c);
    stop_tls_broker(pid);
    rm_rf(dir);
}
END_TEST


/* ---- the self-authorized fallback and the spool ---------------------------------------------- */

/* The spool's receipt files (names starting "cr-"), and the last one's name into last. */
static int spool_files(const char *spool, const char *suffix, char *last, size_t cap)
{
    DIR *d = opendir(spool);
    struct dirent *e;
    int n = 0;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name), ls = strlen(suffix);
        if (strncmp(e->d_name, "cr-", 3) == 0 && l > ls && strcmp(e->d_name + l - ls, suffix) == 0) {
            n++;
            if (last)
                snprintf(last, cap, "%s", e->d_name);
        }
    }
    closedir(d);
    return n;
}

static json_t *spool_json(const char *spool, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", spool, name);
    char *text = slurp(path);
    ck_assert_ptr_nonnull(text);
    json_t *j = json_loads(text, 0, NULL);
    ck_assert_msg(json_is_object(j), "spool file %s: %s", name, text);
    free(text);
    return j;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/*
 * The broker is down: without GSAP_SELF_AUTH the command does not run (exit 4); with it, the
 * command runs and its receipt lands in a new 0600 file of a 0700 spool, a normal CR plus
 * "self_authorized": true under a client-made context id.
 */
START_TEST(self_authorized_run_is_spooled)
{
    char dir[] = "/tmp/it_exec_self.XXXXXX", spool[128], spool_env[160], corpus_env[100];
    char marker[160], cmd[256], name[128], path[400], hash[BRK_CID_LEN + 1];
    struct stat sb;
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(spool_env, sizeof spool_env, "GSAP_SPOOL_DIR=%s", spool);
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    snprintf(marker, sizeof marker, "%s/ran", dir);
    snprintf(cmd, sizeof cmd, "touch %s; echo offline", marker);
    const char *down = "GSAP_BROKER_URL=http://127.0.0.1:1";

    result_t r = run_exec((const char *const[]){down, corpus_env, spool_env, NULL},
                          (const char *const[]){"--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 4);
    ck_assert(!exists(marker));
    ck_assert(!exists(spool));
    result_clear(&r);

    const char *env[] = {down, corpus_env, spool_env, "GSAP_SELF_AUTH=1", NULL};
    r = run_exec(env, (const char *const[]){"--json", "--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert(exists(marker));
    ck_assert(json_is_true(json_object_get(r.json, "success")));
    ck_assert(json_is_true(json_object_get(r.json, "self_authorized")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "exit_code")), 0);
    ck_assert_str_eq(jget(&r, "output"), "offline\n");
    ck_assert_ptr_nonnull(strstr(r.err, "self-authorized"));
    const char *self = jget(&r, "ac_id");
    ck_assert_uint_eq(strlen(self), 5 + 36);
    ck_assert(strncmp(self, "self-", 5) == 0 && self[13] == '-' && self[18] == '-' &&
              self[19] == '4' && self[23] == '-' && self[28] == '-');
    ck_assert_int_eq(stat(spool, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 07777, 0700);
    ck_assert_int_eq(spool_files(spool, ".json", name, sizeof name), 1);
    ck_assert_str_eq(jget(&r, "spool_file"), name);
    snprintf(path, sizeof path, "%s/%s", spool, name);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 07777, 0600);
    json_t *cr = spool_json(spool, name);
    ck_assert(json_is_true(json_object_get(cr, "self_authorized")));
    ck_assert_str_eq(json_string_value(json_object_get(cr, "context_id")), self);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "outcome")), "completed");
    ck_assert_int_eq(json_integer_value(json_object_get(cr, "exit_code")), 0);
    cid_of(cmd, hash);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "command_hash")), hash);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "corpus_entry_cid")), CORPUS);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "parameters_cid")), PARAMS);
    cid_of("offline\n", hash);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "stdout_hash")), hash);
    cid_of("", hash);
    ck_assert_str_eq(json_string_value(json_object_get(cr, "stderr_hash")), hash);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(cr, "started_at")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(cr, "completed_at")));
    json_decref(cr);
    result_clear(&r);

    /* a failing command: exit 1, and its receipt says so */
    r = run_exec(env, (const char *const[]){"--json", "--exec", "echo bad >&2; exit 7", NULL});
    ck_assert_int_eq(r.status, 1);
    ck_assert_int_eq(spool_files(spool, ".json", NULL, 0), 2);
    cr = spool_json(spool, jget(&r, "spool_file"));
    ck_assert_str_eq(json_string_value(json_object_get(cr, "outcome")), "failed");
    ck_assert_int_eq(json_integer_value(json_object_get(cr, "exit_code")), 7);
    json_decref(cr);
    result_clear(&r);

    /* a spool others may write to, or not ours, or a symbolic link: refused, nothing runs */
    unlink(marker);
    ck_assert_int_eq(chmod(spool, 0770), 0);
    r = run_exec(env, (const char *const[]){"--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 125);
    ck_assert_ptr_nonnull(strstr(r.err, "refusing the spool directory"));
    result_clear(&r);
    ck_assert_int_eq(chmod(spool, 0700), 0);
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(spool, 65534, 65534), 0);
        r = run_exec(env, (const char *const[]){"--exec", cmd, NULL});
        ck_assert_int_eq(r.status, 125);
        ck_assert_ptr_nonnull(strstr(r.err, "refusing the spool directory"));
        result_clear(&r);
        ck_assert_int_eq(chown(spool, 0, 0), 0);
    }
    char link[160], link_env[200];
    snprintf(link, sizeof link, "%s/link", dir);
    ck_assert_int_eq(symlink(spool, link), 0);
    snprintf(link_env, sizeof link_env, "GSAP_SPOOL_DIR=%s", link);
    r = run_exec((const char *const[]){link_env, down, corpus_env, "GSAP_SELF_AUTH=1", NULL},
                 (const char *const[]){"--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 125);
    result_clear(&r);
    ck_assert(!exists(marker));

    /* CLI_SPOOL_MAX_FILES: filled to one below, one more run fits, the next one does not run */
    for (int i = spool_files(spool, "", NULL, 0); i < CLI_SPOOL_MAX_FILES - 1; i++) {
        snprintf(path, sizeof path, "%s/cr-00000000T000000Z-%06d.json", spool, i);
        write_file(path, "{}", 2);
    }
    r = run_exec(env, (const char *const[]){"--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert(exists(marker));
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, "", NULL, 0), CLI_SPOOL_MAX_FILES);
    unlink(marker);
    r = run_exec(env, (const char *const[]){"--exec", cmd, NULL});
    ck_assert_int_eq(r.status, 4);
    ck_assert_ptr_nonnull(strstr(r.err, "spool is full"));
    ck_assert(!exists(marker));
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, "", NULL, 0), CLI_SPOOL_MAX_FILES);
    rm_rf(dir);
}
END_TEST

/* A broker that answers every request with 503 (a thread of the test). */
typedef struct sick {
    int lfd;
    unsigned short port;
    pthread_t th;
    int requests;
} sick_t;

static void *sick_main(void *arg)
{
    sick_t *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        char buf[8192];
        if (fd < 0)
            return NULL;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        (void)n;
        __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
        const char *resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
        n = send(fd, resp, strlen(resp), MSG_NOSIGNAL);
        close(fd);
    }
}

static void sick_start(sick_t *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    memset(s, 0, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(s->lfd, 16), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&s->th, NULL, sick_main, s), 0);
}

static void sick_stop(sick_t *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    close(s->lfd);
    pthread_join(s->th, NULL);
}

/*
 * --flush-spool keeps a receipt while the broker is unreachable (exit 4) or failing (5xx),
 * renames one the broker refuses for good, reads files up to CLI_SPOOL_MAX_BYTES, and posts a
 * self-authorized receipt to the real broker.
 *
 * The broker creates the self-authorized context server-side and stores the receipt flagged.
 */
START_TEST(flush_spool)
{
    char dir[] = "/tmp/it_exec_flush.XXXXXX", spool[128], spool_env[160], corpus_env[100];
    char url[64], name[128], hash[BRK_CID_LEN + 1];
    const char *flush[] = {"--json", "--flush-spool", NULL};
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(spool_env, sizeof spool_env, "GSAP_SPOOL_DIR=%s", spool);
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    const char *down = "GSAP_BROKER_URL=http://127.0.0.1:1";

    result_t r = run_exec((const char *const[]){down, corpus_env, spool_env, "GSAP_SELF_AUTH=1",
                                                NULL},
                          (const char *const[]){"--json", "--exec", "echo later", NULL});
    ck_assert_int_eq(r.status, 0);
    char *self = strdup(jget(&r, "ac_id"));
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, ".json", name, sizeof name), 1);

    /* unreachable: exit 4, kept */
    r = run_exec((const char *const[]){down, spool_env, NULL}, flush);
    ck_assert_int_eq(r.status, 4);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "kept")), 1);
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, ".json", NULL, 0), 1);

    /* 503 (after the retries): kept */
    sick_t sick;
    sick_start(&sick);
    snprintf(url, sizeof url, "GSAP_BROKER_URL=http://127.0.0.1:%u", sick.port);
    r = run_exec((const char *const[]){url, spool_env, NULL}, flush);
    sick_stop(&sick);
    ck_assert_int_eq(r.status, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "posted")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "kept")), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "503"));
    ck_assert_int_ge(sick.requests, 1);
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, ".json", NULL, 0), 1);

    /* the real broker */
    r = run_exec((const char *const[]){spool_env, NULL}, flush);
    ck_assert_msg(r.status == 0, "flush: %d %s", r.status, r.err);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "posted")), 1);
    ck_assert_int_eq(spool_files(spool, "", NULL, 0), 0);
    ck_assert_int_eq(crs_count(self), 1);
    char *v = crs_value(self, "(cr->>'self_authorized') || ' ' || (cr->>'stdout_hash')");
    char want[BRK_CID_LEN + 8];
    cid_of("later\n", hash);
    snprintf(want, sizeof want, "true %s", hash);
    ck_assert_str_eq(v, want);
    free(v);
    /* stored flagged, and under the default accord (self_authorized_allowed false) violated */
    v = crs_value(self, "array_to_string(flags, ',') || ' ' || effective_outcome");
    ck_assert_str_eq(v, "self_authorized,self_authorized_not_allowed violated");
    free(v);
    result_clear(&r);
    free(self);
    rm_rf(dir);
}
END_TEST

/* A receipt the broker refuses for good (400: not a CR) is renamed .rejected and reported; a
 * file of CLI_SPOOL_MAX_BYTES (plus the newline exec writes) is read and posted, one byte more
 * is not read and stays. */
START_TEST(flush_spool_rejects_and_limits)
{
    char dir[] = "/tmp/it_exec_rej.XXXXXX", spool_env[160], path[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0700), 0);
    snprintf(spool_env, sizeof spool_env, "GSAP_SPOOL_DIR=%s", dir);
    size_t max = CLI_SPOOL_MAX_BYTES;
    char *big = malloc(max + 2);
    big[0] = '{';
    memset(big + 1, ' ', max);
    big[max - 1] = '}';
    big[max] = '\n'; /* exactly the limit, and the newline */
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-a-max.json", dir);
    write_file(path, big, max + 1);
    big[max - 1] = ' ';
    big[max] = '}'; /* one byte over */
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-b-over.json", dir);
    write_file(path, big, max + 1);
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-c-notcr.json", dir);
    write_file(path, "{\"hello\":1}\n", 12);
    free(big);

    result_t r = run_exec((const char *const[]){spool_env, NULL},
                          (const char *const[]){"--json", "--flush-spool", NULL});
    ck_assert_int_eq(r.status, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "posted")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "rejected")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "kept")), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "b-over.json: larger than"));
    ck_assert_ptr_nonnull(strstr(r.err, "c-notcr.json: broker answered 4"));
    result_clear(&r);
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-a-max.json.rejected", dir);
    ck_assert(exists(path));
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-c-notcr.json.rejected", dir);
    ck_assert(exists(path));
    snprintf(path, sizeof path, "%s/cr-00000000T000000Z-b-over.json", dir);
    ck_assert(exists(path));
    /* a rejected file is not posted again */
    r = run_exec((const char *const[]){spool_env, NULL},
                 (const char *const[]){"--json", "--flush-spool", NULL});
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "rejected")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "kept")), 1);
    result_clear(&r);
    ck_assert_int_eq(crs_count(NULL), 0);
    rm_rf(dir);
}
END_TEST


/*
 * The broker dies while the command runs: under GSAP_SELF_AUTH the receipt (for the broker's
 * own context) is spooled instead of lost, and --flush-spool posts it once the broker is back:
 * 200, the file removed, the CR stored with the run's hashes.
 */
START_TEST(receipt_spooled_when_broker_goes_away)
{
    char dir[] = "/tmp/it_exec_away.XXXXXX", spool[128], spool_env[160], corpus_env[100];
    char marker[160], cmd[256], hash[BRK_CID_LEN + 1];
    struct stat sb;
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(spool, sizeof spool, "%s/spool", dir);
    snprintf(spool_env, sizeof spool_env, "GSAP_SPOOL_DIR=%s", spool);
    snprintf(corpus_env, sizeof corpus_env, "GSAP_CORPUS_CID=%s", CORPUS);
    snprintf(marker, sizeof marker, "%s/started", dir);
    snprintf(cmd, sizeof cmd, "touch %s; sleep 2; echo done", marker);

    child_t c = spawn_exec((const char *const[]){corpus_env, spool_env, "GSAP_SELF_AUTH=1", NULL},
                           (const char *const[]){"--json", "--exec", cmd, NULL});
    for (int i = 0; i < 400 && stat(marker, &sb) != 0; i++)
        usleep(25000);
    ck_assert_int_eq(stat(marker, &sb), 0);
    tst_broker_kill(&B);
    result_t r = wait_exec(c);
    ck_assert_msg(r.status == 0, "exit %d: %s", r.status, r.out);
    ck_assert_ptr_null(json_object_get(r.json, "self_authorized"));
    ck_assert_ptr_nonnull(jget(&r, "spool_file"));
    char *ctx = strdup(jget(&r, "ac_id"));
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, ".json", NULL, 0), 1);

    ck_assert_int_eq(tst_broker_restart(&B), 0);
    ck_assert_int_eq(crs_count(ctx), 0);
    r = run_exec((const char *const[]){spool_env, NULL},
                 (const char *const[]){"--json", "--flush-spool", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert(json_is_true(json_object_get(r.json, "success")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "posted")), 1);
    result_clear(&r);
    ck_assert_int_eq(spool_files(spool, "", NULL, 0), 0);
    ck_assert_int_eq(crs_count(ctx), 1);
    char *v = crs_value(ctx, "cr->>'stdout_hash'");
    cid_of("done\n", hash);
    ck_assert_str_eq(v, hash);
    free(v);
    /* nothing left: a second flush posts nothing and succeeds */
    r = run_exec((const char *const[]){spool_env, NULL},
                 (const char *const[]){"--flush-spool", NULL});
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "posted 0, kept 0, rejected 0\n");
    result_clear(&r);
    free(ctx);
    rm_rf(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("it_exec");
    TCase *tc = tcase_create("exec");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, governed_run);
    tcase_add_test(tc, failed_command);
    tcase_add_test(tc, replayed_ac);
    tcase_add_test(tc, consumed_during_run);
    tcase_add_test(tc, expired_ac);
    tcase_add_test(tc, tampered_ac);
    tcase_add_test(tc, corpus_and_command_mismatch);
    tcase_add_test(tc, dry_run);
    tcase_add_test(tc, bad_config);
    tcase_add_test(tc, broker_unreachable);
    tcase_add_test(tc, session_ac);
    tcase_add_test(tc, elevation);
    tcase_add_test(tc, denied);
    tcase_add_test(tc, command_cannot_forge_receipt);
    tcase_add_test(tc, ac_forms);
    tcase_add_test(tc, ac_size_limit);
    tcase_add_test(tc, plain_http_only_to_loopback);
    tcase_add_test(tc, https_broker);
    tcase_add_test(tc, self_authorized_run_is_spooled);
    tcase_add_test(tc, flush_spool);
    tcase_add_test(tc, flush_spool_rejects_and_limits);
    tcase_add_test(tc, receipt_spooled_when_broker_goes_away);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(suite());
}
