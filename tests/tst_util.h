/*
 * tst_util: the small helpers every integration suite uses. Test processes only.
 */
#ifndef TST_UTIL_H
#define TST_UTIL_H

#include <jansson.h>

/* tst_fmt: printf into a new string (malloc'd, caller frees); aborts the test when out of
 * memory. */
char *tst_fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* tst_str: the string member k of object o, or NULL (not a string, no member, o not an
 * object). Points into o. */
const char *tst_str(const json_t *o, const char *k);

/* tst_err_code: the code of an error body {"error":{"code"}}, or NULL (not such a body, j
 * NULL). Points into j. */
const char *tst_err_code(const json_t *j);

#endif
