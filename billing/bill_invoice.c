/*
 * bill_invoice: the incremental Merkle tree head, the finalizer and document signing; see
 * bill_invoice.h.
 *
 * The incremental tree keeps, for count leaves, the roots of the perfect subtrees that the
 * binary digits of count describe (largest first). Adding a leaf merges equal-sized
 * subtrees like a binary carry. The head folds the stack from the right:
 * MTH = H(s0, H(s1, ... H(s[k-2], s[k-1]))), which is RFC 6962's split at the largest power
 * of two applied recursively; unit_billing checks it against brk_merkle_root for every size
 * up to a few hundred.
 */
#include "bill_invoice.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill_money.h"
#include "brk_err.h"
#include "brk_note.h"
#include "brk_pq.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "banned.h"

void bill_merkle_init(bill_merkle_t *m)
{
    memset(m, 0, sizeof *m);
}

void bill_merkle_add(bill_merkle_t *m, const void *p, size_t n)
{
    brk_mhash_t h;
    uint64_t c = m->count;
    brk_merkle_leaf_hash(p, n, h);
    /* each trailing 1 bit of count is a subtree of the new leaf's size: merge it */
    while (c & 1) {
        brk_merkle_node_hash(m->stack[--m->top], h, h);
        c >>= 1;
    }
    memcpy(m->stack[m->top++], h, sizeof h);
    m->count++;
}

void bill_merkle_root(const bill_merkle_t *m, brk_mhash_t out)
{
    brk_mhash_t acc;
    if (m->top == 0) {
        brk_sha256("", 0, out);
        return;
    }
    memcpy(acc, m->stack[m->top - 1], sizeof acc);
    for (size_t i = m->top - 1; i-- > 0;)
        brk_merkle_node_hash(m->stack[i], acc, acc);
    memcpy(out, acc, sizeof acc);
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;
    if (s == NULL || *s == '\0')
        return BRK_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return BRK_EINVAL;
    *out = v;
    return 0;
}

/* A column's text, or NULL for SQL NULL. */
static const char *bill_col(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (src == NULL || n >= cap)
        return BRK_EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

int bill_finalizer_init(bill_finalizer_t *f, const char *tenant, const char *invoice_id,
                        const char *const cols[6])
{
    int64_t exp;
    memset(f, 0, sizeof *f);
    bill_merkle_init(&f->tree);
    f->log_max = -1;
    if (copy(f->tenant, sizeof f->tenant, tenant) ||
        copy(f->invoice_id, sizeof f->invoice_id, invoice_id) ||
        copy(f->account, sizeof f->account, cols[0]) ||
        copy(f->period, sizeof f->period, cols[1]) ||
        copy(f->currency, sizeof f->currency, cols[2]) || parse_i64(cols[3], &exp) ||
        parse_i64(cols[4], &f->expect_count) || parse_i64(cols[5], &f->expect_total) || exp < 0 ||
        exp > BILL_EXPONENT_MAX)
        return BRK_EINVAL;
    f->exponent = (int)exp;
    return 0;
}

int bill_finalizer_add(bill_finalizer_t *f, const char *line_no, const char *lineage_cid,
                       const char *total, const char *log_index, const char *log_root)
{
    int64_t no, t, idx = -1;
    brk_mhash_t root;
    int has_log = log_index != NULL && log_root != NULL;
    if (parse_i64(line_no, &no) || parse_i64(total, &t) || no <= f->last_line_no ||
        !brk_cid_valid(lineage_cid))
        return BRK_EINVAL;
    if (has_log && (parse_i64(log_index, &idx) || idx < 0 ||
                    brk_unhex(log_root, strlen(log_root), root, sizeof root) != 0))
        return BRK_EINVAL;
    if (bill_add(f->total, t, &f->total) != 0)
        return BRK_ERANGE;
    f->last_line_no = no;
    f->count++;
    bill_merkle_add(&f->tree, lineage_cid, BRK_CID_LEN);
    if (!has_log) {
        f->log_missing++;
    } else if (idx > f->log_max) {
        f->log_max = idx;
        memcpy(f->log_root, root, sizeof root);
    }
    return 0;
}

/* The document's "log" member: the checkpoint covering every line (f->log_max + 1). */
static json_t *log_member(const bill_finalizer_t *f, const brk_keyring_t *kr,
                          const char *broker_id, char *msg, size_t mlen)
{
    char name[BRK_NOTE_NAME_MAX + 1], origin[BRK_NOTE_ORIGIN_MAX + 1], note[BRK_NOTE_MAX];
    char root64[4 * ((BRK_MERKLE_HASH_LEN + 2) / 3) + 1];
    uint64_t size = (uint64_t)f->log_max + 1;
    if (brk_note_key_name(broker_id, name) != 0 ||
        snprintf(origin, sizeof origin, "%s/%s", name, f->tenant) >= (int)sizeof origin ||
        brk_note_checkpoint(kr, name, origin, size, f->log_root, note) != 0) {
        snprintf(msg, mlen, "cannot sign the transparency-log checkpoint of the invoice");
        return NULL;
    }
    brk_b64_std(f->log_root, BRK_MERKLE_HASH_LEN, root64);
    return json_pack("{s:s,s:I,s:s,s:s}", "origin", origin, "tree_size", (json_int_t)size,
                     "root_hash", root64, "checkpoint", note);
}

int bill_finalizer_finish(const bill_finalizer_t *f, const brk_keyring_t *kr, const char *broker_id,
                          time_t now, json_t **doc, char *msg, size_t mlen)
{
    brk_mhash_t root;
    char hex[2 * BRK_MERKLE_HASH_LEN + 1], lines_root[BRK_CID_LEN + 1], at[21];
    char total_minor[BILL_AMOUNT_STR_MAX], total[BILL_AMOUNT_STR_MAX];
    json_t *d = NULL;
    int rc;

    *doc = NULL;
    /* The row's running total and count were kept under its lock by the billing function;
     * a difference means something wrote around it, and nothing gets signed. */
    if (f->count != f->expect_count || f->total != f->expect_total) {
        snprintf(msg, mlen,
                 "invoice \"%s\": its lines add up to %lld lines and %lld minor units, the "
                 "invoice says %lld and %lld",
                 f->invoice_id, (long long)f->count, (long long)f->total,
                 (long long)f->expect_count, (long long)f->expect_total);
        return BRK_ECONFLICT;
    }
    if (f->log_missing > 0) {
        snprintf(msg, mlen,
                 "invoice \"%s\": %lld of its lines have no transparency-log index",
                 f->invoice_id, (long long)f->log_missing);
        return BRK_EINTERNAL; /* bill_finalize_begin gives every line one: never signed */
    }
    bill_merkle_root(&f->tree, root);
    brk_hex(root, sizeof root, hex);
    snprintf(lines_root, sizeof lines_root, "sha256:%s", hex);
    snprintf(total_minor, sizeof total_minor, "%lld", (long long)f->total);
    bill_format(f->total, f->exponent, total);
    brk_time_fmt(now, at);
    d = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:s,s:s,s:s,s:s}", "gsap_invoice_version",
                  BILL_INVOICE_VERSION, "broker_id", broker_id, "tenant", f->tenant, "invoice_id",
                  f->invoice_id, "account", f->account, "period", f->period, "currency",
                  f->currency, "exponent", f->exponent, "line_count", (json_int_t)f->count,
                  "total_minor", total_minor, "total", total, "lines_root", lines_root,
                  "finalized_at", at);
    if (d == NULL) {
        snprintf(msg, mlen, "cannot build the invoice document");
        return BRK_EINVAL;
    }
    if (f->count > 0) {
        json_t *log = log_member(f, kr, broker_id, msg, mlen);
        if (log == NULL) {
            json_decref(d);
            return BRK_ECRYPTO;
        }
        json_object_set_new(d, "log", log);
    }
    if ((rc = brk_doc_sign(kr, d, "invoice_cid")) != 0) {
        snprintf(msg, mlen, "cannot sign the invoice document: %s", brk_strerror(rc));
        json_decref(d);
        return rc;
    }
    *doc = d;
    return 0;
}

int bill_finalize_blocking(PGconn *conn, const brk_keyring_t *kr, const char *broker_id,
                           const char *tenant, const char *invoice_id, char *err, size_t errlen)
{
    bill_finalizer_t f;
    PGresult *res = NULL;
    json_t *doc = NULL;
    char *text = NULL, after[24] = "0";
    int rc = BRK_EDB, n;

    const char *p2[] = {tenant, invoice_id};
    if ((res = brk_pq_exec(conn, BILL_SQL_FINALIZE_BEGIN, 2, p2, err, errlen)) == NULL)
        goto out;
    const char *code = PQgetvalue(res, 0, 0);
    if (strcmp(code, "ok") != 0) {
        rc = strcmp(code, "finalized") == 0 ? BRK_ECONFLICT : BRK_ENOTFOUND;
        snprintf(err, errlen, "invoice \"%s\" is %s", invoice_id, code);
        goto out;
    }
    const char *cols[6];
    for (int i = 0; i < 6; i++)
        cols[i] = PQgetvalue(res, 0, i + 1);
    if ((rc = bill_finalizer_init(&f, tenant, invoice_id, cols)) != 0) {
        snprintf(err, errlen, "invoice \"%s\": a malformed invoice row", invoice_id);
        goto out;
    }
    do {
        PQclear(res);
        const char *p3[] = {tenant, invoice_id, after};
        if ((res = brk_pq_exec(conn, BILL_SQL_FINALIZE_PAGE, 3, p3, err, errlen)) == NULL) {
            rc = BRK_EDB;
            goto out;
        }
        n = PQntuples(res);
        for (int i = 0; i < n; i++) {
            if ((rc = bill_finalizer_add(&f, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
                                         PQgetvalue(res, i, 2), bill_col(res, i, 3),
                                         bill_col(res, i, 4))) != 0) {
                snprintf(err, errlen, "invoice \"%s\": line %s is malformed or overflows",
                         invoice_id, PQgetvalue(res, i, 0));
                goto out;
            }
        }
        snprintf(after, sizeof after, "%lld", (long long)f.last_line_no);
    } while (n == BILL_PAGE_LINES);
    if ((rc = bill_finalizer_finish(&f, kr, broker_id, time(NULL), &doc, err, errlen)) != 0)
        goto out;
    text = json_dumps(doc, JSON_COMPACT);
    PQclear(res);
    const char *p4[] = {tenant, invoice_id, text};
    if ((res = brk_pq_exec(conn, BILL_SQL_FINALIZE_COMMIT, 3, p4, err, errlen)) == NULL) {
        rc = BRK_EDB;
        goto out;
    }
    code = PQgetvalue(res, 0, 0);
    rc = strcmp(code, "ok") == 0 ? 0 : BRK_ECONFLICT;
    if (rc != 0)
        snprintf(err, errlen, "invoice \"%s\": %s", invoice_id, code);
out:
    PQclear(res);
    json_decref(doc);
    free(text);
    return rc;
}
