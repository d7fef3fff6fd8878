#include "tst_pg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

const char *tst_pg_conninfo(const char *name)
{
    /* one buffer per thread: suites connect from client threads too (it_billing's kill -9
     * clients), and a shared one could be overwritten while another thread reads it */
    static __thread char buf[512];
    snprintf(buf, sizeof buf, "host=%s port=%s user=postgres dbname=%s",
             env_or("GSAP_TEST_PGHOST", "/tmp"), env_or("GSAP_TEST_PGPORT", "55432"), name);
    return buf;
}

PGconn *tst_pg_connect(const char *name)
{
    PGconn *c = PQconnectdb(tst_pg_conninfo(name));
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "tst_pg: cannot connect to %s: %s", name, PQerrorMessage(c));
        abort();
    }
    return c;
}

const char *tst_pg_createdb(const char *name)
{
    PGconn *c = tst_pg_connect("postgres");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "tst_pg: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    PQclear(r);
    PQfinish(c);
    return tst_pg_conninfo(name);
}

char *tst_pg_scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    char *out = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "tst_pg: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

long tst_pg_long(PGconn *c, const char *sql)
{
    char *s = tst_pg_scalar(c, sql);
    long v = s ? strtol(s, NULL, 10) : -1;
    free(s);
    return v;
}

/* The SQL of f and ap (malloc'd); aborts when out of memory, like the rest of tst_pg. */
static char *vsql(const char *f, va_list ap)
{
    char *sql = NULL;
    if (vasprintf(&sql, f, ap) < 0) {
        fprintf(stderr, "tst_pg: out of memory formatting %s\n", f);
        abort();
    }
    return sql;
}

char *tst_pg_scalarf(PGconn *c, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *sql = vsql(f, ap);
    va_end(ap);
    char *v = tst_pg_scalar(c, sql);
    free(sql);
    return v;
}

void tst_pg_execf(PGconn *c, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *sql = vsql(f, ap);
    va_end(ap);
    free(tst_pg_scalar(c, sql));
    free(sql);
}

void tst_pg_fake_session(PGconn *c, const char *cr_id, const char *ctx, int n, long long base)
{
    tst_pg_execf(
        c,
        "INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, "
        "capability_set, command_hash, corpus_entry_cid, parameters_cid, environment_commitment, "
        "description, ttl_seconds, issued_at, expires_at, issuer_key_id, billing_account, ac, "
        "ac_cid) SELECT a.tenant_id, '%s', 'active', a.accord_name, true, a.capability_set, "
        "a.command_hash, a.corpus_entry_cid, a.parameters_cid, a.environment_commitment, "
        "'fake session', a.ttl_seconds, a.issued_at, a.expires_at, a.issuer_key_id, "
        "a.billing_account, a.ac, a.ac_cid FROM acs a JOIN crs c USING (tenant_id, context_id) "
        "WHERE c.cr_id = '%s'",
        ctx, cr_id);
    long got = tst_pg_longf(
        c,
        "WITH x AS (INSERT INTO crs (tenant_id, context_id, sequence, cr_id, outcome, "
        "effective_outcome, flags, started_at, completed_at, cr, cr_cid, chronicle_cid, "
        "merkle_root, ac_cid, lineage_cid, executor_key_id, received_at, billed_started_at, "
        "billed_completed_at) SELECT a.tenant_id, a.context_id, g, 'cr_' || "
        "lpad(to_hex(g + %lld), 32, '0'), 'completed', 'completed', '{}', now(), now(), '{}', "
        "'sha256:' || encode(sha256(('c' || (g + %lld))::bytea), 'hex'), a.ac_cid, a.ac_cid, "
        "a.ac_cid, 'sha256:' || lpad(to_hex(g + %lld), 64, '0'), a.issuer_key_id, now(), now(), "
        "now() FROM acs a, generate_series(1, %d) g WHERE a.context_id = '%s' RETURNING 1) "
        "SELECT count(*) FROM x",
        base, base, base, n, ctx);
    if (got != n) {
        fprintf(stderr, "tst_pg: fake session %s: %ld receipts written, not %d\n", ctx, got, n);
        abort();
    }
}

long tst_pg_longf(PGconn *c, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *sql = vsql(f, ap);
    va_end(ap);
    long v = tst_pg_long(c, sql);
    free(sql);
    return v;
}

char *tst_pg_db_scalarf(const char *db, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *sql = vsql(f, ap);
    va_end(ap);
    PGconn *c = tst_pg_connect(db);
    char *v = tst_pg_scalar(c, sql);
    PQfinish(c);
    free(sql);
    return v;
}

long tst_pg_db_longf(const char *db, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *sql = vsql(f, ap);
    va_end(ap);
    PGconn *c = tst_pg_connect(db);
    long v = tst_pg_long(c, sql);
    PQfinish(c);
    free(sql);
    return v;
}

long tst_pg_wait_long(PGconn *c, const char *sql, long want, int secs)
{
    long n = -1;
    for (int i = 0; i < secs * (1000 / TST_PG_POLL_MS); i++) {
        if ((n = tst_pg_long(c, sql)) >= want)
            return n;
        usleep(TST_PG_POLL_MS * 1000);
    }
    return n;
}
