#include "tst_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
