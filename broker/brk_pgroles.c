/*
 * brk_pgroles: the owner and runtime roles and the embedded cluster's passwords; see
 * brk_pgroles.h for what each role may do and why.
 *
 * Role names and passwords reach SQL only through PQescapeIdentifier / PQescapeLiteral
 * (utility statements take no parameters). The password file is written once, O_EXCL and
 * 0600, and read back only when it is still a private regular file of this user.
 */
#include "brk_pgroles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_io.h"
#include "brk_pgembed_int.h" /* brk__pge_err, brk__pge_write_private */
#include "brk_pq.h"
#include "banned.h"

#define PGR_FILE_MAX 1024 /* the password file is three short lines */
#define PGR_SQL_MAX 1024

/* SQLSTATEs that mean "someone else created it first" (two brokers starting at once). */
#define PGR_DUPLICATE_OBJECT "42710"
#define PGR_DUPLICATE_DATABASE "42P04"
#define PGR_UNIQUE_VIOLATION "23505"

static int new_password(char out[BRK_PGROLES_PW_LEN + 1])
{
    uint8_t raw[BRK_PGROLES_PW_BYTES];

    if (brk_random(raw, sizeof raw) != 0)
        return BRK_ECRYPTO;
    brk_hex(raw, sizeof raw, out);
    return 0;
}

/* take: copies the password of role from one "*:*:*:role:password" line of text. */
static int take(const char *text, const char *role, char out[BRK_PGROLES_PW_LEN + 1])
{
    char prefix[64];
    const char *p = text;
    size_t n = (size_t)snprintf(prefix, sizeof prefix, "*:*:*:%s:", role);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, n) == 0 && strspn(p + n, "0123456789abcdef") ==
                                              BRK_PGROLES_PW_LEN) {
            memcpy(out, p + n, BRK_PGROLES_PW_LEN);
            out[BRK_PGROLES_PW_LEN] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return BRK_EIO;
}

static int secrets_create(const char *path, brk_pgroles_secrets_t *s)
{
    char text[PGR_FILE_MAX];
    int rc, n;

    if ((rc = new_password(s->super)) < 0 || (rc = new_password(s->owner)) < 0 ||
        (rc = new_password(s->app)) < 0)
        return rc;
    n = snprintf(text, sizeof text, "*:*:*:%s:%s\n*:*:*:%s:%s\n*:*:*:%s:%s\n",
                 BRK_PGROLES_SUPER, s->super, BRK_PGROLES_OWNER, s->owner, BRK_PGROLES_APP,
                 s->app);
    return brk__pge_write_private(path, text, (size_t)n, NULL, 1);
}

int brk_pgroles_secrets_load(const char *path, brk_pgroles_secrets_t *s, int *created)
{
    char text[PGR_FILE_MAX];
    struct stat st;
    ssize_t n;
    int fd, rc = BRK_EIO;

    memset(s, 0, sizeof *s);
    *created = 0;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        rc = secrets_create(path, s);
        *created = rc == 0;
        return rc;
    }
    if (fd < 0) {
        brk__pge_err("cannot open '%s': %s", path, strerror(errno));
        return BRK_EIO;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0) {
        brk__pge_err("'%s' must be a regular file of this user with mode 0600", path);
        goto out;
    }
    n = read(fd, text, sizeof text - 1);
    if (n < 0) {
        brk__pge_err("cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    text[n] = '\0';
    if (take(text, BRK_PGROLES_SUPER, s->super) < 0 || take(text, BRK_PGROLES_OWNER, s->owner) < 0 ||
        take(text, BRK_PGROLES_APP, s->app) < 0) {
        brk__pge_err("'%s' lacks the password of a role (%s, %s, %s)", path, BRK_PGROLES_SUPER,
                     BRK_PGROLES_OWNER, BRK_PGROLES_APP);
        goto out;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

/* exec_sql: one statement; tolerated is a SQLSTATE that counts as success (or NULL). */
static int exec_sql(PGconn *c, const char *sql, const char *tolerated)
{
    char msg[512];
    int rc = brk_pq_cmd(c, sql, 0, NULL, tolerated, msg, sizeof msg);

    if (rc < 0)
        brk__pge_err("%.60s...: %s", sql, msg);
    return rc;
}

/* set_role: creates role (LOGIN, nothing more) unless it exists, then sets its attributes
 * and password, so a role someone widened is narrowed again at every start. */
static int set_role(PGconn *c, const char *role, const char *password)
{
    char sql[PGR_SQL_MAX];
    char *id = PQescapeIdentifier(c, role, strlen(role));
    char *pw = PQescapeLiteral(c, password, strlen(password));
    int rc = BRK_EDB;

    if (id == NULL || pw == NULL)
        goto out;
    snprintf(sql, sizeof sql, "CREATE ROLE %s LOGIN", id);
    if (strcmp(role, BRK_PGROLES_SUPER) != 0 &&
        exec_sql(c, sql, PGR_DUPLICATE_OBJECT " " PGR_UNIQUE_VIOLATION) < 0)
        goto out;
    if (strcmp(role, BRK_PGROLES_SUPER) == 0)
        snprintf(sql, sizeof sql, "ALTER ROLE %s PASSWORD %s", id, pw);
    else
        snprintf(sql, sizeof sql,
                 "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                 "NOBYPASSRLS PASSWORD %s",
                 id, pw);
    rc = exec_sql(c, sql, NULL);
out:
    PQfreemem(id);
    PQfreemem(pw);
    return rc;
}

/* Objects an earlier version created as the superuser in the public schema go to the
 * owner. Sequences owned by a column follow their table. */
static const char sql_reassign[] =
    "DO $$ DECLARE r record; BEGIN "
    "FOR r IN SELECT c.oid::regclass AS o, c.relkind FROM pg_class c "
    "  JOIN pg_namespace n ON n.oid = c.relnamespace "
    "  WHERE n.nspname = 'public' AND c.relowner = '" BRK_PGROLES_SUPER "'::regrole "
    "  AND c.relkind IN ('r', 'p', 'v', 'm') LOOP "
    "  EXECUTE format('ALTER %s %s OWNER TO " BRK_PGROLES_OWNER "', "
    "    CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' "
    "    ELSE 'TABLE' END, r.o); "
    "END LOOP; "
    "FOR r IN SELECT c.oid::regclass AS o FROM pg_class c "
    "  JOIN pg_namespace n ON n.oid = c.relnamespace "
    "  WHERE n.nspname = 'public' AND c.relowner = '" BRK_PGROLES_SUPER "'::regrole "
    "  AND c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid "
    "  AND d.deptype IN ('a', 'i')) LOOP "
    "  EXECUTE format('ALTER SEQUENCE %s OWNER TO " BRK_PGROLES_OWNER "', r.o); "
    "END LOOP; "
    "FOR r IN SELECT p.oid::regprocedure AS o, p.prokind FROM pg_proc p "
    "  JOIN pg_namespace n ON n.oid = p.pronamespace "
    "  WHERE n.nspname = 'public' AND p.proowner = '" BRK_PGROLES_SUPER "'::regrole LOOP "
    "  EXECUTE format('ALTER %s %s OWNER TO " BRK_PGROLES_OWNER "', "
    "    CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' "
    "    ELSE 'FUNCTION' END, r.o); "
    "END LOOP; "
    "FOR r IN SELECT t.oid::regtype AS o FROM pg_type t "
    "  JOIN pg_namespace n ON n.oid = t.typnamespace "
    "  WHERE n.nspname = 'public' AND t.typowner = '" BRK_PGROLES_SUPER "'::regrole "
    "  AND t.typtype IN ('e', 'd') LOOP "
    "  EXECUTE format('ALTER TYPE %s OWNER TO " BRK_PGROLES_OWNER "', r.o); "
    "END LOOP; END $$";

static int fix_database(PGconn *c, const char *dbname)
{
    char sql[PGR_SQL_MAX];
    char *db = PQescapeIdentifier(c, dbname, strlen(dbname));
    int rc = BRK_EDB;

    if (db == NULL)
        goto out;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER " BRK_PGROLES_OWNER, db);
    if (exec_sql(c, sql, PGR_DUPLICATE_DATABASE " " PGR_UNIQUE_VIOLATION) < 0)
        goto out;
    snprintf(sql, sizeof sql, "ALTER DATABASE %s OWNER TO " BRK_PGROLES_OWNER, db);
    if (exec_sql(c, sql, NULL) < 0)
        goto out;
    snprintf(sql, sizeof sql, "REVOKE ALL ON DATABASE %s FROM PUBLIC", db);
    if (exec_sql(c, sql, NULL) < 0)
        goto out;
    snprintf(sql, sizeof sql, "GRANT CONNECT, TEMPORARY ON DATABASE %s TO " BRK_PGROLES_APP,
             db);
    rc = exec_sql(c, sql, NULL);
out:
    PQfreemem(db);
    return rc;
}

/* fix_hba: one rule, a password for every local connection; reloads when it changed. */
static int fix_hba(PGconn *c, const char *hba_path)
{
    char sql[PGR_SQL_MAX], msg[512], bad[32];
    char *file = NULL;
    int rc = BRK_EDB;

    if (brk_pq_scalar(c, "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL "
                         "OR type <> 'local' OR auth_method <> 'scram-sha-256'",
                      0, NULL, bad, sizeof bad, msg, sizeof msg) < 0) {
        brk__pge_err("cannot read pg_hba rules: %s", msg);
        goto out;
    }
    if (strcmp(bad, "0") == 0) {
        rc = 0;
        goto out;
    }
    /* COPY TO writes as the server's user, so root never writes into postgres's tree */
    file = PQescapeLiteral(c, hba_path, strlen(hba_path));
    if (file == NULL)
        goto out;
    snprintf(sql, sizeof sql,
             "COPY (VALUES ('local all all scram-sha-256'), "
             "('local replication " BRK_PGROLES_SUPER " scram-sha-256')) TO %s",
             file);
    if (exec_sql(c, sql, NULL) < 0 || exec_sql(c, "SELECT pg_reload_conf()", NULL) < 0)
        goto out;
    rc = 0;
out:
    PQfreemem(file);
    return rc;
}

int brk_pgroles_bootstrap(PGconn *c, const char *super_conninfo, const char *dbname,
                          const char *hba_path, const brk_pgroles_secrets_t *s)
{
    PGconn *db = NULL;
    int rc;

    if ((rc = set_role(c, BRK_PGROLES_SUPER, s->super)) < 0 ||
        (rc = set_role(c, BRK_PGROLES_OWNER, s->owner)) < 0 ||
        (rc = set_role(c, BRK_PGROLES_APP, s->app)) < 0 || (rc = fix_database(c, dbname)) < 0 ||
        (rc = exec_sql(c, "ALTER SYSTEM SET listen_addresses = ''", NULL)) < 0 ||
        (rc = fix_hba(c, hba_path)) < 0)
        return rc;
    db = PQconnectdb(super_conninfo);
    if (PQstatus(db) != CONNECTION_OK) {
        brk__pge_err("cannot connect to database '%s': %s", dbname, PQerrorMessage(db));
        rc = BRK_EDB;
    } else {
        rc = exec_sql(db, sql_reassign, NULL);
    }
    PQfinish(db);
    return rc;
}

/* scalar: the first value of a one-row query with up to one parameter, copied into out. */
static int scalar(PGconn *c, const char *sql, const char *param, char *out, size_t cap)
{
    return brk_pq_scalar(c, sql, param ? 1 : 0, param ? &param : NULL, out, cap, NULL, 0);
}

int brk_pgroles_grant_runtime(PGconn *owner, const char *runtime_conninfo, char *err,
                              size_t errlen)
{
    static const char *const grants[] = {
        "GRANT USAGE ON SCHEMA public TO %s",
        "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO %s",
        "REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM %s",
        "REVOKE INSERT, UPDATE ON schema_migrations FROM %s",
        "REVOKE INSERT, UPDATE ON schema_repeatables FROM %s",
        "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %s",
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO %s",
        NULL};
    char app[128] = "", super[8] = "", me[128] = "", owned[32] = "", sql[PGR_SQL_MAX];
    PGconn *rt = PQconnectdb(runtime_conninfo);
    char *id = NULL;
    int rc = BRK_EDB;

    if (PQstatus(rt) != CONNECTION_OK ||
        scalar(rt, "SELECT current_user::text", NULL, app, sizeof app) < 0 ||
        scalar(rt, "SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user", NULL,
               super, sizeof super) < 0) {
        snprintf(err, errlen, "cannot connect as the runtime role: %s", PQerrorMessage(rt));
        goto out;
    }
    if (scalar(owner, "SELECT current_user::text", NULL, me, sizeof me) < 0 ||
        scalar(owner,
               "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
               "c.relnamespace WHERE n.nspname = 'public' AND c.relowner = $1::regrole) + "
               "(SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
               "WHERE n.nspname = 'public' AND p.proowner = $1::regrole)",
               app, owned, sizeof owned) < 0) {
        snprintf(err, errlen, "cannot inspect the roles: %s", PQerrorMessage(owner));
        goto out;
    }
    rc = BRK_EINVAL;
    if (strcmp(super, "true") == 0) {
        snprintf(err, errlen, "the runtime role \"%s\" is a superuser: it could switch off the "
                              "triggers that keep finalized invoices immutable", app);
        goto out;
    }
    if (strcmp(app, me) == 0 || strcmp(owned, "0") != 0) {
        snprintf(err, errlen, "the runtime role \"%s\" owns part of the schema: give it a "
                              "role of its own (GSAP_DATABASE_URL) and run migrations as the "
                              "owner (GSAP_OWNER_DATABASE_URL)", app);
        goto out;
    }
    rc = BRK_EDB;
    id = PQescapeIdentifier(owner, app, strlen(app));
    if (id == NULL)
        goto out;
    for (int i = 0; grants[i] != NULL; i++) {
        char msg[512];
        snprintf(sql, sizeof sql, grants[i], id);
        if (brk_pq_cmd(owner, sql, 0, NULL, NULL, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "cannot grant the runtime role its privileges: %s", msg);
            goto out;
        }
    }
    rc = 0;
out:
    PQfreemem(id);
    PQfinish(rt);
    return rc;
}
