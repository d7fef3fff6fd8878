/*
 * brk_jcs: RFC 8785 JSON Canonicalization Scheme over jansson values, and CIDs.
 *
 * Canonical form: object members sorted by the UTF-16 code units of their names, no
 * whitespace, strings escaped as RFC 8785 3.2.2.2 says, numbers serialized as ECMAScript's
 * Number.prototype.toString (shortest round-trip, exponent rules of ES6). jansson integers are
 * serialized as the ES6 number they denote (so 2^53+1 loses precision exactly as JavaScript
 * would); callers that need exact big integers keep them as strings.
 *
 * A CID is "sha256:" + 64 lowercase hex digits of SHA-256 over the canonical bytes.
 * Pure functions: any thread.
 */
#ifndef BRK_JCS_H
#define BRK_JCS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "brk_crypto.h" /* BRK_SHA256_LEN */

#define BRK_CID_LEN 71 /* "sha256:" + 64 hex, without the NUL */
#define BRK_JCS_MAX_DEPTH 64

/*
 * brk_jcs_canonicalize: writes the canonical bytes of v into a new buffer.
 * On success *out is a NUL-terminated malloc'd string owned by the caller (free()), *outlen
 * its length without the NUL. Returns 0, BRK_EINVAL (NaN/Inf real, invalid UTF-8 string,
 * deeper than BRK_JCS_MAX_DEPTH). On error *out is NULL.
 */
int brk_jcs_canonicalize(const json_t *v, char **out, size_t *outlen);

/*
 * brk_jcs_format_number: the canonical (ECMAScript Number.prototype.toString) text of d into
 * buf, NUL-terminated; -0 gives "0". Returns the length written, or BRK_EINVAL when d is NaN
 * or infinite (buf then holds "").
 */
#define BRK_JCS_NUM_MAX 32 /* longest result is 25 bytes, "-0.0000012345678901234567" */
int brk_jcs_format_number(double d, char buf[BRK_JCS_NUM_MAX]);

/*
 * brk_jcs_cid: computes the CID of v into cid (at least BRK_CID_LEN + 1 bytes, NUL-terminated).
 * Returns 0 or the error of brk_jcs_canonicalize.
 */
int brk_jcs_cid(const json_t *v, char cid[BRK_CID_LEN + 1]);

/* brk_cid_of_bytes: the CID form of SHA-256 over (p, n). Never fails. */
void brk_cid_of_bytes(const void *p, size_t n, char cid[BRK_CID_LEN + 1]);

/* brk_cid_of_digest: the CID form of a SHA-256 digest computed elsewhere (brk_sha256_final). */
void brk_cid_of_digest(const uint8_t digest[BRK_SHA256_LEN], char cid[BRK_CID_LEN + 1]);

/* brk_cid_valid: 1 when s is exactly "sha256:" + 64 lowercase hex digits, else 0. */
int brk_cid_valid(const char *s);

#endif
