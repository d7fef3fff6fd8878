/* brk_drivers: the identity driver table; see brk_drivers.h. */
#include "brk_drivers.h"

#include <stdio.h>
#include <string.h>

#include "brk_err.h"
#include "brk_jwt.h"
#include "banned.h"

static int jwt_check(const json_t *settings, const brk_driver_scope_t *scope, char *msg,
                     size_t msglen)
{
    brk_jwt_config_t c;
    return brk_jwt_config_parse(settings, scope->broker_id, scope->tenant, scope->jwks_allow_http,
                                &c, msg, msglen);
}

/* Issuer and audience tell a client which tokens to bring; the rest is the admin's business. */
static json_t *jwt_summary(const json_t *settings)
{
    return json_pack("{s:O?,s:O?}", "issuer", json_object_get(settings, "issuer"), "audience",
                     json_object_get(settings, "audience"));
}

/* mtls keeps its configuration in its own table (tenant_mtls, PUT /admin/identity/mtls): CA
 * certificates are checked there and the trust domain must be unique across tenants. */
static int mtls_check(const json_t *settings, const brk_driver_scope_t *scope, char *msg,
                      size_t msglen)
{
    (void)settings, (void)scope;
    snprintf(msg, msglen, "the mtls driver is configured with PUT /admin/identity/mtls");
    return BRK_EINVAL;
}

/* The trust domain and SAN prefix tell a client which certificates this tenant takes. */
static json_t *mtls_summary(const json_t *settings)
{
    return json_pack("{s:O?,s:O?}", "trust_domain", json_object_get(settings, "trust_domain"),
                     "san_uri_prefix", json_object_get(settings, "san_uri_prefix"));
}

static const brk_driver_t k_drivers[] = {
    {"api-key", 1, NULL, NULL, 0},
    {"jwt", 0, jwt_check, jwt_summary, 0},
    {"mtls", 0, mtls_check, mtls_summary, 1},
};

const brk_driver_t *brk_driver_at(size_t i)
{
    return i < sizeof k_drivers / sizeof k_drivers[0] ? &k_drivers[i] : NULL;
}

const brk_driver_t *brk_driver_find(const char *name)
{
    for (size_t i = 0; i < sizeof k_drivers / sizeof k_drivers[0]; i++)
        if (strcmp(k_drivers[i].name, name) == 0)
            return &k_drivers[i];
    return NULL;
}

int brk_driver_settings_check(const brk_driver_t *d, const json_t *settings,
                              const brk_driver_scope_t *scope, char *msg, size_t msglen)
{
    if (!json_is_object(settings)) {
        snprintf(msg, msglen, "\"settings\" must be an object");
        return BRK_EINVAL;
    }
    if (d->settings_check != NULL)
        return d->settings_check(settings, scope, msg, msglen);
    if (json_object_size(settings) != 0) {
        snprintf(msg, msglen, "the %s driver takes no settings", d->name);
        return BRK_EINVAL;
    }
    return 0;
}
