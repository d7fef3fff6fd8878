/*
 * hnd: the broker's routes, one file per route group. hnd_register registers every group's
 * routes and statements; main thread, before the server runs.
 */
#ifndef HND_H
#define HND_H

/* hnd_register: returns 0 or the first registration error. */
int hnd_register(void);

/* One per route group (hnd_<group>.c). */
int hnd_ops_register(void);
int hnd_admin_register(void);
int hnd_mtls_register(void); /* hnd_mtls.c: the mtls identity driver's configuration */
int hnd_authorize_register(void);
int hnd_elevate_register(void);
int hnd_complete_register(void);
int hnd_session_register(void);
int hnd_bundle_register(void);
int hnd_invbundle_register(void); /* hnd_invbundle.c: GET /billing/invoices/{id}/bundle */
int hnd_denials_register(void); /* hnd_denials.c: denial receipts for auditors */
int hnd_accords_register(void);
int hnd_openapi_register(void);
int hnd_functions_register(void);
int hnd_billing_register(void);
int hnd_tlog_register(void);
int hnd_drivers_register(void); /* hnd_drivers.c: identity drivers of the tenant */
int hnd_passports_register(void); /* hnd_passports.c: trusted issuers, agent passports */
int hnd_deleg_register(void); /* hnd_deleg.c: delegations */
int hnd_verify_register(void); /* hnd_verify.c: the in-browser bundle verifier */

#endif
