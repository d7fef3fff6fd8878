/*
 * it_metrics: /metrics of the real binary, and the alerts and dashboard of deploy/ over it,
 * each checked by Prometheus' own tool (promtool, Debian package prometheus, tools/deps.sh).
 *
 * 1. `promtool check metrics` parses the exposition of a running broker that has served a few
 *    requests (a 200, a 404, a 401, a JSON 405) and finds nothing to lint.
 * 2. `promtool check rules` and `promtool test rules` pass on deploy/prometheus/alerts.yml and
 *    its unit tests (alerts_test.yml).
 * 3. Every expression of deploy/grafana/gsap-broker.json parses as PromQL (promtool check rules
 *    on a rules file made of them, Grafana's variables replaced by values).
 * 4. Every metric name that the alerts and the dashboard use (each gsap_... token) is one that
 *    /metrics exports; the non-gsap `up` is written by Prometheus itself for every target.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"

#define MAX_NAMES 256
#define MAX_NAME_LEN 128
#define MIN_USED_NAMES 10 /* the alerts and the dashboard use at least this many */

static const char *const ENV[] = {"GSAP_FN_POLL_MS=200", NULL};
static tst_broker_t B;

static void setup(void)
{
    const char *ci = tst_pg_createdb("it_metrics");
    ck_assert_int_eq(tst_broker_start(&B, ci, ENV), 0);
}

static void teardown(void)
{
    tst_broker_clear(&B);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t n = 0, cap = 0, got;
    if (f == NULL)
        return NULL;
    do {
        if (cap - n < 4096)
            p = realloc(p, cap = cap * 2 + 4096);
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    fclose(f);
    p[n] = 0;
    return p;
}

/* Runs cmd (a shell command); returns its exit status, its stdout+stderr in *out (malloc'd). */
static int run(const char *cmd, char **out)
{
    char full[4096], outfile[] = "/tmp/gsap-metrics-out-XXXXXX";
    int fd = mkstemp(outfile);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, outfile);
    int st = system(full);
    *out = slurp(outfile);
    unlink(outfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *source_path(const char *rel, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s", getenv("GSAP_SOURCE_DIR"), rel);
    return buf;
}

/* The /metrics body after some traffic, so that the per-route series exist. */
static char *scrape(void)
{
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, "/healthz", NULL, &r), 0);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/nothing", NULL, &r), 0);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(B.port, "/admin/keys", "gsap.acme.0000000000000000.x", &r), 0);
    ck_assert_int_eq(r.status, 401);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_http(B.port, "POST", "/healthz", NULL, "{}", 2, &r), 0);
    tst_resp_clear(&r);
    /* anonymous from loopback (docs/access.md) */
    ck_assert_int_eq(tst_get(B.port, "/metrics", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    char *body = strdup(r.body);
    tst_resp_clear(&r);
    return body;
}

START_TEST(promtool_parses_metrics)
{
    char file[] = "/tmp/gsap-metrics-XXXXXX", cmd[512], *out;
    char *body = scrape();
    int fd = mkstemp(file);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    ck_assert_ptr_nonnull(strstr(body, "gsap_http_requests_total{"));
    ck_assert_ptr_nonnull(strstr(body, "gsap_http_request_duration_seconds_bucket{"));
    snprintf(cmd, sizeof cmd, "promtool check metrics <'%s'", file);
    int st = run(cmd, &out);
    /* promtool prints one line per lint problem, and exits non-zero on a parse error */
    ck_assert_msg(st == 0 && out != NULL && out[0] == 0, "promtool check metrics (%d): %s", st,
                  out ? out : "(no output)");
    free(out);
    unlink(file);
    free(body);
}
END_TEST

START_TEST(alert_rules_check_and_unit_tests)
{
    char cmd[1024], p[512], *out;
    snprintf(cmd, sizeof cmd, "promtool check rules '%s'",
             source_path("deploy/prometheus/alerts.yml", p, sizeof p));
    int st = run(cmd, &out);
    ck_assert_msg(st == 0, "promtool check rules (%d): %s", st, out);
    free(out);
    /* alerts_test.yml names alerts.yml relative to itself */
    snprintf(cmd, sizeof cmd, "cd '%s' && promtool test rules alerts_test.yml",
             source_path("deploy/prometheus", p, sizeof p));
    st = run(cmd, &out);
    ck_assert_msg(st == 0 && strstr(out, "SUCCESS") != NULL, "promtool test rules (%d): %s", st,
                  out);
    free(out);
}
END_TEST

/* s with each occurrence of from replaced by to (malloc'd). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *q = strstr(s, from); q; q = strstr(q + fl, from))
        n++;
    char *out = malloc(strlen(s) + n * tl + 1), *o = out;
    for (const char *q; (q = strstr(s, from)) != NULL; s = q + fl) {
        memcpy(o, s, (size_t)(q - s));
        o += q - s;
        memcpy(o, to, tl);
        o += tl;
    }
    strcpy(o, s);
    return out;
}

/* The dashboard's PromQL expressions, in panel order (an array of strings, caller decrefs). */
static json_t *dashboard_exprs(void)
{
    char p[512];
    json_error_t jerr;
    json_t *dash = json_load_file(source_path("deploy/grafana/gsap-broker.json", p, sizeof p), 0,
                                  &jerr);
    ck_assert_msg(dash != NULL, "gsap-broker.json: %s", jerr.text);
    json_t *exprs = json_array(), *panel, *target;
    size_t i, j;
    json_array_foreach(json_object_get(dash, "panels"), i, panel)
    {
        ck_assert_msg(json_array_size(json_object_get(panel, "targets")) > 0,
                      "panel %zu has no query", i);
        json_array_foreach(json_object_get(panel, "targets"), j, target)
        {
            const char *e = json_string_value(json_object_get(target, "expr"));
            ck_assert_ptr_nonnull(e);
            json_array_append_new(exprs, json_string(e));
        }
    }
    json_decref(dash);
    ck_assert_uint_ge(json_array_size(exprs), 10);
    return exprs;
}

START_TEST(dashboard_queries_parse)
{
    char file[] = "/tmp/gsap-dash-rules-XXXXXX.yml", cmd[512], *out;
    json_t *exprs = dashboard_exprs(), *rules = json_array(), *e;
    size_t i;
    json_array_foreach(exprs, i, e)
    {
        /* Grafana's variables, as the dashboard's defaults would fill them */
        char *a = replace_all(json_string_value(e), "$__rate_interval", "5m");
        char *b = replace_all(a, "$job", "gsap-broker");
        char *c = replace_all(b, "$instance", ".*");
        char rec[64];
        snprintf(rec, sizeof rec, "dashboard:query_%zu", i);
        json_array_append_new(rules, json_pack("{s:s, s:s}", "record", rec, "expr", c));
        free(a);
        free(b);
        free(c);
    }
    /* JSON is YAML: promtool reads this rules file as it reads alerts.yml */
    json_t *doc = json_pack("{s:[{s:s, s:o}]}", "groups", "name", "dashboard", "rules", rules);
    int fd = mkstemps(file, 4);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(json_dump_file(doc, file, JSON_INDENT(1)), 0);
    snprintf(cmd, sizeof cmd, "promtool check rules '%s'", file);
    int st = run(cmd, &out);
    ck_assert_msg(st == 0, "a dashboard query does not parse (%d): %s", st, out);
    free(out);
    unlink(file);
    json_decref(doc);
    json_decref(exprs);
}
END_TEST

/* Adds each distinct gsap_[a-z0-9_]+ token of text to names. */
static void collect_names(const char *text, char names[][MAX_NAME_LEN], size_t *n)
{
    for (const char *q = strstr(text, "gsap_"); q; q = strstr(q + 1, "gsap_")) {
        if (q > text && (isalnum((unsigned char)q[-1]) || q[-1] == '_'))
            continue;
        size_t len = 0;
        while (islower((unsigned char)q[len]) || isdigit((unsigned char)q[len]) || q[len] == '_')
            len++;
        ck_assert_uint_lt(len, MAX_NAME_LEN);
        size_t k;
        for (k = 0; k < *n; k++)
            if (strlen(names[k]) == len && strncmp(names[k], q, len) == 0)
                break;
        if (k == *n) {
            ck_assert_uint_lt(*n, MAX_NAMES);
            memcpy(names[*n], q, len);
            names[(*n)++][len] = 0;
        }
    }
}

/* 1 when the exposition has a sample of metric name (a line starting "name{" or "name "). */
static int exported(const char *body, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = body; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, name, len) == 0 && (line[len] == '{' || line[len] == ' '))
            return 1;
    return 0;
}

START_TEST(used_metrics_are_exported)
{
    static char names[MAX_NAMES][MAX_NAME_LEN];
    char p[512];
    size_t n = 0, i;
    json_t *exprs = dashboard_exprs(), *e;
    char *alerts = slurp(source_path("deploy/prometheus/alerts.yml", p, sizeof p));
    ck_assert_ptr_nonnull(alerts);
    collect_names(alerts, names, &n);
    json_array_foreach(exprs, i, e) collect_names(json_string_value(e), names, &n);
    ck_assert_uint_ge(n, MIN_USED_NAMES);

    /* the runtime publishes its gauges on its first poll: wait for them */
    char *body = NULL;
    for (int tries = 0; tries < 100; tries++) {
        free(body);
        body = scrape();
        if (exported(body, "gsap_fn_queue_depth") && exported(body, "gsap_fn_dead_letters"))
            break;
        usleep(100 * 1000);
    }
    for (i = 0; i < n; i++)
        ck_assert_msg(exported(body, names[i]),
                      "%s is used by deploy/ but /metrics does not export it", names[i]);
    /* and the check can fail: a name /metrics does not have is not found */
    ck_assert(!exported(body, "gsap_checkpoint_age_seconds"));
    free(body);
    free(alerts);
    json_decref(exprs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, promtool_parses_metrics);
    tcase_add_test(tc, alert_rules_check_and_unit_tests);
    tcase_add_test(tc, dashboard_queries_parse);
    tcase_add_test(tc, used_metrics_are_exported);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
