/*
 * brk_alloc: allocation wrappers for sizes the broker controls.
 *
 * They abort with file:line on out-of-memory, because a broker that cannot allocate a few
 * bytes for its own bookkeeping cannot keep any promise. Anything whose size a client
 * influences goes through brk_buf (capped) instead, which returns BRK_ETOOBIG past its cap.
 * Any thread.
 */
#ifndef BRK_ALLOC_H
#define BRK_ALLOC_H

#include <stddef.h>

void *brk__malloc(size_t n, const char *file, int line);
void *brk__calloc(size_t n, size_t sz, const char *file, int line);
void *brk__realloc(void *p, size_t n, const char *file, int line);
char *brk__strdup(const char *s, const char *file, int line);
char *brk__strndup(const char *s, size_t n, const char *file, int line);

/* Returned memory is owned by the caller and released with free(). */
#define brk_malloc(n) brk__malloc((n), __FILE__, __LINE__)
#define brk_calloc(n, sz) brk__calloc((n), (sz), __FILE__, __LINE__)
#define brk_realloc(p, n) brk__realloc((p), (n), __FILE__, __LINE__)
#define brk_strdup(s) brk__strdup((s), __FILE__, __LINE__)
#define brk_strndup(s, n) brk__strndup((s), (n), __FILE__, __LINE__)

#endif
