/*
 * brk_io: small blocking file-descriptor helpers (see brk_io.h).
 *
 * Owns: nothing; no state. Invariant: a partial write is continued, never reported as done.
 */
#include "brk_io.h"

#include <errno.h>
#include <unistd.h>

#include "brk_err.h"
#include "banned.h"

/* The one write-all loop of broker/: write(2) may write less than asked, or be interrupted. */
int brk_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return BRK_EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}
