/*
 * brk_pq: one statement on a blocking libpq connection, for the code that may block: the
 * CLI, start-up (migrations, roles, keys) and the function runtime's thread. Never on an
 * HTTP loop (brk_db is the asynchronous path).
 *
 * Parameters are text (NULL is SQL NULL), sent with PQexecParams, so a statement is always
 * exactly one statement. On failure err receives PostgreSQL's message as libpq reports it
 * (PQresultErrorMessage, or the connection's when there is no result). err may be NULL.
 * Any thread that owns the connection.
 */
#ifndef BRK_PQ_H
#define BRK_PQ_H

#include <libpq-fe.h>
#include <stddef.h>

/*
 * brk_pq_exec: runs sql with n parameters. Returns the result (caller PQclear()s) when it
 * is PGRES_COMMAND_OK or PGRES_TUPLES_OK, else NULL with the message in err.
 */
PGresult *brk_pq_exec(PGconn *c, const char *sql, int n, const char *const *params, char *err,
                      size_t errlen);

/*
 * brk_pq_cmd: brk_pq_exec without the result. tolerated: NULL, or SQLSTATEs separated by
 * spaces that count as success (an object that already exists, for idempotent DDL).
 * Returns 0 or BRK_EDB.
 */
int brk_pq_cmd(PGconn *c, const char *sql, int n, const char *const *params,
               const char *tolerated, char *err, size_t errlen);

/*
 * brk_pq_scalar: the first column of a one-row result, copied into out (cap bytes,
 * NUL-terminated, truncated). Returns 0, or BRK_EDB when the statement failed or returned
 * other than one row (err then says which).
 */
int brk_pq_scalar(PGconn *c, const char *sql, int n, const char *const *params, char *out,
                  size_t cap, char *err, size_t errlen);

#endif
