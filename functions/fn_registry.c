/*
 * fn_registry: the registered functions and periodic jobs (see fn.h). Adding one is a file
 * in functions/ that defines a const fn_def_t (or fn_periodic_t), its declaration below,
 * and one line in a table. Order in fn_registry does not matter: every function gets every
 * event of its types.
 */
#include <stddef.h>

#include "fn.h"
#include "banned.h"

extern const fn_def_t fn_emitter;    /* fn_emitter.c: CloudEvents to CHRONICLE_WEBHOOK_URL */
extern const fn_periodic_t fn_expire; /* fn_expire.c: ACs past expires_at -> expired */
extern const fn_def_t fn_billing;     /* fn_billing.c: each CR -> one invoice line */
extern const fn_def_t fn_tlog;        /* fn_tlog.c: each CR -> the tenant's transparency log */
extern const fn_periodic_t fn_billing_close; /* fn_billing.c: finalize past months */

const fn_def_t *const fn_registry[] = {
    &fn_emitter,
    &fn_billing,
    &fn_tlog,
    NULL,
};

const fn_periodic_t *const fn_periodics[] = {
    &fn_expire,
    &fn_billing_close,
    NULL,
};
