/*
 * it_browser: the pages people open, in a real browser (Debian's chromium, headless, driven
 * by playwright-core from tests/npm/browser_pages.mjs), against the real binary, PostgreSQL,
 * billing and the log sequencer:
 *   - the session page through a signed view link (no token), the invoice page (finance's
 *     token), each asserted on the rendered DOM;
 *   - GET /verify with the session's honest bundle (every row PASS), with tampered copies
 *     (the AC signature, a CR field, a proof hash, the checkpoint's signature, markup in a
 *     value: exactly the expected rows FAIL, nothing of the bundle runs), with the pinned key
 *     document, and from a file:// copy with the network cut off;
 *   - the page's JavaScript and `gsap-broker verify` give the same PASS/FAIL list for the
 *     bundle and every one-scalar change of it (tests/npm/verify_page.mjs compare), and its
 *     canonical JSON meets the RFC 8785 vectors and the npm `canonicalize` oracle. The last
 *     receipt is signed by an agent whose passport (made and countersigned by the Agent
 *     Passport System SDK, tests/npm/aps_passport.mjs) the bundle carries, so the passport's
 *     and the agent signature's checks are compared on every change of them too.
 * Screenshots go to $GSAP_ARTIFACT_DIR (build/test-artifacts). A browser that does not start
 * fails the test: tools/deps.sh installs chromium.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_browser"
#define WAIT_S 60 /* the bound on "the log entries and invoice lines appear" */
#define N_CRS 3

static tst_broker_t B;
static char *SHELL, *AUDITOR, *FINANCE, *ADMIN;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=0", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    ADMIN = tst_keys_create(&B, "acme", "admin");
}

static void teardown(void)
{
    /* a clean stop: under the sanitizers, a leak or an error in what the pages exercised */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    tst_broker_clear(&B);
    free(SHELL), free(AUDITOR), free(FINANCE), free(ADMIN);
}

/* Runs tests/npm/aps_passport.mjs (the Agent Passport System SDK); its JSON output. */
static json_t *aps(const char *args)
{
    char *cmd = tst_fmt("node %s/tests/npm/aps_passport.mjs %s", getenv("GSAP_SOURCE_DIR"), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    json_t *j = json_loadf(p, JSON_DISABLE_EOF_CHECK, NULL);
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_ptr_nonnull(j);
    free(cmd);
    return j;
}

/* An agent with an SDK passport, countersigned by an issuer acme trusts, enrolled in acme;
 * the helper's {"signed", "agent", "did"} (new reference). */
static json_t *enrolled_agent(void)
{
    json_t *ca = aps("issuer");
    char *body = tst_fmt("{\"name\":\"acme-ca\",\"public_key\":\"%s\"}", tst_str(ca, "publicKey"));
    json_decref(tst_call_json(B.port, "POST", "/admin/issuers", ADMIN, body, 200, NULL));
    char *args = tst_fmt("passport %s", tst_str(ca, "privateKey"));
    json_t *pp = aps(args);
    char *sp = json_dumps(json_object_get(pp, "signed"), JSON_COMPACT);
    json_decref(tst_call_json(B.port, "POST", "/agents/passports", SHELL, sp, 200, NULL));
    free(body), free(args), free(sp);
    json_decref(ca);
    return pp;
}

/* The CR body signed by the agent of pp with the SDK (agent_did and agent_signature added). */
static char *agent_signed(const char *body, const json_t *pp)
{
    json_t *cr = json_loads(body, 0, NULL);
    ck_assert_ptr_nonnull(cr);
    json_object_set_new(cr, "agent_did", json_string(tst_str(pp, "did")));
    char path[] = "/tmp/it_browser_cr_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(json_dump_file(cr, path, JSON_COMPACT), 0);
    char *args = tst_fmt("sign-cr %s %s", tst_str(json_object_get(pp, "agent"), "privateKey"), path);
    json_t *out = aps(args);
    unlink(path);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(cr), json_decref(out);
    free(args);
    return s;
}

/* Polls sql (a count) until it reaches want, for up to WAIT_S. */
static void wait_count(PGconn *pg, const char *sql, long want)
{
    long n = tst_pg_wait_long(pg, sql, want, WAIT_S);
    ck_assert_msg(n >= want, "%s: %ld after %d s, want %ld", sql, n, WAIT_S, want);
}

/* GET path with token into file dir/name. */
static void save(const char *path, const char *token, const char *dir, const char *name)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, path, token, &r), 0);
    ck_assert_msg(r.status == 200, "%s: %d %s", path, r.status, r.body);
    char *file = tst_fmt("%s/%s", dir, name);
    FILE *f = fopen(file, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(r.body, 1, r.body_len, f), r.body_len);
    fclose(f);
    free(file);
    tst_resp_clear(&r);
}

/* Runs node with argv (NULL-terminated, argv[0] the script) in tests/npm, with env added;
 * its exit status. Its output goes to ours (the test log lists the screenshots). */
static int node(const char *const *env, const char *const *argv)
{
    const char *src = getenv("GSAP_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char *npm = tst_fmt("%s/tests/npm", src);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        const char *args[16] = {"node"};
        int n = 1;
        for (; argv[n - 1] != NULL && n < 15; n++)
            args[n] = argv[n - 1];
        args[n] = NULL;
        for (; env != NULL && *env != NULL; env++)
            putenv((char *)*env);
        if (chdir(npm) != 0)
            _exit(127);
        execvp("node", (char *const *)args);
        fprintf(stderr, "it_browser: cannot run node: %s\n", strerror(errno));
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    free(npm);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(pages_in_chromium)
{
    const char *src = getenv("GSAP_SOURCE_DIR"), *bin = getenv("GSAP_BROKER_BIN");
    const char *artifacts = getenv("GSAP_ARTIFACT_DIR");
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(bin);
    ck_assert_ptr_nonnull(artifacts);
    mkdir(artifacts, 0755);
    char dir[] = "/tmp/it_browser_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));

    /* a session of N_CRS receipts carrying markup in their chronicles, the last one signed by
     * an enrolled agent (the bundle then carries its passport); the tampered copies of
     * browser_pages.mjs change receipts[0] and [1] only, so theirs stay the expected rows */
    json_t *agent = enrolled_agent();
    json_t *ac =
        tst_call_json(B.port, "POST", "/governance/authorize/", SHELL,
                      "{\"accord_template\":\"default\",\"session_mode\":true,\"operation\":{"
                      "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
                      "\"parameters_cid\":\"" PARAMS "\"}}",
                      200, NULL);
    const char *ctx = tst_str(ac, "context_id");
    for (int i = 1; i <= N_CRS; i++) {
        char *body = tst_fmt(
            "{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":%d,"
            "\"started_at\":\"2026-01-01T00:00:0%dZ\",\"completed_at\":\"2026-01-01T00:00:0%dZ\","
            "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":"
            "\"" PARAMS "\",\"chronicle\":{\"session_id\":\"<img src=x onerror=alert(%d)>\","
            "\"behavior_state\":\"verified\"}}",
            ctx, i, i, i + 1, i);
        if (i == N_CRS) {
            char *sb = agent_signed(body, agent);
            free(body);
            body = sb;
        }
        json_decref(tst_call_json(B.port, "POST", "/governance/complete/", SHELL, body, 200, NULL));
        free(body);
    }
    PGconn *pg = tst_pg_connect(DB);
    char *sql = tst_fmt("SELECT count(*) FROM invoice_lines WHERE context_id = '%s'", ctx);
    wait_count(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'", N_CRS);
    wait_count(pg, sql, N_CRS);
    free(sql);
    sql = tst_fmt("SELECT invoice_id FROM invoice_lines WHERE context_id = '%s' LIMIT 1", ctx);
    char *invoice = tst_pg_scalar(pg, sql);
    PQfinish(pg);
    free(sql);

    /* what the auditor takes away: the bundle and the broker's key document */
    char *bpath = tst_fmt("/governance/session/%s/bundle", ctx);
    save(bpath, AUDITOR, dir, "bundle.json");
    {
        char *bfile = tst_fmt("%s/bundle.json", dir);
        json_t *b = json_load_file(bfile, 0, NULL);
        ck_assert_ptr_nonnull(b);
        const json_t *last = json_array_get(json_object_get(b, "receipts"), N_CRS - 1);
        ck_assert_int_eq(json_array_size(json_object_get(b, "passports")), 1);
        ck_assert_ptr_nonnull(tst_str(last, "agent_passport_cid"));
        ck_assert_str_eq(tst_str(json_object_get(last, "cr"), "agent_did"), tst_str(agent, "did"));
        json_decref(b);
        free(bfile);
    }
    json_decref(agent);
    save("/.well-known/gsap-broker.json", NULL, dir, "keys.json");
    /* the invoice, finalized, and its bundle where this broker has the route (it came with the
     * invoice bundle; a broker without it answers 404 not_found, and the page's invoice
     * checks are then held to nothing here) */
    char *fpath = tst_fmt("/billing/invoices/%s/finalize", invoice);
    char *fhdr = tst_fmt("Authorization: Bearer %s\r\n", FINANCE);
    tst_resp_t fr;
    ck_assert_int_eq(tst_http(B.port, "POST", fpath, fhdr, NULL, 0, &fr), 0);
    ck_assert_msg(fr.status == 200, "finalize: %d %s", fr.status, fr.body);
    tst_resp_clear(&fr);
    char *ipath = tst_fmt("/billing/invoices/%s/bundle", invoice);
    ck_assert_int_eq(tst_get(B.port, ipath, FINANCE, &fr), 0);
    int have_invoice_bundle = fr.status == 200;
    ck_assert_msg(have_invoice_bundle || (fr.status == 404 &&
                                          strcmp(tst_str(json_object_get(fr.json, "error"), "code"),
                                                 "not_found") == 0),
                  "invoice bundle: %d %s", fr.status, fr.body);
    tst_resp_clear(&fr);
    if (have_invoice_bundle)
        save(ipath, FINANCE, dir, "invoice_bundle.json");
    else
        printf(
            "it_browser: this broker has no invoice bundle route; invoice bundles not compared\n");
    free(fpath), free(fhdr), free(ipath);
    char *lpath = tst_fmt("/governance/session/%s/link", ctx);
    json_t *link = tst_call_json(B.port, "POST", lpath, AUDITOR, "{}", 200, NULL);

    /* the page's JavaScript against RFC 8785, the oracle and the command, without a browser */
    char *html = tst_fmt("%s/handlers/verify.html", src),
         *jcsdir = tst_fmt("%s/jcs", getenv("GSAP_TESTDATA"));
    char *bundle = tst_fmt("%s/bundle.json", dir), *keys = tst_fmt("%s/keys.json", dir);
    ck_assert_int_eq(
        node(NULL, (const char *const[]){"verify_page.mjs", "jcs", html, jcsdir, NULL}), 0);
    ck_assert_int_eq(node(NULL, (const char *const[]){"verify_page.mjs", "parse", html, NULL}), 0);
    ck_assert_int_eq(node(NULL, (const char *const[]){"verify_page.mjs", "compare", html, bin,
                                                      bundle, keys, NULL}),
                     0);
    char *ibundle = tst_fmt("%s/invoice_bundle.json", dir);
    if (have_invoice_bundle)
        ck_assert_int_eq(node(NULL, (const char *const[]){"verify_page.mjs", "compare", html, bin,
                                                          ibundle, keys, NULL}),
                         0);

    /* and the pages in chromium */
    char *e_base = tst_fmt("GSAP_BASE=http://127.0.0.1:%u", B.port);
    char *e_view = tst_fmt("GSAP_VIEW_URL=%s", tst_str(link, "url"));
    char *e_inv = tst_fmt("GSAP_INVOICE_ID=%s", invoice),
         *e_ctx = tst_fmt("GSAP_CONTEXT_ID=%s", ctx);
    char *e_fin = tst_fmt("GSAP_FINANCE_TOKEN=%s", FINANCE);
    char *e_bundle = tst_fmt("GSAP_BUNDLE=%s", bundle), *e_keys = tst_fmt("GSAP_KEYS=%s", keys);
    char *e_art = tst_fmt("GSAP_ARTIFACT_DIR=%s", artifacts),
         *e_n = tst_fmt("GSAP_N_CRS=%d", N_CRS);
    char *e_ib = tst_fmt("GSAP_INVOICE_BUNDLE=%s", have_invoice_bundle ? ibundle : "");
    const char *env[] = {e_base, e_view, e_inv, e_ctx, e_fin, e_bundle,
                         e_keys, e_art,  e_n,   e_ib,  NULL};
    ck_assert_int_eq(node(env, (const char *const[]){"browser_pages.mjs", NULL}), 0);

    unlink(bundle), unlink(keys), unlink(ibundle), rmdir(dir);
    free(ibundle), free(e_ib);
    free(e_base), free(e_view), free(e_inv), free(e_ctx), free(e_fin), free(e_bundle);
    free(e_keys), free(e_art), free(e_n);
    free(html), free(jcsdir), free(bundle), free(keys), free(bpath), free(lpath), free(invoice);
    json_decref(link), json_decref(ac);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_browser");
    TCase *tc = tcase_create("pages");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pages_in_chromium);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
