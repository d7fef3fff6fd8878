/*
 * fn_tlog: the transparency log sequencer (GSAP_CR_RECEIVED, synchronous). Every accepted CR's
 * lineage CID is appended to its tenant's log by tlog_append
 * (migrations/functions/20_tlog_append.sql), which assigns the next index under the tenant's
 * tlog_heads row lock, so the sequence is gap-free across brokers sharing one database. The
 * append commits with the run's done mark (exactly once per event), and tlog_append returns
 * the existing index for a CR already logged (billing may have logged it first to number its
 * invoice line), so a replay never appends twice.
 *
 * Runtime thread only.
 */
#include <libpq-fe.h>
#include <stdio.h>

#include "brk_err.h"
#include "brk_event.h"
#include "brk_pq.h"
#include "fn.h"
#include "banned.h"

static const char q_append[] = "SELECT tlog_append($1, $2, $3)";

static int tlog_run(const fn_env_t *env, PGconn *conn, const fn_event_t *ev, char *err,
                    size_t errlen)
{
    brk_cr_received_t p;
    PGresult *res;

    (void)env;
    brk_cr_received_read(ev->payload, &p);
    const char *cr_id = json_string_value(p.cr_id), *cid = json_string_value(p.lineage_cid);
    if (cr_id == NULL || cid == NULL) {
        snprintf(err, errlen, "event %lld: the payload lacks cr_id or lineage_cid", ev->event_id);
        return BRK_EINVAL;
    }
    const char *pa[] = {ev->tenant, cr_id, cid};
    if ((res = brk_pq_exec(conn, q_append, 3, pa, err, errlen)) == NULL)
        return BRK_EDB;
    PQclear(res);
    return 0;
}

static const char *const tlog_types[] = {BRK_EV_CR_RECEIVED, NULL};

const fn_def_t fn_tlog = {
    .name = "tlog",
    .event_types = tlog_types,
    .run = tlog_run,
};
