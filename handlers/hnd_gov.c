/* hnd_gov: a request's principal, request-memory JSON, the context parameter; see hnd_gov.h. */
#include "hnd_gov.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_err.h"
#include "brk_server.h"
#include "hnd_util.h"
#include "banned.h"

void hnd_principal_did(const brk_req_t *r, char *out, size_t cap)
{
    if (r->principal.did[0] != '\0') {
        snprintf(out, cap, "%s", r->principal.did);
        return;
    }
    gov_principal_did(brk_server_config(r->server)->broker_id, r->principal.tenant,
                      r->principal.key_id, out, cap);
}

void hnd_session_url(const brk_req_t *r, const char *ctx, char out[GOV_URL_MAX])
{
    gov_session_url(brk_server_config(r->server)->public_url, ctx, out, GOV_URL_MAX);
}

const char *hnd_json_dump(brk_req_t *r, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t n = s ? strlen(s) : 0;
    char *p = brk_req_alloc(r, n + 1);
    if (s)
        memcpy(p, s, n);
    free(s);
    return p;
}

int hnd_context_param(brk_req_t *r, char out[GOV_CONTEXT_ID_MAX + 1])
{
    h2o_iovec_t p = brk_req_param(r, 0);
    /* GOV_CONTEXT_ID_MAX, not GOV_ID_LEN: self-authorized contexts are read here too */
    if (p.len < 5 || p.len > GOV_CONTEXT_ID_MAX) {
        hnd_reply_result(r, "not_found");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}
