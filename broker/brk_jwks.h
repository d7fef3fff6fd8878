/*
 * brk_jwks: the broker's bounded cache of parsed JWKS documents, and the one thread that
 * fetches the remote ones.
 *
 * A tenant's jwt driver names its keys either inline (the JWKS stored with its settings) or by
 * URL. Inline documents are parsed once and found again by their SHA-256. URL documents are
 * fetched by a dedicated thread with its own libevent base (so no HTTP loop ever waits on the
 * network): when first asked for, then every refresh interval, and sooner when a token names a
 * kid the cached set lacks (a key rotation), but never more often than
 * BRK_JWKS_REFETCH_MIN_S per URL, so tokens with made-up kids cannot make the broker hammer an
 * identity provider. A fetch that fails keeps the previous keys.
 *
 * Bounds: at most BRK_JWKS_CACHE_MAX documents (the least recently used is dropped first),
 * each within BRK_JWKS_MAX_BYTES and BRK_JWKS_MAX_KEYS (brk_jwt.h); a fetch gives up after
 * BRK_JWKS_FETCH_TIMEOUT_S; redirects are not followed; only status 200 counts.
 *
 * Threads: every function but _new/_free may be called from any thread (one mutex).
 */
#ifndef BRK_JWKS_H
#define BRK_JWKS_H

#include <stddef.h>

#include "brk_jwt.h"

#define BRK_JWKS_CACHE_MAX 64  /* documents held (inline and fetched) */
#define BRK_JWKS_REFRESH_S 300 /* default refetch interval (GSAP_JWKS_REFRESH_S) */
#define BRK_JWKS_REFRESH_MAX_S 86400
#define BRK_JWKS_REFETCH_MIN_S 30 /* unknown kid: at most one extra fetch per URL this often */
#define BRK_JWKS_RETRY_S 5        /* a URL never fetched successfully is retried this often */
#define BRK_JWKS_FETCH_TIMEOUT_S 5
#define BRK_JWKS_IDLE_S 3600 /* a URL nobody asked for this long is no longer fetched */

typedef struct brk_jwks_cache brk_jwks_cache_t;

/*
 * brk_jwks_cache_new: an empty cache and its fetch thread; refresh_s (1..BRK_JWKS_REFRESH_MAX_S)
 * is how often a URL is fetched again. ca_file (may be NULL: the system store) is the trust
 * anchor for https. On 0 *out is owned by the caller (brk_jwks_cache_free). Main thread.
 */
int brk_jwks_cache_new(unsigned refresh_s, const char *ca_file, brk_jwks_cache_t **out);

/* brk_jwks_cache_free: stops the fetch thread (waiting for a fetch in flight, at most
 * BRK_JWKS_FETCH_TIMEOUT_S) and frees everything. NULL is fine. Main thread. */
void brk_jwks_cache_free(brk_jwks_cache_t *c);

/*
 * brk_jwks_cache_url: the keys last fetched from url. unknown_kid asks for a refetch (subject
 * to BRK_JWKS_REFETCH_MIN_S). On 0 *out is a new reference (brk_jwks_unref). Returns
 * BRK_EAGAIN when nothing was fetched from url yet (a fetch is then under way: try again in a
 * moment).
 */
int brk_jwks_cache_url(brk_jwks_cache_t *c, const char *url, int unknown_kid, brk_jwks_t **out);

/*
 * brk_jwks_cache_inline: the parsed form of the JWKS text (n bytes), parsed now or found by
 * its digest. On 0 *out is a new reference. Returns brk_jwks_parse's errors.
 */
int brk_jwks_cache_inline(brk_jwks_cache_t *c, const char *text, size_t n, brk_jwks_t **out);

#endif
