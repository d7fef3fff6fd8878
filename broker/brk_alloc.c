#include "brk_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void brk__oom(size_t n, const char *file, int line)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
    abort();
}

void *brk__malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        brk__oom(n, file, line);
    return p;
}

void *brk__calloc(size_t n, size_t sz, const char *file, int line)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL)
        brk__oom(n * sz, file, line);
    return p;
}

void *brk__realloc(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        brk__oom(n, file, line);
    return q;
}

char *brk__strdup(const char *s, const char *file, int line)
{
    return brk__strndup(s, strlen(s), file, line);
}

char *brk__strndup(const char *s, size_t n, const char *file, int line)
{
    char *p = brk__malloc(n + 1, file, line);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
