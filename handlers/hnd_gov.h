/*
 * hnd_gov: what the governance route groups share beyond the protocol's rules (gov/): the
 * principal of a request, request-memory JSON and the {context_id} path parameter.
 * Request loop only.
 */
#ifndef HND_GOV_H
#define HND_GOV_H

#include <jansson.h>

#include "brk_http.h"
#include "gov.h"

/* hnd_principal_did: the DID of r's principal: the one its identity driver gave it
 * (r->principal.did, mtls), else gov_principal_did with this broker's id and its key id. */
void hnd_principal_did(const brk_req_t *r, char *out, size_t cap);

/* hnd_session_url: the session URL of context ctx on this broker into out (GOV_URL_MAX). */
void hnd_session_url(const brk_req_t *r, const char *ctx, char out[GOV_URL_MAX]);

/* hnd_json_dump: compact serialization into request memory (for statement parameters). */
const char *hnd_json_dump(brk_req_t *r, const json_t *v);

/* hnd_context_param: the {context_id} path parameter into out; answers 404 and returns -1
 * when it cannot be one. */
int hnd_context_param(brk_req_t *r, char out[GOV_CONTEXT_ID_MAX + 1]);

/* hnd_bundle_broker_keys: the broker's id and public keys as /.well-known/gsap-broker.json
 * gives them ({"broker_id", "current_key_id", "keys"}), the "broker" member of both audit
 * bundles (hnd_bundle.c, hnd_invbundle.c). New reference. */
json_t *hnd_bundle_broker_keys(brk_req_t *r);

#endif
