/*
 * hnd_access: who may read one governance context (its AC and its session page), beyond the
 * route's role gate. The rule, per key of the context's tenant (another tenant's context is
 * never found at all):
 *   - an auditor reads every context;
 *   - the key that issued the AC reads it (acs.issuer_key_id);
 *   - a key that posted a receipt in the context reads it (crs.executor_key_id);
 *   - an approver reads an AC that awaits a decision (pending and not expired) and one whose
 *     elevation it decided itself (acs.elevation's "approver", or its "approvals" entries);
 *   - polling only (GET /governance/authorize/{id}/): an executor reads an AC that is still
 *     open to a receipt (pending, authorized or active, and not expired). The broker does not
 *     bind an AC to one executor: any executor of the tenant may post its receipt, so gsh
 *     holding a pre-issued AC must be able to check it before running and to wait for an
 *     elevation; once the AC is closed only the executing key keeps reading it. The session
 *     page (receipts, evidence) is never read by an executor that posted nothing there.
 * Everything else is refused as "not found" (404 context_not_found), exactly as a context of
 * another tenant or one that does not exist, so that a key learns nothing from an id.
 *
 * hnd_ctx_may_read is pure (any thread); hnd_ctx_row_readable runs on the request's loop.
 */
#ifndef HND_ACCESS_H
#define HND_ACCESS_H

#include <libpq-fe.h>

#include "brk_http.h"

enum hnd_ctx_view {
    HND_VIEW_POLL,    /* GET /governance/authorize/{context_id}/ */
    HND_VIEW_SESSION, /* GET /governance/session/{context_id}/ */
};

typedef struct hnd_ctx_facts {
    unsigned roles;         /* the caller's enum brk_role bits */
    const char *key_id;     /* the caller's key id */
    const char *issuer_key; /* acs.issuer_key_id */
    int decided;            /* the caller's key recorded a decision on the AC's elevation */
    const char *status;     /* acs.status as stored */
    int expired;            /* expires_at is past */
    int executed;           /* the caller's key posted a receipt in this context */
} hnd_ctx_facts_t;

/* hnd_ctx_may_read: 1 when the caller described by f may see the context in view v, else 0. */
int hnd_ctx_may_read(const hnd_ctx_facts_t *f, enum hnd_ctx_view v);

/*
 * hnd_ctx_row_readable: hnd_ctx_may_read for r's principal over row 0 of pr, whose columns
 * are, in order: ac, status, expired (bool), elevation, ttl_seconds, issuer_key_id, decided
 * by the caller's key (bool), executed by the caller's key (bool).
 */
int hnd_ctx_row_readable(const brk_req_t *r, const PGresult *pr, enum hnd_ctx_view v);

#endif
