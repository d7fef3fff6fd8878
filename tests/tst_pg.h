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

/* tst_pg_scalarf, tst_pg_longf: tst_pg_scalar and tst_pg_long with the SQL printf-formatted
 * from f (the caller quotes what it interpolates). The string is malloc'd, caller frees. */
char *tst_pg_scalarf(PGconn *c, const char *f, ...) __attribute__((format(printf, 2, 3)));
long tst_pg_longf(PGconn *c, const char *f, ...) __attribute__((format(printf, 2, 3)));

/* tst_pg_execf: tst_pg_scalarf for SQL whose result does not matter (aborts on SQL error). */
void tst_pg_execf(PGconn *c, const char *f, ...) __attribute__((format(printf, 2, 3)));

/* tst_pg_fake_session: a session context ctx of its own (an active copy of the AC of CR
 * cr_id, same tenant) with n receipts written directly, sequence g = 1..n, cr_id
 * "cr_" + 32 hex digits of base + g, lineage CID "sha256:" + 64 hex digits of base + g: for
 * tests of what comes after acceptance, where how the receipts got there is not the point.
 * Aborts on SQL error or when the AC is not found. */
void tst_pg_fake_session(PGconn *c, const char *cr_id, const char *ctx, int n, long long base);

/* tst_pg_db_scalarf, tst_pg_db_longf: the same on a connection of their own to database db,
 * closed before they return (so each sees all that is committed). */
char *tst_pg_db_scalarf(const char *db, const char *f, ...) __attribute__((format(printf, 2, 3)));
long tst_pg_db_longf(const char *db, const char *f, ...) __attribute__((format(printf, 2, 3)));

/* tst_pg_wait_long: runs sql (a count) every TST_PG_POLL_MS until it returns at least want,
 * for up to secs seconds; returns the last value (so the caller asserts what it needs). */
#define TST_PG_POLL_MS 100
long tst_pg_wait_long(PGconn *c, const char *sql, long want, int secs);

#endif
