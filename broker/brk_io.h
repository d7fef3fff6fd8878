/*
 * brk_io: blocking descriptor I/O helpers shared by the broker's setup code and the CLI
 * (key and secret files, spooled receipts, passing a command's output through). Not for the
 * request path, which never blocks. Any thread; no state.
 */
#ifndef BRK_IO_H
#define BRK_IO_H

#include <stddef.h>

/* brk_write_all: writes all n bytes at p to fd, resuming after EINTR and short writes.
 * Returns 0, or BRK_EIO when a write fails or writes nothing (a closed pipe or terminal, a
 * full disk; errno says which). */
int brk_write_all(int fd, const void *p, size_t n);

#endif
