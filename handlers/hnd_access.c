/* hnd_access: the read rule of a governance context; see hnd_access.h. */
#include "hnd_access.h"

#include <string.h>

#include "brk_keys.h"
#include "brk_http.h"
#include "gov_doc.h"
#include "banned.h"

static int same(const char *a, const char *b)
{
    return a != NULL && b != NULL && a[0] != '\0' && strcmp(a, b) == 0;
}

int hnd_ctx_may_read(const hnd_ctx_facts_t *f, enum hnd_ctx_view v)
{
    const char *st = f->status ? f->status : "";
    int pending = strcmp(st, "pending") == 0 && !f->expired;
    int open = !f->expired && (strcmp(st, "pending") == 0 || strcmp(st, "authorized") == 0 ||
                               strcmp(st, "active") == 0);

    if (f->roles & BRK_ROLE_AUDITOR)
        return 1;
    if ((f->roles & BRK_ROLE_ISSUER) && same(f->key_id, f->issuer_key))
        return 1;
    if ((f->roles & BRK_ROLE_EXECUTOR) && f->executed)
        return 1;
    if ((f->roles & BRK_ROLE_APPROVER) && (pending || f->decided))
        return 1;
    if (v == HND_VIEW_POLL && (f->roles & BRK_ROLE_EXECUTOR) && open)
        return 1;
    return 0;
}

int hnd_ctx_row_readable(const brk_req_t *r, const PGresult *pr, enum hnd_ctx_view v)
{
    hnd_ctx_facts_t f = {
        .roles = r->principal.roles,
        .key_id = r->principal.key_id,
        .issuer_key = PQgetvalue(pr, 0, HND_AC_COL_ISSUER),
        .decided = PQgetvalue(pr, 0, HND_AC_COL_DECIDED)[0] == 't',
        .status = PQgetvalue(pr, 0, HND_AC_COL_STATUS),
        .expired = PQgetvalue(pr, 0, HND_AC_COL_EXPIRED)[0] == 't',
        .executed = PQgetvalue(pr, 0, HND_AC_COL_EXECUTED)[0] == 't',
    };
    return hnd_ctx_may_read(&f, v);
}

json_t *hnd_ac_row_view(const PGresult *pr)
{
    return gov_ac_view(PQgetvalue(pr, 0, HND_AC_COL_AC), PQgetvalue(pr, 0, HND_AC_COL_STATUS),
                       PQgetvalue(pr, 0, HND_AC_COL_EXPIRED)[0] == 't',
                       PQgetisnull(pr, 0, HND_AC_COL_ELEVATION)
                           ? NULL
                           : PQgetvalue(pr, 0, HND_AC_COL_ELEVATION));
}
