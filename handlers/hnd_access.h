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

#include <jansson.h>
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
 * The row of an AC as the context reads (poll, session page) select it: HND_AC_ROW_SELECT,
 * with $1 the tenant, $2 the context id and $3 the caller's key id, followed by " FROM acs
 * WHERE tenant_id = $1 AND context_id = $2" (a query may add columns after the last one).
 * Whether the caller's key decided the elevation is the elevation record's "approver", or an
 * entry of its "approvals" list where several approvals are recorded; whether it posted a
 * receipt here is an EXISTS on crs, whose primary key starts with tenant and context (one
 * index probe).
 */
#define HND_AC_ROW_SELECT                                                                      \
    "SELECT ac::text, status, expires_at < now(), elevation::text, ttl_seconds, issuer_key_id, " \
    "(elevation->>'approver' = $3 OR coalesce(elevation->'approvals', '[]'::jsonb) @> "        \
    "jsonb_build_array(jsonb_build_object('key_id', $3::text))), EXISTS (SELECT 1 FROM crs c " \
    "WHERE c.tenant_id = $1 AND c.context_id = $2 AND c.executor_key_id = $3)"

/* The columns of HND_AC_ROW_SELECT, by name. */
enum hnd_ac_col {
    HND_AC_COL_AC,        /* the signed AC, text */
    HND_AC_COL_STATUS,    /* acs.status as stored */
    HND_AC_COL_EXPIRED,   /* bool: expires_at is past */
    HND_AC_COL_ELEVATION, /* the elevation record, text or NULL */
    HND_AC_COL_TTL,       /* ttl_seconds */
    HND_AC_COL_ISSUER,    /* issuer_key_id */
    HND_AC_COL_DECIDED,   /* bool: decided by the caller's key */
    HND_AC_COL_EXECUTED,  /* bool: a receipt posted by the caller's key */
    HND_AC_COL__COUNT
};

/* hnd_ctx_row_readable: hnd_ctx_may_read for r's principal over row 0 of pr, a result of
 * HND_AC_ROW_SELECT. */
int hnd_ctx_row_readable(const brk_req_t *r, const PGresult *pr, enum hnd_ctx_view v);

/* hnd_ac_row_view: gov_ac_view over row 0 of pr (HND_AC_ROW_SELECT's first columns). New
 * reference, NULL when the stored AC does not parse. */
json_t *hnd_ac_row_view(const PGresult *pr);

#endif
