/*
 * brk_uri: what bytes a request's path, path parameters and query string may carry, checked
 * once at intake so that no handler ever holds a value PostgreSQL would refuse (NUL, invalid
 * UTF-8) or one cut inside a character.
 *
 * The rule ("request text"): well-formed UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF) and no control character: C0 (U+0000..U+001F), DEL (U+007F) and C1
 * (U+0080..U+009F). No identifier the broker uses needs one, and a control character in a
 * path is only ever an attack on a log line, a terminal or a C string.
 *
 * h2o percent-decodes the whole path (%00 and %2F included) into its normalized path, from
 * which the router takes the {param} values; so the decoded path is what is checked. A query
 * string is checked per name and value after percent-decoding ('+' is a space), and a '%'
 * not followed by two hex digits is refused there (h2o leaves the query alone).
 *
 * Also here: cutting text to a byte budget without splitting a character, and making a
 * message safe to put into a JSON string whatever bytes were formatted into it.
 *
 * Pure functions, no allocation: any thread. Fuzzed by fuzz/fuzz_uri.c.
 */
#ifndef BRK_URI_H
#define BRK_URI_H

#include <stddef.h>

#define BRK_QUERY_MAX_PARAMS 32 /* name=value pairs in one query string (400 above) */

/* brk_utf8_text_ok: 1 when the n bytes at p are request text (see above), else 0. */
int brk_utf8_text_ok(const char *p, size_t n);

/* brk_utf8_valid_prefix: the length of the longest prefix of the n bytes at p that is
 * well-formed UTF-8 (control characters allowed). */
size_t brk_utf8_valid_prefix(const char *p, size_t n);

/* brk_utf8_cut: the largest length <= max at which the n bytes at p can be cut without
 * splitting a UTF-8 sequence (for well-formed input the result is a character boundary). */
size_t brk_utf8_cut(const char *p, size_t n, size_t max);

/* brk_utf8_scrub: rewrites the NUL-terminated s in place so that it is well-formed UTF-8
 * without C0/DEL controls: each byte of an ill-formed sequence and each such control becomes
 * '?'. The length never changes. Returns the number of bytes replaced. */
size_t brk_utf8_scrub(char *s);

/*
 * brk_query_check: checks the query string q (n bytes, without the leading '?'). Every
 * '&'-separated part is "name" or "name=value"; empty parts are ignored. Returns 0, or
 * BRK_EINVAL when a '%' is not followed by two hex digits, a decoded name or value is not
 * request text, or there are more than BRK_QUERY_MAX_PARAMS parts.
 */
int brk_query_check(const char *q, size_t n);

/*
 * brk_query_get: the percent-decoded value of the first parameter called name in q (n
 * bytes, without '?'), into out (cap bytes, NUL-terminated) with its length in *len.
 * Returns 0, BRK_ENOTFOUND (no such parameter; "name" without '=' has the empty value),
 * BRK_ETOOBIG (the value needs more than cap - 1 bytes), or BRK_EINVAL (the value is not
 * request text or has a bad escape). On any failure out is "" and *len 0.
 */
int brk_query_get(const char *q, size_t n, const char *name, char *out, size_t cap, size_t *len);

#endif
