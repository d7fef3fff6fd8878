/*
 * hnd_invbundle: the audit bundle of one finalized invoice,
 *   GET /billing/invoices/{invoice_id}/bundle            (finance, auditor)
 * one JSON document (format in docs/protocol.md and gov_bundle.h, "kind": "invoice") with the
 * signed invoice document, the rate-card versions its lines were priced with, and every line
 * with its receipt, its AC and the inclusion proof of its lineage CID against the checkpoint
 * the signed document carries; what `gsap-broker verify` checks offline.
 *
 * Streamed (brk_stream), because an invoice may have a million lines: the head (format, kind,
 * broker keys, invoice, rate cards) goes out with the first page; then each page is one
 * statement of at most HND_INVBUNDLE_PAGE_LINES lines by keyset (line_no > the last one sent),
 * each line built as JSON text by PostgreSQL, its proof computed there from the stored
 * interior nodes of the log (tlog_inclusion_path, O(log^2 n) reads, no leaf list). A page is
 * one chunk; a line that would push the chunk past BRK_STREAM_CHUNK_MAX ends the chunk early
 * and is read again with the next page. So the broker holds one page, whatever the invoice's
 * size. A finalized invoice's lines never change, so the pages of one export are consistent.
 *
 * Only finalized invoices have a bundle (409 invoice_not_finalized): before, there is neither
 * signature nor checkpoint to check against. Another tenant's invoice is 404 like an unknown
 * one. At most HND_INVBUNDLE_CARDS_MAX rate-card versions per bundle (413 too_many_rate_cards):
 * the verifier holds them all while it reads the lines.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_server.h"
#include "brk_stream.h"
#include "gov_bundle.h"
#include "hnd_billing.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define HND_INVBUNDLE_PAGE_LINES 200 /* lines per statement: ~1 MB of JSON for usual lines */
#define HND_INVBUNDLE_PAGE_LINES_STR "200"
#define HND_INVBUNDLE_CARDS_MAX GOV_INVBUNDLE_CARDS_MAX /* what the verifier holds */
#define HND_INVBUNDLE_CARDS_MAX_STR "256"
_Static_assert(HND_INVBUNDLE_CARDS_MAX == 256, "HND_INVBUNDLE_CARDS_MAX_STR follows it");
#define INVB_NUM_LEN 24 /* a decimal int64 and its NUL */

static brk_db_stmt_t q_head = {
    "invb_head",
    "SELECT status, document::text, coalesce((document->'log'->>'tree_size'), '0') "
    "FROM invoices WHERE tenant_id = $1 AND invoice_id = $2",
    0};
/* The rate-card versions the invoice's lines name, ascending, and how many there are (the
 * aggregate is only returned when within the cap). */
static brk_db_stmt_t q_cards = {
    "invb_cards",
    "WITH v AS (SELECT DISTINCT rate_card_version AS version FROM invoice_lines "
    "           WHERE tenant_id = $1 AND invoice_id = $2 AND rate_card_version IS NOT NULL) "
    "SELECT (SELECT count(*) FROM v), CASE WHEN (SELECT count(*) FROM v) "
    "<= " HND_INVBUNDLE_CARDS_MAX_STR " THEN "
    "(SELECT coalesce(json_agg(json_build_object('account', r.account_id, 'version', r.version, "
    "  'currency', r.currency, 'exponent', r.exponent, 'card', r.card, 'card_cid', r.card_cid, "
    "  'created_at', " HND_BILL_TS_US(
        "r.created_at") ", 'backfilled', r.backfilled) "
                        "  ORDER BY r.version), '[]')::text "
                        " FROM invoices i JOIN rate_card_versions r ON r.tenant_id = i.tenant_id "
                        "   AND r.account_id = i.account_id "
                        " WHERE i.tenant_id = $1 AND i.invoice_id = $2 AND r.version IN (SELECT "
                        "version FROM v)) END",
    0};
/* One page of lines as JSON text ($3 after line_no, $4 limit, $5 the checkpoint's size). */
static brk_db_stmt_t q_lines = {
    "invb_lines",
    "SELECT l.line_no, json_build_object('line_no', l.line_no, "
    "  'rate_card_version', l.rate_card_version, 'log_index', l.log_index, "
    "  'outcome', l.outcome, 'flags', to_json(l.flags), "
    "  'received_at', " HND_BILL_TS_US(
        "c.received_at") ", "
                         "  'quantity', l.quantity::text, 'unit_minor', l.unit_minor::text, "
                         "  'total_minor', l.total_minor::text, "
                         "  'receipt', json_build_object('sequence', c.sequence, 'cr_cid', "
                         "c.cr_cid, "
                         "    'chronicle_cid', c.chronicle_cid, 'prev_lineage_cid', "
                         "c.prev_lineage_cid, "
                         "    'lineage_cid', c.lineage_cid, 'cr', c.cr), "
                         "  'ac', a.ac, "
                         "  'inclusion', CASE WHEN l.log_index < $5::bigint THEN json_build_object("
                         "    'leaf_index', l.log_index, 'tree_size', $5::bigint, 'hashes', "
                         "    (SELECT coalesce(json_agg(encode(p.h, 'base64') ORDER BY p.o), '[]') "
                         "     FROM unnest(tlog_inclusion_path(l.tenant_id, l.log_index, "
                         "$5::bigint)) "
                         "          WITH ORDINALITY AS p(h, o))) END)::text "
                         "FROM invoice_lines l "
                         "JOIN crs c ON c.tenant_id = l.tenant_id AND c.cr_id = l.cr_id "
                         "JOIN acs a ON a.tenant_id = c.tenant_id AND a.context_id = c.context_id "
                         "WHERE l.tenant_id = $1 AND l.invoice_id = $2 AND l.line_no > $3::bigint "
                         "ORDER BY l.line_no LIMIT $4::int",
    0};

typedef struct invb {
    char invoice_id[BILL_ID_LEN + 1];
    char after[INVB_NUM_LEN]; /* the last line_no sent */
    char size[INVB_NUM_LEN];  /* the checkpoint's tree size ("0": none) */
    int first;                /* no line sent yet (no comma before the next) */
    size_t chunk;             /* bytes in the chunk being built */
    brk_stream_t *s;
} invb_t;

/* Appends (p, n) to the chunk, counting its bytes: 0, or BRK_ETOOBIG (nothing added) when
 * the chunk would pass BRK_STREAM_CHUNK_MAX. */
static int put(invb_t *x, const char *p, size_t n)
{
    if (x->chunk + n > BRK_STREAM_CHUNK_MAX)
        return BRK_ETOOBIG;
    int rc = brk_stream_append(x->s, p, n);
    if (rc == 0)
        x->chunk += n;
    return rc;
}

static int append_str(invb_t *x, const char *p)
{
    return put(x, p, strlen(p));
}

static void flush(invb_t *x, int final)
{
    x->chunk = 0;
    brk_stream_flush(x->s, final);
}

/* Appends the lines of page p that fit the chunk and flushes; a short page that fitted
 * whole ends the body. A line that does not fit a chunk that already has lines opens the
 * next chunk (it is read again with the next page). */
static void send_page(invb_t *x, const PGresult *p)
{
    int n = PQntuples(p), sent = 0;
    for (int i = 0; i < n; i++) {
        size_t len = (size_t)PQgetlength(p, i, 1), sep = x->first ? 0 : 1;
        if (x->chunk + sep + len > BRK_STREAM_CHUNK_MAX) {
            if (x->chunk > 0)
                break;
            brk_stream_abort(x->s, "an invoice line does not fit a chunk of the bundle");
            return;
        }
        if (put(x, ",", sep) != 0 || put(x, PQgetvalue(p, i, 1), len) != 0) {
            brk_stream_abort(x->s, "cannot append an invoice line to the bundle");
            return;
        }
        x->first = 0;
        sent++;
        snprintf(x->after, sizeof x->after, "%s", PQgetvalue(p, i, 0));
    }
    /* no room for the closing brackets: they go alone in one more chunk */
    int last = n < HND_INVBUNDLE_PAGE_LINES && sent == n && append_str(x, "]}\n") == 0;
    flush(x, last);
}

static void on_page(brk_req_t *r, const brk_db_result_t *res)
{
    invb_t *x = r->ctx;
    if (res->err != 0) {
        brk_stream_abort(x->s, "the database failed while reading invoice lines");
        return;
    }
    send_page(x, res->res[0]);
}

static void more(brk_req_t *r, brk_stream_t *s)
{
    invb_t *x = brk_stream_arg(s);
    brk_db_op_t op = {
        &q_lines,
        5,
        {r->principal.tenant, x->invoice_id, x->after, HND_INVBUNDLE_PAGE_LINES_STR, x->size}};
    if (brk_req_db(r, &op, 1, on_page) != 0)
        brk_stream_abort(s, "the database refused the next page of invoice lines");
}

/* The head of the bundle, up to and including "lines":[ . 0 or an error. */
static int append_head(brk_req_t *r, invb_t *x, const char *doc, const char *cards)
{
    json_t *b = hnd_bundle_broker_keys(r), *d = json_loads(doc, 0, NULL);
    char *bs = b ? json_dumps(b, JSON_COMPACT) : NULL, *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    int rc = BRK_EINTERNAL;
    if (bs != NULL && ds != NULL &&
        (rc = append_str(x, "{\"format\":\"" GOV_BUNDLE_FORMAT
                            "\",\"kind\":\"" GOV_BUNDLE_KIND_INVOICE "\",\"broker\":")) == 0 &&
        (rc = append_str(x, bs)) == 0 && (rc = append_str(x, ",\"invoice\":")) == 0 &&
        (rc = append_str(x, ds)) == 0 && (rc = append_str(x, ",\"rate_cards\":")) == 0 &&
        (rc = append_str(x, cards)) == 0)
        rc = append_str(x, ",\"lines\":[");
    free(bs), free(ds);
    json_decref(b), json_decref(d);
    return rc;
}

static void on_head(brk_req_t *r, const brk_db_result_t *res)
{
    invb_t *x = r->ctx;
    char disposition[96];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *h = res->res[0], *c = res->res[1];
    if (PQntuples(h) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return;
    }
    if (strcmp(PQgetvalue(h, 0, 0), "finalized") != 0) {
        brk_reply_error(r, BRK_ECONFLICT, "invoice_not_finalized",
                        "an invoice has a bundle once it is finalized (it is %s)",
                        PQgetvalue(h, 0, 0));
        return;
    }
    if (PQgetisnull(c, 0, 1)) {
        brk_reply_error(r, BRK_ETOOBIG, "too_many_rate_cards",
                        "the invoice's lines were priced with %s rate-card versions; a bundle "
                        "carries at most %d",
                        PQgetvalue(c, 0, 0), HND_INVBUNDLE_CARDS_MAX);
        return;
    }
    snprintf(x->size, sizeof x->size, "%s", PQgetvalue(h, 0, 2));
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.bundle.json\"",
             x->invoice_id);
    brk_reply_add_header(r, "content-disposition", disposition);
    if ((x->s = brk_stream_start(r, 200, "application/json", more, x)) == NULL)
        return;
    if (append_head(r, x, PQgetvalue(h, 0, 1), PQgetvalue(c, 0, 1)) != 0) {
        brk_stream_abort(x->s, "cannot write the head of the invoice bundle");
        return;
    }
    /* the first page of lines is read when h2o has taken the head */
    flush(x, 0);
}

static void bundle(brk_req_t *r)
{
    invb_t *x = brk_req_alloc(r, sizeof *x);
    memset(x, 0, sizeof *x);
    if (hnd_bill_invoice_param(r, x->invoice_id) != 0)
        return;
    snprintf(x->after, sizeof x->after, "0");
    x->first = 1;
    r->ctx = x;
    brk_db_op_t ops[2] = {{&q_head, 2, {r->principal.tenant, x->invoice_id}},
                          {&q_cards, 2, {r->principal.tenant, x->invoice_id}}};
    brk_req_db(r, ops, 2, on_head);
}

static const brk_route_t routes[] = {
    {"GET", "/billing/invoices/{invoice_id}/bundle", BRK_ROLE_FINANCE | BRK_ROLE_AUDITOR, 0,
     bundle},
};

int hnd_invbundle_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_head, &q_cards, &q_lines};
    int rc;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((rc = brk_db_register(stmts[i])) != 0)
            return rc;
    return brk_router_add(routes, sizeof routes / sizeof routes[0]);
}
