/* hnd: the table of route groups. Adding a group is one file and one line here. */
#include "hnd.h"
#include "hnd_util.h"

#include <stddef.h>

#include "banned.h"

int hnd_register(void)
{
    static int (*const groups[])(void) = {
        hnd_wake_register,
        hnd_ops_register,
        hnd_admin_register,
        hnd_mtls_register,
        hnd_authorize_register,
        hnd_elevate_register,
        hnd_complete_register,
        hnd_session_register,
        hnd_bundle_register,
        hnd_invbundle_register,
        hnd_denials_register,
        hnd_accords_register,
        hnd_openapi_register,
        hnd_functions_register,
        hnd_billing_register,
        hnd_tlog_register,
        hnd_drivers_register,
        hnd_passports_register,
        hnd_deleg_register,
        hnd_verify_register,
    };
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        int rc = groups[i]();
        if (rc != 0)
            return rc;
    }
    return 0;
}
