/*
 * it_embedded: the default a new user gets: no GSAP_DATABASE_URL, so the broker creates,
 * starts and stops its own PostgreSQL cluster under GSAP_DATA_DIR and prints an admin token
 * on its first start only.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tst_check.h"
#include "tst_broker.h"

/* The token follows the first-start line on its own line. */
static char *token_from_log(const char *log)
{
    const char *p = strstr(log, "shown once):\n");
    if (p == NULL)
        return NULL;
    p += strlen("shown once):\n");
    return strndup(p, strcspn(p, "\n"));
}

static int cluster_running(const tst_broker_t *b)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/pg/data/postmaster.pid", b->dir);
    return stat(path, &st) == 0;
}

START_TEST(first_start_and_restart)
{
    tst_broker_t b = {0};
    tst_resp_t r;
    struct stat st;
    ck_assert_int_eq(tst_broker_start(&b, NULL, NULL), 0);
    char *log = tst_broker_log(&b);
    char *token = token_from_log(log);
    free(log);
    ck_assert_ptr_nonnull(token);
    ck_assert_int_eq(strncmp(token, "gsap.default.", 13), 0);
    /* the printed token is an admin of tenant "default" */
    ck_assert_int_eq(tst_post_json(b.port, "/admin/keys", token, "{\"roles\":[\"issuer\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(b.port, "/readyz", NULL, &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    char path[400];
    snprintf(path, sizeof path, "%s/pg/data", b.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/keys", b.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0077, 0);
    ck_assert(cluster_running(&b));

    /* a graceful stop stops the cluster too */
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    ck_assert(!cluster_running(&b));

    /* the next start reuses the cluster: same data, no new token */
    ck_assert_int_eq(tst_broker_restart(&b), 0);
    log = tst_broker_log(&b);
    ck_assert_ptr_eq(strstr(strstr(log, "shown once") + 1, "shown once"), NULL);
    free(log);
    ck_assert_int_eq(tst_post_json(b.port, "/admin/keys", token, "{\"roles\":[\"auditor\"]}", &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_broker_stop(&b), 0);
    ck_assert(!cluster_running(&b));
    tst_broker_clear(&b);
    free(token);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_embedded");
    TCase *tc = tcase_create("embedded");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, first_start_and_restart);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
