/*
 * fn_billing: every accepted CR becomes exactly one invoice line, and past months close.
 *
 * fn_billing (GSAP_CR_RECEIVED, synchronous, set-based): the runtime hands it every billing
 * pair of a pass at once (run_batch). It looks up the rate card of each distinct account the
 * batch names in one statement (the account its AC named, or the tenant's "default" when that
 * account does not exist; share-locked, so a currency cannot change under a line being
 * written), rates each CR in C, and writes every line with one bill_add_lines call
 * (migrations/functions/20_bill_add_lines.sql). That gives the batch's new CRs their
 * transparency-log indexes (one tlog_append_batch per tenant), then, per (tenant, account,
 * month), sends the first line through bill_add_line (20_bill_add_line.sql), which picks the
 * open invoice of the CR's UTC month (or the next open one, marking the line late, when that
 * month is already finalizing or finalized) and locks it, and writes the others onto the same
 * invoice in one INSERT, numbered in event order, with one UPDATE of its total (line by line
 * only when they would not fit under the invoice's cap). Everything goes through
 * the runtime's connection, inside its transaction, so the lines and the runs' done marks
 * commit together: exactly once, across crashes and brokers. The unique cr_id makes a replay
 * a no-op besides. A CR that cannot be rated fails alone; a statement that fails fails the
 * batch, and the runtime bills its CRs one by one (billing_run: the same statements with one
 * CR), so a poison CR delays its batch-mates by one pass at most.
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
#include "brk_alloc.h"
#include "bill_rate.h"
#include "brk_err.h"
#include "brk_event.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "fn.h"
#include "banned.h"

#define FN_CLOSE_INTERVAL_S 15 /* a month ends once; a cheap indexed look is enough */
#define FN_CLOSE_BATCH "20"    /* invoices finalized per run */

/* The rate card of each distinct (tenant, account) a batch names: the named account, or the
 * tenant's "default" when that one does not exist; share-locked so its currency cannot
 * change under the lines being written. $1: [{"k":position,"t":tenant,"a":account}, ...]. */
static const char q_accounts[] =
    "SELECT x.k, a.account_id, a.currency, a.exponent, a.rate_card::text "
    "FROM jsonb_to_recordset($1::jsonb) AS x(k int, t text, a text) "
    "CROSS JOIN LATERAL (SELECT b.account_id, b.currency, b.exponent, b.rate_card "
    "  FROM billing_accounts b WHERE b.tenant_id = x.t AND b.account_id IN (x.a, 'default') "
    "  ORDER BY b.account_id = x.a DESC LIMIT 1 FOR SHARE) a";
/* q_accounts' columns. */
enum account_col { AC_KEY, AC_ID, AC_CURRENCY, AC_EXPONENT, AC_RATE_CARD };
/* Every line of the batch in one statement (migrations/functions/20_bill_add_lines.sql), set
 * based: the lines and their transparency-log indexes are written while the invoices' locks
 * hold, so every line has its index before its invoice can begin finalizing. */
static const char q_lines[] = "SELECT ord FROM bill_add_lines($1::jsonb)";

/* A string member of the payload, NULL when absent or not a string. */
static const char *str(const json_t *member)
{
    return json_string_value(member);
}

/* One distinct (tenant, account) of a batch, with its rate card once looked up. */
typedef struct acct {
    const char *tenant, *name; /* as the events name them (borrowed) */
    int found, bad;            /* looked up; its card is invalid (msg says why) */
    const char *id, *currency, *exponent; /* point into the q_accounts result */
    bill_ratecard_t rc;
    char msg[BILL_MSG_MAX];
} acct_t;

/* accounts_lookup: one q_accounts statement for the distinct accounts in a[0..na). */
static int accounts_lookup(PGconn *conn, acct_t *a, size_t na, PGresult **out, char *err,
                           size_t errlen)
{
    json_t *keys = json_array();
    char *text = NULL;
    int rc = BRK_EDB;

    for (size_t k = 0; k < na; k++)
        json_array_append_new(keys, json_pack("{s:I,s:s,s:s}", "k", (json_int_t)k, "t",
                                              a[k].tenant, "a", a[k].name));
    if ((text = json_dumps(keys, JSON_COMPACT)) == NULL) {
        rc = BRK_ENOMEM;
        goto out;
    }
    const char *p[] = {text};
    if ((*out = brk_pq_exec(conn, q_accounts, 1, p, err, errlen)) == NULL)
        goto out;
    for (int i = 0; i < PQntuples(*out); i++) {
        long k = strtol(PQgetvalue(*out, i, AC_KEY), NULL, 10);
        if (k < 0 || (size_t)k >= na)
            continue;
        acct_t *x = &a[k];
        json_t *card = json_loads(PQgetvalue(*out, i, AC_RATE_CARD), 0, NULL);
        const char *code;
        x->found = 1;
        x->id = PQgetvalue(*out, i, AC_ID);
        x->currency = PQgetvalue(*out, i, AC_CURRENCY);
        x->exponent = PQgetvalue(*out, i, AC_EXPONENT);
        if (card == NULL) {
            x->bad = 1;
            snprintf(x->msg, sizeof x->msg, "not JSON");
        } else if (bill_ratecard_parse(card, &x->rc, &code, x->msg, sizeof x->msg) != 0) {
            x->bad = 1;
        }
        json_decref(card);
    }
    rc = 0;
out:
    json_decref(keys);
    free(text);
    return rc;
}

/* line_of: rates event ev with its account and returns its bill_add_lines element, or NULL
 * with the event's own failure in err. */
static json_t *line_of(const fn_event_t *ev, const brk_cr_received_t *p, const acct_t *a,
                       char *err, size_t errlen)
{
    char msg[BILL_MSG_MAX], qty[24], unit[24], total[24];
    bill_cr_t cr;
    bill_rating_t r;

    if (bill_cr_from_event(p, &cr, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "event %lld: %s", ev->event_id, msg);
        return NULL;
    }
    if (!a->found) {
        snprintf(err, errlen, "tenant \"%s\" has no billing account \"%s\" nor \"default\"",
                 ev->tenant, a->name);
        return NULL;
    }
    if (a->bad) {
        snprintf(err, errlen, "account \"%s\": its rate card is invalid: %s", a->id, a->msg);
        return NULL;
    }
    if (bill_rate(&a->rc, &cr, &r) != 0) {
        snprintf(err, errlen, "CR %s: rating with account \"%s\" overflows 64-bit minor units",
                 str(p->cr_id), a->id);
        return NULL;
    }
    snprintf(qty, sizeof qty, "%lld", (long long)r.quantity);
    snprintf(unit, sizeof unit, "%lld", (long long)r.unit_minor);
    snprintf(total, sizeof total, "%lld", (long long)r.total_minor);
    /* bill_add_line's parameters by name (20_bill_add_lines.sql maps them): a new line column
     * is a new member here and one argument there. */
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:O?,s:s,s:s,s:s,s:o,s:s}",
                     "tenant", ev->tenant, "account", a->id, "currency", a->currency, "exponent",
                     a->exponent, "cr_id", str(p->cr_id), "context", str(p->context_id),
                     "lineage", str(p->lineage_cid), "chronicle", str(p->chronicle_cid),
                     "merkle", str(p->merkle_root), "outcome", bill_outcome_name(cr.outcome),
                     "flags", p->flags, "quantity", qty, "unit", unit, "total", total, "rating",
                     bill_rating_json(&r, cr.shell_class), "occurred", str(p->received_at));
}

/*
 * billing_batch: rates n CRs and writes their lines in two statements: one look-up of every
 * distinct account the batch names (q_accounts), one bill_add_lines call for every line.
 * An event that cannot be rated (a payload lacking a field, no account, an invalid card, an
 * overflow) fails alone in errs; a failing statement fails the batch (the runtime retries
 * its events one by one).
 */
static int billing_batch(const fn_env_t *env, PGconn *conn, const fn_event_t *evs, size_t n,
                         char (*errs)[FN_ERR_MAX], char *err, size_t errlen)
{
    brk_cr_received_t *p = brk_calloc(n, sizeof *p);
    size_t *of = brk_calloc(n, sizeof *of); /* event -> index in accts */
    acct_t *accts = brk_calloc(n, sizeof *accts);
    size_t na = 0, nlines = 0;
    PGresult *acct_res = NULL, *res = NULL;
    json_t *lines = json_array();
    char *text = NULL;
    int rc = BRK_EDB;

    (void)env;
    for (size_t i = 0; i < n; i++) {
        const fn_event_t *ev = &evs[i];
        brk_cr_received_read(ev->payload, &p[i]);
        errs[i][0] = '\0';
        if (!str(p[i].cr_id) || !str(p[i].context_id) || !str(p[i].lineage_cid) ||
            !str(p[i].chronicle_cid) || !str(p[i].received_at)) {
            snprintf(errs[i], FN_ERR_MAX, "event %lld: the payload lacks a CR field",
                     ev->event_id);
            continue;
        }
        const char *name = str(p[i].billing_account) ? str(p[i].billing_account) : "default";
        size_t k = 0;
        while (k < na && (strcmp(accts[k].tenant, ev->tenant) != 0 ||
                          strcmp(accts[k].name, name) != 0))
            k++;
        if (k == na) {
            accts[na].tenant = ev->tenant;
            accts[na++].name = name;
        }
        of[i] = k;
    }
    if (na > 0 && accounts_lookup(conn, accts, na, &acct_res, err, errlen) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (errs[i][0] != '\0')
            continue;
        json_t *line = line_of(&evs[i], &p[i], &accts[of[i]], errs[i], FN_ERR_MAX);
        if (line == NULL) {
            if (errs[i][0] == '\0')
                snprintf(errs[i], FN_ERR_MAX, "event %lld: cannot build its line",
                         evs[i].event_id);
            continue;
        }
        json_array_append_new(lines, line);
        nlines++;
    }
    rc = 0;
    if (nlines == 0)
        goto out;
    rc = BRK_EDB;
    if ((text = json_dumps(lines, JSON_COMPACT)) == NULL) {
        rc = BRK_ENOMEM;
        goto out;
    }
    const char *pl[] = {text};
    if ((res = brk_pq_exec(conn, q_lines, 1, pl, err, errlen)) == NULL)
        goto out;
    if ((size_t)PQntuples(res) != nlines) {
        snprintf(err, errlen, "bill_add_lines returned %d rows for %zu lines", PQntuples(res),
                 nlines);
        rc = BRK_EINTERNAL;
        goto out;
    }
    rc = 0;
out:
    PQclear(acct_res);
    PQclear(res);
    json_decref(lines);
    free(text);
    free(accts);
    free(of);
    free(p);
    return rc;
}

/* billing_run: one event alone (the runtime's fallback when a batch fails): the batch path
 * with one event, so a line is written by the same statements either way. */
static int billing_run(const fn_env_t *env, PGconn *conn, const fn_event_t *ev, char *err,
                       size_t errlen)
{
    char errs[1][FN_ERR_MAX];
    int rc = billing_batch(env, conn, ev, 1, errs, err, errlen);
    if (rc == 0 && errs[0][0] != '\0') {
        snprintf(err, errlen, "%s", errs[0]);
        rc = BRK_EINVAL;
    }
    return rc;
}

static const char *const billing_types[] = {BRK_EV_CR_RECEIVED, NULL};

const fn_def_t fn_billing = {
    .name = "billing",
    .event_types = billing_types,
    .run = billing_run,
    .run_batch = billing_batch,
};

static const char q_due[] =
    "SELECT tenant_id, invoice_id FROM invoices "
    "WHERE (status = 'open' AND period < date_trunc('month', now() AT TIME ZONE 'UTC')::date) "
    "   OR (status = 'finalizing' "
    "       AND finalizing_at < now() - interval '" BILL_STALE_FINALIZING "') "
    "ORDER BY period, invoice_id LIMIT " FN_CLOSE_BATCH " FOR UPDATE SKIP LOCKED";

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
