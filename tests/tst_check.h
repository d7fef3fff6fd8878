/*
 * tst_check: the one way every Check suite of this project runs: fork mode and verbosity from
 * the environment (CK_FORK, CK_VERBOSITY, CK_RUN_CASE, ...), exit status 1 when a test failed.
 */
#ifndef TST_CHECK_H
#define TST_CHECK_H

#include <check.h>
#include <stdlib.h>

/* tst_run: runs suite s (taking ownership) and returns the process exit status. */
static inline int tst_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
