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
 *    "lines_root", "finalized_at", "log", "key_id", "invoice_cid", "signature"}
 * with "log" (only when there are lines): {"origin", "tree_size", "root_hash", "checkpoint"},
 * the tenant's transparency log (docs/protocol.md "Transparency log") at the size that covers
 * every line's log_index, its root as standard base64 and its signed checkpoint note; each
 * line's inclusion proof against it is GET /governance/log/proof?cid=...&size=tree_size.
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
#define BILL_INVOICE_VERSION "1.1" /* 1.1: the "log" member (transparency-log checkpoint) */

/* Step 1: $1 tenant, $2 invoice id. One row: code ('ok', 'not_found', 'finalized'),
 * account_id, period 'YYYY-MM', currency, exponent, line_count, total_minor. */
#define BILL_SQL_FINALIZE_BEGIN                                                                    \
    "SELECT code, account_id, period, currency, exponent, line_count, total_minor "                \
    "FROM bill_finalize_begin($1, $2)"
/* Step 2: $1 tenant, $2 invoice id, $3 the last line_no read (0 first). Columns: line_no,
 * lineage_cid, total_minor, log_index, and the hex root of the tenant's log at size
 * log_index + 1 (NULL when the line has no index, or its entry is not the line's CID). */
#define BILL_SQL_FINALIZE_PAGE                                                                     \
    "SELECT l.line_no, l.lineage_cid, l.total_minor, l.log_index, encode(e.root_hash, 'hex') "     \
    "FROM invoice_lines l LEFT JOIN tlog_entries e ON e.tenant_id = l.tenant_id "                  \
    "AND e.idx = l.log_index AND e.lineage_cid = l.lineage_cid "                                   \
    "WHERE l.tenant_id = $1 AND l.invoice_id = $2 AND l.line_no > $3::bigint "                     \
    "ORDER BY l.line_no LIMIT " BILL_PAGE_LINES_STR
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
    /* The transparency log: the largest log index of the lines, the log's root at that index
     * + 1, and how many lines have no (valid) index. */
    int64_t log_max; /* -1: none yet */
    brk_mhash_t log_root;
    int64_t log_missing;
} bill_finalizer_t;

/* bill_finalizer_init: starts from step 1's row (columns 1..6 as text: account, period,
 * currency, exponent, line_count, total). Returns 0 or BRK_EINVAL (a malformed row). */
int bill_finalizer_init(bill_finalizer_t *f, const char *tenant, const char *invoice_id,
                        const char *const cols[6]);

/* bill_finalizer_add: one row of step 2 (line_no, lineage_cid, total_minor, log_index and
 * the log's root hex at log_index + 1, as text; the last two NULL when the line has no
 * index). Lines must come in increasing line_no order. Returns 0, BRK_EINVAL (malformed, out
 * of order) or BRK_ERANGE (the total overflows). */
int bill_finalizer_add(bill_finalizer_t *f, const char *line_no, const char *lineage_cid,
                       const char *total, const char *log_index, const char *log_root);

/*
 * bill_finalizer_finish: checks that the lines add up to the invoice row (count and total)
 * and that every line has its transparency-log index, then builds the invoice document and
 * signs it with kr's current key; finalized_at is now. An invoice with lines carries the
 * log checkpoint that covers them all (tree size = the largest index + 1), signed as a
 * C2SP note (brk_note.h). On success *doc is a new reference owned by the caller. Returns
 * 0, BRK_ECONFLICT (the lines do not match the row; msg says how), BRK_EINTERNAL (a line
 * has no log index: bill_finalize_begin gives every line one, so this is a bug or a
 * finalization begun before the log existed) or BRK_ECRYPTO.
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
