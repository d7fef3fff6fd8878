/*
 * brk_migrate: the schema migration runner.
 *
 * A migration is a file named NNNN_name.sql (four digits, then lowercase letters, digits and
 * underscores); anything else in the directory is ignored, so a README or an editor's backup
 * never runs. Files apply in name order, each in its own transaction together with its row
 * in schema_migrations, so a file either applies entirely and is recorded, or leaves no
 * trace. A session advisory lock (BRK_MIGRATE_LOCK_KEY) serialises brokers starting at once:
 * the second waits, then finds nothing pending.
 *
 * Every recorded hash is checked before anything is applied: a shipped migration must never
 * change, and a broker that would run on a schema other than the one its files describe
 * must not start. A recorded name this binary does not know is fine: a newer broker applied
 * it, and the schema only grows.
 *
 * A file must not contain its own BEGIN/COMMIT (the runner owns the transaction), nor
 * statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY); both are reported.
 *
 * Functions, triggers and views are not in the numbered files but in functions/NN_name.sql,
 * one live definition each (Flyway's repeatable migrations, migrations/functions/README.md):
 * after the numbered files, under the same lock, every such file whose SHA-256 differs from
 * the one recorded in schema_repeatables (or that has no record) is applied, in name order,
 * each in its own transaction with its record. Their notices (DROP ... IF EXISTS of what is
 * already gone) are silenced: a start prints nothing when all is well.
 */
#include "brk_migrate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

#define BRK_MIGRATION_FILE_MAX (4u * 1024 * 1024)  /* bytes of one .sql file */
#define BRK_MIGRATION_NAME_MAX 128                 /* bytes of a file name */
#define BRK_MIGRATIONS_MAX 10000                   /* files in one set */
#define BRK_MIGRATE_LOCK_KEY "5139523412909705042" /* "GSAPMIGR" as a bigint */
#define BRK_MIGRATION_DIGITS 4                     /* "0001_core.sql" */
#define BRK_REPEATABLE_DIGITS 2                    /* "20_gsap_complete.sql" */
#define BRK_REPEATABLES_SUBDIR "functions"

typedef struct mig {
    const char *name;
    const char *sql;
    size_t len;
    char *owned_name; /* set when read from a directory */
    char *owned_sql;
    char sha[2 * BRK_SHA256_LEN + 1];
} mig_t;

typedef struct mig_set {
    mig_t *v;
    size_t n, cap;
} mig_set_t;

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* name_valid: ^[0-9]{digits}_[a-z0-9_]+\.sql$ within BRK_MIGRATION_NAME_MAX. */
static int name_valid(const char *s, size_t digits)
{
    size_t n = strlen(s), i;

    if (n < digits + 6 || n > BRK_MIGRATION_NAME_MAX || strcmp(s + n - 4, ".sql") != 0 ||
        s[digits] != '_')
        return 0;
    for (i = 0; i < digits; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    for (i = digits + 1; i < n - 4; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    }
    return 1;
}

static void set_clear(mig_set_t *set)
{
    size_t i;

    for (i = 0; i < set->n; i++) {
        free(set->v[i].owned_name);
        free(set->v[i].owned_sql);
    }
    free(set->v);
    memset(set, 0, sizeof *set);
}

static mig_t *set_add(mig_set_t *set)
{
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 16;
        set->v = brk_realloc(set->v, set->cap * sizeof *set->v);
    }
    memset(&set->v[set->n], 0, sizeof set->v[0]);
    return &set->v[set->n++];
}

static int mig_cmp(const void *a, const void *b)
{
    return strcmp(((const mig_t *)a)->name, ((const mig_t *)b)->name);
}

/* read_file: path into a NUL-terminated buffer (owned by the caller), at most the cap. */
static int read_file(const char *dir, const char *name, char **out, size_t *len, char *err,
                     size_t errlen)
{
    char path[4096];
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = -1, rc = BRK_EIO, n;

    n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        seterr(err, errlen, "migrations directory path '%s' is too long", dir);
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        seterr(err, errlen, "cannot read migration '%s': %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "migration '%s' is not a regular file", path);
        goto out;
    }
    if (st.st_size > (off_t)BRK_MIGRATION_FILE_MAX) {
        seterr(err, errlen, "migration '%s' is larger than %u bytes", name, BRK_MIGRATION_FILE_MAX);
        goto out;
    }
    buf = brk_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            seterr(err, errlen, "cannot read migration '%s': %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break; /* shrank while reading: hash what was read */
        got += (size_t)r;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    *len = got;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/*
 * load_set: the migrations of dir (or the embedded ones), valid names only, sorted, hashed:
 * the numbered ones, or with repeatable set the files of dir/functions.
 */
static int load_set(const char *dir, int repeatable, mig_set_t *set, char *err, size_t errlen)
{
    const brk_migration_t *emb = repeatable ? brk_repeatables : brk_migrations;
    unsigned emb_n = repeatable ? brk_repeatables_count : brk_migrations_count;
    size_t digits = repeatable ? BRK_REPEATABLE_DIGITS : BRK_MIGRATION_DIGITS;
    char sub[4096];
    DIR *d = NULL;
    struct dirent *e;
    size_t i;
    int rc = 0, n;

    if (dir == NULL) {
        for (i = 0; i < emb_n; i++) {
            mig_t *m;
            if (emb[i].name == NULL || !name_valid(emb[i].name, digits))
                continue;
            m = set_add(set);
            m->name = emb[i].name;
            m->sql = emb[i].sql;
            m->len = emb[i].len;
        }
    } else {
        if (repeatable) {
            n = snprintf(sub, sizeof sub, "%s/" BRK_REPEATABLES_SUBDIR, dir);
            if (n < 0 || (size_t)n >= sizeof sub) {
                seterr(err, errlen, "migrations directory path '%s' is too long", dir);
                rc = BRK_EIO;
                goto out;
            }
            dir = sub;
        }
        d = opendir(dir);
        if (d == NULL) {
            seterr(err, errlen, "cannot open migrations directory '%s': %s", dir, strerror(errno));
            rc = BRK_EIO;
            goto out;
        }
        while ((errno = 0, e = readdir(d)) != NULL) {
            mig_t *m;
            if (!name_valid(e->d_name, digits))
                continue;
            if (set->n >= BRK_MIGRATIONS_MAX) {
                seterr(err, errlen, "migrations directory '%s' holds more than %d migrations", dir,
                       BRK_MIGRATIONS_MAX);
                rc = BRK_EIO;
                goto out;
            }
            m = set_add(set);
            m->owned_name = brk_strdup(e->d_name);
            m->name = m->owned_name;
            rc = read_file(dir, e->d_name, &m->owned_sql, &m->len, err, errlen);
            if (rc < 0)
                goto out;
            m->sql = m->owned_sql;
        }
        if (errno != 0) {
            seterr(err, errlen, "cannot list migrations directory '%s': %s", dir, strerror(errno));
            rc = BRK_EIO;
            goto out;
        }
    }
    if (set->n > 0)
        qsort(set->v, set->n, sizeof set->v[0], mig_cmp);
    for (i = 0; i < set->n; i++) {
        uint8_t md[BRK_SHA256_LEN];
        if (memchr(set->v[i].sql, '\0', set->v[i].len) != NULL) {
            seterr(err, errlen, "migration '%s' contains a NUL byte", set->v[i].name);
            rc = BRK_EIO;
            goto out;
        }
        brk_sha256(set->v[i].sql, set->v[i].len, md);
        brk_hex(md, sizeof md, set->v[i].sha);
    }
out:
    if (d != NULL)
        closedir(d);
    return rc;
}

/* pg_msg: PostgreSQL's primary message for r, or the connection's, without a newline. */
static void pg_msg(PGconn *conn, const PGresult *r, char *out, size_t cap)
{
    const char *m = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    size_t n;

    if (m != NULL && state != NULL)
        snprintf(out, cap, "%s (SQLSTATE %s)", m, state);
    else
        snprintf(out, cap, "%s", m != NULL ? m : PQerrorMessage(conn));
    n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

/* error_line: the 1-based line of a statement position (in characters) inside sql. */
static unsigned long error_line(const PGresult *r, const char *sql, size_t len)
{
    const char *p = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    unsigned long pos, chars = 0, line = 1;
    size_t i;

    if (p == NULL)
        return 0;
    pos = strtoul(p, NULL, 10);
    for (i = 0; i < len && chars + 1 < pos; i++) {
        if (((unsigned char)sql[i] & 0xc0) != 0x80)
            chars++;
        if (sql[i] == '\n')
            line++;
    }
    return line;
}

static int exec_ok(PGconn *conn, const char *sql, ExecStatusType want, const char *what, char *err,
                   size_t errlen)
{
    PGresult *r = PQexec(conn, sql);
    char msg[512];
    int rc = 0;

    if (PQresultStatus(r) != want) {
        pg_msg(conn, r, msg, sizeof msg);
        seterr(err, errlen, "cannot %s: %s", what, msg);
        rc = BRK_EDB;
    }
    PQclear(r);
    return rc;
}

/*
 * apply: one migration and its record in one transaction; rolled back by the caller. A
 * repeatable file's record replaces the earlier one.
 */
static int apply(PGconn *conn, const mig_t *m, int repeatable, char *err, size_t errlen)
{
    const char *params[2] = {m->name, m->sha};
    const char *kind = repeatable ? BRK_REPEATABLES_SUBDIR "/" : "";
    PGresult *r = NULL;
    char msg[512];
    ExecStatusType st;
    unsigned long line;
    int rc = 0;

    rc = exec_ok(conn, "BEGIN", PGRES_COMMAND_OK, "begin a transaction", err, errlen);
    if (rc < 0)
        goto out;
    if (repeatable) {
        rc = exec_ok(conn, "SET LOCAL client_min_messages = warning", PGRES_COMMAND_OK,
                     "silence notices", err, errlen);
        if (rc < 0)
            goto out;
    }
    r = PQexec(conn, m->sql);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        pg_msg(conn, r, msg, sizeof msg);
        line = error_line(r, m->sql, m->len);
        if (line > 0)
            seterr(err, errlen, "migration %s%s failed at line %lu: %s", kind, m->name, line,
                   msg);
        else
            seterr(err, errlen, "migration %s%s failed: %s", kind, m->name, msg);
        rc = BRK_EDB;
        goto out;
    }
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        seterr(err, errlen,
               "migration %s%s ended the runner's transaction: remove BEGIN, COMMIT and "
               "ROLLBACK from the file",
               kind, m->name);
        rc = BRK_EDB;
        goto out;
    }
    PQclear(r);
    r = PQexecParams(conn,
                     repeatable ? "INSERT INTO schema_repeatables (name, sha256) VALUES ($1, $2) "
                                  "ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, "
                                  "applied_at = now()"
                                : "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                     2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pg_msg(conn, r, msg, sizeof msg);
        seterr(err, errlen, "cannot record migration %s%s: %s", kind, m->name, msg);
        rc = BRK_EDB;
        goto out;
    }
    PQclear(r);
    r = PQexec(conn, "COMMIT");
    /* COMMIT of a transaction that has failed answers COMMAND_OK with the tag ROLLBACK,
     * so the tag is checked too. */
    if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        pg_msg(conn, r, msg, sizeof msg);
        seterr(err, errlen, "cannot commit migration %s%s: %s", kind, m->name, msg);
        rc = BRK_EDB;
        goto out;
    }
out:
    PQclear(r);
    return rc;
}

/*
 * records: creates the bookkeeping table unless it exists (under the migration lock), then
 * reads its (name, sha256) rows into *out (caller PQclear()s).
 */
static int records(PGconn *conn, const char *table, PGresult **out, char *err, size_t errlen)
{
    const char *params[1] = {table};
    char sql[256], msg[512];
    PGresult *r;
    int rc = 0;

    /* Checked first rather than CREATE TABLE IF NOT EXISTS, whose notice would reach
     * stderr on every start; the advisory lock makes the check race-free. */
    r = PQexecParams(conn, "SELECT to_regclass($1) IS NULL", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        pg_msg(conn, r, msg, sizeof msg);
        seterr(err, errlen, "cannot look for %s: %s", table, msg);
        rc = BRK_EDB;
        goto out;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        snprintf(sql, sizeof sql,
                 "CREATE TABLE %s ("
                 " name text PRIMARY KEY,"
                 " sha256 text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 table);
        snprintf(msg, sizeof msg, "create %s", table);
        rc = exec_ok(conn, sql, PGRES_COMMAND_OK, msg, err, errlen);
        if (rc < 0)
            goto out;
    }
    PQclear(r);
    snprintf(sql, sizeof sql, "SELECT name, sha256 FROM %s", table);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_msg(conn, r, msg, sizeof msg);
        seterr(err, errlen, "cannot read %s: %s", table, msg);
        rc = BRK_EDB;
        goto out;
    }
    *out = r;
    r = NULL;
out:
    PQclear(r);
    return rc;
}

/* apply_repeatables: every file of reps whose recorded hash differs, in order. */
static int apply_repeatables(PGconn *conn, mig_set_t *reps, char *err, size_t errlen)
{
    PGresult *r = NULL;
    size_t i;
    int rc, row, nrows;

    rc = records(conn, "schema_repeatables", &r, err, errlen);
    if (rc < 0)
        goto out;
    nrows = PQntuples(r);
    for (i = 0; i < reps->n; i++) {
        for (row = 0; row < nrows; row++) {
            if (strcmp(PQgetvalue(r, row, 0), reps->v[i].name) == 0 &&
                strcmp(PQgetvalue(r, row, 1), reps->v[i].sha) == 0)
                break;
        }
        if (row < nrows)
            continue; /* unchanged since it was applied */
        rc = apply(conn, &reps->v[i], 1, err, errlen);
        if (rc < 0)
            goto out;
    }
out:
    PQclear(r);
    return rc;
}

int brk_migrate_run(PGconn *conn, const char *dir, char *err, size_t errlen)
{
    mig_set_t set = {0}, reps = {0};
    PGresult *r = NULL;
    size_t i;
    PGTransactionStatusType st;
    int locked = 0, rc = 0, row, nrows;

    seterr(err, errlen, "%s", "");
    rc = load_set(dir, 0, &set, err, errlen);
    if (rc < 0)
        goto out;
    rc = load_set(dir, 1, &reps, err, errlen);
    if (rc < 0)
        goto out;
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        seterr(err, errlen, "cannot migrate: the connection is not idle: %s", PQerrorMessage(conn));
        rc = BRK_EDB;
        goto out;
    }

    rc = exec_ok(conn, "SELECT pg_advisory_lock(" BRK_MIGRATE_LOCK_KEY ")", PGRES_TUPLES_OK,
                 "take the migration lock", err, errlen);
    if (rc < 0)
        goto out;
    locked = 1;

    rc = records(conn, "schema_migrations", &r, err, errlen);
    if (rc < 0)
        goto out;
    nrows = PQntuples(r);

    /* Pass 1: every applied file must be unchanged, before anything new runs. */
    for (i = 0; i < set.n; i++) {
        for (row = 0; row < nrows; row++) {
            if (strcmp(PQgetvalue(r, row, 0), set.v[i].name) != 0)
                continue;
            if (strcmp(PQgetvalue(r, row, 1), set.v[i].sha) != 0) {
                seterr(err, errlen,
                       "migration %s changed after it was applied (recorded sha256 %s, file "
                       "sha256 %s)",
                       set.v[i].name, PQgetvalue(r, row, 1), set.v[i].sha);
                rc = BRK_ECONFLICT;
                goto out;
            }
            set.v[i].sql = NULL; /* applied: skip in pass 2 */
            break;
        }
    }

    /* Pass 2: the pending files, in order. */
    for (i = 0; i < set.n; i++) {
        if (set.v[i].sql == NULL)
            continue;
        rc = apply(conn, &set.v[i], 0, err, errlen);
        if (rc < 0)
            goto out;
    }

    /* Pass 3: the functions, triggers and views, now that their tables exist. */
    rc = apply_repeatables(conn, &reps, err, errlen);
    if (rc < 0)
        goto out;

out:
    PQclear(r);
    st = PQtransactionStatus(conn);
    if (st == PQTRANS_INTRANS || st == PQTRANS_INERROR)
        PQclear(PQexec(conn, "ROLLBACK"));
    if (locked)
        PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" BRK_MIGRATE_LOCK_KEY ")"));
    set_clear(&set);
    set_clear(&reps);
    return rc;
}

int brk_migrate_expected(const char *dir)
{
    mig_set_t set = {0};
    char err[256];
    int rc;

    rc = load_set(dir, 0, &set, err, sizeof err);
    if (rc == 0)
        rc = set.n > (size_t)BRK_MIGRATIONS_MAX ? BRK_EIO : (int)set.n;
    set_clear(&set);
    return rc;
}
