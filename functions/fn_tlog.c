/*
 * fn_tlog: the transparency log sequencer (GSAP_CR_RECEIVED, synchronous). Every accepted CR's
 * lineage CID is appended to its tenant's log by tlog_append_batch
 * (migrations/functions/20_tlog_append.sql), which assigns the next index under the tenant's
 * tlog_heads row lock, so the sequence is gap-free across brokers sharing one database.
 * Billing appends each CR it bills in its own run (the line records the index), so this
 * function is billing's fallback (fn.h): it gets a pair only for a CR whose billing run
 * records a failure or dead-letters, created in that transaction, and logs the CR while its
 * billing waits for a retry or a replay. The append commits with the run's done mark
 * (exactly once per event), and it returns the existing index for a CR already logged, so a
 * replay, or billing succeeding after all, never appends twice. A pass's CRs go in one statement
 * (tlog_append_many, run_batch); the runtime falls back to one at a time when it fails.
 *
 * Runtime thread only.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "brk_err.h"
#include "brk_event.h"
#include "brk_pq.h"
#include "fn.h"
#include "banned.h"

/* Every CR of a pass in one statement (migrations/functions/20_tlog_append_many.sql). */
static const char q_append_many[] = "SELECT ord FROM tlog_append_many($1::jsonb)";

/* tlog_batch: appends the n CRs in one statement; an event lacking cr_id or lineage_cid fails
 * alone. */
static int tlog_batch(const fn_env_t *env, PGconn *conn, const fn_event_t *evs, size_t n,
                      char (*errs)[FN_ERR_MAX], char *err, size_t errlen)
{
    json_t *crs = json_array();
    PGresult *res = NULL;
    char *text = NULL;
    size_t ncrs = 0;
    int rc = BRK_ENOMEM;

    (void)env;
    for (size_t i = 0; i < n; i++) {
        brk_cr_received_t p;
        brk_cr_received_read(evs[i].payload, &p);
        const char *cr_id = json_string_value(p.cr_id), *cid = json_string_value(p.lineage_cid);
        errs[i][0] = '\0';
        if (cr_id == NULL || cid == NULL) {
            snprintf(errs[i], FN_ERR_MAX, "event %lld: the payload lacks cr_id or lineage_cid",
                     evs[i].event_id);
            continue;
        }
        json_array_append_new(crs, json_pack("{s:s,s:s,s:s}", "tenant", evs[i].tenant, "cr_id",
                                             cr_id, "lineage", cid));
        ncrs++;
    }
    rc = 0;
    if (ncrs == 0)
        goto out;
    rc = BRK_ENOMEM;
    if ((text = json_dumps(crs, JSON_COMPACT)) == NULL)
        goto out;
    rc = BRK_EDB;
    const char *pa[] = {text};
    if ((res = brk_pq_exec(conn, q_append_many, 1, pa, err, errlen)) == NULL)
        goto out;
    rc = 0;
out:
    PQclear(res);
    free(text);
    json_decref(crs);
    return rc;
}

/* tlog_run: one event alone (the runtime's fallback when a batch fails). */
static int tlog_run(const fn_env_t *env, PGconn *conn, const fn_event_t *ev, char *err,
                    size_t errlen)
{
    char errs[1][FN_ERR_MAX];
    int rc = tlog_batch(env, conn, ev, 1, errs, err, errlen);
    if (rc == 0 && errs[0][0] != '\0') {
        snprintf(err, errlen, "%s", errs[0]);
        rc = BRK_EINVAL;
    }
    return rc;
}

static const char *const tlog_types[] = {BRK_EV_CR_RECEIVED, NULL};

/* Billing appends every CR it bills (its line records the index), in its own transaction:
 * the sequencer runs only for a CR whose billing run failed or died (fn.h, fallback_for). */
const fn_def_t fn_tlog = {
    .name = "tlog",
    .event_types = tlog_types,
    .run = tlog_run,
    .run_batch = tlog_batch,
    .fallback_for = "billing",
};
