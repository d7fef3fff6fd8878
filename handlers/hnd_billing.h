/*
 * hnd_billing: what the billing route groups share (hnd_billing.c: accounts and invoice
 * reads; hnd_billing_export.c: the streamed CSV; hnd_billing_finalize.c: finalizing and
 * credit notes). Everything is scoped to the caller's tenant: another tenant's invoice is a
 * 404 like an unknown one. Request loop only.
 */
#ifndef HND_BILLING_H
#define HND_BILLING_H

#include <jansson.h>
#include <stdint.h>

#include "bill_invoice.h"
#include "brk_http.h"

/* RFC 3339 UTC text of a timestamptz column, in SQL (seconds; microseconds). */
#define HND_BILL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define HND_BILL_TS_US(col)                                                                        \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Columns of hnd_bill_q_lines ($1 tenant, $2 invoice, $3 after line_no, $4 limit). */
enum hnd_bill_line_col {
    HL_LINE_NO,
    HL_CR_ID,
    HL_CONTEXT_ID,
    HL_OCCURRED_AT,
    HL_OUTCOME,
    HL_FLAGS_JSON,
    HL_FLAGS_TEXT,
    HL_LATE,
    HL_QUANTITY,
    HL_UNIT_MINOR,
    HL_TOTAL_MINOR,
    HL_LINEAGE_CID,
    HL_CHRONICLE_CID,
    HL_MERKLE_ROOT,
    HL_RATING,
    HL_LOG_INDEX
};
extern brk_db_stmt_t hnd_bill_q_lines;

/* hnd_bill_invoice_param: the {invoice_id} path parameter into out; answers 404
 * invoice_not_found and returns -1 when it cannot be one. */
int hnd_bill_invoice_param(brk_req_t *r, char out[BILL_ID_LEN + 1]);

/* hnd_bill_i64: a bigint column's text as int64_t (0 when malformed, which PostgreSQL's
 * own output never is). */
int64_t hnd_bill_i64(const char *s);

/* hnd_bill_money: {"<key>_minor": minor, "<key>": formatted} into obj. */
void hnd_bill_money(json_t *obj, const char *key, int64_t minor, int exponent);

/* hnd_bill_line_json: row of a hnd_bill_q_lines result as the API's line object. */
json_t *hnd_bill_line_json(const PGresult *res, int row, int exponent);

/* Registration of the other two files, called by hnd_billing_register. */
int hnd_billing_export_register(void);
int hnd_billing_finalize_register(void);

#endif
