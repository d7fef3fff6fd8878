/*
 * brk_io: blocking descriptor I/O helpers (see brk_io.h).
 */
#include "brk_io.h"

#include <errno.h>
#include <unistd.h>

#include "brk_err.h"
#include "banned.h"

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
