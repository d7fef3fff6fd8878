/*
 * bill_invoice: what finalizing an invoice computes, and the documents it signs.
 *
 * An invoice is finalized in three steps that both the finance route (asynchronously, on
 * an HTTP loop) and the month-close job (blocking, on the function runtime) run with the same
 * SQL and this same code, so a month closed by the job and one closed by hand are
 * indistinguishable:
 *   1. BILL_SQL_FINALIZE_BEGIN marks the invoice finalizing (the database then refuses new
 *      lines on it: they go to the next open invoice, marked late) and returns its head;
 *   2. BILL_SQL_FINALIZE_PAGE reads the lines in line_no order, BILL_PAGE_LINES at a time
 *      (keyset pagination), into a bill_finalizer_t: running count, total and Merkle tree,
 *      in O(log n) memory however many lines there are;
 *   3. bill_finalizer_finish builds and signs the invoice document, and
 *      BILL_SQL_FINALIZE_COMMIT stores it and marks the invoice finalized, only when the
 *      stored count and total still equal the ones computed from the lines.
 * Every step is safe to repeat: an invoice left finalizing by a crash is finished by the
 * next attempt (the route's, or the month-close job's after BILL_STALE_FINALIZING).
 *
 * lines_root is the RFC 6962 Merkle tree head (leaf SHA-256(0x00 || leaf), node
 * SHA-256(0x01 || left || right)) over the lines' lineage CIDs, each leaf the 71 ASCII bytes
 * of the CID, in line_no order, written "sha256:" + 64 hex.
 *
 * The invoice document (RFC 8785 canonical JSON; money as decimal strings of minor units so
 * that no verifier's JSON parser rounds them):
 *   {"gsap_invoice_version": "1.0", "broker_id", "tenant", "invoice_id", "account",
 *    "period": "YYYY-MM", "currency", "exponent", "line_count", "total_minor", "total",
 *    "lines_root", "finalized_at", "key_id", "invoice_cid", "signature"}
 * invoice_cid is the CID of the document without "invoice_cid" and "signature", and the
 * signature is "ed25519:" + base64url of the broker key's signature over those same bytes,
 * exactly as for ACs (docs/protocol.md). Credit notes are signed the same way.
 *
 * Pure functions except bill_finalize_blocking; any thread.
 */
#ifndef BILL_INVOICE_H
#define BILL_INVOICE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_jcs.h"
#include "brk_limits.h"
#include "brk_merkle.h"

#define BILL_PAGE_LINES 1000 /* lines per statement when reading an invoice's lines */
#define BILL_PAGE_LINES_STR "1000"
#define BILL_ID_LEN 36    /* "inv_" / "crn_" + 32 hex */
#define BILL_PERIOD_LEN 7 /* "YYYY-MM" */
#define BILL_MERKLE_DEPTH 64              /* 2^64 leaves */
#define BILL_STALE_FINALIZING "5 minutes" /* a finalizing invoice older than this is resumed */
#define BILL_INVOICE_VERSION "1.0"

/* Step 1: $1 tenant, $2 invoice id. One row: code ('ok', 'not_found', 'finalized'),
 * account_id, period 'YYYY-MM', currency, exponent, line_count, total_minor. */
#define BILL_SQL_FINALIZE_BEGIN                                                                    \
    "SELECT code, account_id, period, currency, exponent, line_count, total_minor "                \
    "FROM bill_finalize_begin($1, $2)"
/* Step 2: $1 tenant, $2 invoice id, $3 the last line_no read (0 first). */
#define BILL_SQL_FINALIZE_PAGE                                                                     \
    "SELECT line_no, lineage_cid, total_minor FROM invoice_lines WHERE tenant_id = $1 AND "        \
    "invoice_id = $2 AND line_no > $3::bigint ORDER BY line_no LIMIT " BILL_PAGE_LINES_STR
/* Step 3: $1 tenant, $2 invoice id, $3 the signed document. One row: 'ok', 'finalized'
 * (someone else finished first), 'not_finalizing' or 'mismatch'. */
#define BILL_SQL_FINALIZE_COMMIT "SELECT bill_finalize_commit($1, $2, $3::jsonb)"

/* An incremental RFC 6962 tree head: one pending subtree root per set bit of count. */
typedef struct bill_merkle {
    brk_mhash_t stack[BILL_MERKLE_DEPTH];
    size_t top;
    uint64_t count;
} bill_merkle_t;

void bill_merkle_init(bill_merkle_t *m);
/* bill_merkle_add: appends the leaf (p, n). */
void bill_merkle_add(bill_merkle_t *m, const void *p, size_t n);
/* bill_merkle_root: MTH of the leaves added so far (SHA-256("") for none). */
void bill_merkle_root(const bill_merkle_t *m, brk_mhash_t out);

/* The running state of one finalization; a plain value owned by the caller. */
typedef struct bill_finalizer {
    char tenant[BRK_TENANT_MAX + 1];
    char invoice_id[BILL_ID_LEN + 1];
    char account[65];
    char period[BILL_PERIOD_LEN + 1];
    char currency[4];
    int exponent;
    int64_t expect_count, expect_total; /* the invoice row's, from step 1 */
    int64_t count, total, last_line_no; /* computed from the lines */
    bill_merkle_t tree;
} bill_finalizer_t;

/* bill_finalizer_init: starts from step 1's row (columns 1..6 as text: account, period,
 * currency, exponent, line_count, total). Returns 0 or BRK_EINVAL (a malformed row). */
int bill_finalizer_init(bill_finalizer_t *f, const char *tenant, const char *invoice_id,
                        const char *const cols[6]);

/* bill_finalizer_add: one row of step 2 (line_no, lineage_cid, total_minor as text). Lines
 * must come in increasing line_no order. Returns 0, BRK_EINVAL (malformed, out of order) or
 * BRK_ERANGE (the total overflows). */
int bill_finalizer_add(bill_finalizer_t *f, const char *line_no, const char *lineage_cid,
                       const char *total);

/*
 * bill_finalizer_finish: checks that the lines add up to the invoice row (count and total),
 * then builds the invoice document and signs it with kr's current key; finalized_at is now.
 * On success *doc is a new reference owned by the caller. Returns 0, BRK_ECONFLICT (the
 * lines do not match the row; msg says how) or BRK_ECRYPTO.
 */
int bill_finalizer_finish(const bill_finalizer_t *f, const brk_keyring_t *kr, const char *broker_id,
                          time_t now, json_t **doc, char *msg, size_t mlen);

/*
 * bill_finalize_blocking: the three steps on a blocking connection (the month-close job),
 * inside the caller's transaction. Returns 0 (finalized now), BRK_ECONFLICT (it was already
 * finalized), BRK_ENOTFOUND, or BRK_EDB / BRK_ECRYPTO / BRK_EINVAL with a message in err.
 */
int bill_finalize_blocking(PGconn *conn, const brk_keyring_t *kr, const char *broker_id,
                           const char *tenant, const char *invoice_id, char *err, size_t errlen);


#endif
