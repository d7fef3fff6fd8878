/*
 * brk_drivers: the identity drivers a tenant can enable, one table entry per driver, and the
 * validation of their stored settings (the auth_drivers table, migration 0014).
 *
 * A driver is a way for a caller to prove who it is: `api-key` (the broker's own tokens,
 * enabled unless a tenant turns it off), `jwt` (bearer JWTs of the tenant's identity
 * provider, brk_jwt.h), `mtls` (client certificates, brk_mtls.h; configured in its own table
 * tenant_mtls through PUT /admin/identity/mtls, listed here with the others). Another driver
 * adds an entry to k_drivers in brk_drivers.c, a settings check, and its branch in
 * brk_http_auth.c.
 *
 * Pure functions over constant data: any thread.
 */
#ifndef BRK_DRIVERS_H
#define BRK_DRIVERS_H

#include <jansson.h>
#include <stddef.h>

#define BRK_DRIVER_NAME_MAX 16
#define BRK_DRIVER_SETTINGS_MAX (96 * 1024) /* bytes of a driver's settings as stored */

/* What a settings check needs to know about where the settings will live. */
typedef struct brk_driver_scope {
    const char *broker_id; /* GSAP_BROKER_ID: the DID namespace of this broker */
    const char *tenant;
    int jwks_allow_http; /* GSAP_JWKS_ALLOW_HTTP */
} brk_driver_scope_t;

typedef struct brk_driver {
    const char *name;
    int default_enabled; /* with no row in auth_drivers */
    /* settings_check: 0, or BRK_EINVAL / BRK_ERANGE with msg. May be NULL: settings must be
     * an empty object. */
    int (*settings_check)(const json_t *settings, const brk_driver_scope_t *scope, char *msg,
                          size_t msglen);
    /* settings_summary: what GET /governance/drivers/ shows every role of the tenant (new
     * reference, no secret); NULL: nothing but the name. */
    json_t *(*settings_summary)(const json_t *settings);
    int own_route; /* configured through a route of its own, never PUT /admin/drivers/{driver} */
} brk_driver_t;

/* brk_driver_find: the driver called name, or NULL. */
const brk_driver_t *brk_driver_find(const char *name);

/* brk_driver_at: the i-th driver (0-based, in a fixed order), or NULL past the last. */
const brk_driver_t *brk_driver_at(size_t i);

/*
 * brk_driver_settings_check: d's check of settings (an object), or the empty-object rule when
 * d has none. Returns 0, or BRK_EINVAL / BRK_ERANGE with a lowercase message in msg.
 */
int brk_driver_settings_check(const brk_driver_t *d, const json_t *settings,
                              const brk_driver_scope_t *scope, char *msg, size_t msglen);

#endif
