/*
 * brk_pgroles: who the broker is in PostgreSQL. Two roles, so that what the broker does at
 * run time cannot undo what the schema promises:
 *   - the owner (BRK_PGROLES_OWNER in the embedded cluster, GSAP_OWNER_DATABASE_URL
 *     outside it) owns every table, function and trigger; migrations and the CLI run as it;
 *   - the runtime role (BRK_PGROLES_APP, GSAP_DATABASE_URL) that the HTTP workers and the
 *     function runtime use owns nothing and may only SELECT, INSERT and UPDATE tables and
 *     run the functions. Not being an owner it cannot ALTER TABLE ... DISABLE TRIGGER, so
 *     the triggers that freeze finalized invoices hold against it; it has no DELETE or
 *     TRUNCATE, and cannot touch schema_migrations.
 * The embedded cluster's passwords (scram-sha-256) live in a libpq password file in
 * GSAP_DATA_DIR (mode 0600), so they never appear in a connection string or a log.
 *
 * Main thread only; blocking (start-up and CLI).
 */
#ifndef BRK_PGROLES_H
#define BRK_PGROLES_H

#include <stddef.h>

#include <libpq-fe.h>

#define BRK_PGROLES_SUPER "postgres"    /* the embedded cluster's bootstrap superuser */
#define BRK_PGROLES_OWNER "gsap_owner"  /* owns the schema (embedded cluster) */
#define BRK_PGROLES_APP "gsap_app"      /* the runtime role (embedded cluster) */
#define BRK_PGROLES_PASSFILE "pgpass"   /* in GSAP_DATA_DIR, 0600, libpq password file format */
#define BRK_PGROLES_PW_BYTES 24         /* random bytes of each password (hex in the file) */
#define BRK_PGROLES_PW_LEN (2 * BRK_PGROLES_PW_BYTES)

/* The embedded cluster's three passwords, as NUL-terminated hex. */
typedef struct brk_pgroles_secrets {
    char super[BRK_PGROLES_PW_LEN + 1];
    char owner[BRK_PGROLES_PW_LEN + 1];
    char app[BRK_PGROLES_PW_LEN + 1];
} brk_pgroles_secrets_t;

/*
 * brk_pgroles_secrets_load: reads the password file at path, or creates it (O_EXCL, 0600,
 * fresh random passwords) when it does not exist; *created says which. A file that is not
 * a regular file owned by this user with mode 0600 (or narrower), or that lacks one of the
 * three roles, is refused. Returns 0, BRK_EIO (message on stderr) or BRK_ECRYPTO.
 */
int brk_pgroles_secrets_load(const char *path, brk_pgroles_secrets_t *s, int *created);

/*
 * brk_pgroles_bootstrap: on the embedded cluster, connected as the superuser (c, blocking):
 * sets the three passwords, creates or fixes the owner and runtime roles (LOGIN, nothing
 * more), makes the owner own database dbname (created when missing) and every object a
 * previous version left to the superuser in its public schema, lets only the runtime role
 * connect besides, writes listen_addresses = '' into the cluster's configuration
 * (ALTER SYSTEM) and, when pg_hba.conf still has a rule other than scram-sha-256 on local
 * sockets, replaces it with that one rule and reloads. hba_path is the cluster's
 * pg_hba.conf; super_conninfo reaches dbname as the superuser. Returns 0 or BRK_EDB
 * (message on stderr).
 */
int brk_pgroles_bootstrap(PGconn *c, const char *super_conninfo, const char *dbname,
                          const char *hba_path, const brk_pgroles_secrets_t *s);

/*
 * brk_pgroles_grant_runtime: connected as the schema owner (owner, blocking), after the
 * migrations: grants the role that runtime_conninfo logs in as exactly the privileges the
 * header comment lists, on every table, sequence and function of the public schema. Refuses
 * (BRK_EINVAL, message in err) a runtime role that is a superuser, owns an object of the
 * schema, or is the owner itself. Returns 0, BRK_EDB or BRK_EINVAL.
 */
int brk_pgroles_grant_runtime(PGconn *owner, const char *runtime_conninfo, char *err,
                              size_t errlen);

#endif
