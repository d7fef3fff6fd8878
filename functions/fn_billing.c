/*
 * fn_billing: every accepted CR becomes exactly one invoice line, and past months close.
 *
 * fn_billing (GSAP_CR_RECEIVED, synchronous): rates the CR with the rate card of the account
 * its AC named (the tenant's "default" when that account does not exist), then writes the line
 * with bill_add_line (migrations/functions/20_bill_add_line.sql), which picks the open
 * invoice of the CR's UTC month (or the next open one, marking the line late, when that
 * month is already finalizing or finalized), numbers the line and adds it to the invoice's
 * total under the invoice's row lock. Everything goes through the runtime's connection, inside its
 * transaction, so the line and the run's done mark commit together: exactly once, across
 * crashes and brokers. The unique cr_id makes a replay a no-op besides. The line then gets
 * its transparency-log index (q_log_index). The account row is
 * share-locked while rating, so its currency cannot change under a line being written.
 *
 * fn_billing_close (periodic): finalizes the open invoices of months that are over (and
 * invoices left finalizing by a crash for longer than BILL_STALE_FINALIZING) with the same
 * three steps as POST /billing/invoices/{id}/finalize (bill_finalize_blocking). Candidates
 * are claimed with SKIP LOCKED and each is finalized under a savepoint, so one bad invoice
 * does not hold back the others and several brokers never finalize the same one twice.
 *
 * Runtime thread only.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bill_invoice.h"
#include "bill_rate.h"
#include "brk_err.h"
#include "brk_event.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "fn.h"
#include "banned.h"

#define FN_CLOSE_INTERVAL_S 15 /* a month ends once; a cheap indexed look is enough */
#define FN_CLOSE_BATCH "20"    /* invoices finalized per run */

static const char q_account[] =
    "SELECT account_id, currency, exponent, rate_card::text FROM billing_accounts "
    "WHERE tenant_id = $1 AND account_id IN ($2, 'default') "
    "ORDER BY account_id = $2 DESC LIMIT 1 FOR SHARE";
/* q_account's columns and bill_add_line's parameters, by name (the statements' order). */
enum account_col { AC_ID, AC_CURRENCY, AC_EXPONENT, AC_RATE_CARD };
enum line_param {
    LP_TENANT,
    LP_ACCOUNT,
    LP_CURRENCY,
    LP_EXPONENT,
    LP_CR_ID,
    LP_CONTEXT,
    LP_LINEAGE_CID,
    LP_CHRONICLE_CID,
    LP_MERKLE_ROOT,
    LP_OUTCOME,
    LP_FLAGS,
    LP_QUANTITY,
    LP_UNIT,
    LP_TOTAL,
    LP_RATING,
    LP_RECEIVED_AT,
    LP__COUNT
};
static const char q_line[] =
    "SELECT invoice_id, line_no, late, inserted FROM bill_add_line($1, $2, $3, $4::smallint, "
    "$5, $6, $7, $8, $9, $10, ARRAY(SELECT jsonb_array_elements_text($11::jsonb)), $12::bigint, "
    "$13::bigint, $14::bigint, $15::jsonb, $16::timestamptz)";
/* The line's transparency-log index: the CR is appended to the tenant's log here if the
 * sequencer (fn_tlog) has not done it yet (tlog_append returns the index either way), while
 * bill_add_line's lock on the open invoice still holds, so every line has its index before
 * its invoice can begin finalizing. A line already indexed (a replay) is left alone. */
static const char q_log_index[] =
    "UPDATE invoice_lines l SET log_index = tlog_append($1, $2, $3) "
    "FROM invoices i WHERE l.tenant_id = $1 AND l.cr_id = $2 AND l.log_index IS NULL "
    "AND i.tenant_id = l.tenant_id AND i.invoice_id = l.invoice_id AND i.status = 'open'";
static const char q_due[] =
    "SELECT tenant_id, invoice_id FROM invoices "
    "WHERE (status = 'open' AND period < date_trunc('month', now() AT TIME ZONE 'UTC')::date) "
    "   OR (status = 'finalizing' "
    "       AND finalizing_at < now() - interval '" BILL_STALE_FINALIZING "') "
    "ORDER BY period, invoice_id LIMIT " FN_CLOSE_BATCH " FOR UPDATE SKIP LOCKED";

/* A string member of the payload, NULL when absent or not a string. */
static const char *str(const json_t *member)
{
    return json_string_value(member);
}

static int billing_run(const fn_env_t *env, PGconn *conn, const fn_event_t *ev, char *err,
                       size_t errlen)
{
    brk_cr_received_t p;
    brk_cr_received_read(ev->payload, &p);
    const char *account = str(p.billing_account);
    PGresult *acct = NULL, *line = NULL;
    json_t *card = NULL, *rating = NULL;
    char *rating_text = NULL, *flags_text = NULL, msg[BILL_MSG_MAX];
    char qty[24], unit[24], total[24];
    const char *code;
    bill_ratecard_t rc;
    bill_cr_t cr;
    bill_rating_t r;
    int ret = BRK_EINVAL;

    (void)env;
    if (!str(p.cr_id) || !str(p.context_id) || !str(p.lineage_cid) || !str(p.chronicle_cid) ||
        !str(p.received_at)) {
        snprintf(err, errlen, "event %lld: the payload lacks a CR field", ev->event_id);
        goto out;
    }
    if (bill_cr_from_event(&p, &cr, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "event %lld: %s", ev->event_id, msg);
        goto out;
    }
    const char *pa[] = {ev->tenant, account ? account : "default"};
    if ((acct = brk_pq_exec(conn, q_account, 2, pa, err, errlen)) == NULL) {
        ret = BRK_EDB;
        goto out;
    }
    if (PQntuples(acct) != 1) {
        snprintf(err, errlen, "tenant \"%s\" has no billing account \"%s\" nor \"default\"",
                 ev->tenant, pa[1]);
        ret = BRK_ENOTFOUND;
        goto out;
    }
    if ((card = json_loads(PQgetvalue(acct, 0, AC_RATE_CARD), 0, NULL)) == NULL ||
        bill_ratecard_parse(card, &rc, &code, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "account \"%s\": its rate card is invalid: %s",
                 PQgetvalue(acct, 0, AC_ID), card ? msg : "not JSON");
        goto out;
    }
    if ((ret = bill_rate(&rc, &cr, &r)) != 0) {
        snprintf(err, errlen, "CR %s: rating with account \"%s\" overflows 64-bit minor units",
                 str(p.cr_id), PQgetvalue(acct, 0, AC_ID));
        goto out;
    }
    rating = bill_rating_json(&r, cr.shell_class);
    rating_text = json_dumps(rating, JSON_COMPACT);
    flags_text = json_dumps(p.flags, JSON_COMPACT);
    snprintf(qty, sizeof qty, "%lld", (long long)r.quantity);
    snprintf(unit, sizeof unit, "%lld", (long long)r.unit_minor);
    snprintf(total, sizeof total, "%lld", (long long)r.total_minor);
    const char *pl[LP__COUNT] = {
        [LP_TENANT] = ev->tenant,
        [LP_ACCOUNT] = PQgetvalue(acct, 0, AC_ID),
        [LP_CURRENCY] = PQgetvalue(acct, 0, AC_CURRENCY),
        [LP_EXPONENT] = PQgetvalue(acct, 0, AC_EXPONENT),
        [LP_CR_ID] = str(p.cr_id),
        [LP_CONTEXT] = str(p.context_id),
        [LP_LINEAGE_CID] = str(p.lineage_cid),
        [LP_CHRONICLE_CID] = str(p.chronicle_cid),
        [LP_MERKLE_ROOT] = str(p.merkle_root),
        [LP_OUTCOME] = bill_outcome_name(cr.outcome),
        [LP_FLAGS] = flags_text,
        [LP_QUANTITY] = qty,
        [LP_UNIT] = unit,
        [LP_TOTAL] = total,
        [LP_RATING] = rating_text,
        [LP_RECEIVED_AT] = str(p.received_at),
    };
    if ((line = brk_pq_exec(conn, q_line, LP__COUNT, pl, err, errlen)) == NULL) {
        ret = BRK_EDB;
        goto out;
    }
    const char *pt[] = {ev->tenant, str(p.cr_id), str(p.lineage_cid)};
    if ((ret = brk_pq_cmd(conn, q_log_index, 3, pt, NULL, err, errlen)) != 0)
        goto out;
    ret = 0;
out:
    PQclear(acct);
    PQclear(line);
    json_decref(card);
    json_decref(rating);
    free(rating_text);
    free(flags_text);
    return ret;
}

static const char *const billing_types[] = {BRK_EV_CR_RECEIVED, NULL};

const fn_def_t fn_billing = {
    .name = "billing",
    .event_types = billing_types,
    .run = billing_run,
};

static int close_run(const fn_env_t *env, PGconn *conn, char *err, size_t errlen)
{
    PGresult *due = brk_pq_exec(conn, q_due, 0, NULL, err, errlen);
    int rc = 0;
    if (due == NULL)
        return BRK_EDB;
    for (int i = 0; i < PQntuples(due) && rc == 0; i++) {
        const char *tenant = PQgetvalue(due, i, 0), *id = PQgetvalue(due, i, 1);
        char why[512];
        if ((rc = brk_pq_cmd(conn, "SAVEPOINT bill_close", 0, NULL, NULL, err, errlen)) != 0)
            break;
        int r = bill_finalize_blocking(conn, env->keys, env->cfg->broker_id, tenant, id, why,
                                       sizeof why);
        if (r == 0) {
            rc = brk_pq_cmd(conn, "RELEASE SAVEPOINT bill_close", 0, NULL, NULL, err, errlen);
            brk_log_info("invoice finalized", "tenant", tenant, "invoice_id", id, "by",
                         "month close");
        } else {
            rc = brk_pq_cmd(conn, "ROLLBACK TO SAVEPOINT bill_close", 0, NULL, NULL, err, errlen);
            if (r != BRK_ECONFLICT)
                brk_log_warn("month close failed", "tenant", tenant, "invoice_id", id, "error",
                             why);
        }
    }
    PQclear(due);
    return rc;
}

const fn_periodic_t fn_billing_close = {
    .name = "billing_month_close",
    .interval_s = FN_CLOSE_INTERVAL_S,
    .run = close_run,
};
