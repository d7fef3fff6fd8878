/*
 * hnd_billing: billing accounts (role admin) and invoice reads (roles finance and auditor):
 *
 *   PUT  /admin/accounts/{account_id}      {"currency", "rate_card"}; the currency is locked
 *                                          once the account has lines
 *   GET  /admin/accounts/{account_id}
 *   GET  /billing/invoices/                the tenant's invoices, newest period first
 *   GET  /billing/invoices/{invoice_id}/   head, lines (a page, ?after=line_no), credit notes;
 *                                          Accept: text/html gives a printable page
 *
 * Validation of an account is bill_account_parse, the same code `gsap-broker accounts put`
 * runs, so an account means one thing whichever way it was stored. The CSV export, finalizing
 * and credit notes live in hnd_billing_export.c and hnd_billing_finalize.c.
 */
#include "hnd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill_money.h"
#include "bill_rate.h"
#include "brk_err.h"
#include "hnd_billing.h"
#include "hnd_gov.h"
#include "hnd_html.h"
#include "banned.h"

#define BILL_LIST_MAX "1000"        /* invoices in the list */
#define BILL_CREDITS_MAX "1000"     /* credit notes shown with an invoice */
#define BILL_HTML_MAX (1024 * 1024) /* bytes of the printable page (cut beyond) */

/* The columns of the statements below, by name (each statement's SELECT order). q_list and
 * q_head share their first eight (up to IV_LINE_COUNT); IL_ and IH_ name what follows. */
enum acct_put_col { AP_CODE, AP_CREATED_AT, AP_UPDATED_AT };
enum acct_get_col { AG_CURRENCY, AG_RATE_CARD, AG_CREATED_AT, AG_UPDATED_AT };
enum invoice_col {
    IV_INVOICE_ID,
    IV_ACCOUNT_ID,
    IV_PERIOD,
    IV_STATUS,
    IV_CURRENCY,
    IV_EXPONENT,
    IV_TOTAL_MINOR,
    IV_LINE_COUNT,
    IL_CREATED_AT = IV_LINE_COUNT + 1, /* q_list */
    IL_FINALIZED_AT,
    IH_LINES_ROOT = IV_LINE_COUNT + 1, /* q_head */
    IH_INVOICE_CID,
    IH_SIGNATURE,
    IH_KEY_ID,
    IH_DOCUMENT,
    IH_CREATED_AT,
    IH_FINALIZED_AT,
    IH_LATE_LINES,
    IH_CREDITED_MINOR,
};
enum credit_col {
    CN_CREDIT_ID,
    CN_LINE_NO,
    CN_AMOUNT_MINOR,
    CN_REASON,
    CN_CREATED_AT,
    CN_CID,
    CN_DOCUMENT
};

/* SQL reads best laid out as SQL. */
/* clang-format off */
brk_db_stmt_t hnd_bill_q_lines = {
    "bill_lines",
    "SELECT line_no, cr_id, context_id, " HND_BILL_TS_US("occurred_at") ", outcome, "
    "  array_to_json(flags)::text, array_to_string(flags, ';'), late, quantity, unit_minor, "
    "  total_minor, lineage_cid, chronicle_cid, merkle_root, rating::text, log_index "
    "FROM invoice_lines WHERE tenant_id = $1 AND invoice_id = $2 AND line_no > $3::bigint "
    "ORDER BY line_no LIMIT $4::int",
    0};
static brk_db_stmt_t q_acct_put = {
    "bill_account_put",
    "SELECT code, " HND_BILL_TS("created_at") ", " HND_BILL_TS("updated_at") " "
    "FROM bill_put_account($1, $2, $3, $4::smallint, $5::jsonb)",
    0};
static brk_db_stmt_t q_acct_get = {
    "bill_account_get",
    "SELECT currency, rate_card::text, " HND_BILL_TS("created_at") ", "
    "  " HND_BILL_TS("updated_at") " "
    "FROM billing_accounts WHERE tenant_id = $1 AND account_id = $2",
    0};
static brk_db_stmt_t q_list = {
    "bill_invoice_list",
    "SELECT invoice_id, account_id, to_char(period, 'YYYY-MM'), status, currency, exponent, "
    "  total_minor, line_count, " HND_BILL_TS("created_at") ", " HND_BILL_TS("finalized_at") " "
    "FROM invoices WHERE tenant_id = $1 ORDER BY period DESC, created_at DESC "
    "LIMIT " BILL_LIST_MAX,
    0};
static brk_db_stmt_t q_head = {
    "bill_invoice_head",
    "SELECT invoice_id, account_id, to_char(period, 'YYYY-MM'), status, currency, exponent, "
    "  total_minor, line_count, lines_root, invoice_cid, signature, key_id, document::text, "
    "  " HND_BILL_TS("created_at") ", " HND_BILL_TS("finalized_at") ", "
    "  (SELECT count(*) FROM invoice_lines l WHERE l.tenant_id = i.tenant_id "
    "     AND l.invoice_id = i.invoice_id AND l.late), "
    "  (SELECT coalesce(sum(amount_minor), 0) FROM credit_notes c "
    "     WHERE c.tenant_id = i.tenant_id AND c.invoice_id = i.invoice_id) "
    "FROM invoices i WHERE tenant_id = $1 AND invoice_id = $2",
    0};
static brk_db_stmt_t q_credits = {
    "bill_invoice_credits",
    "SELECT credit_id, line_no, amount_minor, reason, " HND_BILL_TS("created_at") ", "
    "  credit_cid, document::text "
    "FROM credit_notes WHERE tenant_id = $1 AND invoice_id = $2 "
    "ORDER BY recorded_at, credit_id LIMIT " BILL_CREDITS_MAX,
    0};
/* clang-format on */

/* ---- shared helpers (hnd_billing.h) ---- */

int hnd_bill_invoice_param(brk_req_t *r, char out[BILL_ID_LEN + 1])
{
    h2o_iovec_t p = brk_req_param(r, 0);
    int ok = p.len == BILL_ID_LEN && memcmp(p.base, "inv_", 4) == 0;
    for (size_t i = 4; ok && i < p.len; i++)
        ok = (p.base[i] >= '0' && p.base[i] <= '9') || (p.base[i] >= 'a' && p.base[i] <= 'f');
    if (!ok) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

int64_t hnd_bill_i64(const char *s)
{
    return strtoll(s, NULL, 10);
}

void hnd_bill_money(json_t *obj, const char *key, int64_t minor, int exponent)
{
    char k[64], text[BILL_AMOUNT_STR_MAX];
    snprintf(k, sizeof k, "%s_minor", key);
    bill_format(minor, exponent, text);
    json_object_set_new(obj, k, json_integer(minor));
    json_object_set_new(obj, key, json_string(text));
}

static json_t *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

json_t *hnd_bill_line_json(const PGresult *res, int row, int exponent)
{
    json_t *flags = json_loads(PQgetvalue(res, row, HL_FLAGS_JSON), 0, NULL);
    json_t *rating = json_loads(PQgetvalue(res, row, HL_RATING), 0, NULL);
    json_t *l =
        json_pack("{s:I,s:s,s:s,s:s,s:s,s:o,s:b,s:I,s:s,s:s,s:o,s:o}", "line_no",
                  (json_int_t)hnd_bill_i64(PQgetvalue(res, row, HL_LINE_NO)), "cr_id",
                  PQgetvalue(res, row, HL_CR_ID), "context_id", PQgetvalue(res, row, HL_CONTEXT_ID),
                  "occurred_at", PQgetvalue(res, row, HL_OCCURRED_AT), "outcome",
                  PQgetvalue(res, row, HL_OUTCOME), "flags", flags ? flags : json_array(), "late",
                  PQgetvalue(res, row, HL_LATE)[0] == 't', "quantity",
                  (json_int_t)hnd_bill_i64(PQgetvalue(res, row, HL_QUANTITY)), "lineage_cid",
                  PQgetvalue(res, row, HL_LINEAGE_CID), "chronicle_cid",
                  PQgetvalue(res, row, HL_CHRONICLE_CID), "merkle_root",
                  text_or_null(res, row, HL_MERKLE_ROOT), "rating", rating ? rating : json_null());
    json_object_set_new(l, "log_index",
                        PQgetisnull(res, row, HL_LOG_INDEX)
                            ? json_null()
                            : json_integer(hnd_bill_i64(PQgetvalue(res, row, HL_LOG_INDEX))));
    hnd_bill_money(l, "unit", hnd_bill_i64(PQgetvalue(res, row, HL_UNIT_MINOR)), exponent);
    hnd_bill_money(l, "total", hnd_bill_i64(PQgetvalue(res, row, HL_TOTAL_MINOR)), exponent);
    return l;
}

/* ---- accounts ---- */

typedef struct acct {
    char id[BILL_ACCOUNT_ID_MAX + 1];
    const bill_currency_t *currency;
    const char *card; /* the normalized card's text, in request memory */
} acct_t;

/* {account_id} into out; 404 when it cannot name an account. */
static int account_param(brk_req_t *r, char out[BILL_ACCOUNT_ID_MAX + 1])
{
    h2o_iovec_t p = brk_req_param(r, 0);
    if (p.len == 0 || p.len > BILL_ACCOUNT_ID_MAX) {
        brk_reply_error(r, BRK_ENOTFOUND, "account_not_found", "no such account");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

static void account_reply(brk_req_t *r, const char *id, const char *currency, json_t *card,
                          const char *created, const char *updated)
{
    const bill_currency_t *c = bill_currency_find(currency);
    json_t *b = json_pack("{s:s,s:s,s:i,s:O,s:s,s:s}", "account_id", id, "currency", currency,
                          "exponent", c ? c->exponent : 0, "rate_card", card, "created_at", created,
                          "updated_at", updated);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_put(brk_req_t *r, const brk_db_result_t *res)
{
    acct_t *a = r->ctx;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
    } else if (strcmp(PQgetvalue(res->res[0], 0, AP_CODE), "currency_locked") == 0) {
        brk_reply_error(r, BRK_ECONFLICT, "currency_locked",
                        "account \"%s\" already has invoice lines: its currency cannot change",
                        a->id);
    } else {
        json_t *card = json_loads(a->card, 0, NULL);
        account_reply(r, a->id, a->currency->code, card,
                      PQgetvalue(res->res[0], 0, AP_CREATED_AT),
                      PQgetvalue(res->res[0], 0, AP_UPDATED_AT));
        json_decref(card);
    }
}

static void put_account(brk_req_t *r)
{
    acct_t *a = brk_req_alloc(r, sizeof *a);
    bill_account_t parsed;
    const char *code;
    char msg[BILL_MSG_MAX], exponent[4];
    int rc;

    if (account_param(r, a->id) != 0)
        return;
    if (!bill_account_id_valid(a->id)) {
        brk_reply_error(r, BRK_EINVAL, "invalid_field",
                        "an account id is 1 to 64 of letters, digits, '.', '_' and '-'");
        return;
    }
    if ((rc = bill_account_parse(r->body, &parsed, &code, msg, sizeof msg)) != 0) {
        brk_reply_error(r, rc, code, "%s", msg);
        return;
    }
    json_t *card = bill_ratecard_json(&parsed.card);
    a->currency = parsed.currency;
    a->card = hnd_json_dump(r, card);
    json_decref(card);
    snprintf(exponent, sizeof exponent, "%d", parsed.currency->exponent);
    r->ctx = a;
    brk_db_op_t op = {
        &q_acct_put, 5, {r->principal.tenant, a->id, parsed.currency->code, exponent, a->card}};
    brk_req_db(r, &op, 1, on_put);
}

static void on_get_account(brk_req_t *r, const brk_db_result_t *res)
{
    PGresult *p = res->res ? res->res[0] : NULL;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    if (PQntuples(p) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "account_not_found", "no such account");
        return;
    }
    json_t *card = json_loads(PQgetvalue(p, 0, AG_RATE_CARD), 0, NULL);
    account_reply(r, r->ctx, PQgetvalue(p, 0, AG_CURRENCY), card, PQgetvalue(p, 0, AG_CREATED_AT),
                  PQgetvalue(p, 0, AG_UPDATED_AT));
    json_decref(card);
}

static void get_account(brk_req_t *r)
{
    char *id = brk_req_alloc(r, BILL_ACCOUNT_ID_MAX + 1);
    if (account_param(r, id) != 0)
        return;
    r->ctx = id;
    brk_db_op_t op = {&q_acct_get, 2, {r->principal.tenant, id}};
    brk_req_db(r, &op, 1, on_get_account);
}

/* ---- invoice list ---- */

static void on_list(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *p = res->res[0];
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(p); i++) {
        int exp = (int)hnd_bill_i64(PQgetvalue(p, i, IV_EXPONENT));
        json_t *o = json_pack(
            "{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:o}", "invoice_id", PQgetvalue(p, i, IV_INVOICE_ID),
            "account", PQgetvalue(p, i, IV_ACCOUNT_ID), "period", PQgetvalue(p, i, IV_PERIOD),
            "status", PQgetvalue(p, i, IV_STATUS), "currency", PQgetvalue(p, i, IV_CURRENCY),
            "exponent", exp, "line_count", (json_int_t)hnd_bill_i64(PQgetvalue(p, i, IV_LINE_COUNT)),
            "created_at", PQgetvalue(p, i, IL_CREATED_AT), "finalized_at",
            text_or_null(p, i, IL_FINALIZED_AT));
        hnd_bill_money(o, "total", hnd_bill_i64(PQgetvalue(p, i, IV_TOTAL_MINOR)), exp);
        json_array_append_new(list, o);
    }
    json_t *b = json_pack("{s:o}", "invoices", list);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void list_invoices(brk_req_t *r)
{
    brk_db_op_t op = {&q_list, 1, {r->principal.tenant}};
    brk_req_db(r, &op, 1, on_list);
}

/* ---- one invoice: JSON or a printable page ---- */


/* A JSON member as text: strings as they are, anything else serialized. */
static void put_member(hnd_html_t *h, const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v)) {
        hnd_html_esc(h, json_string_value(v));
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        hnd_html_esc(h, s ? s : "null");
        free(s);
    }
}

static void reply_html(brk_req_t *r, const json_t *page)
{
    static const char *const head_keys[] = {"account",   "period",       "status",      "currency",
                                            "total",     "line_count",   "late_lines",  "credited",
                                            "net",       "lines_root",   "invoice_cid", "key_id",
                                            "signature", "finalized_at", NULL};
    static const char *const line_keys[] = {"line_no", "occurred_at", "cr_id", "outcome",
                                            "flags",   "quantity",    "unit",  "total",
                                            "late",    "lineage_cid", NULL};
    static const char *const credit_keys[] = {"credit_id",  "line_no",    "amount", "reason",
                                              "created_at", "credit_cid", NULL};
    hnd_html_t h;
    hnd_html_init(&h, r, BILL_HTML_MAX);
    const json_t *inv = json_object_get(page, "invoice");
    size_t i;
    json_t *row;

    hnd_html_put(&h, "<!doctype html><html><head><meta charset=\"utf-8\"><title>Invoice ");
    put_member(&h, inv, "invoice_id");
    hnd_html_put(&h, "</title><style>body{font:13px sans-serif;margin:2em}table{border-collapse:collapse;"
            "margin-bottom:1.5em}th,td{border:1px solid #999;padding:3px 6px;text-align:left}"
            "td.n{text-align:right}code{word-break:break-all}@media print{body{margin:0}}"
            "</style></head><body>\n<h1>Invoice ");
    put_member(&h, inv, "invoice_id");
    hnd_html_put(&h, "</h1>\n<table>\n");
    for (int k = 0; head_keys[k]; k++) {
        hnd_html_put(&h, "<tr><th>");
        hnd_html_put(&h, head_keys[k]);
        hnd_html_put(&h, "</th><td><code>");
        put_member(&h, inv, head_keys[k]);
        hnd_html_put(&h, "</code></td></tr>\n");
    }
    hnd_html_put(&h, "</table>\n<h2>Lines</h2><table><tr>");
    for (int k = 0; line_keys[k]; k++) {
        hnd_html_put(&h, "<th>");
        hnd_html_put(&h, line_keys[k]);
        hnd_html_put(&h, "</th>");
    }
    hnd_html_put(&h, "<th>session</th></tr>\n");
    json_array_foreach(json_object_get(page, "lines"), i, row)
    {
        hnd_html_put(&h, "<tr>");
        for (int k = 0; line_keys[k]; k++) {
            hnd_html_put(&h, "<td><code>");
            put_member(&h, row, line_keys[k]);
            hnd_html_put(&h, "</code></td>");
        }
        /* the session page shows the receipt behind the line, its lineage step recomputed;
         * a context id is "ctx_" and 32 hex digits (a CHECK on acs), escaped all the same */
        const char *ctx = json_string_value(json_object_get(row, "context_id"));
        if (ctx != NULL) {
            hnd_html_put(&h, "<td><a href=\"/governance/session/");
            hnd_html_esc(&h, ctx);
            hnd_html_put(&h, "/\">");
            hnd_html_esc(&h, ctx);
            hnd_html_put(&h, "</a></td>");
        } else {
            hnd_html_put(&h, "<td></td>");
        }
        hnd_html_put(&h, "</tr>\n");
    }
    hnd_html_put(&h, "</table>\n");
    if (!json_is_null(json_object_get(page, "next_after")))
        hnd_html_put(&h, "<p>More lines follow: the complete list is <code>lines.csv</code>.</p>\n");
    hnd_html_put(&h, "<h2>Credit notes</h2><table><tr>");
    for (int k = 0; credit_keys[k]; k++) {
        hnd_html_put(&h, "<th>");
        hnd_html_put(&h, credit_keys[k]);
        hnd_html_put(&h, "</th>");
    }
    hnd_html_put(&h, "</tr>\n");
    json_array_foreach(json_object_get(page, "credit_notes"), i, row)
    {
        hnd_html_put(&h, "<tr>");
        for (int k = 0; credit_keys[k]; k++) {
            hnd_html_put(&h, "<td><code>");
            put_member(&h, row, credit_keys[k]);
            hnd_html_put(&h, "</code></td>");
        }
        hnd_html_put(&h, "</tr>\n");
    }
    hnd_html_put(&h, "</table>\n</body></html>\n");
    brk_reply_raw(r, 200, "text/html; charset=utf-8", h.p, h.len);
}

static json_t *invoice_head(const PGresult *p)
{
    int exp = (int)hnd_bill_i64(PQgetvalue(p, 0, IV_EXPONENT));
    int64_t total = hnd_bill_i64(PQgetvalue(p, 0, IV_TOTAL_MINOR)),
            credited = hnd_bill_i64(PQgetvalue(p, 0, IH_CREDITED_MINOR));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:o,s:o,s:o,s:o,s:s,s:o}", "invoice_id",
        PQgetvalue(p, 0, IV_INVOICE_ID), "account", PQgetvalue(p, 0, IV_ACCOUNT_ID), "period",
        PQgetvalue(p, 0, IV_PERIOD), "status", PQgetvalue(p, 0, IV_STATUS), "currency",
        PQgetvalue(p, 0, IV_CURRENCY), "exponent", exp, "line_count",
        (json_int_t)hnd_bill_i64(PQgetvalue(p, 0, IV_LINE_COUNT)), "late_lines",
        (json_int_t)hnd_bill_i64(PQgetvalue(p, 0, IH_LATE_LINES)), "lines_root",
        text_or_null(p, 0, IH_LINES_ROOT), "invoice_cid", text_or_null(p, 0, IH_INVOICE_CID),
        "signature", text_or_null(p, 0, IH_SIGNATURE), "key_id", text_or_null(p, 0, IH_KEY_ID),
        "created_at", PQgetvalue(p, 0, IH_CREATED_AT), "finalized_at",
        text_or_null(p, 0, IH_FINALIZED_AT));
    int64_t net = total - credited; /* credits never exceed a line, so never the total */
    hnd_bill_money(o, "total", total, exp);
    hnd_bill_money(o, "credited", credited, exp);
    hnd_bill_money(o, "net", net, exp);
    return o;
}

static void on_invoice(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *head = res->res[0], *lines = res->res[1], *credits = res->res[2];
    if (PQntuples(head) != 1) {
        brk_reply_error(r, BRK_ENOTFOUND, "invoice_not_found", "no such invoice");
        return;
    }
    int exp = (int)hnd_bill_i64(PQgetvalue(head, 0, IV_EXPONENT));
    json_t *doc = PQgetisnull(head, 0, IH_DOCUMENT)
                      ? NULL
                      : json_loads(PQgetvalue(head, 0, IH_DOCUMENT), 0, NULL);
    json_t *ls = json_array(), *cs = json_array();
    int n = PQntuples(lines);
    for (int i = 0; i < n; i++)
        json_array_append_new(ls, hnd_bill_line_json(lines, i, exp));
    for (int i = 0; i < PQntuples(credits); i++) {
        json_t *cdoc = json_loads(PQgetvalue(credits, i, CN_DOCUMENT), 0, NULL);
        json_t *c = json_pack(
            "{s:s,s:I,s:s,s:s,s:s,s:o}", "credit_id", PQgetvalue(credits, i, CN_CREDIT_ID),
            "line_no", (json_int_t)hnd_bill_i64(PQgetvalue(credits, i, CN_LINE_NO)), "reason",
            PQgetvalue(credits, i, CN_REASON), "created_at", PQgetvalue(credits, i, CN_CREATED_AT),
            "credit_cid", PQgetvalue(credits, i, CN_CID), "document", cdoc ? cdoc : json_null());
        hnd_bill_money(c, "amount", hnd_bill_i64(PQgetvalue(credits, i, CN_AMOUNT_MINOR)), exp);
        json_array_append_new(cs, c);
    }
    /* a full page may have more after it: say where to continue */
    json_t *next = n == BILL_PAGE_LINES
                       ? json_integer(hnd_bill_i64(PQgetvalue(lines, n - 1, HL_LINE_NO)))
                       : json_null();
    json_t *page =
        json_pack("{s:o,s:o,s:o,s:o,s:o}", "invoice", invoice_head(head), "document",
                  doc ? doc : json_null(), "lines", ls, "next_after", next, "credit_notes", cs);
    if (brk_req_accepts_html(r))
        reply_html(r, page);
    else
        brk_reply_json(r, 200, page);
    json_decref(page);
}

/* ?after=N: the line number to continue after (0 when absent). -1 (400) when malformed.
 * Intake has already refused a query that is not text (400 invalid_query). */
static int after_param(brk_req_t *r, char out[24])
{
    char num[24];
    size_t len;
    char *e;
    int rc = brk_req_query(r, "after", num, sizeof num, &len);
    snprintf(out, 24, "0");
    if (rc == BRK_ENOTFOUND || (rc == 0 && len == 0))
        return 0; /* absent, or "after=" with nothing: from the start, as before */
    if (rc != 0 || num[0] < '0' || num[0] > '9')
        goto bad;
    errno = 0;
    long long v = strtoll(num, &e, 10);
    if (errno != 0 || *e != '\0' || v < 0)
        goto bad;
    snprintf(out, 24, "%lld", v);
    return 0;
bad:
    brk_reply_error(r, BRK_EINVAL, "invalid_query", "\"after\" must be a line number");
    return -1;
}

static void get_invoice(brk_req_t *r)
{
    char *id = brk_req_alloc(r, BILL_ID_LEN + 1), *after = brk_req_alloc(r, 24);
    if (hnd_bill_invoice_param(r, id) != 0 || after_param(r, after) != 0)
        return;
    brk_db_op_t ops[3] = {
        {&q_head, 2, {r->principal.tenant, id}},
        {&hnd_bill_q_lines, 4, {r->principal.tenant, id, after, BILL_PAGE_LINES_STR}},
        {&q_credits, 2, {r->principal.tenant, id}}};
    brk_req_db(r, ops, 3, on_invoice);
}

static const brk_route_t routes[] = {
    {"PUT", "/admin/accounts/{account_id}", BRK_ROLE_ADMIN, BRK_ROUTE_JSON, put_account},
    {"GET", "/admin/accounts/{account_id}", BRK_ROLE_ADMIN, 0, get_account},
    {"GET", "/billing/invoices", BRK_ROLE_FINANCE | BRK_ROLE_AUDITOR, BRK_ROUTE_REPLICA_OK,
     list_invoices},
    {"GET", "/billing/invoices/{invoice_id}", BRK_ROLE_FINANCE | BRK_ROLE_AUDITOR,
     BRK_ROUTE_REPLICA_OK, get_invoice},
};

int hnd_billing_register(void)
{
    brk_db_stmt_t *stmts[] = {&hnd_bill_q_lines, &q_acct_put, &q_acct_get,
                              &q_list,           &q_head,     &q_credits};
    int rc;
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if ((rc = brk_db_register(stmts[i])) != 0)
            return rc;
    if ((rc = brk_router_add(routes, sizeof routes / sizeof routes[0])) != 0 ||
        (rc = hnd_billing_export_register()) != 0)
        return rc;
    return hnd_billing_finalize_register();
}
