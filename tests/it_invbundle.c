/*
 * it_invbundle: the audit bundle of an invoice against the real binary, PostgreSQL, the
 * billing function and the log sequencer. An account whose rate card changes while CRs are
 * billed gives an invoice priced with two card versions; once finalized, its bundle (GET
 * /billing/invoices/{id}/bundle, streamed) passes `gsap-broker verify` (exit 0), and the same
 * bundle with any one scalar changed fails it (exit 1), except the members docs/protocol.md
 * lists as not covered. Also: the rate-card history and the log's interior nodes are
 * append-only in the database; proofs from stored nodes give the stored roots; who may read
 * a bundle; an invoice of a few thousand lines exports over many pages and verifies;
 * `gsap-broker export` writes the same bundle.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_mutate.h"
#include "tst_util.h"
#include "brk_merkle.h"
#include "gov_bundle.h" /* GOV_INVBUNDLE_LINE_MAX, GOV_INVBUNDLE_CARDS_MAX */

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define DB "it_invbundle"
#define WAIT_S 120 /* the bound on "the lines appear": the runtime wakes on NOTIFY */
#define MIN_MUTATIONS 150
#define BIG_LINES                                                                                  \
    2000 /* "a few thousand": exactly 10 pages of HND_INVBUNDLE_PAGE_LINES, so the                 \
          * last page read is empty and the body ends on it */

/* Two cards that price every outcome and second differently, so a line rated with the wrong
 * one, or a changed outcome or span, changes its amount. */
#define CARD1                                                                                      \
    "{\"currency\":\"JPY\",\"rate_card\":{\"per_cr\":{\"completed\":100,\"failed\":40,"            \
    "\"violated\":500,\"timed_out\":60,\"session_end\":7},\"per_second\":7,"                       \
    "\"shell_class_multipliers\":{\"Application\":\"1.5\"},\"capability_multipliers\":{\"0\":"     \
    "\"1.25\"},\"flagged_surcharge\":3}}"
#define CARD2                                                                                      \
    "{\"currency\":\"JPY\",\"rate_card\":{\"per_cr\":{\"completed\":130,\"failed\":41,"            \
    "\"violated\":501,\"timed_out\":61,\"session_end\":8},\"per_second\":11,"                      \
    "\"shell_class_multipliers\":{\"Application\":\"1.3\"},\"flagged_surcharge\":5}}"

static tst_broker_t B;
static char *ADMIN, *SHELL, *FINANCE, *AUDITOR, *STRANGER;
static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", "GSAP_TLOG_CHECKPOINT_S=0",
                                  "GSAP_RATE_PER_S=100000", "GSAP_RATE_BURST=100000", NULL};

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), ENV), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin");
    SHELL = tst_keys_create(&B, "acme", "issuer,executor");
    FINANCE = tst_keys_create(&B, "acme", "finance");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    STRANGER = tst_keys_create(&B, "globex", "finance,auditor");
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(ADMIN), free(SHELL), free(FINANCE), free(AUDITOR), free(STRANGER);
}

static void put_card(const char *account, const char *body)
{
    char *path = tst_fmt("/admin/accounts/%s", account);
    tst_resp_t r = tst_call(B.port, "PUT", path, ADMIN, body, 200);
    tst_resp_clear(&r);
    free(path);
}

/* A session-mode AC on account "tokyo" with capability bit 0; its context id (malloc'd). */
static char *authorize(void)
{
    const char *body = "{\"accord_template\":\"default\",\"session_mode\":true,"
                       "\"billing_account\":\"tokyo\",\"capability_set\":\"0x00000001\","
                       "\"operation\":{\"command_hash\":\"" CMD "\",\"corpus_entry_cid\":\"" CORPUS
                       "\",\"parameters_cid\":\"" PARAMS "\"}}";
    tst_resp_t r = tst_call(B.port, "POST", "/governance/authorize/", SHELL, body, 200);
    char *ctx = strdup(tst_str(r.json, "context_id"));
    tst_resp_clear(&r);
    return ctx;
}

/* A CR, outcome o: an odd i claims a run of a second and a quarter that started now (so
 * rounding matters), an even i one long before its AC was issued (flagged time_implausible,
 * billed as violated over the clamped span). */
static void post_cr(const char *ctx, int i, const char *o)
{
    char start[32], end[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (i % 2) {
        strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%SZ", &tm);
        now += 1;
        gmtime_r(&now, &tm);
        strftime(end, sizeof end, "%Y-%m-%dT%H:%M:%S.250Z", &tm);
    } else {
        snprintf(start, sizeof start, "2026-01-01T00:00:00Z");
        snprintf(end, sizeof end, "2026-01-01T00:00:%02d.250Z", i % 60);
    }
    char *body = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"%s\",\"exit_code\":0,"
                         "\"started_at\":\"%s\",\"completed_at\":\"%s\","
                         "\"command_hash\":\"" CMD "\","
                         "\"corpus_entry_cid\":\"" CORPUS "\",\"parameters_cid\":\"" PARAMS "\","
                         "\"chronicle\":{\"session_id\":\"s%d\",\"behavior_state\":\"verified\"}}",
                         ctx, o, start, end, i);
    tst_resp_t r = tst_call(B.port, "POST", "/governance/complete/", SHELL, body, 200);
    tst_resp_clear(&r);
    free(body);
}

/* Polls until the tenant has want invoice lines, for up to WAIT_S. */
static void wait_lines(PGconn *pg, long want)
{
    long n = tst_pg_wait_long(pg, "SELECT count(*) FROM invoice_lines WHERE tenant_id = 'acme'",
                              want, WAIT_S);
    ck_assert_msg(n >= want, "%ld invoice lines after %d s, want %ld", n, WAIT_S, want);
}

/* The id of acme's open invoice of account tokyo (malloc'd). */
static char *open_invoice(PGconn *pg)
{
    PGresult *res = PQexec(pg, "SELECT invoice_id FROM invoices WHERE tenant_id = 'acme' AND "
                               "account_id = 'tokyo' AND status = 'open'");
    ck_assert_int_eq(PQntuples(res), 1);
    char *id = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return id;
}

static void finalize(const char *inv)
{
    char *path = tst_fmt("/billing/invoices/%s/finalize", inv);
    tst_resp_t r = tst_call(B.port, "POST", path, FINANCE, NULL, 200);
    tst_resp_clear(&r);
    free(path);
}

/* GET the bundle of inv with token: the parsed body (a new reference). */
static json_t *get_bundle(const char *inv, const char *token)
{
    char *path = tst_fmt("/billing/invoices/%s/bundle", inv);
    tst_resp_t r = tst_call(B.port, "GET", path, token, NULL, 200);
    char ct[128];
    ck_assert_str_eq(tst_resp_header(&r, "content-type", ct, sizeof ct), "application/json");
    ck_assert_msg(json_is_object(r.json), "the bundle does not parse: %.200s", r.body);
    json_t *j = json_incref(r.json);
    tst_resp_clear(&r);
    free(path);
    return j;
}

/* Writes b to a file and runs `gsap-broker verify` on it; the exit status, *report its output
 * (malloc'd) when report is not NULL. Written in the broker's member order (it matters: the
 * lines come last). */
static int verify(const json_t *b, char **report)
{
    char path[] = "/tmp/it_invbundle_XXXXXX";
    int fd = mkstemp(path), st = -1;
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(json_dump_file(b, path, JSON_COMPACT | JSON_PRESERVE_ORDER), 0);
    char *out = tst_broker_cli(&B, &st, "verify", path, NULL);
    unlink(path);
    if (report)
        *report = out;
    else
        free(out);
    return st;
}

/* Runs `gsap-broker verify` on text; the exit status. */
static int verify_text(const char *text)
{
    char path[] = "/tmp/it_invbundle_text_XXXXXX";
    int fd = mkstemp(path), st = -1;
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    ck_assert_int_eq(fclose(f), 0);
    free(tst_broker_cli(&B, &st, "verify", path, NULL));
    unlink(path);
    return st;
}

/* The bundle b with its first line padded (spaces after its opening brace) to exactly n
 * bytes of JSON, through verify: the exit status. */
static int verify_line_of(const json_t *b, size_t n)
{
    char *text = json_dumps(b, JSON_COMPACT);
    char *line = json_dumps(json_array_get(json_object_get(b, "lines"), 0), JSON_COMPACT);
    char *at = strstr(text, line);
    ck_assert_ptr_nonnull(at);
    size_t len = strlen(line), pad = n - len, head = (size_t)(at - text) + 1;
    ck_assert_uint_ge(n, len);
    char *out = malloc(strlen(text) + pad + 1);
    memcpy(out, text, head);
    memset(out + head, ' ', pad);
    strcpy(out + head + pad, text + head);
    int st = verify_text(out);
    free(out), free(line), free(text);
    return st;
}

/* An invoice of two contexts whose card changes half way: the finalized invoice's id. */
static char *sample_invoice(PGconn *pg, int n)
{
    put_card("tokyo", CARD1);
    char *a = authorize(), *b = authorize();
    const char *outcomes[] = {"completed", "failed", "timed_out"};
    for (int i = 0; i < n; i++) {
        if (i == n / 2) {
            wait_lines(pg, i); /* the first half is billed with version 1 */
            put_card("tokyo", CARD2);
        }
        post_cr(i % 2 ? b : a, i + 1, outcomes[i % 3]);
    }
    wait_lines(pg, n);
    char *inv = open_invoice(pg);
    finalize(inv);
    free(a), free(b);
    return inv;
}

START_TEST(invoice_bundle_verifies)
{
    PGconn *pg = tst_pg_connect(DB);
    char *inv = sample_invoice(pg, 6), *report = NULL;
    json_t *b = get_bundle(inv, AUDITOR);
    ck_assert_str_eq(tst_str(b, "format"), "gsap-audit-bundle/1");
    ck_assert_str_eq(tst_str(b, "kind"), "invoice");
    ck_assert_str_eq(tst_str(json_object_get(b, "invoice"), "invoice_id"), inv);
    /* two versions of the card priced the lines; each line names one */
    json_t *cards = json_object_get(b, "rate_cards"), *lines = json_object_get(b, "lines");
    ck_assert_int_eq(json_array_size(cards), 2);
    ck_assert_int_eq(json_array_size(lines), 6);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(lines, 0), "rate_card_version")),
        json_integer_value(json_object_get(json_array_get(cards, 0), "version")));
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_array_get(lines, 5), "rate_card_version")),
        json_integer_value(json_object_get(json_array_get(cards, 1), "version")));
    /* the card's CID is the one the database stored */
    char *q = tst_fmt("SELECT count(*) FROM rate_card_versions WHERE tenant_id = 'acme' AND "
                      "account_id = 'tokyo' AND card_cid = '%s'",
                      tst_str(json_array_get(cards, 1), "card_cid"));
    ck_assert_int_eq(tst_pg_long(pg, q), 1);
    free(q);
    int st = verify(b, &report);
    ck_assert_msg(st == 0, "verify: exit %d\n%s", st, report ? report : "(no output)");
    /* GSAP_FUZZ_SEED_OUT: keep this real bundle (the seed of fuzz/corpus/bundle/invoice.json) */
    if (getenv("GSAP_FUZZ_SEED_OUT") != NULL)
        ck_assert_int_eq(json_dump_file(b, getenv("GSAP_FUZZ_SEED_OUT"), JSON_COMPACT), 0);
    ck_assert_ptr_nonnull(strstr(report, "PASS invoice\n"));
    ck_assert_ptr_nonnull(strstr(report, "PASS checkpoint.signature"));
    ck_assert_ptr_nonnull(strstr(report, "PASS lines[5]\n"));
    ck_assert_ptr_nonnull(strstr(report, "PASS invoice.total_minor"));
    ck_assert_ptr_nonnull(strstr(report, "PASS invoice.lines_root"));
    free(report);
    /* the totals are SQL's */
    q = tst_fmt("SELECT sum(total_minor) FROM invoice_lines WHERE tenant_id = 'acme' AND "
                "invoice_id = '%s'",
                inv);
    char *sum = tst_fmt("%ld", tst_pg_long(pg, q));
    ck_assert_str_eq(tst_str(json_object_get(b, "invoice"), "total_minor"), sum);
    free(sum);
    free(q);

    /* a line lost from the bundle, or two swapped: fails */
    json_t *c = json_deep_copy(b);
    json_array_remove(json_object_get(c, "lines"), 2);
    ck_assert_int_eq(verify(c, NULL), 1);
    json_decref(c);
    c = json_deep_copy(b);
    json_t *l0 = json_incref(json_array_get(json_object_get(c, "lines"), 0));
    json_array_set(json_object_get(c, "lines"), 0, json_array_get(json_object_get(c, "lines"), 1));
    json_array_set_new(json_object_get(c, "lines"), 1, l0);
    ck_assert_int_eq(verify(c, NULL), 1);
    json_decref(c);
    /* the verifier's bounds: a line of exactly GOV_INVBUNDLE_LINE_MAX bytes is read, one byte
     * more is refused; up to GOV_INVBUNDLE_CARDS_MAX rate-card versions are held, one more is
     * refused */
    ck_assert_int_eq(verify_line_of(b, GOV_INVBUNDLE_LINE_MAX), 0);
    ck_assert_int_eq(verify_line_of(b, GOV_INVBUNDLE_LINE_MAX + 1), 1);
    c = json_deep_copy(b);
    json_t *cs = json_object_get(c, "rate_cards");
    json_t *last = json_array_get(cs, json_array_size(cs) - 1);
    for (json_int_t v = 1000; json_array_size(cs) < GOV_INVBUNDLE_CARDS_MAX; v++) {
        json_t *x = json_deep_copy(last);
        json_object_set_new(x, "version", json_integer(v));
        json_array_append_new(cs, x);
    }
    ck_assert_int_eq(verify(c, NULL), 0);
    json_t *x = json_deep_copy(last);
    json_object_set_new(x, "version", json_integer(999999));
    json_array_append_new(cs, x);
    ck_assert_int_eq(verify(c, NULL), 1);
    json_decref(c);
    /* the members out of order (lines before the rate cards): not an invoice bundle */
    c = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O}", "format", json_object_get(b, "format"), "kind",
                  json_object_get(b, "kind"), "broker", json_object_get(b, "broker"), "invoice",
                  json_object_get(b, "invoice"), "lines", json_object_get(b, "lines"), "rate_cards",
                  json_object_get(b, "rate_cards"));
    ck_assert_int_eq(verify(c, NULL), 1);
    json_decref(c);

    /* who may read it: finance and auditors of the tenant; another tenant does not learn the
     * invoice exists; an open invoice has no bundle yet */
    json_decref(get_bundle(inv, FINANCE));
    char *path = tst_fmt("/billing/invoices/%s/bundle", inv);
    tst_expect_status(B.port, "GET", path, STRANGER, NULL, 404, "invoice_not_found");
    tst_expect_status(B.port, "GET", path, SHELL, NULL, 403, NULL);
    free(path);
    tst_expect_status(B.port, "GET",
                      "/billing/invoices/inv_00000000000000000000000000000000/bundle", AUDITOR,
                      NULL, 404, "invoice_not_found");
    char *ctx = authorize();
    post_cr(ctx, 1, "completed");
    wait_lines(pg, 7);
    char *open = open_invoice(pg);
    path = tst_fmt("/billing/invoices/%s/bundle", open);
    tst_expect_status(B.port, "GET", path, AUDITOR, NULL, 409, "invoice_not_finalized");
    free(path), free(open), free(ctx);

    json_decref(b);
    free(inv);
    PQfinish(pg);
}
END_TEST

START_TEST(history_and_nodes_are_append_only)
{
    PGconn *pg = tst_pg_connect(DB);
    char *inv = sample_invoice(pg, 4);
    /* every PUT that changes the card is a version; the same card again is not */
    long before = tst_pg_long(pg, "SELECT count(*) FROM rate_card_versions WHERE tenant_id = "
                                  "'acme' AND account_id = 'tokyo'");
    put_card("tokyo", CARD2);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM rate_card_versions WHERE tenant_id = "
                                     "'acme' AND account_id = 'tokyo'"),
                     before);
    put_card("tokyo", CARD1);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT max(version) FROM rate_card_versions WHERE "
                                     "tenant_id = 'acme' AND account_id = 'tokyo'"),
                     before + 1);
    /* the stored canonical text is what the verifier hashes (RFC 8785 over the stored card) */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM rate_card_versions WHERE card_cid::text "
                                     "<> 'sha256:' || encode(sha256(convert_to(card_jcs, 'UTF8')), "
                                     "'hex') OR card_jcs <> bill_jcs(card)"),
                     0);
    const char *refused[] = {
        "UPDATE rate_card_versions SET card_jcs = '{}' WHERE tenant_id = 'acme'",
        "DELETE FROM rate_card_versions WHERE tenant_id = 'acme'",
        "TRUNCATE rate_card_versions",
        "UPDATE tlog_nodes SET hash = sha256('x') WHERE tenant_id = 'acme'",
        "DELETE FROM tlog_nodes WHERE tenant_id = 'acme'",
        "TRUNCATE tlog_nodes",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        PGresult *res = PQexec(pg, refused[i]);
        ck_assert_msg(PQresultStatus(res) == PGRES_FATAL_ERROR, "not refused: %s", refused[i]);
        ck_assert_str_eq(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23000");
        PQclear(res);
    }
    /* the stored nodes give, for every size, the root stored with the entry */
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM tlog_entries e WHERE e.tenant_id = "
                                     "'acme' AND tlog_mth('acme', 0, e.idx + 1) <> e.root_hash"),
                     0);
    ck_assert_int_gt(tst_pg_long(pg, "SELECT count(*) FROM tlog_nodes WHERE tenant_id = 'acme'"),
                     0);
    /* a line priced before the rate-card history (no version: as lines written before 0018,
     * set here past the guards) cannot be checked, and verify says so */
    char *q = tst_fmt("SET session_replication_role = replica; UPDATE invoice_lines SET "
                      "rate_card_version = NULL WHERE tenant_id = 'acme' AND invoice_id = '%s' "
                      "AND line_no = 2; SET session_replication_role = origin",
                      inv);
    PGresult *res = PQexec(pg, q);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(res);
    free(q);
    json_t *b = get_bundle(inv, AUDITOR);
    ck_assert(json_is_null(
        json_object_get(json_array_get(json_object_get(b, "lines"), 1), "rate_card_version")));
    char *report = NULL;
    ck_assert_int_eq(verify(b, &report), 1);
    ck_assert_ptr_nonnull(strstr(report, "FAIL lines[1].rate_card_version: priced before "
                                         "rate-card history"));
    free(report);
    json_decref(b);
    free(inv);
    PQfinish(pg);
}
END_TEST

/* ---- the mutation walk (as it_bundle's) ---- */


/* What docs/protocol.md lists as not covered: which key is current, when a card version was
 * stored and whether it was backfilled, when the broker received a CR (it bounds the span
 * only for a CR that claims to end later: the sample's do not). */
static int not_covered(const char *path)
{
    return (strncmp(path, ".broker.keys[", 13) == 0 && strstr(path, "].current") != NULL) ||
           (strncmp(path, ".rate_cards[", 12) == 0 &&
            (strstr(path, "].created_at") != NULL || strstr(path, "].backfilled") != NULL)) ||
           (strncmp(path, ".lines[", 7) == 0 && strstr(path, "].received_at") != NULL);
}

START_TEST(every_scalar_matters)
{
    PGconn *pg = tst_pg_connect(DB);
    char *inv = sample_invoice(pg, 4);
    json_t *b = get_bundle(inv, AUDITOR);
    ck_assert_int_eq(verify(b, NULL), 0);
    tst_mutate_result_t w;
    tst_mutate_scalars(b, not_covered, verify, &w);
    ck_assert_int_eq(verify(b, NULL), 0);
    fprintf(stderr, "it_invbundle: %d mutations, %d pass verify\n", w.mutated, w.survived);
    ck_assert_msg(w.mutated >= MIN_MUTATIONS, "only %d scalars mutated", w.mutated);
    ck_assert_msg(w.survived == 0, "%d of %d mutations pass verify, first %s", w.survived,
                  w.mutated, w.first);
    json_decref(b);
    free(inv);
    PQfinish(pg);
}
END_TEST

/* Hex of a hash into out (65 bytes). */
static void hex_of(const brk_mhash_t h, char *out)
{
    for (size_t k = 0; k < BRK_MERKLE_HASH_LEN; k++)
        snprintf(out + 2 * k, 3, "%02x", h[k]);
}

/* The proofs tlog_inclusion_path computes from stored nodes are, hash for hash, the ones
 * brk_merkle computes from every leaf: for every index of every size 1..64, and for a few
 * indexes of sizes around powers of two up to the whole log. */
static void check_sql_proofs(PGconn *pg, long n)
{
    brk_mhash_t *leaves = calloc((size_t)n, sizeof *leaves);
    PGresult *res = PQexec(pg, "SELECT encode(leaf_hash, 'hex') FROM tlog_entries WHERE "
                               "tenant_id = 'acme' ORDER BY idx");
    ck_assert_int_eq(PQntuples(res), n);
    for (long i = 0; i < n; i++)
        for (size_t k = 0; k < BRK_MERKLE_HASH_LEN; k++)
            sscanf(PQgetvalue(res, (int)i, 0) + 2 * k, "%2hhx", &leaves[i][k]);
    PQclear(res);
    char *q = tst_fmt("SELECT s, i, array_to_string(ARRAY(SELECT encode(p.h, 'hex') FROM "
                      "unnest(tlog_inclusion_path('acme', i, s)) WITH ORDINALITY AS p(h, o) "
                      "ORDER BY p.o), ',') FROM (SELECT s, i FROM generate_series(1, 64) s, "
                      "LATERAL generate_series(0, s - 1) i UNION ALL SELECT s, i FROM "
                      "unnest(ARRAY[255, 256, 257, 1023, 1024, 1025, %ld]) s, LATERAL "
                      "unnest(ARRAY[0, 1, s / 2, s - 2, s - 1]) i WHERE s <= %ld) x",
                      n, n);
    res = PQexec(pg, q);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    ck_assert_int_gt(PQntuples(res), 2080);
    for (int r = 0; r < PQntuples(res); r++) {
        size_t sz = (size_t)atol(PQgetvalue(res, r, 0)), idx = (size_t)atol(PQgetvalue(res, r, 1));
        brk_mhash_t proof[BRK_MERKLE_MAX_PROOF];
        size_t plen = 0;
        ck_assert_int_eq(brk_merkle_inclusion_proof(leaves, sz, idx, proof, &plen), 0);
        char want[BRK_MERKLE_MAX_PROOF * 65 + 1] = "";
        for (size_t k = 0; k < plen; k++) {
            if (k)
                strcat(want, ",");
            hex_of(proof[k], want + strlen(want));
        }
        ck_assert_msg(strcmp(want, PQgetvalue(res, r, 2)) == 0, "size %zu index %zu: %s, want %s",
                      sz, idx, PQgetvalue(res, r, 2), want);
    }
    PQclear(res);
    free(q), free(leaves);
}

/* Many lines: the bundle spans many pages (keyset, one chunk each) and still verifies, and
 * `gsap-broker export` writes the same document to a file. */
START_TEST(big_invoice)
{
    PGconn *pg = tst_pg_connect(DB);
    put_card("tokyo", CARD1);
    char *ctx = authorize();
    for (int i = 0; i < BIG_LINES; i++)
        post_cr(ctx, i + 1, "completed");
    wait_lines(pg, BIG_LINES);
    check_sql_proofs(pg, tst_pg_long(pg, "SELECT count(*) FROM tlog_entries WHERE tenant_id = "
                                         "'acme'"));
    char *inv = open_invoice(pg);
    /* the lines name HND_INVBUNDLE_CARDS_MAX (256) versions of the card (all equal, so every
     * amount still holds): served whole */
    ck_assert_int_eq(tst_pg_long(pg, "WITH i AS (INSERT INTO rate_card_versions (tenant_id, "
                                     "account_id, version, currency, exponent, card, card_jcs, "
                                     "card_cid) SELECT tenant_id, account_id, g, currency, "
                                     "exponent, card, card_jcs, card_cid FROM rate_card_versions, "
                                     "generate_series(2, 256) g WHERE tenant_id = 'acme' AND "
                                     "account_id = 'tokyo' AND version = 1 RETURNING 1) "
                                     "SELECT count(*) FROM i"),
                     255);
    char *q = tst_fmt("UPDATE invoice_lines SET rate_card_version = 1 + line_no %% 256 WHERE "
                      "tenant_id = 'acme' AND invoice_id = '%s'",
                      inv);
    PQclear(PQexec(pg, q));
    free(q);
    finalize(inv);
    json_t *b = get_bundle(inv, AUDITOR);
    ck_assert_int_eq(json_array_size(json_object_get(b, "lines")), BIG_LINES);
    ck_assert_int_eq(json_array_size(json_object_get(b, "rate_cards")), 256);
    char *report = NULL;
    int st = verify(b, &report);
    ck_assert_msg(st == 0, "verify: exit %d\n%.2000s", st, report ? report : "(no output)");
    free(report);
    /* export: the same bundle, through the CLI, over HTTP with a token */
    char path[] = "/tmp/it_invbundle_export_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *url = tst_fmt("http://127.0.0.1:%u", B.port);
    char *cmd = tst_fmt("GSAP_BROKER_URL=%s GSAP_TOKEN=%s '%s' export invoice %s --out %s", url,
                        AUDITOR, getenv("GSAP_BROKER_BIN"), inv, path);
    st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "export: status %d", st);
    free(cmd);
    /* another tenant's key: refused, and no file is left behind */
    cmd = tst_fmt("GSAP_BROKER_URL=%s GSAP_TOKEN=%s '%s' export invoice %s --out %s 2>/dev/null",
                  url, STRANGER, getenv("GSAP_BROKER_BIN"), inv, path);
    char *out;
    {
        char kept[] = "/tmp/it_invbundle_refused_XXXXXX";
        int kfd = mkstemp(kept);
        ck_assert_int_ge(kfd, 0);
        close(kfd);
        char *c2 = tst_fmt("GSAP_BROKER_URL=%s GSAP_TOKEN=%s '%s' export invoice %s --out %s "
                           "2>/dev/null",
                           url, STRANGER, getenv("GSAP_BROKER_BIN"), inv, kept);
        st = system(c2);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "refused export: status %d", st);
        ck_assert_int_ne(access(kept, F_OK), 0);
        free(c2);
    }
    free(cmd);
    json_error_t e;
    json_t *x = json_load_file(path, 0, &e);
    ck_assert_msg(json_equal(x, b), "the exported bundle is not the served one");
    out = tst_broker_cli(&B, &st, "verify", path, NULL);
    ck_assert_msg(st == 0, "verify of the export: exit %d", st);
    free(out);
    unlink(path);
    /* one version more (written past the guards, as only a superuser could): 413 */
    q = tst_fmt("SET session_replication_role = replica; INSERT INTO rate_card_versions "
                "(tenant_id, account_id, version, currency, exponent, card, card_jcs, card_cid) "
                "SELECT tenant_id, account_id, 257, currency, exponent, card, card_jcs, card_cid "
                "FROM rate_card_versions WHERE tenant_id = 'acme' AND account_id = 'tokyo' AND "
                "version = 1; UPDATE invoice_lines SET rate_card_version = 257 WHERE tenant_id = "
                "'acme' AND invoice_id = '%s' AND line_no = 1; "
                "SET session_replication_role = origin",
                inv);
    PGresult *res = PQexec(pg, q);
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(pg));
    PQclear(res);
    free(q);
    char *bpath = tst_fmt("/billing/invoices/%s/bundle", inv);
    tst_expect_status(B.port, "GET", bpath, AUDITOR, NULL, 413, "too_many_rate_cards");
    free(bpath);
    json_decref(x), json_decref(b);
    free(url), free(inv), free(ctx);
    PQfinish(pg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_invbundle");
    TCase *tc = tcase_create("invbundle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, invoice_bundle_verifies);
    tcase_add_test(tc, history_and_nodes_are_append_only);
    tcase_add_test(tc, every_scalar_matters);
    tcase_add_test(tc, big_invoice);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
