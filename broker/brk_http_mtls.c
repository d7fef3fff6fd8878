/*
 * brk_http_mtls: the mtls identity driver on the request path.
 *
 * A request over TLS whose connection presented a client certificate (brk_tls_peer_get) and
 * that carries no Authorization header is authenticated here: the certificate's one URI SAN
 * names a trust domain; the tenant whose enabled configuration (tenant_mtls) claims that
 * trust domain is looked up; the chain is verified against that tenant's CA certificates
 * only (brk_mtls_verify: purpose sslclient, validity now); then the URI must start with the
 * tenant's SAN URI prefix. Only then does anything in the certificate count: the principal
 * gets the tenant, the configured roles, the DID built from the URI (brk_mtls_did), the URI as
 * its display name and a key id derived from tenant and URI (so rate buckets, idempotency
 * keys and "my ACs" stay per workload). An mtls principal never may delegate.
 *
 * Nothing is cached: the configuration is read on every request, so a disabled driver or a
 * replaced CA takes effect on the next request. The certificate is not kept across the
 * database call; it is fetched from the connection again afterwards (renegotiation is off,
 * so it is the same one), which leaves nothing to free when the client goes away meanwhile.
 * Failures are 401 with a code saying which check failed, and count against the address's
 * failed-authentication limit like a bad token. Runs on the request's loop thread.
 */
#include "brk_http_int.h"

#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_log.h"
#include "brk_mtls.h"
#include "brk_tls.h"
#include "banned.h"

/* Columns of q_mtls. */
enum { MC_TENANT, MC_CA, MC_PREFIX, MC_DID_PREFIX, MC_ROLES, MC_RATE, MC_BURST };

static brk_db_stmt_t q_mtls = {
    "brk_mtls_auth",
    "SELECT m.tenant_id, m.ca_pem, m.san_uri_prefix, m.did_prefix, "
    "array_to_string(m.roles, ','), t.rate_per_s, t.rate_burst "
    "FROM tenant_mtls m JOIN tenants t ON t.tenant_id = m.tenant_id "
    "WHERE m.trust_domain = $1 AND m.enabled",
    0};

int brk__http_mtls_register_stmts(void)
{
    return brk_db_register(&q_mtls);
}

typedef struct mtls_ctx {
    char uri[BRK_MTLS_URI_MAX + 1];
    char td[BRK_MTLS_URI_MAX + 1];
} mtls_ctx_t;

static int peer_chain(brk_req_t *r, X509 **leaf, STACK_OF(X509) **chain)
{
    h2o_conn_t *conn = r->h2o->conn;
    h2o_socket_t *sock =
        conn->callbacks->get_socket != NULL ? conn->callbacks->get_socket(conn) : NULL;
    if (sock == NULL || sock->ssl == NULL)
        return BRK_ENOTFOUND;
    return brk_tls_peer_get(sock, leaf, chain);
}

/*
 * fail: a certificate that does not authenticate. On a route that needs no credential
 * (LOCAL_OK from loopback, VIEW_OK) the request goes on as if no certificate had been sent,
 * so a browser that offers some unrelated client certificate can still open a view link.
 */
static void fail(brk_req_t *r, const char *code, const char *message)
{
    if (((r->route->flags & BRK_ROUTE_LOCAL_OK) && brk_req_is_local(r)) ||
        (r->route->flags & BRK_ROUTE_VIEW_OK)) {
        brk__http_unauthenticated(r);
        return;
    }
    brk__http_auth_fail(r, code, message);
}

static void on_config(brk_req_t *r, const brk_db_result_t *res)
{
    mtls_ctx_t *m = r->ctx;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL, *cas = NULL;
    const char *code;
    char msg[256], uri[BRK_MTLS_URI_MAX + 1], did[BRK_MTLS_DID_MAX + 1];
    uint8_t h[BRK_SHA256_LEN];

    r->ctx = NULL;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        goto out;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        fail(r, "mtls_not_configured",
             "no tenant accepts client certificates of this trust domain");
        goto out;
    }
    if (peer_chain(r, &leaf, &chain) != 0) {
        fail(r, "cert_missing", "the connection's client certificate is gone");
        goto out;
    }
    if (brk_mtls_ca_load(PQgetvalue(pr, 0, MC_CA), (size_t)PQgetlength(pr, 0, MC_CA), &cas,
                         &code, msg, sizeof msg) != 0) {
        brk_log_error("stored mtls CA does not load", "tenant", PQgetvalue(pr, 0, MC_TENANT),
                      "error", msg);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the tenant's mtls CA cannot be loaded");
        goto out;
    }
    if (brk_mtls_verify(cas, leaf, chain, &code, msg, sizeof msg) != 0) {
        char full[400];
        snprintf(full, sizeof full, "the client certificate does not verify against the "
                                    "tenant's CA: %s", msg);
        fail(r, code, full);
        goto out;
    }
    /* Verified: from here on the certificate's contents count. Read the URI again from the
     * verified certificate rather than reuse what picked the tenant. */
    const char *prefix = PQgetvalue(pr, 0, MC_PREFIX);
    if (brk_mtls_san_uri(leaf, uri, sizeof uri) != 0 || strcmp(uri, m->uri) != 0 ||
        strncmp(uri, prefix, strlen(prefix)) != 0) {
        fail(r, "cert_san_not_allowed",
             "the certificate's SAN URI is outside the tenant's configured prefix");
        goto out;
    }
    if (brk_mtls_did(uri, prefix,
                     PQgetisnull(pr, 0, MC_DID_PREFIX) ? NULL : PQgetvalue(pr, 0, MC_DID_PREFIX),
                     did, sizeof did) != 0) {
        fail(r, "cert_bad_san_uri", "the certificate's SAN URI does not make a DID");
        goto out;
    }
    brk_principal_t *p = &r->principal;
    snprintf(p->tenant, sizeof p->tenant, "%s", PQgetvalue(pr, 0, MC_TENANT));
    snprintf(p->did, sizeof p->did, "%s", did);
    /* The display name is the URI, cut to the name's size (the DID carries all of it). */
    size_t ul = strlen(uri) < sizeof p->name - 1 ? strlen(uri) : sizeof p->name - 1;
    memcpy(p->name, uri, ul);
    p->name[ul] = '\0';
    /* A key id of its own per (tenant, URI): "gsap-mtls" keeps it apart from API key ids,
     * which hash a token (collisions with one would need a 64-bit SHA-256 prefix match). */
    char seed[sizeof "gsap-mtls" + BRK_TENANT_MAX + 1 + BRK_MTLS_URI_MAX + 1];
    int sn = snprintf(seed, sizeof seed, "gsap-mtls%c%s%c%s", 0, p->tenant, 0, uri);
    brk_sha256(seed, (size_t)sn, h);
    brk_hex(h, BRK_KEY_ID_HEX / 2, p->key_id);
    p->key_id[BRK_KEY_ID_HEX] = '\0';
    brk_roles_parse_list(PQgetvalue(pr, 0, MC_ROLES), &p->roles);
    p->can_delegate = 0;
    p->driver = "mtls";
    brk__http_auth_admit(r, PQgetisnull(pr, 0, MC_RATE) ? NULL : PQgetvalue(pr, 0, MC_RATE),
                         PQgetisnull(pr, 0, MC_BURST) ? NULL : PQgetvalue(pr, 0, MC_BURST));
out:
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(cas, X509_free);
}

int brk__http_mtls_start(brk_req_t *r)
{
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    mtls_ctx_t *m;
    size_t td_len = 0;
    int rc;

    if (peer_chain(r, &leaf, &chain) != 0)
        return BRK_ENOTFOUND;
    if (brk__http_auth_blocked(r))
        goto out;
    m = brk_req_alloc(r, sizeof *m);
    /* Unverified: the URI only picks which tenant's CA to verify against. */
    rc = brk_mtls_san_uri(leaf, m->uri, sizeof m->uri);
    if (rc == BRK_ENOTFOUND) {
        fail(r, "cert_no_san_uri", "the client certificate has no URI subjectAltName");
        goto out;
    }
    if (rc != 0 || !brk_mtls_uri_check(m->uri, 0, &td_len)) {
        fail(r, "cert_bad_san_uri",
             "the client certificate needs exactly one URI subjectAltName of the form "
             "scheme://trust-domain/path");
        goto out;
    }
    memcpy(m->td, m->uri, td_len);
    m->td[td_len] = '\0';
    r->ctx = m;
    brk_db_op_t op = {&q_mtls, 1, {m->td}};
    brk__http_db_primary(r, &op, 1, on_config);
out:
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return 0;
}
