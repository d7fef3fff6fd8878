/*
 * unit_access: the read rule of a governance context (handlers/hnd_access.h), cell by cell
 * over role x relation x AC state x view. Pure function, no database.
 */
#include <check.h>
#include <stddef.h>
#include <string.h>

#include "tst_check.h"
#include "brk_keys.h"
#include "hnd_access.h"
#include "banned.h"

#define ME "0123456789abcdef"
#define OTHER "fedcba9876543210"

/* approver: ME when the caller decided the elevation, anything else when it did not */
static int may(unsigned roles, const char *issuer, const char *approver, const char *status,
               int expired, int executed, enum hnd_ctx_view v)
{
    int decided = approver != NULL && strcmp(approver, ME) == 0;
    hnd_ctx_facts_t f = {roles, ME, issuer, decided, status, expired, executed};
    return hnd_ctx_may_read(&f, v);
}

START_TEST(auditor_reads_all)
{
    const char *st[] = {"pending", "authorized", "active", "consumed", "expired", "revoked"};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        for (int v = HND_VIEW_POLL; v <= HND_VIEW_SESSION; v++) {
            ck_assert(may(BRK_ROLE_AUDITOR, OTHER, NULL, st[i], 0, 0, v));
            ck_assert(may(BRK_ROLE_AUDITOR, OTHER, NULL, st[i], 1, 0, v));
        }
}
END_TEST

START_TEST(issuer_only_its_own)
{
    for (int v = HND_VIEW_POLL; v <= HND_VIEW_SESSION; v++) {
        ck_assert(may(BRK_ROLE_ISSUER, ME, NULL, "consumed", 0, 0, v));
        ck_assert(may(BRK_ROLE_ISSUER, ME, NULL, "pending", 1, 0, v));
        ck_assert(!may(BRK_ROLE_ISSUER, OTHER, NULL, "authorized", 0, 0, v));
        ck_assert(!may(BRK_ROLE_ISSUER, OTHER, NULL, "pending", 0, 0, v));
        /* an empty or missing issuer never matches */
        ck_assert(!may(BRK_ROLE_ISSUER, "", NULL, "consumed", 0, 0, v));
        ck_assert(!may(BRK_ROLE_ISSUER, NULL, NULL, "consumed", 0, 0, v));
        /* issuing is the issuer role's: the same key id without it does not count */
        ck_assert(!may(BRK_ROLE_FINANCE, ME, NULL, "consumed", 0, 0, v));
    }
}
END_TEST

START_TEST(executor_what_it_executed_and_open_polls)
{
    const char *open[] = {"pending", "authorized", "active"};
    const char *closed[] = {"consumed", "expired", "revoked"};
    for (int v = HND_VIEW_POLL; v <= HND_VIEW_SESSION; v++) {
        ck_assert(may(BRK_ROLE_EXECUTOR, OTHER, NULL, "consumed", 0, 1, v));
        ck_assert(may(BRK_ROLE_EXECUTOR, OTHER, NULL, "active", 1, 1, v));
    }
    for (size_t i = 0; i < 3; i++) {
        ck_assert(may(BRK_ROLE_EXECUTOR, OTHER, NULL, open[i], 0, 0, HND_VIEW_POLL));
        ck_assert(!may(BRK_ROLE_EXECUTOR, OTHER, NULL, open[i], 1, 0, HND_VIEW_POLL)); /* lapsed */
        ck_assert(!may(BRK_ROLE_EXECUTOR, OTHER, NULL, open[i], 0, 0, HND_VIEW_SESSION));
        ck_assert(!may(BRK_ROLE_EXECUTOR, OTHER, NULL, closed[i], 0, 0, HND_VIEW_POLL));
        ck_assert(!may(BRK_ROLE_EXECUTOR, OTHER, NULL, closed[i], 0, 0, HND_VIEW_SESSION));
    }
    /* "executed" is an executor's: another role with the flag set does not read */
    ck_assert(!may(BRK_ROLE_FINANCE, OTHER, NULL, "consumed", 0, 1, HND_VIEW_SESSION));
}
END_TEST

START_TEST(approver_pending_or_decided)
{
    for (int v = HND_VIEW_POLL; v <= HND_VIEW_SESSION; v++) {
        ck_assert(may(BRK_ROLE_APPROVER, OTHER, NULL, "pending", 0, 0, v));
        ck_assert(!may(BRK_ROLE_APPROVER, OTHER, NULL, "pending", 1, 0, v)); /* lapsed */
        ck_assert(!may(BRK_ROLE_APPROVER, OTHER, NULL, "authorized", 0, 0, v));
        ck_assert(may(BRK_ROLE_APPROVER, OTHER, ME, "authorized", 0, 0, v));
        ck_assert(may(BRK_ROLE_APPROVER, OTHER, ME, "revoked", 0, 0, v));
        ck_assert(may(BRK_ROLE_APPROVER, OTHER, ME, "consumed", 1, 0, v));
        ck_assert(!may(BRK_ROLE_APPROVER, OTHER, OTHER, "revoked", 0, 0, v));
        ck_assert(!may(BRK_ROLE_APPROVER, OTHER, "", "revoked", 0, 0, v));
    }
}
END_TEST

START_TEST(other_roles_read_nothing)
{
    for (int v = HND_VIEW_POLL; v <= HND_VIEW_SESSION; v++) {
        ck_assert(!may(BRK_ROLE_ADMIN, OTHER, NULL, "pending", 0, 0, v));
        ck_assert(!may(BRK_ROLE_FINANCE, OTHER, NULL, "authorized", 0, 0, v));
        ck_assert(!may(0, OTHER, NULL, "pending", 0, 0, v));
        ck_assert(!may(BRK_ROLE_ADMIN | BRK_ROLE_FINANCE, OTHER, ME, "revoked", 0, 1, v));
    }
}
END_TEST

static Suite *access_suite(void)
{
    Suite *s = suite_create("access");
    TCase *tc = tcase_create("rule");
    tcase_add_test(tc, auditor_reads_all);
    tcase_add_test(tc, issuer_only_its_own);
    tcase_add_test(tc, executor_what_it_executed_and_open_polls);
    tcase_add_test(tc, approver_pending_or_decided);
    tcase_add_test(tc, other_roles_read_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(access_suite());
}
