/*
 * unit_io: brk_write_all, the one write-all loop of broker/.
 *
 * Every byte of a write many times a pipe's buffer arrives, in order, at a reader; and a
 * write(2) that writes less than asked and then fails (a non-blocking pipe nobody reads)
 * is reported as BRK_EIO, never as success with bytes missing.
 */
#include "tst_check.h"
#include "brk_io.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk_err.h"
#include "banned.h"

#define IO_BIG (1024 * 1024) /* many times a pipe's buffer (64 KiB on Linux) */

struct drain {
    int fd;
    size_t got;
    unsigned char *buf;
};

static void *drain_pipe(void *p)
{
    struct drain *d = p;
    ssize_t r;

    while ((r = read(d->fd, d->buf + d->got, IO_BIG - d->got)) > 0)
        d->got += (size_t)r;
    return NULL;
}

START_TEST(test_write_all_delivers_every_byte)
{
    int fds[2];
    pthread_t t;
    unsigned char *data = malloc(IO_BIG);
    struct drain d = {0, 0, malloc(IO_BIG)};

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(d.buf);
    for (size_t i = 0; i < IO_BIG; i++)
        data[i] = (unsigned char)(i * 7 + 3);
    ck_assert_int_eq(pipe(fds), 0);
    d.fd = fds[0];
    ck_assert_int_eq(pthread_create(&t, NULL, drain_pipe, &d), 0);
    ck_assert_int_eq(brk_write_all(fds[1], data, IO_BIG), 0);
    close(fds[1]);
    pthread_join(t, NULL);
    close(fds[0]);
    ck_assert_uint_eq(d.got, IO_BIG);
    ck_assert_int_eq(memcmp(d.buf, data, IO_BIG), 0);
    free(data);
    free(d.buf);
}
END_TEST

START_TEST(test_write_all_reports_failure)
{
    int fds[2];
    unsigned char *data = calloc(1, IO_BIG);

    ck_assert_ptr_nonnull(data);
    /* nobody reads: the first write fills the pipe (a short write), the next says EAGAIN */
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq(brk_write_all(fds[1], data, IO_BIG), BRK_EIO);
    ck_assert_int_eq(errno, EAGAIN);
    close(fds[0]);
    close(fds[1]);
    /* a closed descriptor */
    ck_assert_int_eq(brk_write_all(fds[1], "x", 1), BRK_EIO);
    /* nothing to write is success, even on a bad descriptor */
    ck_assert_int_eq(brk_write_all(-1, "", 0), 0);
    free(data);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("write_all");

    tcase_add_test(tc, test_write_all_delivers_every_byte);
    tcase_add_test(tc, test_write_all_reports_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(io_suite());
}
