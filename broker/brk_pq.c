/*
 * brk_pq: blocking single statements (see brk_pq.h).
 */
#include "brk_pq.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "banned.h"

#define BRK_PQ_SQLSTATE_LEN 5 /* SQLSTATE codes are five characters */

static void set_err(PGconn *c, const PGresult *r, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c));
}

static int ok_status(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);

    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* tolerated_state: whether r failed with one of the space-separated SQLSTATEs of list. */
static int tolerated_state(const PGresult *r, const char *list)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *p = list;

    if (state == NULL || list == NULL || strlen(state) != BRK_PQ_SQLSTATE_LEN)
        return 0;
    while ((p = strstr(p, state)) != NULL) {
        if ((p == list || p[-1] == ' ') &&
            (p[BRK_PQ_SQLSTATE_LEN] == '\0' || p[BRK_PQ_SQLSTATE_LEN] == ' '))
            return 1;
        p++;
    }
    return 0;
}

PGresult *brk_pq_exec(PGconn *c, const char *sql, int n, const char *const *params, char *err,
                      size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

    if (r != NULL && ok_status(r))
        return r;
    set_err(c, r, err, errlen);
    PQclear(r);
    return NULL;
}

int brk_pq_cmd(PGconn *c, const char *sql, int n, const char *const *params,
               const char *tolerated, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;

    if (r == NULL || (!ok_status(r) && !tolerated_state(r, tolerated))) {
        set_err(c, r, err, errlen);
        rc = BRK_EDB;
    }
    PQclear(r);
    return rc;
}

int brk_pq_scalar(PGconn *c, const char *sql, int n, const char *const *params, char *out,
                  size_t cap, char *err, size_t errlen)
{
    PGresult *r = brk_pq_exec(c, sql, n, params, err, errlen);
    int rc = BRK_EDB;

    if (r == NULL)
        goto out;
    if (PQntuples(r) != 1 || PQnfields(r) < 1) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "expected one row, got %d", PQntuples(r));
        goto out;
    }
    snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    rc = 0;
out:
    PQclear(r);
    return rc;
}
