/*
 * it_embedded: the default a new user gets: no GSAP_DATABASE_URL, so the broker creates,
 * starts and stops its own PostgreSQL cluster under GSAP_DATA_DIR and hands out an admin
 * token on its first start only: on a terminal it prints it; the harness's output is a file,
 * so the token goes to GSAP_DATA_DIR/admin-token (0600) and the log names the file only.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tst_check.h"
#include "tst_broker.h"

/* token_from_file: the first line of the admin-token file (malloc'd), or NULL. */
static char *token_from_file(const char *path)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    return ok ? strndup(buf, strcspn(buf, "\n")) : NULL;
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
    char tpath[400];
    snprintf(tpath, sizeof tpath, "%s/admin-token", b.dir);
    char *token = token_from_file(tpath);
    ck_assert_ptr_nonnull(token);
    ck_assert_int_eq(strncmp(token, "gsap.default.", 13), 0);
    /* readable by the broker's user only */
    ck_assert_int_eq(lstat(tpath, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* the log says where, never what: neither the token nor its secret part */
    char *log = tst_broker_log(&b);
    ck_assert_ptr_nonnull(strstr(log, tpath));
    ck_assert_ptr_null(strstr(log, strrchr(token, '.') + 1));
    ck_assert_ptr_null(strstr(log, "gsap.default."));
    free(log);
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

    /* the next start reuses the cluster: same data, no new token, the file untouched */
    struct stat before;
    ck_assert_int_eq(lstat(tpath, &before), 0);
    ck_assert_int_eq(tst_broker_restart(&b), 0);
    log = tst_broker_log(&b);
    const char *first = strstr(log, "admin token");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_null(strstr(first + 1, "admin token"));
    free(log);
    ck_assert_int_eq(lstat(tpath, &st), 0);
    ck_assert_int_eq(st.st_ino, before.st_ino);
    ck_assert_int_eq(st.st_mtime, before.st_mtime);
    char *again = token_from_file(tpath);
    ck_assert_str_eq(again, token);
    free(again);
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
