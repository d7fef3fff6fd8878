/*
 * hnd_billing_export: GET /billing/invoices/{invoice_id}/lines.csv (finance, auditor).
 *
 * One RFC 4180 record per line, after a header record, with the CIDs and each amount both in
 * minor units and formatted by the currency's exponent. The body is streamed (brk_stream):
 * BILL_PAGE_LINES lines per statement, by keyset (line_no > the last one sent), one chunk per
 * page, the next page fetched only when h2o has taken the previous chunk. So the memory an
 * export holds is one page, whether the invoice has ten lines or ten million, and a slow
 * client slows the export instead of filling the broker's memory.
 *
 * The pages of one export are separate statements: lines added to an open invoice while it
 * is being exported appear if their line_no comes after the page being read. A finalized
 * invoice's lines never change, so its export is exact.
 */
#include "hnd.h"

#include <stdio.h>
#include <string.h>

#include "bill_csv.h"
#include "bill_money.h"
#include "brk_err.h"
#include "brk_stream.h"
#include "hnd_billing.h"
#include "banned.h"

#define CSV_ROW_MAX 2048 /* bytes of one record: ids, CIDs and numbers fit with room to spare */

static const char *const header[] = {
    "invoice_id", "line_no",  "cr_id",       "context_id",    "occurred_at", "outcome",
    "flags",      "late",     "quantity",    "unit_minor",    "unit",        "total_minor",
    "total",      "currency", "lineage_cid", "chronicle_cid", "merkle_root", "log_index"};
#define NCOLS (sizeof header / sizeof header[0])

static brk_db_stmt_t q_export_head = {
    "bill_export_head",
    "SELECT currency, exponent FROM invoices WHERE tenant_id = $1 AND invoice_id = $2", 0};

typedef struct export
{
    char invoice_id[BILL_ID_LEN + 1];
    char currency[4];
    int exponent;
    char after[24]; /* the last line_no sent */
    brk_stream_t *s;
}
export_t;

static int append_record(brk_stream_t *s, const char *const *fields)
{
    char row[CSV_ROW_MAX];
    size_t n = bill_csv_row(row, sizeof row, fields, NCOLS);
    if (n >= sizeof row)
        return BRK_ETOOBIG;
    return brk_stream_append(s, row, n);
}

/* Appends a page of lines and flushes it; the last page (short) ends the body. */
static void send_page(export_t *x, const PGresult *p)
{
    int n = PQntuples(p);
    for (int i = 0; i < n; i++) {
        char unit[BILL_AMOUNT_STR_MAX], total[BILL_AMOUNT_STR_MAX];
        bill_format(hnd_bill_i64(PQgetvalue(p, i, HL_UNIT_MINOR)), x->exponent, unit);
        bill_format(hnd_bill_i64(PQgetvalue(p, i, HL_TOTAL_MINOR)), x->exponent, total);
        const char *fields[NCOLS] = {
            x->invoice_id,
            PQgetvalue(p, i, HL_LINE_NO),
            PQgetvalue(p, i, HL_CR_ID),
            PQgetvalue(p, i, HL_CONTEXT_ID),
            PQgetvalue(p, i, HL_OCCURRED_AT),
            PQgetvalue(p, i, HL_OUTCOME),
            PQgetvalue(p, i, HL_FLAGS_TEXT),
            PQgetvalue(p, i, HL_LATE)[0] == 't' ? "true" : "false",
            PQgetvalue(p, i, HL_QUANTITY),
            PQgetvalue(p, i, HL_UNIT_MINOR),
            unit,
            PQgetvalue(p, i, HL_TOTAL_MINOR),
            total,
            x->currency,
            PQgetvalue(p, i, HL_LINEAGE_CID),
            PQgetvalue(p, i, HL_CHRONICLE_CID),
            PQgetisnull(p, i, HL_MERKLE_ROOT) ? NULL : PQgetvalue(p, i, HL_MERKLE_ROOT),
            /* the line's index in the tenant's transparency log (empty: not yet in it) */
            PQgetisnull(p, i, HL_LOG_INDEX) ? NULL : PQgetvalue(p, i, HL_LOG_INDEX)};
        if (append_record(x->s, fields) != 0) {
            brk_stream_abort(x->s, "an invoice line does not fit a csv record");
            return;
        }
    }
    if (n > 0)
        snprintf(x->after, sizeof x->after, "%s", PQgetvalue(p, n - 1, HL_LINE_NO));
    brk_stream_flush(x->s, n < BILL_PAGE_LINES);
}

static void on_page(brk_req_t *r, const brk_db_result_t *res)
{
    export_t *x = r->ctx;
    if (res->err != 0) {
        brk_stream_abort(x->s, "the database failed while reading invoice lines");
        return;
    }
    send_page(x, res->res[0]);
}

static void more(brk_req_t *r, brk_stream_t *s)
{
    export_t *x = brk_stream_arg(s);
    brk_db_op_t op = {
        &hnd_bill_q_lines, 4, {r->principal.tenant, x->invoice_id, x->after, BILL_PAGE_LINES_STR}};
    if (brk_req_db(r, &op, 1, on_page) != 0)
        brk_stream_abort(s, "the database refused the next page of invoice lines");
}

static void on_first(brk_req_t *r, const brk_db_result_t *res)
{
    export_t *x = r->ctx;
    char disposition[96];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(res->res[0]) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return;
    }
    snprintf(x->currency, sizeof x->currency, "%s", PQgetvalue(res->res[0], 0, 0));
    x->exponent = (int)hnd_bill_i64(PQgetvalue(res->res[0], 0, 1));
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s.csv\"", x->invoice_id);
    brk_reply_add_header(r, "content-disposition", disposition);
    if ((x->s = brk_stream_start(r, 200, "text/csv; charset=utf-8; header=present", more, x)) ==
        NULL)
        return;
    if (append_record(x->s, header) != 0) {
        brk_stream_abort(x->s, "cannot write the csv header");
        return;
    }
    send_page(x, res->res[1]);
}

static void lines_csv(brk_req_t *r)
{
    export_t *x = brk_req_alloc(r, sizeof *x);
    if (hnd_bill_invoice_param(r, x->invoice_id) != 0)
        return;
    snprintf(x->after, sizeof x->after, "0");
    r->ctx = x;
    brk_db_op_t ops[2] = {{&q_export_head, 2, {r->principal.tenant, x->invoice_id}},
                          {&hnd_bill_q_lines,
                           4,
                           {r->principal.tenant, x->invoice_id, x->after, BILL_PAGE_LINES_STR}}};
    brk_req_db(r, ops, 2, on_first);
}

static const brk_route_t routes[] = {
    {"GET", "/billing/invoices/{invoice_id}/lines.csv", BRK_ROLE_FINANCE | BRK_ROLE_AUDITOR,
     BRK_ROUTE_REPLICA_OK,
     lines_csv},
};

int hnd_billing_export_register(void)
{
    int rc = brk_db_register(&q_export_head);
    return rc ? rc : brk_router_add(routes, sizeof routes / sizeof routes[0]);
}
