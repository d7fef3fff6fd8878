/*
 * it_e2e: the whole path an auditor relies on, against the real binary and PostgreSQL:
 * `gsap-broker exec` runs commands (each asks for its AC and posts its receipt), the runtime
 * bills them, finance finalizes the invoice, `gsap-broker export` writes its audit bundle and
 * `gsap-broker verify` accepts it (exit 0), with the bundle's count and total equal to what
 * PostgreSQL holds. The broker is killed (SIGKILL) and restarted three times on the way: right
 * after a batch of runs (its billing may be mid-flight), while a governed command runs (its
 * AC was issued before the crash, its receipt is posted after the restart), and between
 * finalizing and exporting; each receipt still becomes exactly one line and the bundle still
 * verifies.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define DB "it_e2e"
#define CORPUS "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define RUNS 4     /* exec runs per batch */
#define WAIT_S 120 /* the bound on "every receipt is billed" */
#define RUN_S 5    /* the command that outlives a broker crash: it sleeps this long */

static tst_broker_t B;
static char *SHELL, *FINANCE, *AUDITOR;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=0", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(SHELL), free(FINANCE), free(AUDITOR);
}

/* Runs `gsap-broker <args>` with the broker's URL and token in the environment (never on the
 * command line); the exit status. */
static int cli(const char *token, const char *args)
{
    char *cmd = tst_fmt("GSAP_BROKER_URL=http://127.0.0.1:%u GSAP_TOKEN=%s GSAP_CORPUS_CID=%s "
                        "'%s' %s",
                        B.port, token, CORPUS, getenv("GSAP_BROKER_BIN"), args);
    int st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void exec_batch(int first)
{
    for (int i = first; i < first + RUNS; i++) {
        char *args = tst_fmt("exec --exec 'echo run %d' >/dev/null", i);
        ck_assert_int_eq(cli(SHELL, args), 0);
        free(args);
    }
}

static void wait_lines(PGconn *pg, long want)
{
    long n = -1;
    for (int i = 0; i < WAIT_S * 10 && n < want; i++) {
        n = tst_pg_long(pg, "SELECT count(*) FROM invoice_lines WHERE tenant_id = 'acme'");
        if (n < want)
            usleep(100 * 1000);
    }
    ck_assert_msg(n == want, "%ld invoice lines after %d s, want %ld", n, WAIT_S, want);
}

START_TEST(exec_bill_finalize_export_verify)
{
    PGconn *pg = tst_pg_connect(DB);
    exec_batch(0);
    tst_broker_kill(&B); /* its runtime may be billing the batch right now */
    ck_assert_int_eq(tst_broker_restart(&B), 0);
    exec_batch(RUNS);
    /* a run in flight across a crash: its AC is issued, the broker dies while the command
     * sleeps, comes back, and the receipt posted afterwards is accepted and billed once */
    char status[] = "/tmp/it_e2e_status_XXXXXX";
    int sfd = mkstemp(status);
    ck_assert_int_ge(sfd, 0);
    close(sfd);
    unlink(status);
    char *cmd = tst_fmt("(GSAP_BROKER_URL=http://127.0.0.1:%u GSAP_TOKEN=%s GSAP_CORPUS_CID=%s "
                        "'%s' exec --exec 'sleep %d; echo late' >/dev/null; echo $? > %s) &",
                        B.port, SHELL, CORPUS, getenv("GSAP_BROKER_BIN"), RUN_S, status);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    long acs = 2 * RUNS;
    for (int i = 0; i < WAIT_S * 10 && acs == 2 * RUNS; i++) {
        acs = tst_pg_long(pg, "SELECT count(*) FROM acs WHERE tenant_id = 'acme'");
        usleep(100 * 1000);
    }
    ck_assert_int_eq(acs, 2 * RUNS + 1); /* the in-flight run holds its AC */
    tst_broker_kill(&B);
    ck_assert_int_eq(tst_broker_restart(&B), 0);
    FILE *sf = NULL;
    for (int i = 0; i < WAIT_S * 10 && sf == NULL; i++) {
        sf = fopen(status, "r");
        if (sf == NULL)
            usleep(100 * 1000);
    }
    ck_assert_ptr_nonnull(sf);
    int code = -1;
    for (int i = 0; i < 50 && fscanf(sf, "%d", &code) != 1; i++) { /* written, maybe not yet */
        usleep(100 * 1000);
        rewind(sf);
    }
    fclose(sf);
    unlink(status);
    ck_assert_int_eq(code, 0);
    wait_lines(pg, 2 * RUNS + 1);
    /* exactly one line per receipt, across the crashes */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM crs WHERE tenant_id = 'acme'"),
                     2 * RUNS + 1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(DISTINCT cr_id) FROM invoice_lines "
                                     "WHERE tenant_id = 'acme'"),
                     2 * RUNS + 1);
    char *inv = tst_pg_scalar(pg, "SELECT invoice_id FROM invoices WHERE tenant_id = 'acme' "
                                  "AND status = 'open'");
    ck_assert_ptr_nonnull(inv);
    char *path = tst_fmt("/billing/invoices/%s/finalize", inv);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\n", FINANCE);
    tst_resp_t r;
    ck_assert_int_eq(tst_http(B.port, "POST", path, hdr, NULL, 0, &r), 0);
    ck_assert_msg(r.status == 200, "finalize: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    tst_broker_kill(&B);
    ck_assert_int_eq(tst_broker_restart(&B), 0);

    char file[] = "/tmp/it_e2e_bundle_XXXXXX";
    int fd = mkstemp(file);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *args = tst_fmt("export invoice %s --out %s", inv, file);
    ck_assert_int_eq(cli(AUDITOR, args), 0);
    free(args);
    args = tst_fmt("verify %s >/dev/null", file);
    ck_assert_int_eq(cli(AUDITOR, args), 0);
    free(args);
    /* the bundle's invoice says what PostgreSQL holds */
    json_error_t e;
    json_t *b = json_load_file(file, 0, &e);
    ck_assert_ptr_nonnull(b);
    json_t *doc = json_object_get(b, "invoice");
    char *q = tst_fmt("SELECT sum(total_minor) FROM invoice_lines WHERE tenant_id = 'acme' AND "
                      "invoice_id = '%s'",
                      inv);
    char *sum = tst_fmt("%ld", tst_pg_long(pg, q));
    ck_assert_str_eq(tst_str(doc, "total_minor"), sum);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "line_count")), 2 * RUNS + 1);
    ck_assert_int_eq(json_array_size(json_object_get(b, "lines")), 2 * RUNS + 1);
    /* a changed amount in the exported file fails verify, naming the line */
    json_t *l = json_array_get(json_object_get(b, "lines"), 3);
    json_object_set_new(l, "total_minor", json_string("999999"));
    ck_assert_int_eq(json_dump_file(b, file, JSON_COMPACT), 0);
    args = tst_fmt("verify %s | grep -q '^FAILED: .*first: lines\\[3\\].total_minor'", file);
    ck_assert_int_eq(cli(AUDITOR, args), 0);
    free(args);
    args = tst_fmt("verify %s >/dev/null", file);
    ck_assert_int_eq(cli(AUDITOR, args), 1);
    free(args);
    /* and a session of the same runs: exported and verified the same way */
    char *ctx = tst_pg_scalar(pg, "SELECT context_id FROM crs WHERE tenant_id = 'acme' LIMIT 1");
    ck_assert_ptr_nonnull(ctx);
    args = tst_fmt("export session %s --out %s", ctx, file);
    ck_assert_int_eq(cli(AUDITOR, args), 0);
    free(args);
    args = tst_fmt("verify %s >/dev/null", file);
    ck_assert_int_eq(cli(AUDITOR, args), 0);
    free(args), free(ctx);
    unlink(file);
    json_decref(b);
    free(q), free(sum), free(path), free(hdr), free(inv);
    PQfinish(pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_e2e");
    TCase *tc = tcase_create("e2e");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, exec_bill_finalize_export_verify);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
