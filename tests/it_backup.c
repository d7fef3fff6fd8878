/*
 * it_backup: `gsap-broker backup` under load and `gsap-broker restore` elsewhere, against the
 * real binary on its embedded default cluster.
 *
 * A broker serves receipts (some before the backup, more from a thread while it runs), bills
 * them, and has a finalized invoice. The backup is restored into a new data directory and a
 * second broker serves it: every receipt accepted before the backup started is there (read
 * with the old auditor key: API keys come back too), every invoice is there with its totals,
 * the signing keys are the same (same /.well-known keys), and the finalized invoice's document
 * still verifies with an independent Ed25519 implementation. Receipts that raced the backup
 * are there or not, never half (the context of each restored receipt is there).
 * Refusals: a backup into a non-empty directory, a restore into a non-empty data directory,
 * a restore of a damaged backup; each changes nothing.
 */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define ROOT H("4")
#define BEFORE_BACKUP 5
#define MAX_CRS 2048
#define WAIT_S 60

static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", NULL};
static tst_broker_t B, R;
static char *SHELL, *FINANCE, *AUDITOR;
static char WORK[] = "/tmp/gsap-backup-XXXXXX";

/* The contexts of accepted receipts, in order; the load thread appends. */
static char *ACCEPTED[MAX_CRS];
static size_t NACCEPTED;
static pthread_mutex_t LOCK = PTHREAD_MUTEX_INITIALIZER;
static volatile int STOP;

static void setup(void)
{
    strcpy(WORK, "/tmp/gsap-backup-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(WORK));
    chmod(WORK, 0755); /* the restored cluster runs as postgres when the test is root */
    ck_assert_int_eq(tst_broker_start(&B, NULL, ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
}

static void teardown(void)
{
    char *cmd = tst_fmt("rm -rf '%s'", WORK);
    tst_broker_clear(&R);
    tst_broker_clear(&B);
    if (getenv("GSAP_TEST_KEEP") == NULL && system(cmd) != 0)
        fprintf(stderr, "it_backup: cannot remove %s\n", WORK);
    free(cmd);
    for (size_t i = 0; i < NACCEPTED; i++)
        free(ACCEPTED[i]);
    NACCEPTED = 0;
    free(SHELL), free(FINANCE), free(AUDITOR);
}

/* Issues an AC and posts its receipt; the context id when both were accepted, else NULL. */
static char *post_cr(unsigned short port)
{
    tst_resp_t r;
    char *ctx = NULL;
    char *ab = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                   "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
                   CMD, CORPUS, PARAMS);
    if (tst_post_json(port, "/governance/authorize/", SHELL, ab, &r) != 0 || r.status != 200) {
        tst_resp_clear(&r);
        free(ab);
        return NULL;
    }
    ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    char *cb = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                   "\"started_at\":\"2026-01-01T00:00:00Z\",\"completed_at\":"
                   "\"2026-01-01T00:00:01Z\",\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
                   "\"parameters_cid\":\"%s\",\"chronicle\":{\"session_id\":\"s\","
                   "\"behavior_state\":\"verified\",\"merkle_root\":\"" ROOT "\"}}",
                   ctx, CMD, CORPUS, PARAMS);
    if (tst_post_json(port, "/governance/complete/", SHELL, cb, &r) != 0 || r.status != 200) {
        free(ctx);
        ctx = NULL;
    }
    tst_resp_clear(&r);
    free(ab), free(cb);
    return ctx;
}

static void accept_one(void)
{
    char *ctx = post_cr(B.port);
    ck_assert_ptr_nonnull(ctx);
    pthread_mutex_lock(&LOCK);
    ACCEPTED[NACCEPTED++] = ctx;
    pthread_mutex_unlock(&LOCK);
}

static void *load(void *arg)
{
    (void)arg;
    while (!STOP && NACCEPTED < MAX_CRS) {
        char *ctx = post_cr(B.port);
        if (ctx == NULL)
            continue;
        pthread_mutex_lock(&LOCK);
        ACCEPTED[NACCEPTED++] = ctx;
        pthread_mutex_unlock(&LOCK);
    }
    return NULL;
}

/* GET path as JSON (the session page and invoices are HTML for a browser). */
static int get_json(unsigned short port, const char *path, const char *token, tst_resp_t *r)
{
    char *hdr = token ? tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", token)
                      : strdup("Accept: application/json\r\n");
    int rc = tst_http(port, "GET", path, hdr, NULL, 0, r);
    free(hdr);
    return rc;
}

static tst_resp_t get(unsigned short port, const char *path, const char *token, int expect)
{
    tst_resp_t r;
    ck_assert_int_eq(get_json(port, path, token, &r), 0);
    ck_assert_msg(r.status == expect, "GET %s: %d (want %d) %s", path, r.status, expect, r.body);
    return r;
}

/* The tenant's invoices (the list's "invoices" array, incref'd). */
static json_t *invoices(unsigned short port)
{
    tst_resp_t r = get(port, "/billing/invoices/", FINANCE, 200);
    json_t *arr = json_incref(json_object_get(r.json, "invoices"));
    tst_resp_clear(&r);
    return arr;
}

static char *pubkey(unsigned short port)
{
    tst_resp_t r = get(port, "/.well-known/gsap-broker.json", NULL, 200);
    char *k = json_dumps(json_object_get(r.json, "keys"), JSON_COMPACT | JSON_SORT_KEYS);
    tst_resp_clear(&r);
    return k;
}

/* The independent oracle verifies doc with the Ed25519 public key pub (base64url). */
static void assert_verifies(const json_t *doc, const char *pub)
{
    char path[] = "/tmp/gsap-backup-doc-XXXXXX", line[512] = "";
    char *text = json_dumps(doc, JSON_COMPACT);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *cmd = tst_fmt("node %s/tests/npm/gsap_oracle.mjs verify %s %s", getenv("GSAP_SOURCE_DIR"),
                    path, pub);
    FILE *p = popen(cmd, "r");
    size_t n = fread(line, 1, sizeof line - 1, p);
    line[n] = 0;
    ck_assert_msg(pclose(p) == 0, "the restored invoice does not verify: %s", text);
    line[strcspn(line, "\n")] = 0;
    ck_assert_str_eq(line + 3, tst_str(doc, "invoice_cid"));
    unlink(path);
    free(cmd), free(text);
}

/* `gsap-broker args...` with GSAP_DATA_DIR=data (and PATH, sanitizer options): exit code;
 * its stderr into *err (malloc'd). */
static int run_with_data_dir(const char *data, char **err, const char *a1, const char *a2)
{
    char *errfile = tst_fmt("%s/cli.err", WORK);
    int st;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        static const char *const inherit[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                              "LSAN_OPTIONS"};
        char *envp[8];
        size_t n = 0;
        for (size_t i = 0; i < 4; i++)
            if (getenv(inherit[i]))
                envp[n++] = tst_fmt("%s=%s", inherit[i], getenv(inherit[i]));
        envp[n++] = tst_fmt("GSAP_DATA_DIR=%s", data);
        envp[n] = NULL;
        int e = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int o = open("/dev/null", O_WRONLY);
        if (e < 0 || o < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        char *argv[] = {getenv("GSAP_BROKER_BIN"), (char *)a1, (char *)a2, NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    FILE *f = fopen(errfile, "r");
    char buf[4096] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    *err = strdup(buf);
    free(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(backup_under_load_restores_elsewhere)
{
    tst_resp_t r;
    int st;
    char *backup = tst_fmt("%s/backup", WORK), *data = tst_fmt("%s/restored", WORK);

    /* receipts, billed; the tenant's invoice finalized */
    for (int i = 0; i < BEFORE_BACKUP; i++)
        accept_one();
    json_t *inv = NULL;
    for (int i = 0; i < WAIT_S * 10; i++) {
        json_decref(inv);
        inv = invoices(B.port);
        json_t *first = json_array_get(inv, 0);
        if (json_integer_value(json_object_get(first, "line_count")) >= BEFORE_BACKUP)
            break;
        usleep(100 * 1000);
    }
    const char *inv_id = tst_str(json_array_get(inv, 0), "invoice_id");
    ck_assert_ptr_nonnull(inv_id);
    char *path = tst_fmt("/billing/invoices/%s/finalize", inv_id);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n", FINANCE);
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "finalize: %d %s", r.status, r.body);
    json_t *fin_doc = json_incref(json_object_get(r.json, "document"));
    ck_assert_ptr_nonnull(fin_doc);
    tst_resp_clear(&r);
    free(path), free(hdr);
    char *keys_before = pubkey(B.port);

    /* more receipts while the backup runs */
    pthread_t th;
    STOP = 0;
    ck_assert_int_eq(pthread_create(&th, NULL, load, NULL), 0);
    while (NACCEPTED < BEFORE_BACKUP + 3)
        usleep(10 * 1000);
    pthread_mutex_lock(&LOCK);
    size_t must_have = NACCEPTED; /* accepted before the backup started */
    pthread_mutex_unlock(&LOCK);
    char *out = tst_broker_cli(&B, &st, "backup", backup, NULL);
    STOP = 1;
    pthread_join(th, NULL);
    ck_assert_msg(st == 0, "backup exited %d: %s", st, out);
    json_error_t jerr;
    json_t *man = json_loads(out, 0, &jerr);
    ck_assert_ptr_nonnull(man);
    ck_assert_str_eq(tst_str(man, "format"), "gsap-broker-backup/1");
    json_decref(man);
    free(out);
    json_t *inv_before = invoices(B.port);
    ck_assert_uint_gt(NACCEPTED, must_have); /* the load did run during the backup */

    /* a backup never lands in a directory that holds something */
    out = tst_broker_cli(&B, &st, "backup", backup, NULL);
    ck_assert_int_eq(st, 2);
    free(out);

    /* restore into a new data directory; a second broker serves it */
    char *err;
    st = run_with_data_dir(data, &err, "restore", backup);
    ck_assert_msg(st == 0, "restore exited %d: %s", st, err);
    free(err);
    char *dd = tst_fmt("GSAP_DATA_DIR=%s", data);
    const char *renv[] = {"GSAP_FN_POLL_MS=200", dd, NULL};
    ck_assert_int_eq(tst_broker_start(&R, NULL, renv), 0);

    /* the same signing keys */
    char *keys_after = pubkey(R.port);
    ck_assert_str_eq(keys_after, keys_before);

    /* every receipt accepted before the backup, read with the old auditor key */
    for (size_t i = 0; i < must_have; i++) {
        char *p = tst_fmt("/governance/session/%s/", ACCEPTED[i]);
        r = get(R.port, p, AUDITOR, 200);
        json_t *receipts = json_object_get(r.json, "receipts");
        ck_assert_msg(json_array_size(receipts) == 1, "%s: %s", ACCEPTED[i], r.body);
        tst_resp_clear(&r);
        free(p);
    }
    /* those that raced the backup: whole or absent, never a receipt without its context */
    size_t raced_present = 0;
    for (size_t i = must_have; i < NACCEPTED; i++) {
        char *p = tst_fmt("/governance/session/%s/", ACCEPTED[i]);
        ck_assert_int_eq(get_json(R.port, p, AUDITOR, &r), 0);
        ck_assert_msg(r.status == 200 || r.status == 404, "%s: %d", p, r.status);
        if (r.status == 200)
            raced_present += json_array_size(json_object_get(r.json, "receipts")) == 1;
        tst_resp_clear(&r);
        free(p);
    }
    (void)raced_present;

    /* every invoice that existed when the backup ended is there, with the same totals where
     * it was finalized; the finalized document still verifies */
    json_t *inv_after = invoices(R.port), *a, *b;
    size_t i, j;
    json_array_foreach(inv, i, a)
    {
        int found = 0;
        json_array_foreach(inv_after, j, b) if (strcmp(tst_str(a, "invoice_id"), tst_str(b, "invoice_id")) == 0)
            found = 1;
        ck_assert_msg(found, "invoice %s is not restored", tst_str(a, "invoice_id"));
    }
    (void)inv_before;
    char *ipath = tst_fmt("/billing/invoices/%s/", inv_id);
    r = get(R.port, ipath, FINANCE, 200);
    json_t *doc = json_object_get(r.json, "document");
    ck_assert_ptr_nonnull(doc);
    ck_assert(json_equal(doc, fin_doc));
    ck_assert_str_eq(tst_str(json_object_get(r.json, "invoice"), "status"), "finalized");
    json_t *keys = json_loads(keys_after, 0, &jerr);
    assert_verifies(doc, tst_str(json_array_get(keys, 0), "public_key"));
    json_decref(keys);
    tst_resp_clear(&r);
    free(ipath);

    /* the restored broker takes new receipts */
    char *ctx = post_cr(R.port);
    ck_assert_ptr_nonnull(ctx);
    free(ctx);

    /* a restore into a data directory that holds something: refused, nothing changed */
    st = run_with_data_dir(data, &err, "restore", backup);
    ck_assert_int_eq(st, 2);
    ck_assert_ptr_nonnull(strstr(err, "not empty"));
    free(err);

    /* a damaged backup: refused before anything is written */
    char *cmd = tst_fmt("cp -r '%s' '%s/damaged' && printf X | dd of='%s/damaged/gsap.dump' bs=1 "
                    "seek=100 conv=notrunc 2>/dev/null",
                    backup, WORK, WORK);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    char *other = tst_fmt("%s/other", WORK), *damaged = tst_fmt("%s/damaged", WORK);
    st = run_with_data_dir(other, &err, "restore", damaged);
    ck_assert_int_eq(st, 2);
    ck_assert_ptr_nonnull(strstr(err, "damaged"));
    ck_assert_int_eq(access(other, F_OK), -1);
    free(err), free(other), free(damaged);

    json_decref(inv), json_decref(inv_before), json_decref(inv_after), json_decref(fin_doc);
    free(keys_before), free(keys_after), free(dd), free(backup), free(data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_backup");
    TCase *tc = tcase_create("backup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, backup_under_load_restores_elsewhere);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
