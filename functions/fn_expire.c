/*
 * fn_expire: the periodic job that marks ACs past their expires_at as expired, so the
 * stored status (and what auditors and exports read from the table) matches what GET
 * /governance/authorize/{id}/ already computes on the fly.
 *
 * Each run expires at most FN_EXPIRE_BATCH ACs in one statement, oldest first, through the
 * partial index acs_expiring; a backlog larger than that drains over the next runs, so one
 * run never holds many row locks. SKIP LOCKED leaves an AC that a CR is consuming right now
 * to that CR (it moves it to consumed or active itself), and makes several brokers running
 * the job at once harmless. Runtime thread only.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_log.h"
#include "brk_pq.h"
#include "fn.h"
#include "banned.h"

#define FN_EXPIRE_INTERVAL_S 5
#define FN_EXPIRE_BATCH "5000" /* ACs per run: 1000 per second at the interval above */

static int expire_run(const fn_env_t *env, PGconn *conn, char *err, size_t errlen)
{
    static const char sql[] =
        "WITH due AS (SELECT tenant_id, context_id FROM acs "
        "  WHERE status IN ('pending', 'authorized', 'active') AND expires_at < now() "
        "  ORDER BY expires_at LIMIT $1::int FOR UPDATE SKIP LOCKED) "
        "UPDATE acs a SET status = 'expired' FROM due "
        "WHERE a.tenant_id = due.tenant_id AND a.context_id = due.context_id";
    const char *params[] = {FN_EXPIRE_BATCH};
    PGresult *res = brk_pq_exec(conn, sql, 1, params, err, errlen);
    int rc = 0;

    if (res == NULL) {
        rc = BRK_EDB;
        goto out;
    }
    if (strcmp(PQcmdTuples(res), "0") != 0)
        brk_log_info("acs expired", "count", PQcmdTuples(res));
out:
    PQclear(res);
    return rc;
}

const fn_periodic_t fn_expire = {
    .name = "expire_acs",
    .interval_s = FN_EXPIRE_INTERVAL_S,
    .run = expire_run,
};
