/* tst_util: see tst_util.h. */
#include "tst_util.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

char *tst_fmt(const char *f, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, f);
    ck_assert_int_ge(vasprintf(&s, f, ap), 0);
    va_end(ap);
    return s;
}

const char *tst_str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

const char *tst_err_code(const json_t *j)
{
    return tst_str(json_object_get(j, "error"), "code");
}
