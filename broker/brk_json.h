/*
 * brk_json: parsing of untrusted JSON request bodies, apart from HTTP.
 *
 * A body must be one JSON object, without duplicate member names, nested at most
 * BRK_MAX_JSON_DEPTH levels (the top-level object is level 1). The depth is checked twice:
 * once on the raw bytes before jansson sees them, so a hostile "[[[[..." never drives
 * jansson's recursive parser (and its recursive free) deep, and once on the parsed value,
 * which is the authoritative check. Refusals carry a stable code for the error reply.
 *
 * Kept free of h2o so that it can be unit-tested and fuzzed on its own.
 * Pure functions: any thread.
 */
#ifndef BRK_JSON_H
#define BRK_JSON_H

#include <jansson.h>
#include <stddef.h>

#define BRK_MAX_JSON_DEPTH 32 /* nesting of a JSON body (400 above) */

/*
 * brk_json_parse_object: parses the n bytes at p (need not be NUL-terminated; may contain
 * NUL bytes, which are refused) as a JSON object body.
 * On success returns 0 and *out holds a new reference the caller owns (json_decref).
 * On failure returns BRK_EINVAL, *out is NULL, *code is a static stable code
 * ("json_too_deep" or "invalid_json") and msg (msglen bytes, may be 0) gets a lowercase,
 * NUL-terminated message for the client.
 */
int brk_json_parse_object(const char *p, size_t n, json_t **out, const char **code, char *msg,
                          size_t msglen);

#endif
