/*
 * brk_migrate: applies migrations/NNNN_name.sql in order, each once, each in its own
 * transaction, recorded in schema_migrations with its SHA-256. A file that changed after it
 * was applied stops the start with a message naming it. Then migrations/functions/NN_name.sql,
 * the one live definition of each function, trigger and view, each applied again whenever
 * its SHA-256 differs from the one recorded in schema_repeatables.
 *
 * The SQL is compiled into the binary (tools/embed_migrations.cmake); GSAP_MIGRATIONS_DIR
 * points at a directory to use instead (for operators shipping SQL beside the binary, and
 * for tests). Runs on a blocking libpq connection: only at start-up or from the CLI, never
 * on an HTTP loop.
 */
#ifndef BRK_MIGRATE_H
#define BRK_MIGRATE_H

#include <libpq-fe.h>

typedef struct brk_migration {
    const char *name; /* "0001_core.sql" */
    const char *sql;
    unsigned long len;
} brk_migration_t;

extern const brk_migration_t brk_migrations[];
extern const unsigned brk_migrations_count;
/* migrations/functions/: names without the directory ("20_gsap_complete.sql"). */
extern const brk_migration_t brk_repeatables[];
extern const unsigned brk_repeatables_count;

/*
 * brk_migrate_run: applies every pending migration on conn (blocking). dir is NULL for the
 * embedded set or a directory of NNNN_*.sql files with the repeatable ones in its functions/
 * subdirectory (which must exist). Takes a session advisory lock so several
 * brokers starting at once apply each file once. Writes a message into err (cap errlen) on
 * failure. Returns 0, BRK_EDB, BRK_EIO, BRK_ECONFLICT (an applied file changed).
 */
int brk_migrate_run(PGconn *conn, const char *dir, char *err, size_t errlen);

/* brk_migrate_expected: the number of migrations this binary (or dir) knows, for /readyz.
 * Returns >= 0 or BRK_EIO. */
int brk_migrate_expected(const char *dir);

#endif
