/*
 * hnd_openapi: GET /openapi.json, the OpenAPI 3.1 description of every route of the broker
 * (docs/openapi.json), and the same contract for older tools: GET /openapi-3.0.json (OpenAPI
 * 3.0: Semantic Kernel, code generators) and GET /swagger.json (Swagger 2.0: Logic Apps and
 * Power Automate custom connectors), derived from the one source at build time by
 * tools/openapi_convert.py (also committed as docs/openapi-3.0.json and docs/swagger.json).
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

/* Defined in the generated hnd_*_gen.c files: each file's bytes plus a NUL, and their count. */
extern const char hnd_openapi_json[];
extern const unsigned long hnd_openapi_json_len;
extern const char hnd_openapi30_json[];
extern const unsigned long hnd_openapi30_json_len;
extern const char hnd_swagger_json[];
extern const unsigned long hnd_swagger_json_len;

/* The served documents, each checked at registration. */
static const struct document {
    const char *file;
    const char *bytes;
    const unsigned long *len;
} documents[] = {
    {"openapi.json", hnd_openapi_json, &hnd_openapi_json_len},
    {"openapi-3.0.json", hnd_openapi30_json, &hnd_openapi30_json_len},
    {"swagger.json", hnd_swagger_json, &hnd_swagger_json_len},
};

static void openapi(brk_req_t *r)
{
    brk_reply_raw(r, 200, "application/json", hnd_openapi_json, hnd_openapi_json_len);
}

static void openapi30(brk_req_t *r)
{
    brk_reply_raw(r, 200, "application/json", hnd_openapi30_json, hnd_openapi30_json_len);
}

static void swagger(brk_req_t *r)
{
    brk_reply_raw(r, 200, "application/json", hnd_swagger_json, hnd_swagger_json_len);
}

static const brk_route_t routes[] = {
    {"GET", "/openapi.json", 0, 0, openapi},
    {"GET", "/openapi-3.0.json", 0, 0, openapi30},
    {"GET", "/swagger.json", 0, 0, swagger},
};

int hnd_openapi_register(void)
{
    json_error_t jerr;
    json_t *doc = NULL;
    char where[32];
    int rc = 0;

    /* A document that does not parse would be served as if it did; refuse to start instead,
     * so a broken edit of docs/openapi.json fails every test rather than one client later. */
    for (size_t i = 0; i < sizeof(documents) / sizeof(documents[0]); i++) {
        doc = json_loadb(documents[i].bytes, *documents[i].len, JSON_REJECT_DUPLICATES, &jerr);
        if (doc == NULL || !json_is_object(doc)) {
            snprintf(where, sizeof where, "%d:%d", jerr.line, jerr.column);
            brk_log_error("an API description is not a JSON object", "file", documents[i].file,
                          "at", where, "error", doc == NULL ? jerr.text : "not an object");
            rc = BRK_EINVAL;
            goto out;
        }
        json_decref(doc);
        doc = NULL;
    }
    rc = brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
out:
    json_decref(doc);
    return rc;
}
