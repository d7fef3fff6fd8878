/*
 * tst_pg: the test suite's throwaway PostgreSQL cluster (tests/pg_tmp.sh, fixture "pg").
 * Each suite makes its own database in it, so suites never see each other's rows.
 */
#ifndef TST_PG_H
#define TST_PG_H

#include <libpq-fe.h>

/* tst_pg_createdb: drops and creates database name; returns its conninfo (static buffer,
 * overwritten by the next call). Aborts the test run when the cluster is unreachable. */
const char *tst_pg_createdb(const char *name);

/* tst_pg_conninfo: conninfo for database name (a buffer of the calling thread, overwritten by
 * its next call). */
const char *tst_pg_conninfo(const char *name);

/* tst_pg_connect: a blocking connection to database name; aborts on failure. Caller PQfinish()es. */
PGconn *tst_pg_connect(const char *name);

/* tst_pg_scalar: runs sql (no parameters) and returns the first column of the first row as a
 * malloc'd string (caller frees), or NULL for SQL NULL / no row. Aborts on SQL error. */
char *tst_pg_scalar(PGconn *c, const char *sql);

/* tst_pg_long: tst_pg_scalar parsed as a long; -1 for NULL. */
long tst_pg_long(PGconn *c, const char *sql);

#endif
