/*
 * it_bundle: the audit bundle of a session against the real binary, PostgreSQL and the log
 * sequencer: a context with several receipts, exported with GET
 * /governance/session/{context_id}/bundle once the sequencer has logged them, passes
 * `gsap-broker verify` (exit 0); the same bundle with any one scalar changed fails it (exit
 * 1), except the members the format documents as not covered (gov_bundle.h); who may not
 * read the session page gets 404 for the bundle too.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_mutate.h"
#include "tst_util.h"
#include "../cli/verify.h" /* CLI_VERIFY_MAX_BYTES */

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_bundle"
#define LOG_WAIT_S 60 /* the bound on "the entries appear": the runtime wakes on NOTIFY */
#define N_CRS 3
#define MIN_MUTATIONS 60 /* a bundle of N_CRS receipts has well over this many scalars */

static tst_broker_t B;
static char *SHELL, *AUDITOR, *NEIGHBOUR, *STRANGER, *ADMIN;
/* a checkpoint for every new tree: the export right after the sequencer covers it all */
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=0", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    NEIGHBOUR = tst_keys_create(&B, "acme", "issuer,executor");
    STRANGER = tst_keys_create(&B, "globex", "auditor");
    ADMIN = tst_keys_create(&B, "acme", "admin");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(SHELL), free(AUDITOR), free(NEIGHBOUR), free(STRANGER), free(ADMIN);
}

/* A session-mode AC issued by SHELL; its context id (malloc'd). */
static char *authorize(void)
{
    tst_resp_t r;
    const char *body = "{\"accord_template\":\"default\",\"session_mode\":true,\"operation\":{"
                       "\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS "\","
                       "\"parameters_cid\":\"" PARAMS "\"}}";
    ck_assert_int_eq(tst_post_json(B.port, "/governance/authorize/", SHELL, body, &r), 0);
    ck_assert_msg(r.status == 200, "authorize: %d %s", r.status, r.body);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    return ctx;
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
    tst_resp_t r;
    json_t *ca = aps("issuer");
    char *body = tst_fmt("{\"name\":\"acme-ca\",\"public_key\":\"%s\"}", tst_str(ca, "publicKey"));
    ck_assert_int_eq(tst_post_json(B.port, "/admin/issuers", ADMIN, body, &r), 0);
    ck_assert_msg(r.status == 200, "issuer: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    char *args = tst_fmt("passport %s", tst_str(ca, "privateKey"));
    json_t *pp = aps(args);
    char *sp = json_dumps(json_object_get(pp, "signed"), JSON_COMPACT);
    ck_assert_int_eq(tst_post_json(B.port, "/agents/passports", SHELL, sp, &r), 0);
    ck_assert_msg(r.status == 200, "passport: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    free(body), free(args), free(sp);
    json_decref(ca);
    return pp;
}

/* body signed by the agent of pp with the SDK (agent_did and agent_signature added). */
static char *agent_signed(const char *body, const json_t *pp)
{
    json_t *cr = json_loads(body, 0, NULL);
    json_object_set_new(cr, "agent_did", json_string(tst_str(pp, "did")));
    char path[] = "/tmp/it_bundle_cr_XXXXXX";
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

static void post_cr_as(const char *ctx, int i, const json_t *agent)
{
    char *body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":%d,"
                     "\"started_at\":\"2026-01-01T00:00:0%dZ\",\"completed_at\":"
                     "\"2026-01-01T00:00:0%dZ\",\"command_hash\":\"" CMD "\","
                     "\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\","
                     "\"chronicle\":{\"session_id\":\"s%d\",\"behavior_state\":\"verified\"}}",
                     ctx, i, i, i + 1, i);
    if (agent != NULL) {
        char *sb = agent_signed(body, agent);
        free(body);
        body = sb;
    }
    tst_resp_t r;
    ck_assert_int_eq(tst_post_json(B.port, "/governance/complete/", SHELL, body, &r), 0);
    ck_assert_msg(r.status == 200, "complete: %d %s", r.status, r.body);
    tst_resp_clear(&r);
    free(body);
}

/* Polls until the tenant's log has want entries, for up to LOG_WAIT_S. */
static void wait_log(long want)
{
    PGconn *pg = tst_pg_connect(DB);
    long n = -1;
    for (int i = 0; i < LOG_WAIT_S * 10 && n < want; i++) {
        n = tst_pg_long(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = 'acme'");
        if (n < want)
            usleep(100 * 1000);
    }
    PQfinish(pg);
    ck_assert_msg(n >= want, "the log has %ld entries after %d s, want %ld", n, LOG_WAIT_S, want);
}

/* GET the bundle of ctx with token; the status, *out the parsed body (a new reference). */
static int get_bundle(const char *ctx, const char *token, json_t **out)
{
    tst_resp_t r;
    char *path = tst_fmt("/governance/session/%s/bundle", ctx);
    ck_assert_int_eq(tst_get(B.port, path, token, &r), 0);
    int st = r.status;
    if (out)
        *out = json_incref(r.json);
    if (st != 200 && st != 404)
        fprintf(stderr, "bundle: %d %s\n", st, r.body);
    tst_resp_clear(&r);
    free(path);
    return st;
}

/* Writes b to a file and runs `gsap-broker verify` on it; the exit status, *report its output
 * (malloc'd) when report is not NULL. */
static int verify(const json_t *b, char **report)
{
    char path[] = "/tmp/it_bundle_XXXXXX";
    int fd = mkstemp(path), st = -1;
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(json_dump_file(b, path, JSON_COMPACT), 0);
    char *out = tst_broker_cli(&B, &st, "verify", path, NULL);
    unlink(path);
    if (report)
        *report = out;
    else
        free(out);
    return st;
}

/* Writes v into a new temporary file; its path (malloc'd, caller unlinks and frees). */
static char *save_json(const json_t *v)
{
    char *path = strdup("/tmp/it_bundle_keys_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(json_dump_file(v, path, JSON_COMPACT), 0);
    return path;
}

/* `gsap-broker verify --keys keys b`: the exit status. */
static int verify_pinned(const json_t *b, const json_t *keys)
{
    char *bp = save_json(b), *kp = save_json(keys);
    int st = -1;
    free(tst_broker_cli(&B, &st, "verify", "--keys", kp, bp, NULL));
    unlink(bp), unlink(kp);
    free(bp), free(kp);
    return st;
}

/* The bundle b padded with spaces to exactly n bytes, run through verify: the exit status. */
static int verify_padded(const json_t *b, size_t n)
{
    char *text = json_dumps(b, JSON_COMPACT), path[] = "/tmp/it_bundle_big_XXXXXX";
    size_t len = strlen(text), chunk = 1 << 20;
    ck_assert_uint_le(len, n);
    int fd = mkstemp(path), st = -1;
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    char *spaces = malloc(chunk);
    memset(spaces, ' ', chunk);
    for (size_t left = n - len; left > 0;) {
        size_t k = left < chunk ? left : chunk;
        ck_assert_uint_eq(fwrite(spaces, 1, k, f), k);
        left -= k;
    }
    ck_assert_int_eq(fclose(f), 0);
    free(tst_broker_cli(&B, &st, "verify", path, NULL));
    unlink(path);
    free(spaces), free(text);
    return st;
}

/* A session of N_CRS receipts, all logged, the second signed by an agent with a passport
 * (so the bundle carries the passport); its bundle as the auditor reads it. */
static json_t *session_bundle(char **ctx_out)
{
    char *ctx = authorize();
    json_t *agent = enrolled_agent();
    for (int i = 1; i <= N_CRS; i++)
        post_cr_as(ctx, i, i == 2 ? agent : NULL);
    json_decref(agent);
    wait_log(N_CRS);
    json_t *b = NULL;
    ck_assert_int_eq(get_bundle(ctx, AUDITOR, &b), 200);
    if (ctx_out)
        *ctx_out = ctx;
    else
        free(ctx);
    return b;
}

START_TEST(session_bundle_verifies)
{
    char *ctx = NULL, *report = NULL;
    json_t *b = session_bundle(&ctx);
    ck_assert_str_eq(tst_str(b, "format"), "gsap-audit-bundle/1");
    ck_assert_str_eq(tst_str(b, "context_id"), ctx);
    json_t *recs = json_object_get(b, "receipts");
    ck_assert_int_eq(json_array_size(recs), N_CRS);
    for (size_t i = 0; i < N_CRS; i++) {
        json_t *x = json_array_get(recs, i);
        ck_assert_int_eq(json_integer_value(json_object_get(x, "sequence")), (json_int_t)i + 1);
        ck_assert_msg(json_is_object(json_object_get(x, "inclusion")), "receipt %zu unproven", i);
    }
    /* the agent-signed receipt names its passport, which the bundle carries */
    json_t *pps = json_object_get(b, "passports");
    ck_assert_int_eq(json_array_size(pps), 1);
    ck_assert_ptr_null(json_string_value(json_object_get(json_array_get(recs, 0),
                                                         "agent_passport_cid")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(json_array_get(recs, 1),
                                                            "agent_passport_cid")));
    json_t *cp = json_object_get(b, "checkpoint");
    ck_assert_int_ge(json_integer_value(json_object_get(cp, "size")), N_CRS);
    /* the keys are the broker's published ones */
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    ck_assert(json_equal(json_object_get(r.json, "keys"),
                         json_object_get(json_object_get(b, "broker"), "keys")));
    /* pinned to the published key document: holds; to another key (a forger's own key
     * document, consistent in itself): fails, though the bundle alone would verify */
    json_t *pub = json_deep_copy(r.json);
    tst_resp_clear(&r);
    ck_assert_int_eq(verify_pinned(b, pub), 0);
    json_t *k0 = json_array_get(json_object_get(pub, "keys"), 0);
    char *other = strdup(tst_str(k0, "public_key"));
    other[10] = other[10] == 'A' ? 'B' : 'A';
    json_object_set_new(k0, "public_key", json_string(other));
    ck_assert_int_eq(verify_pinned(b, pub), 1);
    json_object_set_new(pub, "keys", json_array());
    ck_assert_int_eq(verify_pinned(b, pub), 1);
    free(other);
    json_decref(pub);
    /* the largest file verify reads (CLI_VERIFY_MAX_BYTES): at the limit it is read, one
     * byte past it is refused unread (exit 2) */
    ck_assert_int_eq(verify_padded(b, CLI_VERIFY_MAX_BYTES), 0);
    ck_assert_int_eq(verify_padded(b, CLI_VERIFY_MAX_BYTES + 1), 2);

    int st = verify(b, &report);
    ck_assert_msg(st == 0, "verify: exit %d\n%s", st, report ? report : "(no output)");
    ck_assert_ptr_nonnull(strstr(report, "PASS checkpoint.signature"));
    ck_assert_ptr_nonnull(strstr(report, "PASS receipts[2].inclusion"));
    ck_assert_ptr_nonnull(strstr(report, "PASS passports[0]"));
    ck_assert_ptr_nonnull(strstr(report, "PASS receipts[1].agent_signature"));
    ck_assert_ptr_nonnull(strstr(report, "OK: "));
    free(report);

    /* the issuing key reads it as it reads the page; another key of the tenant and another
     * tenant's auditor do not learn it exists */
    ck_assert_int_eq(get_bundle(ctx, SHELL, NULL), 200);
    ck_assert_int_eq(get_bundle(ctx, NEIGHBOUR, NULL), 404);
    ck_assert_int_eq(get_bundle(ctx, STRANGER, NULL), 404);
    ck_assert_int_eq(get_bundle("ctx_does_not_exist", AUDITOR, NULL), 404);

    /* the note signature spelled differently (its padding dropped, as a lenient decoder would
     * accept, and Go's note.Open does not): refused too */
    json_t *cpn = json_object_get(b, "checkpoint");
    char *note = strdup(tst_str(cpn, "note"));
    char *pad = strrchr(note, '=');
    ck_assert_ptr_nonnull(pad);
    memmove(pad, pad + 1, strlen(pad + 1) + 1);
    json_object_set_new(cpn, "note", json_string(note));
    ck_assert_int_eq(verify(b, NULL), 1);
    free(note);

    /* a receipt that is lost from the bundle breaks the chain of the ones after it */
    json_array_remove(recs, 1);
    ck_assert_int_eq(verify(b, NULL), 1);
    /* a context without receipts: nothing to prove, no checkpoint, and it verifies */
    char *empty = authorize();
    json_t *e = NULL;
    ck_assert_int_eq(get_bundle(empty, AUDITOR, &e), 200);
    ck_assert_int_eq(json_array_size(json_object_get(e, "receipts")), 0);
    ck_assert(json_is_null(json_object_get(e, "checkpoint")));
    ck_assert_int_eq(verify(e, NULL), 0);
    json_decref(e), json_decref(b);
    free(ctx), free(empty);
}
END_TEST


/* Members the format documents as not covered (gov_bundle.h): the broker's current view of
 * the AC (status, elevation with its approvals: nobody signs them) and which key is current. */
static int not_covered(const char *path)
{
    return strcmp(path, ".acs[0].status") == 0 || strncmp(path, ".acs[0].elevation", 17) == 0 ||
           (strncmp(path, ".broker.keys[", 13) == 0 && strstr(path, "].current") != NULL);
}

START_TEST(every_scalar_matters)
{
    json_t *b = session_bundle(NULL);
    ck_assert_int_eq(verify(b, NULL), 0); /* the walk starts from a bundle that holds */
    tst_mutate_result_t w;
    tst_mutate_scalars(b, not_covered, verify, &w);
    ck_assert_int_eq(verify(b, NULL), 0); /* and every change was undone */
    fprintf(stderr, "it_bundle: %d mutations, %d pass verify\n", w.mutated, w.survived);
    ck_assert_msg(w.mutated >= MIN_MUTATIONS, "only %d scalars mutated", w.mutated);
    ck_assert_msg(w.survived == 0, "%d of %d mutations pass verify, first %s", w.survived,
                  w.mutated, w.first);
    json_decref(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_bundle");
    TCase *tc = tcase_create("bundle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, session_bundle_verifies);
    tcase_add_test(tc, every_scalar_matters);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
