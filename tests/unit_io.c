/*
 * unit_io: brk_write_all writes everything, even more than a pipe holds at once (short
 * writes), and reports a reader that went away as BRK_EIO instead of dying of SIGPIPE.
 */
#include "tst_check.h"
#include "brk_io.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_err.h"
#include "banned.h"

#define IO_BIG (1024 * 1024) /* well over a pipe's 64 KiB buffer */

struct reader {
    int fd;
    unsigned char *got;
    size_t len;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    ssize_t n;

    while (r->len < IO_BIG && (n = read(r->fd, r->got + r->len, IO_BIG - r->len)) > 0)
        r->len += (size_t)n;
    return NULL;
}

START_TEST(test_write_all_pipe)
{
    int p[2];
    unsigned char *buf = malloc(IO_BIG);
    struct reader r = {0};
    pthread_t t;

    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < IO_BIG; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    ck_assert_int_eq(pipe(p), 0);
    r.fd = p[0];
    r.got = malloc(IO_BIG);
    ck_assert_ptr_nonnull(r.got);
    ck_assert_int_eq(pthread_create(&t, NULL, read_all, &r), 0);
    ck_assert_int_eq(brk_write_all(p[1], buf, IO_BIG), 0);
    close(p[1]);
    pthread_join(t, NULL);
    ck_assert_uint_eq(r.len, IO_BIG);
    ck_assert_int_eq(memcmp(r.got, buf, IO_BIG), 0);
    ck_assert_int_eq(brk_write_all(p[0] /* read end: write fails */, buf, 1), BRK_EIO);
    ck_assert_int_eq(brk_write_all(-1, buf, 0), 0); /* nothing to write, nothing written */
    close(p[0]);
    free(r.got);
    free(buf);
}
END_TEST

START_TEST(test_write_all_closed_reader)
{
    int p[2];

    signal(SIGPIPE, SIG_IGN);
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_int_eq(brk_write_all(p[1], "x", 1), BRK_EIO);
    close(p[1]);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("write_all");

    tcase_add_test(tc, test_write_all_pipe);
    tcase_add_test(tc, test_write_all_closed_reader);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(io_suite());
}
