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
