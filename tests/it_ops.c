/*
 * it_ops: operator ergonomics against the real binary.
 *
 * - `gsap-broker config check` prints the effective configuration with secrets masked (a
 *   database URL's password, a webhook's token) and exits 0; each invalid setting makes it
 *   exit 1 with a message naming the variable, and a secret in an invalid value is not echoed.
 * - GSAP_LOG_LEVEL=warn: a serving broker writes no info line (no per-request lines).
 * - SIGHUP with GSAP_LOG_FILE: after the file was renamed away (logrotate), the broker writes
 *   to a new file at the path; the renamed one gets nothing more.
 * - SIGHUP with TLS: after the certificate files are replaced, new handshakes get the new
 *   certificate, without a restart; a broken replacement keeps the old one.
 *
 * - Every command answers --help from the one table (cli/help.c), the same text as `help
 *   COMMAND`; the man page has each command and option, equals docs/gsap-broker.1 and the
 *   build's copy, and groff reads it without a warning.
 * - version prints the build's commit and the schema version.
 *
 * The broker is started by hand here (fork and exec with an exact environment), since the
 * harness polls plain HTTP and its log is its stderr.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"

#define MAX_ENV 32
#define MAX_ARGS 8
#define WAIT_TRIES 100 /* x 100 ms */
#define SECRET "s3cr3t-Pa55"

static char DIR_[] = "/tmp/gsap-ops-XXXXXX";
static const char *CONNINFO;

static void setup(void)
{
    strcpy(DIR_, "/tmp/gsap-ops-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(DIR_));
    CONNINFO = tst_pg_createdb("it_ops");
}

static void teardown(void)
{
    char cmd[300];
    if (getenv("GSAP_TEST_KEEP") == NULL) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", DIR_);
        if (system(cmd) != 0)
            fprintf(stderr, "it_ops: cannot remove %s\n", DIR_);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0, got;
    if (f == NULL)
        return strdup("");
    do {
        if (cap - n < 4096)
            p = realloc(p, cap = cap * 2 + 4096);
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    p[n] = 0;
    return p;
}

/* Starts `gsap-broker args...` with exactly PATH, the sanitizer options and extra (NULL-ended
 * "NAME=value" list); stdout to out_path, stderr to err_path. Returns the pid. */
static pid_t spawn(const char *const *extra, const char *out_path, const char *err_path,
                   const char *const *args)
{
    static const char *const inherit[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                          "LSAN_OPTIONS"};
    char *envp[MAX_ENV];
    size_t n = 0;
    for (size_t i = 0; i < sizeof inherit / sizeof inherit[0]; i++) {
        const char *v = getenv(inherit[i]);
        if (v != NULL) {
            envp[n] = malloc(strlen(inherit[i]) + strlen(v) + 2);
            sprintf(envp[n++], "%s=%s", inherit[i], v);
        }
    }
    for (size_t i = 0; extra && extra[i] && n < MAX_ENV - 1; i++)
        envp[n++] = strdup(extra[i]);
    envp[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int e = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        char *argv[MAX_ARGS + 2] = {getenv("GSAP_BROKER_BIN")};
        for (size_t i = 0; args[i] != NULL && i < MAX_ARGS; i++)
            argv[i + 1] = (char *)args[i];
        execve(argv[0], argv, envp);
        _exit(127);
    }
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    return pid;
}

/* `gsap-broker args...` with extra settings; its exit code, stdout and stderr (malloc'd). */
static int cli(const char *const *extra, const char *const *args, char **out, char **err)
{
    char op[300], ep[300];
    int st;
    snprintf(op, sizeof op, "%s/cli.out", DIR_);
    snprintf(ep, sizeof ep, "%s/cli.err", DIR_);
    unlink(op);
    unlink(ep);
    pid_t pid = spawn(extra, op, ep, args);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    *out = slurp(op);
    *err = slurp(ep);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int config_check(const char *const *extra, char **out, char **err)
{
    return cli(extra, (const char *const[]){"config", "check", NULL}, out, err);
}

START_TEST(config_check_prints_effective_masked)
{
    char db[600], *out, *err;
    /* a URI whose password is in the user info and again as a parameter */
    snprintf(db, sizeof db,
             "GSAP_DATABASE_URL=postgresql://gsap_app:" SECRET
             "@db.example.com:6543/gsap?sslmode=require&password=" SECRET "2");
    const char *env[] = {db,
                         "CHRONICLE_WEBHOOK_URL=https://hook:" SECRET
                         "@hooks.example.com/in?sig=" SECRET,
                         "GSAP_LOG_LEVEL=warn", "GSAP_THREADS=64", "GSAP_RATE_PER_S=7", NULL};
    int st = config_check(env, &out, &err);
    ck_assert_msg(st == 0, "config check exited %d: %s", st, err);
    ck_assert_msg(strstr(out, SECRET) == NULL, "a secret is printed:\n%s", out);
    ck_assert_msg(strstr(err, SECRET) == NULL, "a secret is printed:\n%s", err);
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_DATABASE_URL=user=gsap_app password=*** dbname=gsap "
                                      "host=db.example.com port=6543 sslmode=require\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nCHRONICLE_WEBHOOK_URL=https://***@hooks.example.com/in?***\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_LOG_LEVEL=warn\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_THREADS=64\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_RATE_PER_S=7\n"));
    /* defaults are printed too, and marked */
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_RATE_BURST=1000  (default)\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_FN_MAX_ATTEMPTS=8  (default)\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_LISTEN=127.0.0.1:8080  (default)\n"));
    ck_assert_str_eq(err, "");
    free(out);
    free(err);

    /* a keyword connection string: the password is masked there as well */
    const char *env2[] = {"GSAP_DATABASE_URL=host=/run/pg user=app password='" SECRET "'", NULL};
    st = config_check(env2, &out, &err);
    ck_assert_msg(st == 0, "config check exited %d: %s", st, err);
    ck_assert_ptr_null(strstr(out, SECRET));
    ck_assert_ptr_nonnull(strstr(out, "\nGSAP_DATABASE_URL=user=app password=*** host=/run/pg\n"));
    free(out);
    free(err);
}
END_TEST

START_TEST(config_check_names_invalid_settings)
{
    static const struct {
        const char *env, *names;
    } cases[] = {
        {"GSAP_THREADS=0", "GSAP_THREADS"},
        {"GSAP_THREADS=65", "GSAP_THREADS"},
        {"GSAP_LISTEN=localhost", "GSAP_LISTEN"},
        {"GSAP_LOG_LEVEL=debug", "GSAP_LOG_LEVEL"},
        {"GSAP_LOG_LEVEL=INFO", "GSAP_LOG_LEVEL"},
        {"GSAP_FN_BATCH=1001", "GSAP_FN_BATCH"},
        {"GSAP_FN_WORKERS=0", "GSAP_FN_WORKERS"},
        {"GSAP_FN_WORKERS=17", "GSAP_FN_WORKERS"},
        {"GSAP_FN_POLL_MS=x", "GSAP_FN_POLL_MS"},
        {"GSAP_TIME_SKEW_S=3601", "GSAP_TIME_SKEW_S"},
        {"GSAP_TLS_CERT=/etc/hostname", "GSAP_TLS_KEY"},
        {"GSAP_PUBLIC_URL=ftp://x", "GSAP_PUBLIC_URL"},
        {"GSAP_PG_BIN=/nonexistent", "GSAP_PG_BIN"},
        {"GSAP_MIGRATIONS_DIR=/nonexistent", "GSAP_MIGRATIONS_DIR"},
        {"GSAP_LOG_FILE=/nonexistent/dir/broker.log", "GSAP_LOG_FILE"},
        /* libpq refuses it; the password in it is not repeated */
        {"GSAP_DATABASE_URL=host=x password=" SECRET " nosuchoption=1", "GSAP_DATABASE_URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        const char *env[] = {cases[i].env, NULL};
        int st = config_check(env, &out, &err);
        ck_assert_msg(st == 1, "%s: config check exited %d", cases[i].env, st);
        ck_assert_msg(strstr(err, cases[i].names) != NULL, "%s: the message does not name %s: %s",
                      cases[i].env, cases[i].names, err);
        ck_assert_msg(strstr(err, SECRET) == NULL && strstr(out, SECRET) == NULL,
                      "%s: the secret is echoed", cases[i].env);
        free(out);
        free(err);
    }
    /* the boundaries themselves are valid, and so is every level */
    static const char *const fine[] = {"GSAP_THREADS=1",      "GSAP_FN_BATCH=1000",
                                       "GSAP_FN_WORKERS=1",   "GSAP_FN_WORKERS=16",
                                       "GSAP_TIME_SKEW_S=3600", "GSAP_LOG_LEVEL=error",
                                       "GSAP_LOG_LEVEL=warn", "GSAP_LOG_LEVEL=info"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
        char *out, *err;
        const char *env[] = {fine[i], NULL};
        int st = config_check(env, &out, &err);
        ck_assert_msg(st == 0, "%s: config check exited %d: %s", fine[i], st, err);
        free(out);
        free(err);
    }
}
END_TEST

typedef struct served {
    pid_t pid;
    unsigned short port;
    char log[300];
} served_t;

/* Starts `serve` with the test database and extra settings; waits until it answers (plain
 * HTTP /healthz, or the TLS handshake when tls). */
static void serve(served_t *s, const char *const *extra, int tls)
{
    char db[700], listen[64], data[300], cmd[600], out[300];
    const char *env[MAX_ENV];
    size_t n = 0;
    ck_assert_int_eq(tst_free_port(&s->port), 0);
    snprintf(db, sizeof db, "GSAP_DATABASE_URL=%s", CONNINFO);
    snprintf(listen, sizeof listen, "GSAP_LISTEN=127.0.0.1:%u", s->port);
    snprintf(data, sizeof data, "GSAP_DATA_DIR=%s/data", DIR_);
    env[n++] = db;
    env[n++] = listen;
    env[n++] = data;
    env[n++] = "GSAP_THREADS=2";
    for (size_t i = 0; extra && extra[i]; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    snprintf(s->log, sizeof s->log, "%s/serve.stderr", DIR_);
    snprintf(out, sizeof out, "%s/serve.stdout", DIR_);
    s->pid = spawn(env, out, s->log, (const char *const[]){"serve", NULL});
    for (int i = 0; i < WAIT_TRIES; i++) {
        usleep(100 * 1000);
        if (tls)
            snprintf(cmd, sizeof cmd,
                     "curl -skf -o /dev/null https://127.0.0.1:%u/healthz 2>/dev/null", s->port);
        else
            snprintf(cmd, sizeof cmd,
                     "curl -sf -o /dev/null http://127.0.0.1:%u/healthz 2>/dev/null", s->port);
        if (system(cmd) == 0)
            return;
        ck_assert_msg(waitpid(s->pid, NULL, WNOHANG) == 0, "the broker exited: %s",
                      slurp(s->log));
    }
    ck_abort_msg("the broker did not get healthy");
}

static void stop(served_t *s)
{
    int st;
    kill(s->pid, SIGTERM);
    ck_assert_int_eq(waitpid(s->pid, &st, 0), s->pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the broker's exit status: %d", st);
}

/* GET path with X-Request-Id id (plain HTTP), expecting 200. */
static void get_with_id(unsigned short port, const char *path, const char *id)
{
    tst_resp_t r;
    char hdr[128];
    snprintf(hdr, sizeof hdr, "X-Request-Id: %s\r\n", id);
    ck_assert_int_eq(tst_http(port, "GET", path, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
}

/* Waits until file holds needle; returns 1, or 0 after the time limit. */
static int wait_for(const char *file, const char *needle)
{
    for (int i = 0; i < WAIT_TRIES; i++) {
        char *t = slurp(file);
        int found = strstr(t, needle) != NULL;
        free(t);
        if (found)
            return 1;
        usleep(100 * 1000);
    }
    return 0;
}

START_TEST(log_level_warn_drops_info)
{
    served_t s;
    const char *env[] = {"GSAP_LOG_LEVEL=warn", NULL};
    serve(&s, env, 0);
    get_with_id(s.port, "/healthz", "level-probe-1");
    get_with_id(s.port, "/readyz", "level-probe-2");
    stop(&s);
    char *log = slurp(s.log);
    ck_assert_msg(strstr(log, "\"level\":\"info\"") == NULL, "info lines at level warn:\n%s", log);
    ck_assert_ptr_null(strstr(log, "level-probe-1"));
    free(log);

    /* the default level logs each request: the check above can fail */
    unlink(s.log);
    serve(&s, NULL, 0);
    get_with_id(s.port, "/healthz", "level-probe-3");
    ck_assert(wait_for(s.log, "level-probe-3"));
    stop(&s);
}
END_TEST

START_TEST(sighup_reopens_log_file)
{
    served_t s;
    char logfile[300], rotated[300], setting[320];
    snprintf(logfile, sizeof logfile, "%s/broker.log", DIR_);
    snprintf(rotated, sizeof rotated, "%s/broker.log.1", DIR_);
    snprintf(setting, sizeof setting, "GSAP_LOG_FILE=%s", logfile);
    const char *env[] = {setting, NULL};
    serve(&s, env, 0);
    get_with_id(s.port, "/healthz", "before-rotation");
    ck_assert(wait_for(logfile, "before-rotation"));
    /* logrotate's default: rename, then tell the daemon */
    ck_assert_int_eq(rename(logfile, rotated), 0);
    get_with_id(s.port, "/healthz", "after-rename");
    ck_assert(wait_for(rotated, "after-rename"));
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert(wait_for(logfile, "log file reopened"));
    get_with_id(s.port, "/healthz", "after-reopen");
    ck_assert(wait_for(logfile, "after-reopen"));
    char *old = slurp(rotated);
    ck_assert_ptr_null(strstr(old, "after-reopen"));
    free(old);
    struct stat st;
    ck_assert_int_eq(stat(logfile, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    /* a second SIGHUP is no stop either */
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    get_with_id(s.port, "/healthz", "after-second-hup");
    ck_assert(wait_for(logfile, "after-second-hup"));
    stop(&s);
}
END_TEST

static void make_cert(const char *cn, const char *cert, const char *key)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
             "-subj /CN=%s -keyout '%s' -out '%s' 2>/dev/null",
             cn, key, cert);
    ck_assert_int_eq(system(cmd), 0);
}

/* The subject CN the broker presents to a new handshake now. */
static void presented_cn(unsigned short port, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u </dev/null 2>/dev/null | "
             "openssl x509 -noout -subject -nameopt multiline 2>/dev/null | "
             "sed -n 's/^ *commonName *= *//p'",
             port);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    out[strcspn(out, "\r\n")] = 0;
    pclose(p);
}

START_TEST(sighup_reloads_tls_certificate)
{
    served_t s;
    char cert[300], key[300], e1[320], e2[320], cn[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", DIR_);
    snprintf(key, sizeof key, "%s/key.pem", DIR_);
    snprintf(e1, sizeof e1, "GSAP_TLS_CERT=%s", cert);
    snprintf(e2, sizeof e2, "GSAP_TLS_KEY=%s", key);
    make_cert("first.example", cert, key);
    const char *env[] = {e1, e2, NULL};
    serve(&s, env, 1);
    presented_cn(s.port, cn, sizeof cn);
    ck_assert_str_eq(cn, "first.example");

    /* new files in place; until SIGHUP the broker keeps the first */
    make_cert("second.example", cert, key);
    presented_cn(s.port, cn, sizeof cn);
    ck_assert_str_eq(cn, "first.example");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert(wait_for(s.log, "TLS certificate reloaded"));
    presented_cn(s.port, cn, sizeof cn);
    ck_assert_str_eq(cn, "second.example");

    /* a key that does not match the certificate: refused, the second stays */
    char other_cert[300], other_key[300];
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", DIR_);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", DIR_);
    make_cert("third.example", other_cert, other_key);
    ck_assert_int_eq(rename(other_cert, cert), 0);
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert(wait_for(s.log, "TLS certificate not reloaded"));
    presented_cn(s.port, cn, sizeof cn);
    ck_assert_str_eq(cn, "second.example");
    stop(&s);
}
END_TEST


/* Splits words ("keys create") into args (pointers into buf), then appends extra; NULL-ended. */
static void words_args(const char *words, char *buf, size_t cap, const char **args,
                       const char *extra)
{
    size_t n = 0;
    snprintf(buf, cap, "%s", words);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < MAX_ARGS - 2;
         w = strtok_r(NULL, " ", &save))
        args[n++] = w;
    if (extra)
        args[n++] = extra;
    args[n] = NULL;
}

/* man page text with roff's escaped hyphens plain again */
static char *unescape_hyphens(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] == '-')
            continue;
        *o++ = *s;
    }
    *o = 0;
    return out;
}

/* Every command the usage lists answers COMMAND --help with its help (the same text as
 * `help COMMAND`), and the man page describes it with each of its options. */
START_TEST(help_for_every_command)
{
    char *usage, *err, *man, *manerr;
    ck_assert_int_eq(cli(NULL, (const char *const[]){"--help", NULL}, &usage, &err), 0);
    ck_assert_int_eq(cli(NULL, (const char *const[]){"help", "--man", NULL}, &man, &manerr), 0);
    char *plain_man = unescape_hyphens(man);
    char *list = strstr(usage, "\ncommands:\n");
    ck_assert_ptr_nonnull(list);
    size_t ncmds = 0;
    /* "  keys create          create an API key..." */
    for (char *line = strchr(list + 1, '\n') + 1; line && line[0] == ' ' && line[1] == ' ';) {
        char name[64], buf[128], *out, *err2, *out2, *err3, want[128];
        const char *args[MAX_ARGS];
        char *end = strstr(line + 2, "  ");
        ck_assert_ptr_nonnull(end);
        snprintf(name, sizeof name, "%.*s", (int)(end - line - 2), line + 2);
        ncmds++;

        words_args(name, buf, sizeof buf, args, "--help");
        int st = cli(NULL, args, &out, &err2);
        ck_assert_msg(st == 0, "%s --help exited %d: %s", name, st, err2);
        snprintf(want, sizeof want, "usage: gsap-broker %s", name);
        ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s --help: %s", name, out);
        ck_assert_msg(strstr(out, "\nexit status:\n") != NULL, "%s --help: no exit status", name);
        words_args(name, buf, sizeof buf, args, NULL);
        const char *hargs[MAX_ARGS + 1] = {"help"};
        for (size_t i = 0; args[i]; i++)
            hargs[i + 1] = args[i], hargs[i + 2] = NULL;
        ck_assert_int_eq(cli(NULL, hargs, &out2, &err3), 0);
        ck_assert_str_eq(out, out2);
        /* the man page has the command and every option its help lists */
        snprintf(want, sizeof want, ".SS \"%s\"", name);
        ck_assert_msg(strstr(plain_man, want) != NULL, "the man page lacks %s", name);
        char *opts = strstr(out, "\noptions:\n");
        for (char *o = opts ? strstr(opts, "\n  --") : NULL; o; o = strstr(o + 1, "\n  --")) {
            char flag[64];
            size_t fl = strcspn(o + 3, " \n");
            snprintf(flag, sizeof flag, "%.*s", (int)fl, o + 3);
            ck_assert_msg(strstr(plain_man, flag) != NULL, "the man page lacks %s of %s", flag,
                          name);
        }
        free(out);
        free(err2);
        free(out2);
        free(err3);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    /* serve, migrate, keys x4, accords put, accounts put, exec, config check, version, help */
    ck_assert_uint_ge(ncmds, 12);
    free(usage);
    free(err);
    free(man);
    free(manerr);
    free(plain_man);

    /* no such command: 2, and a message */
    ck_assert_int_eq(cli(NULL, (const char *const[]){"help", "keys", "forge", NULL}, &usage, &err),
                     2);
    ck_assert_ptr_nonnull(strstr(err, "no command \"keys forge\""));
    free(usage);
    free(err);
}
END_TEST

/* The man page the binary prints is the committed docs/gsap-broker.1 and the build's copy,
 * and groff reads it without a warning. */
START_TEST(man_page_is_committed_and_clean)
{
    char *man, *err, path[512], cmd[700], *lint;
    ck_assert_int_eq(cli(NULL, (const char *const[]){"help", "--man", NULL}, &man, &err), 0);
    snprintf(path, sizeof path, "%s/docs/gsap-broker.1", getenv("GSAP_SOURCE_DIR"));
    char *committed = slurp(path);
    ck_assert_msg(strcmp(man, committed) == 0,
                  "docs/gsap-broker.1 differs from `gsap-broker help --man`; regenerate it");
    char bin[512];
    snprintf(bin, sizeof bin, "%s", getenv("GSAP_BROKER_BIN"));
    snprintf(path, sizeof path, "%.*s/gsap-broker.1", (int)(strrchr(bin, '/') - bin), bin);
    char *built = slurp(path);
    ck_assert_str_eq(man, built);
    snprintf(cmd, sizeof cmd, "%s/man.1", DIR_);
    FILE *f = fopen(cmd, "w");
    fputs(man, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "groff -man -Tutf8 -ww -z '%s/man.1' >'%s/lint' 2>&1; echo $? >>'%s/lint'",
             DIR_, DIR_, DIR_);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/lint", DIR_);
    lint = slurp(path);
    ck_assert_msg(strcmp(lint, "0\n") == 0, "groff: %s", lint);
    free(lint);
    free(built);
    free(committed);
    free(man);
    free(err);
}
END_TEST

/* version: the release, the commit of the tree it was built from (a commit of this history:
 * HEAD when built after the last commit, an ancestor of it when not rebuilt since; "unknown"
 * outside git), and the schema version (the number of migrations: compiled in, or in
 * GSAP_MIGRATIONS_DIR). */
START_TEST(version_prints_commit_and_schema)
{
    char *out, *err, cmd[900], commit[64] = "";
    size_t nmig = 0;
    int used = 0;
    snprintf(cmd, sizeof cmd, "ls '%s'/migrations/*.sql | wc -l", getenv("GSAP_SOURCE_DIR"));
    FILE *f = popen(cmd, "r");
    ck_assert_int_eq(fscanf(f, "%zu", &nmig), 1);
    pclose(f);

    ck_assert_int_eq(cli(NULL, (const char *const[]){"version", NULL}, &out, &err), 0);
    ck_assert_msg(sscanf(out, "gsap-broker 0.1.0 (commit %63[0-9a-z-], schema %*u)%n", commit,
                         &used) == 1 && used > 0,
                  "version: %s", out);
    char want[64];
    snprintf(want, sizeof want, ", schema %zu)\n", nmig);
    ck_assert_msg(strstr(out, want) != NULL, "version: %s (want %s)", out, want);
    char *dirty = strstr(commit, "-dirty");
    if (dirty)
        *dirty = 0;
    snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse --git-dir >/dev/null 2>&1",
             getenv("GSAP_SOURCE_DIR"));
    if (system(cmd) == 0) {
        ck_assert_uint_eq(strlen(commit), 12);
        snprintf(cmd, sizeof cmd, "git -C '%s' merge-base --is-ancestor %s HEAD",
                 getenv("GSAP_SOURCE_DIR"), commit);
        ck_assert_msg(system(cmd) == 0, "commit %s is not HEAD or one of its ancestors", commit);
    } else {
        ck_assert_str_eq(commit, "unknown");
    }
    free(out);
    free(err);

    /* a migrations directory of two files: schema 2 */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/mig && cp '%s'/migrations/0001_*.sql '%s'/migrations/0002_*.sql %s/mig/",
             DIR_, getenv("GSAP_SOURCE_DIR"), getenv("GSAP_SOURCE_DIR"), DIR_);
    ck_assert_int_eq(system(cmd), 0);
    char setting[320];
    snprintf(setting, sizeof setting, "GSAP_MIGRATIONS_DIR=%s/mig", DIR_);
    ck_assert_int_eq(cli((const char *const[]){setting, NULL},
                         (const char *const[]){"version", NULL}, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, ", schema 2)\n"));
    free(out);
    free(err);
}
END_TEST

/* The next datagram on fd (5 s at most), NUL-terminated into buf; "" on timeout. */
static const char *next_notice(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

/* Type=notify: READY=1 once serving, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on
 * SIGTERM, each a datagram on NOTIFY_SOCKET. */
START_TEST(notify_socket_ready_reload_stop)
{
    served_t s;
    char sock[200], setting[230], buf[256];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 5};
    snprintf(sock, sizeof sock, "%s/notify", DIR_);
    ck_assert_uint_lt(strlen(sock), sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    snprintf(setting, sizeof setting, "NOTIFY_SOCKET=%s", sock);
    const char *env[] = {setting, NULL};
    serve(&s, env, 0);
    ck_assert_str_eq(next_notice(fd, buf, sizeof buf), "READY=1");
    ck_assert_int_eq(kill(s.pid, SIGHUP), 0);
    ck_assert_str_eq(next_notice(fd, buf, sizeof buf), "RELOADING=1");
    ck_assert_str_eq(next_notice(fd, buf, sizeof buf), "READY=1");
    stop(&s);
    ck_assert_str_eq(next_notice(fd, buf, sizeof buf), "STOPPING=1");
    close(fd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_ops");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, config_check_prints_effective_masked);
    tcase_add_test(tc, config_check_names_invalid_settings);
    tcase_add_test(tc, log_level_warn_drops_info);
    tcase_add_test(tc, sighup_reopens_log_file);
    tcase_add_test(tc, sighup_reloads_tls_certificate);
    tcase_add_test(tc, notify_socket_ready_reload_stop);
    tcase_add_test(tc, help_for_every_command);
    tcase_add_test(tc, man_page_is_committed_and_clean);
    tcase_add_test(tc, version_prints_commit_and_schema);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
