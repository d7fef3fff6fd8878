/* gov_result: SQL result codes to client errors; see gov_result.h. */
#include "gov_result.h"

#include <string.h>

#include "brk_err.h"
#include "banned.h"

static const gov_result_t results[] = {
    /* gsap_complete, gsap_approve */
    {"not_found", BRK_ENOTFOUND, "context_not_found", "no such context"},
    /* gsap_complete. An AC that was never approved (pending, or pending until it expired)
     * or was revoked takes no CR: 409 with one code each, the same before and after expiry;
     * the attempt is recorded as a GSAP_CR_REFUSED event. */
    {"consumed", BRK_ECONFLICT, "ac_consumed", "this AC has already been used"},
    {"not_approved", BRK_ECONFLICT, "ac_not_approved",
     "this AC's elevation was never approved: it cannot be used"},
    {"pending", BRK_ECONFLICT, "ac_not_approved",
     "this AC's elevation was never approved: it cannot be used"},
    {"revoked", BRK_ECONFLICT, "ac_revoked", "this AC was revoked"},
    {"accord_not_found", BRK_ENOTFOUND, "accord_not_found",
     "no accord for this self-authorized receipt"},
    /* gsap_approve */
    {"decided", BRK_ECONFLICT, "elevation_decided", "this AC is not pending"},
    {"self", BRK_EFORBIDDEN, "self_approval_forbidden",
     "the key or principal that requested this AC cannot decide on it"},
    {"duplicate", BRK_ECONFLICT, "approval_duplicate", "this key has already decided on this AC"},
    {"stale", BRK_ECONFLICT, "elevation_conflict",
     "other decisions on this AC were being recorded at the same time; retry"},
    /* gsap_issue under a delegation, gsap_deleg_create (0012). The delegation's existence
     * was checked by the handler with the caller's rights, so a row gone since is 404 too. */
    {"delegation_not_found", BRK_ENOTFOUND, "delegation_not_found", "no such delegation"},
    {"delegation_revoked", BRK_EFORBIDDEN, "delegation_revoked",
     "this delegation (or one it derives from) was revoked"},
    {"delegation_expired", BRK_EFORBIDDEN, "delegation_expired",
     "this delegation (or one it derives from) has expired"},
    {"delegation_scope_exceeded", BRK_EFORBIDDEN, "delegation_scope_exceeded",
     "the AC would outlive a delegation of its chain"},
    {"delegation_exhausted", BRK_EFORBIDDEN, "delegation_exhausted",
     "a delegation of the chain has issued its max_commands ACs"},
    {"spend_limit_reached", BRK_EFORBIDDEN, "spend_limit_reached",
     "a delegation of the chain has been billed its spend limit"},
    {"narrowing_violation", BRK_EFORBIDDEN, "narrowing_violation",
     "\"max_commands\" is more than its parent has left: a sub-delegation can only narrow"},
    {"aps_replayed", BRK_ECONFLICT, "aps_replayed", "this SDK delegation was already accepted"},
};

const gov_result_t *gov_result_find(const char *sql_code)
{
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        if (strcmp(results[i].sql_code, sql_code) == 0)
            return &results[i];
    return NULL;
}

int gov_result_fail(const char *sql_code, gov_err_t *e)
{
    const gov_result_t *x = gov_result_find(sql_code);
    if (x == NULL)
        return gov_fail(e, BRK_EINTERNAL, NULL, "unknown result \"%s\"", sql_code);
    return gov_fail(e, x->rc, x->code, "%s", x->message);
}
