/*
 * brk_mtls: the certificate rules of the mtls identity driver, as pure functions over OpenSSL
 * objects (no HTTP, no database), shared by the request path (brk_http_mtls.c), the admin
 * route and the CLI that store a tenant's configuration, and the tests.
 *
 * A tenant's configuration: its CA certificates (PEM, the trust anchors its client
 * certificates must chain to), a SAN URI prefix ("spiffe://example.org/ci/": a certificate's
 * one URI SAN must start with it), an optional DID prefix (how the URI becomes the
 * principal's DID, brk_mtls_did) and the roles every such principal gets. The prefix's trust
 * domain (scheme://authority) is unique across tenants: it is how a request finds its tenant.
 *
 * Invariant: nothing read from a client certificate grants anything before brk_mtls_verify
 * accepted its chain against the tenant's anchors. Before that, the SAN URI serves only to
 * pick which tenant's anchors to try; a certificate that lies about it fails that tenant's
 * chain. Every function here may be called from any thread.
 */
#ifndef BRK_MTLS_H
#define BRK_MTLS_H

#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/x509.h>

#include "brk_keys.h" /* BRK__TS */

#define BRK_MTLS_CA_PEM_MAX (64 * 1024) /* bytes of a tenant's CA PEM (400 too_big above) */
#define BRK_MTLS_CA_CERTS_MAX 16        /* certificates in it */
#define BRK_MTLS_URI_MAX 200            /* bytes of a SAN URI and of a configured prefix */
#define BRK_MTLS_DID_PREFIX_MAX 128     /* bytes of a configured DID prefix */
#define BRK_MTLS_DID_MAX 256            /* bytes of a principal DID (= GOV_DID_MAX) */

/*
 * brk_mtls_ca_load: the CA certificates of pem (len bytes, at most BRK_MTLS_CA_PEM_MAX):
 * one to BRK_MTLS_CA_CERTS_MAX PEM "CERTIFICATE" blocks, each a CA (basicConstraints CA or a
 * v1 root, X509_check_ca). Returns 0 with *out (caller frees with sk_X509_pop_free(..,
 * X509_free)), or BRK_ETOOBIG / BRK_EINVAL with *code ("too_big", "invalid_ca") and a message
 * in msg.
 */
int brk_mtls_ca_load(const char *pem, size_t len, STACK_OF(X509) **out, const char **code,
                     char *msg, size_t cap);

/*
 * brk_mtls_uri_check: 1 when uri (NUL-terminated) is a workload URI this driver accepts:
 * scheme "://" authority "/" path, at most BRK_MTLS_URI_MAX bytes; scheme [a-z][a-z0-9+.-]*;
 * authority of [a-z0-9._-] (no user, no port); path segments of [A-Za-z0-9._-], none empty,
 * none "." or ".."; no query, no fragment (the SPIFFE ID grammar, any scheme). With
 * prefix set, uri may instead be a prefix: it then must end with "/" (so a prefix always
 * stops at a segment boundary: ".../ci/" does not admit ".../ci-evil/x"). *td_len (may be
 * NULL) gets the length of the trust domain, scheme "://" authority.
 */
int brk_mtls_uri_check(const char *uri, int prefix, size_t *td_len);

/*
 * brk_mtls_did_prefix_check: 1 when p is a usable DID prefix: "did:" method ":" and then
 * [A-Za-z0-9._:-]*, at most BRK_MTLS_DID_PREFIX_MAX bytes.
 */
int brk_mtls_did_prefix_check(const char *p);

/*
 * brk_mtls_san_uri: the certificate's one URI subjectAltName into out (NUL-terminated).
 * Returns 0; BRK_ENOTFOUND when it has none; BRK_EINVAL when it has several, or the URI is
 * longer than BRK_MTLS_URI_MAX or cap - 1, or fails brk_mtls_uri_check.
 */
int brk_mtls_san_uri(X509 *leaf, char *out, size_t cap);

/*
 * brk_mtls_verify: verifies leaf (with the untrusted chain the client sent, may be NULL)
 * against the anchors cas, now, for the sslclient purpose, with OpenSSL's X509_verify_cert.
 * A configured anchor may be an intermediate (X509_V_FLAG_PARTIAL_CHAIN): a tenant can pin
 * its own issuing CA under a shared root. Returns 0, or BRK_EAUTH with *code
 * "cert_expired", "cert_not_yet_valid" or "cert_untrusted" and OpenSSL's reason in msg.
 */
int brk_mtls_verify(STACK_OF(X509) *cas, X509 *leaf, STACK_OF(X509) *chain, const char **code,
                    char *msg, size_t cap);

/*
 * brk_mtls_did: the principal DID of uri (which starts with san_prefix; both checked by
 * brk_mtls_uri_check) into out. did_prefix NULL or "": did:web of the URI, the authority then
 * each path segment, joined by ':' (spiffe://example.org/ci/runner ->
 * did:web:example.org:ci:runner). Otherwise did_prefix followed by the part of uri after
 * san_prefix, '/' turned into ':' (did_prefix "did:example:agents:", prefix
 * "spiffe://example.org/ci/" -> did:example:agents:runner). Returns 0, or BRK_EINVAL when
 * nothing is left after the prefix or the DID would be longer than BRK_MTLS_DID_MAX or
 * cap - 1.
 */
int brk_mtls_did(const char *uri, const char *san_prefix, const char *did_prefix, char *out,
                 size_t cap);

/*
 * The stored configuration, shared by PUT/GET /admin/identity/mtls and `gsap-broker mtls`.
 * Columns of both statements: tenant_id, enabled, trust_domain, san_uri_prefix, did_prefix,
 * roles (comma list), ca_pem, updated_at. BRK_MTLS_PUT_SQL takes $1 tenant, $2 enabled
 * (boolean text), $3 ca_pem, $4 trust domain, $5 prefix, $6 did_prefix (NULL for did:web),
 * $7 roles (comma list); a trust domain another tenant holds fails with 23505.
 */
#define BRK_MTLS_COLS                                                                          \
    "tenant_id, enabled, trust_domain, san_uri_prefix, did_prefix, "                           \
    "array_to_string(roles, ','), ca_pem, " BRK__TS("updated_at")
#define BRK_MTLS_GET_SQL "SELECT " BRK_MTLS_COLS " FROM tenant_mtls WHERE tenant_id = $1"
#define BRK_MTLS_PUT_SQL                                                                       \
    "INSERT INTO tenant_mtls (tenant_id, enabled, ca_pem, trust_domain, san_uri_prefix, "      \
    "did_prefix, roles) VALUES ($1, $2::boolean, $3, $4, $5, $6, string_to_array($7, ',')) "   \
    "ON CONFLICT (tenant_id) DO UPDATE SET enabled = EXCLUDED.enabled, ca_pem = "              \
    "EXCLUDED.ca_pem, trust_domain = EXCLUDED.trust_domain, san_uri_prefix = "                 \
    "EXCLUDED.san_uri_prefix, did_prefix = EXCLUDED.did_prefix, roles = EXCLUDED.roles, "      \
    "updated_at = now() RETURNING " BRK_MTLS_COLS

/*
 * brk_mtls_config_check: validates a configuration before it is stored: the CA PEM
 * (brk_mtls_ca_load), the SAN URI prefix (brk_mtls_uri_check as a prefix) and the DID prefix
 * (NULL or brk_mtls_did_prefix_check). Returns 0 with the prefix's trust domain in td
 * (BRK_MTLS_URI_MAX + 1 bytes), or BRK_EINVAL / BRK_ETOOBIG with *code ("invalid_ca",
 * "too_big", "invalid_san_uri_prefix", "invalid_did_prefix") and a message in msg.
 */
int brk_mtls_config_check(const char *ca_pem, size_t len, const char *prefix,
                          const char *did_prefix, char *td, const char **code, char *msg,
                          size_t cap);

/* brk_mtls_row_json: row of a BRK_MTLS_GET_SQL / PUT result as the API shows it: the
 * fields, roles as an array, and instead of the PEM "ca_certs": [{"subject", "sha256",
 * "not_after"}] (new reference, caller owns). */
json_t *brk_mtls_row_json(const PGresult *pr, int row);

#endif
