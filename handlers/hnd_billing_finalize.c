/*
 * hnd_billing_finalize: the finance routes that write (role finance only):
 *
 *   POST /billing/invoices/{invoice_id}/finalize       sign and freeze the invoice
 *   POST /billing/invoices/{invoice_id}/credit-notes   {"line_no", "amount_minor", "reason"}
 *
 * Finalizing is the three steps of bill_invoice.h driven from the loop, one batch each:
 * begin (the invoice becomes finalizing and takes no more lines), the lines page by page
 * into a bill_finalizer_t (count, total, Merkle tree head in O(log n) memory), then the
 * signed document is committed. Each batch is its own transaction, so a broker that dies in
 * between leaves the invoice finalizing; the next POST (or the month-close job, after
 * BILL_STALE_FINALIZING) takes it up from the start and ends in the same state. An invoice
 * already finalized answers 409 invoice_finalized and is not touched.
 *
 * A credit note is a signed document of its own, referencing the line (its lineage CID) and
 * the invoice's CID; the amount of all credit notes of a line never exceeds the line's total.
 * The route checks before signing and bill_credit checks again under the invoice's row lock.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bill_money.h"
#include "brk_err.h"
#include "brk_server.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "hnd_billing.h"
#include "hnd_gov.h"
#include "hnd_util.h"
#include "banned.h"

#define CREDIT_REASON_MAX 256
#define CREDIT_VERSION "1.0"

static brk_db_stmt_t q_begin = {"bill_finalize_begin", BILL_SQL_FINALIZE_BEGIN, 0};
static brk_db_stmt_t q_page = {"bill_finalize_page", BILL_SQL_FINALIZE_PAGE, 0};
static brk_db_stmt_t q_commit = {"bill_finalize_commit", BILL_SQL_FINALIZE_COMMIT, 0};
/* q_credit_ctx's columns, by name (its SELECT order). */
enum credit_ctx_col {
    CX_STATUS,
    CX_INVOICE_CID,
    CX_CURRENCY,
    CX_EXPONENT,
    CX_LINEAGE_CID, /* NULL: the invoice has no such line */
    CX_LINE_TOTAL,
    CX_CREDITED
};
static brk_db_stmt_t q_credit_ctx = {
    "bill_credit_ctx",
    "SELECT i.status, i.invoice_cid, i.currency, i.exponent, l.lineage_cid, l.total_minor, "
    "(SELECT coalesce(sum(c.amount_minor), 0) FROM credit_notes c WHERE c.tenant_id = i.tenant_id "
    "  AND c.invoice_id = i.invoice_id AND c.line_no = $3::bigint) "
    "FROM invoices i LEFT JOIN invoice_lines l ON l.tenant_id = i.tenant_id "
    "  AND l.invoice_id = i.invoice_id AND l.line_no = $3::bigint "
    "WHERE i.tenant_id = $1 AND i.invoice_id = $2",
    0};
static brk_db_stmt_t q_credit = {
    "bill_credit",
    "SELECT code, creditable FROM bill_credit($1, $2, $3::bigint, $4::bigint, $5, $6, $7::jsonb)",
    0};

/* ---- finalize ---- */

typedef struct fin {
    char invoice_id[BILL_ID_LEN + 1];
    char after[24];
    bill_finalizer_t f;
    const char *doc; /* the signed document's text, in request memory */
} fin_t;

static void on_commit(brk_req_t *r, const brk_db_result_t *res)
{
    fin_t *x = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const char *code = PQgetvalue(res->res[0], 0, 0);
    if (strcmp(code, "finalized") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "invoice_finalized",
                        "invoice \"%s\" is already finalized", x->invoice_id);
        return;
    }
    if (strcmp(code, "ok") != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL,
                        "invoice \"%s\" changed while it was finalized (%s)", x->invoice_id, code);
        return;
    }
    json_t *doc = json_loads(x->doc, 0, NULL);
    json_t *inv = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:O,s:O,s:O,s:O,s:O}", "invoice_id", x->invoice_id, "account",
        x->f.account, "period", x->f.period, "status", "finalized", "currency", x->f.currency,
        "exponent", x->f.exponent, "line_count", (json_int_t)x->f.count, "lines_root",
        json_object_get(doc, "lines_root"), "invoice_cid", json_object_get(doc, "invoice_cid"),
        "signature", json_object_get(doc, "signature"), "key_id", json_object_get(doc, "key_id"),
        "finalized_at", json_object_get(doc, "finalized_at"));
    hnd_bill_money(inv, "total", x->f.total, x->f.exponent);
    json_t *b = json_pack("{s:o,s:o}", "invoice", inv, "document", doc);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_page(brk_req_t *r, const brk_db_result_t *res);

static void next_page(brk_req_t *r, fin_t *x)
{
    brk_db_op_t op = {&q_page, 3, {r->principal.tenant, x->invoice_id, x->after}};
    brk_req_db(r, &op, 1, on_page);
}

static void on_page(brk_req_t *r, const brk_db_result_t *res)
{
    fin_t *x = r->ctx;
    char msg[256];
    json_t *doc = NULL;
    int rc;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    int n = PQntuples(p);
    for (int i = 0; i < n; i++) {
        if (bill_finalizer_add(&x->f, PQgetvalue(p, i, 0), PQgetvalue(p, i, 1),
                               PQgetvalue(p, i, 2),
                               PQgetisnull(p, i, 3) ? NULL : PQgetvalue(p, i, 3),
                               PQgetisnull(p, i, 4) ? NULL : PQgetvalue(p, i, 4)) != 0) {
            brk_reply_error(r, BRK_EINTERNAL, NULL, "line %s of invoice \"%s\" cannot be summed",
                            PQgetvalue(p, i, 0), x->invoice_id);
            return;
        }
    }
    snprintf(x->after, sizeof x->after, "%lld", (long long)x->f.last_line_no);
    if (n == BILL_PAGE_LINES) {
        next_page(r, x);
        return;
    }
    if ((rc = bill_finalizer_finish(&x->f, brk_server_keys(r->server),
                                    brk_server_config(r->server)->broker_id, time(NULL), &doc, msg,
                                    sizeof msg)) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "%s", msg);
        return;
    }
    x->doc = hnd_json_dump(r, doc);
    json_decref(doc);
    brk_db_op_t op = {&q_commit, 3, {r->principal.tenant, x->invoice_id, x->doc}};
    brk_req_db(r, &op, 1, on_commit);
}

static void on_begin(brk_req_t *r, const brk_db_result_t *res)
{
    fin_t *x = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    const char *code = PQgetvalue(p, 0, 0);
    if (strcmp(code, "not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return;
    }
    if (strcmp(code, "finalized") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "invoice_finalized",
                        "invoice \"%s\" is already finalized", x->invoice_id);
        return;
    }
    const char *cols[6];
    for (int i = 0; i < 6; i++)
        cols[i] = PQgetvalue(p, 0, i + 1);
    if (bill_finalizer_init(&x->f, r->principal.tenant, x->invoice_id, cols) != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "invoice \"%s\" has a malformed row",
                        x->invoice_id);
        return;
    }
    next_page(r, x);
}

static void finalize(brk_req_t *r)
{
    fin_t *x = brk_req_alloc(r, sizeof *x);
    if (hnd_bill_invoice_param(r, x->invoice_id) != 0)
        return;
    snprintf(x->after, sizeof x->after, "0");
    r->ctx = x;
    brk_db_op_t op = {&q_begin, 2, {r->principal.tenant, x->invoice_id}};
    brk_req_db(r, &op, 1, on_begin);
}

/* ---- credit notes ---- */

typedef struct credit {
    char invoice_id[BILL_ID_LEN + 1];
    char line_no[24], amount[24];
    const char *reason;
    const char *doc; /* the signed credit note's text, in request memory */
    int exponent;
} credit_t;

static void on_credit(brk_req_t *r, const brk_db_result_t *res)
{
    credit_t *x = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    const char *code = PQgetvalue(res->res[0], 0, 0);
    if (strcmp(code, "not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
    } else if (strcmp(code, "not_finalized") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "invoice_not_finalized",
                        "credit notes apply to finalized invoices only");
    } else if (strcmp(code, "line_not_found") == 0) {
        brk_reply_error(r, BRK_ENOTFOUND, "line_not_found", "invoice \"%s\" has no line %s",
                        x->invoice_id, x->line_no);
    } else if (strcmp(code, "exceeds") == 0) {
        brk_reply_error(r, BRK_ERANGE, "credit_exceeds_line",
                        "line %s can be credited %s more minor units at most", x->line_no,
                        PQgetvalue(res->res[0], 0, 1));
    } else {
        json_t *doc = json_loads(x->doc, 0, NULL);
        json_t *b =
            json_pack("{s:O,s:I,s:s,s:O,s:O,s:o}", "credit_id", json_object_get(doc, "credit_id"),
                      "line_no", (json_int_t)hnd_bill_i64(x->line_no), "reason", x->reason,
                      "created_at", json_object_get(doc, "created_at"), "credit_cid",
                      json_object_get(doc, "credit_cid"), "document", doc);
        hnd_bill_money(b, "amount", hnd_bill_i64(x->amount), x->exponent);
        brk_reply_json(r, 200, b);
        json_decref(b);
    }
}

static void on_credit_ctx(brk_req_t *r, const brk_db_result_t *res)
{
    credit_t *x = r->ctx;
    char id[GOV_ID_LEN + 1], at[BRK_TIME_LEN + 1], amount[BILL_AMOUNT_STR_MAX];
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    if (PQntuples(p) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return;
    }
    if (strcmp(PQgetvalue(p, 0, CX_STATUS), "finalized") != 0) {
        brk_reply_error(r, BRK_ECONFLICT, "invoice_not_finalized",
                        "credit notes apply to finalized invoices only");
        return;
    }
    if (PQgetisnull(p, 0, CX_LINEAGE_CID)) {
        brk_reply_error(r, BRK_ENOTFOUND, "line_not_found", "invoice \"%s\" has no line %s",
                        x->invoice_id, x->line_no);
        return;
    }
    int64_t left =
        hnd_bill_i64(PQgetvalue(p, 0, CX_LINE_TOTAL)) - hnd_bill_i64(PQgetvalue(p, 0, CX_CREDITED));
    if (hnd_bill_i64(x->amount) > left) {
        brk_reply_error(r, BRK_ERANGE, "credit_exceeds_line",
                        "line %s can be credited %lld more minor units at most", x->line_no,
                        (long long)left);
        return;
    }
    x->exponent = (int)hnd_bill_i64(PQgetvalue(p, 0, CX_EXPONENT));
    gov_new_id("crn_", id);
    brk_time_fmt(time(NULL), at);
    bill_format(hnd_bill_i64(x->amount), x->exponent, amount);
    json_t *doc = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:i,s:s,s:s,s:s,s:s}", "gsap_credit_note_version",
        CREDIT_VERSION, "broker_id", brk_server_config(r->server)->broker_id, "tenant",
        r->principal.tenant, "credit_id", id, "invoice_id", x->invoice_id, "invoice_cid",
        PQgetvalue(p, 0, CX_INVOICE_CID), "line_no", (json_int_t)hnd_bill_i64(x->line_no),
        "lineage_cid", PQgetvalue(p, 0, CX_LINEAGE_CID), "currency", PQgetvalue(p, 0, CX_CURRENCY),
        "exponent", x->exponent,
        "amount_minor", x->amount, "amount", amount, "reason", x->reason, "created_at", at);
    if (doc == NULL || brk_doc_sign(brk_server_keys(r->server), doc, "credit_cid") != 0) {
        json_decref(doc);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "cannot sign the credit note");
        return;
    }
    x->doc = hnd_json_dump(r, doc);
    json_decref(doc);
    brk_db_op_t op = {
        &q_credit,
        7,
        {r->principal.tenant, x->invoice_id, x->line_no, x->amount, x->reason, id, x->doc}};
    brk_req_db(r, &op, 1, on_credit);
}

static void credit_note(brk_req_t *r)
{
    static const char *const fields[] = {"line_no", "amount_minor", "reason", NULL};
    credit_t *x = brk_req_alloc(r, sizeof *x);
    json_t *b = r->body;
    long long line_no = 0, amount = 0;
    const char *reason;

    if (hnd_bill_invoice_param(r, x->invoice_id) != 0 || hnd_reject_unknown(r, b, fields) != 0)
        return;
    for (int i = 0; i < 2; i++) {
        const char *k = i == 0 ? "line_no" : "amount_minor";
        if (json_object_get(b, k) == NULL) {
            brk_reply_error(r, BRK_EINVAL, "missing_field", "\"%s\" is required", k);
            return;
        }
    }
    if (hnd_opt_int(r, b, "line_no", 1, INT64_MAX, &line_no) != 0 ||
        hnd_opt_int(r, b, "amount_minor", 1, INT64_MAX, &amount) != 0 ||
        hnd_req_string(r, b, "reason", CREDIT_REASON_MAX, &reason) != 0)
        return;
    if (reason[0] == '\0') {
        brk_reply_error(r, BRK_EINVAL, "invalid_field", "\"reason\" must not be empty");
        return;
    }
    snprintf(x->line_no, sizeof x->line_no, "%lld", line_no);
    snprintf(x->amount, sizeof x->amount, "%lld", amount);
    x->reason = reason; /* r->body lives as long as r */
    r->ctx = x;
    brk_db_op_t op = {&q_credit_ctx, 3, {r->principal.tenant, x->invoice_id, x->line_no}};
    brk_req_db(r, &op, 1, on_credit_ctx);
}

static const brk_route_t routes[] = {
    {"POST", "/billing/invoices/{invoice_id}/finalize", BRK_ROLE_FINANCE, 0, finalize},
    {"POST", "/billing/invoices/{invoice_id}/credit-notes", BRK_ROLE_FINANCE, BRK_ROUTE_JSON,
     credit_note},
};

int hnd_billing_finalize_register(void)
{
    brk_db_stmt_t *stmts[] = {&q_begin, &q_page, &q_commit, &q_credit_ctx, &q_credit};
    int rc;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((rc = brk_db_register(stmts[i])) != 0)
            return rc;
    return brk_router_add(routes, sizeof routes / sizeof routes[0]);
}
