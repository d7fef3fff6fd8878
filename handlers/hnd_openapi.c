/*
 * hnd_openapi: GET /openapi.json, the OpenAPI 3.1 description of every route of the broker
 * (docs/openapi.json).
 *
 * The document is compiled into the binary (tools/embed_file.cmake, hnd_openapi_gen.c in the
 * build directory), so an installed broker needs no source tree and always serves the
 * description of the routes it was built with. It is public: a client needs it before it has
 * a key, and it holds nothing a tenant owns.
 */
#include "hnd.h"

#include <jansson.h>
#include <stdio.h>

#include "brk_err.h"
#include "brk_http.h"
#include "brk_log.h"
#include "banned.h"

/* Defined in the generated hnd_openapi_gen.c: the file's bytes plus a NUL, and their count. */
extern const char hnd_openapi_json[];
extern const unsigned long hnd_openapi_json_len;

static void openapi(brk_req_t *r)
{
    brk_reply_raw(r, 200, "application/json", hnd_openapi_json, hnd_openapi_json_len);
}

static const brk_route_t routes[] = {
    {"GET", "/openapi.json", 0, 0, openapi},
};

int hnd_openapi_register(void)
{
    json_error_t jerr;
    json_t *doc;
    char where[32];
    int rc = 0;

    /* A document that does not parse would be served as if it did; refuse to start instead,
     * so a broken edit of docs/openapi.json fails every test rather than one client later. */
    doc = json_loadb(hnd_openapi_json, hnd_openapi_json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        snprintf(where, sizeof where, "%d:%d", jerr.line, jerr.column);
        brk_log_error("docs/openapi.json is not a JSON object", "at", where, "error",
                      doc == NULL ? jerr.text : "not an object");
        rc = BRK_EINVAL;
        goto out;
    }
    rc = brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
out:
    json_decref(doc);
    return rc;
}
