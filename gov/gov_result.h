/*
 * gov_result: the result codes the protocol's SQL functions return (gsap_complete,
 * gsap_approve: migrations/0008_approvals.sql) and what each means to a client: one table, so
 * every route answers a code the same way. Pure; any thread.
 */
#ifndef GOV_RESULT_H
#define GOV_RESULT_H

#include "gov.h"

typedef struct gov_result {
    const char *sql_code; /* as the SQL function returns it */
    int rc;               /* negative enum brk_err: the HTTP status */
    const char *code;     /* the stable error code */
    const char *message;
} gov_result_t;

/* gov_result_find: the entry of sql_code, or NULL when it is not a refusal ("ok", "retry"
 * and codes the table does not know). */
const gov_result_t *gov_result_find(const char *sql_code);

/* gov_result_fail: fills e from the entry of sql_code (which must be in the table) and
 * returns e->rc. */
int gov_result_fail(const char *sql_code, gov_err_t *e);

#endif
