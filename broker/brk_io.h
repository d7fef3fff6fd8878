/*
 * brk_io: small blocking file-descriptor helpers shared by broker modules that write files
 * (the key ring, the embedded cluster's password files). Stateless; any thread.
 */
#ifndef BRK_IO_H
#define BRK_IO_H

#include <stddef.h>

/* brk_write_all: writes all n bytes of p to fd, retrying short writes and EINTR.
 * Returns 0, or BRK_EIO (errno tells why when write failed). */
int brk_write_all(int fd, const void *p, size_t n);

#endif
