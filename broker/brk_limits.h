/*
 * brk_limits: the bounds of names that several layers check, defined once here, at the
 * bottom of the dependency graph, so that the broker core, gov/, billing/ and the function
 * runtime agree (and the migrations' check constraints with them).
 */
#ifndef BRK_LIMITS_H
#define BRK_LIMITS_H

#define BRK_TENANT_MAX 63      /* bytes of a tenant id (a DNS label) */
#define BRK_ACCOUNT_ID_MAX 64  /* bytes of a billing account id */
#define BRK_SHELL_CLASS_MAX 32 /* bytes of a shell class name (accords, rate cards) */

#endif
