/*
 * tst_mutate: the mutation test of a signed document: every scalar of a JSON tree changed one
 * at a time (a letter or digit near the middle of a string, an integer or real + 1, a boolean
 * negated), handed to a check that must refuse it, and put back.
 */
#ifndef TST_MUTATE_H
#define TST_MUTATE_H

#include <jansson.h>

#define TST_MUTATE_PATH_MAX 256

/* check: the verifier's exit status for root as it is now (1: refused), with its report in
 * *report (malloc'd, may be NULL). skip: 1 for a path ".a.b[2].c" nobody signs (documented
 * as not covered), whose subtree the walk leaves alone; may be NULL. */
typedef int (*tst_mutate_check_fn)(const json_t *root, char **report);
typedef int (*tst_mutate_skip_fn)(const char *path);

typedef struct tst_mutate_result {
    int mutated;                      /* scalars changed */
    int survived;                     /* changes the check did not refuse */
    char first[TST_MUTATE_PATH_MAX];  /* the path of the first that survived */
} tst_mutate_result_t;

/* tst_mutate_scalars: walks root (changed in place while it runs, as it was when it returns);
 * each surviving change is printed to stderr with the check's report. A string without a
 * letter or digit fails the test. */
void tst_mutate_scalars(json_t *root, tst_mutate_skip_fn skip, tst_mutate_check_fn check,
                        tst_mutate_result_t *out);

#endif
