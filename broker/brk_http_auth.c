/*
 * brk_http_auth: bearer authentication and rate limiting of HTTP requests.
 *
 * Owns: the key lookup statement (q_auth) and the last_used_at touch (q_touch), the jwt
 * driver's issuer lookup (q_jwt) and its token checks (brk_jwt.h), the TLS-only bearer rule
 * (brk_peer.h), the
 * per-address failed-authentication limit, the per-key token bucket and its RateLimit
 * headers, the tenant check of X-GSAP-Tenant, and the auth metrics; and the steps every
 * identity driver shares (brk__http_auth_blocked / _fail / _admit, brk_http_int.h). Without
 * an Authorization header the mtls driver (brk_http_mtls.c) gets the request first.
 * Invariants: a revocation, an expiry or a disabled driver takes effect on the next request:
 * every request is checked against the database, either by its own lookup (q_auth) or, on a
 * BRK_ROUTE_KEY_RECHECK route (the receipt route), inside the route's own transaction, which
 * is what lets such a route skip the lookup for a key this worker verified within the last
 * BRK_AUTH_MEMO_TTL_MS (the worker's memo: the key's immutable secret hash, roles and name,
 * and its tenant's rate override, at most that old); an address over its failure limit is
 * refused before its token is looked at; the secret hash is compared in constant time; the
 * body is parsed only after the caller is known to be allowed (brk__http_run_route). Runs on
 * the request's loop thread.
 */
#include "brk_http_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jwks.h"
#include "brk_jwt.h"
#include "brk_log.h"
#include "brk_peer.h"
#include "brk_metrics.h"
#include "brk_server_int.h"
#include "banned.h"

#define XSTR(x) #x
#define STR(x) XSTR(x)

/*
 * The key, its tenant's rate override and whether last_used_at is due, in one statement that
 * also refuses revoked and expired keys. Every request but a memo hit on a
 * BRK_ROUTE_KEY_RECHECK route runs it, so a revocation or an expiry takes effect on the next
 * request on every worker of every broker (the memo hit is checked by the route's own
 * transaction instead).
 */
static brk_db_stmt_t q_auth = {
    "brk_auth",
    "SELECT k.secret_hash, array_to_string(k.roles, ','), k.can_delegate, "
    "coalesce(k.name, k.key_id), t.rate_per_s, t.rate_burst, "
    "k.last_used_at IS NULL OR k.last_used_at < now() - interval '"
    STR(BRK_KEY_TOUCH_INTERVAL_S) " seconds', "
    "coalesce((SELECT d.enabled FROM auth_drivers d WHERE d.tenant_id = k.tenant_id "
    "AND d.driver = 'api-key'), true) "
    "FROM api_keys k JOIN tenants t ON t.tenant_id = k.tenant_id "
    "WHERE k.tenant_id = $1 AND k.key_id = $2 AND k.revoked_at IS NULL "
    "AND (k.expires_at IS NULL OR k.expires_at > now())",
    0};

/*
 * The jwt driver of the tenant whose issuer is $1 (unique across tenants: migration 0014), its
 * settings without the inline JWKS, that JWKS's text apart (NULL with a jwks_url), and the
 * tenant's rate override. One statement per JWT request, as one per API-key request: the
 * settings are not cached, so disabling the driver or changing its issuer, audience or keys
 * takes effect on the next request; parsed JWKS documents are cached by digest or URL
 * (brk_jwks.h), so keys are not rebuilt per request.
 */
static brk_db_stmt_t q_jwt = {
    "brk_auth_jwt",
    "SELECT d.tenant_id, (d.settings - 'jwks')::text, (d.settings->'jwks')::text, NULL, "
    "t.rate_per_s, t.rate_burst "
    "FROM auth_drivers d JOIN tenants t ON t.tenant_id = d.tenant_id "
    "WHERE d.driver = 'jwt' AND d.enabled AND d.settings->>'issuer' = $1",
    0};

/* Conditional, so workers and brokers that all saw the key as due write it once. */
static brk_db_stmt_t q_touch = {
    "brk_key_touch",
    "UPDATE api_keys SET last_used_at = now() WHERE tenant_id = $1 AND key_id = $2 "
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '"
    STR(BRK_KEY_TOUCH_INTERVAL_S) " seconds')",
    0};

static int m_limited_key = -1, m_limited_auth = -1, m_auth_failures = -1;

int brk__http_register_stmts(void)
{
    int rc = brk_db_register(&q_auth);
    if (rc == 0)
        rc = brk_db_register(&q_touch);
    if (rc == 0)
        rc = brk_db_register(&q_jwt);
    if (rc == 0)
        rc = brk__http_mtls_register_stmts();
    m_limited_key = brk_metrics_counter("gsap_rate_limited_total{reason=\"key\"}",
                                        "Requests answered 429: over the key's rate, or from an "
                                        "address over its failed-authentication limit.");
    m_limited_auth = brk_metrics_counter("gsap_rate_limited_total{reason=\"auth_failures\"}",
                                         "Requests answered 429: over the key's rate, or from "
                                         "an address over its failed-authentication limit.");
    m_auth_failures = brk_metrics_counter("gsap_auth_failures_total",
                                          "Requests with an invalid, unknown, revoked or expired "
                                          "bearer token.");
    return rc;
}

/*
 * peer_key: the client address as a rate-table key: the IPv4 address, or the /64 prefix of an
 * IPv6 address (one host usually owns a whole /64, so counting single addresses would let it
 * rotate through 2^64 of them). Returns the key's length.
 */
static size_t peer_key(const brk_req_t *r, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = r->h2o->conn->callbacks->get_peername(r->h2o->conn, (void *)&ss);
    const uint8_t *b = NULL;
    int n;

    if (len != 0 && ss.ss_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)(const void *)&ss)->sin_addr;
        n = snprintf(buf, cap, "4:%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
    } else if (len != 0 && ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)&ss)->sin6_addr;
        b = a->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            n = snprintf(buf, cap, "4:%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
        else
            n = snprintf(buf, cap, "6:%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", b[0], b[1],
                         b[2], b[3], b[4], b[5], b[6], b[7]);
    } else {
        n = snprintf(buf, cap, "local");
    }
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* brk__http_auth_fail (brk_http_int.h): counts a failed authentication against the client's
 * address, then 401 with code and message. */
void brk__http_auth_fail(brk_req_t *r, const char *code, const char *msg)
{
    const brk_config_t *cfg = r->server->cfg;
    char addr[64];
    size_t alen = peer_key(r, addr, sizeof addr);
    brk_rate_fail_record(r->server->rate_fail, addr, alen, cfg->auth_fail_window_s,
                         brk__http_mono_ns());
    brk_metrics_add(m_auth_failures, 1);
    brk_reply_error(r, BRK_EAUTH, code, "%s", msg);
}

static void auth_failed(brk_req_t *r)
{
    brk__http_auth_fail(r, "invalid_token", "the bearer token is not valid");
}

static void reply_limited(brk_req_t *r, uint32_t retry_after_s, const char *what)
{
    char ra[16];
    snprintf(ra, sizeof ra, "%u", retry_after_s);
    brk_reply_add_header(r, "retry-after", ra);
    brk_reply_error(r, BRK_ELIMIT, "rate_limited", "%s; retry after %u s", what, retry_after_s);
}

static void on_touched(void *arg, const brk_db_result_t *res)
{
    (void)arg;
    (void)res; /* last_used_at is advisory: a failed write is retried by the next request */
}

/*
 * rate_check: takes a token from the key's bucket and adds the RateLimit-Policy and
 * RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10, policy "key"). Returns 0, or
 * BRK_ELIMIT after answering 429.
 */
static int rate_check(brk_req_t *r, const char *rate_s, const char *burst_s)
{
    const brk_config_t *cfg = r->server->cfg;
    uint32_t rate = cfg->rate_per_s, burst = cfg->rate_burst;
    char key[BRK_TENANT_MAX + BRK_KEY_ID_HEX + 2], policy[64], state[64];
    brk_rate_verdict_t v;

    /* The tenant's override (the table's CHECK keeps it in 1..BRK_CONFIG_RATE_MAX). */
    if (rate_s != NULL)
        rate = (uint32_t)strtoul(rate_s, NULL, 10);
    if (burst_s != NULL)
        burst = (uint32_t)strtoul(burst_s, NULL, 10);
    int n = snprintf(key, sizeof key, "%s/%s", r->principal.tenant, r->principal.key_id);
    brk_rate_take(r->server->rate_keys, key, (size_t)n, rate, burst, brk__http_mono_ns(),
                  &v);
    snprintf(policy, sizeof policy, "\"key\";q=%u;w=%u", burst, (burst + rate - 1) / rate);
    snprintf(state, sizeof state, "\"key\";r=%u;t=%u", v.remaining,
             v.allowed ? v.reset_s : v.retry_after_s);
    brk_reply_add_header(r, "ratelimit-policy", policy);
    brk_reply_add_header(r, "ratelimit", state);
    if (!v.allowed) {
        brk_metrics_add(m_limited_key, 1);
        reply_limited(r, v.retry_after_s, "this key is over its rate limit");
        return BRK_ELIMIT;
    }
    return 0;
}

/*
 * admit: what every driver's caller goes through once known: the tenant's token bucket (every
 * authenticated request counts, refused ones (403) included) and the X-GSAP-Tenant check.
 * rate_s / burst_s: the tenant's rate override, NULL for the broker's. Returns 0, or an error
 * after answering.
 */
static int admit(brk_req_t *r, const char *rate_s, const char *burst_s)
{
    if (rate_check(r, rate_s, burst_s) != 0)
        return BRK_ELIMIT;
    /* A caller may name the tenant it means to act in; a credential acts only in its own. */
    h2o_iovec_t t = brk_req_header(r, "x-gsap-tenant");
    if (t.base != NULL &&
        (t.len != strlen(r->principal.tenant) || memcmp(t.base, r->principal.tenant, t.len) != 0)) {
        brk_reply_error(r, BRK_EFORBIDDEN, "tenant_forbidden",
                        "this %s does not belong to the tenant named in X-GSAP-Tenant",
                        strcmp(r->principal.driver, "api-key") == 0 ? "key" : "credential");
        return BRK_EFORBIDDEN;
    }
    return 0;
}

/* admit with the tenant's rate override from pr's columns 4 and 5 (q_auth, q_jwt). */
static int admit_pr(brk_req_t *r, PGresult *pr)
{
    return admit(r, PQgetisnull(pr, 0, 4) ? NULL : PQgetvalue(pr, 0, 4),
                 PQgetisnull(pr, 0, 5) ? NULL : PQgetvalue(pr, 0, 5));
}

/* ---- the worker's memo of verified API keys (brk_server_int.h) ---- */

static brk_auth_memo_t *memo_slot(struct brk_worker *w, const char *tenant, const char *key_id)
{
    uint32_t h = 2166136261u; /* FNV-1a over "tenant/key_id" */
    for (const char *p = tenant; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ '/') * 16777619u;
    for (const char *p = key_id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &w->auth_memo[h % BRK_AUTH_MEMO_SLOTS];
}

/* memo_find: the live memo of r's key (tenant and key_id filled in), or NULL. */
static brk_auth_memo_t *memo_find(brk_req_t *r)
{
    brk_auth_memo_t *m = memo_slot(r->worker, r->principal.tenant, r->principal.key_id);
    uint64_t now = brk__http_mono_ns();
    if (m->verified_ns == 0 || now - m->verified_ns > (uint64_t)BRK_AUTH_MEMO_TTL_MS * 1000000u ||
        strcmp(m->tenant, r->principal.tenant) != 0 || strcmp(m->key_id, r->principal.key_id) != 0)
        return NULL;
    return m;
}

/* memo_put: remembers r's principal, just verified by q_auth (pr), with its secret hash. */
static void memo_put(brk_req_t *r, const char *secret_hash, PGresult *pr)
{
    brk_auth_memo_t *m = memo_slot(r->worker, r->principal.tenant, r->principal.key_id);
    const char *rate = PQgetisnull(pr, 0, 4) ? "" : PQgetvalue(pr, 0, 4);
    const char *burst = PQgetisnull(pr, 0, 5) ? "" : PQgetvalue(pr, 0, 5);
    if (strlen(rate) >= sizeof m->rate || strlen(burst) >= sizeof m->burst) {
        m->verified_ns = 0; /* cannot happen (the table's CHECK); never remember half */
        return;
    }
    memcpy(m->tenant, r->principal.tenant, sizeof m->tenant);
    memcpy(m->key_id, r->principal.key_id, sizeof m->key_id);
    memcpy(m->secret_hash, secret_hash, sizeof m->secret_hash);
    memcpy(m->name, r->principal.name, sizeof m->name);
    m->roles = r->principal.roles;
    m->can_delegate = r->principal.can_delegate;
    memcpy(m->rate, rate, strlen(rate) + 1);
    memcpy(m->burst, burst, strlen(burst) + 1);
    m->verified_ns = brk__http_mono_ns();
}

int brk_req_key_refused(brk_req_t *r, const char *sql_code)
{
    const char *code, *msg;
    if (strcmp(sql_code, "key_invalid") == 0) {
        code = "invalid_token", msg = "the bearer token is not valid";
    } else if (strcmp(sql_code, "driver_disabled") == 0) {
        code = "driver_disabled", msg = "this tenant does not accept API keys";
    } else {
        return 0;
    }
    brk_auth_memo_t *m = memo_find(r);
    if (m != NULL)
        m->verified_ns = 0;
    brk__http_auth_fail(r, code, msg);
    return 1;
}

/* touch: last_used_at, once per BRK_KEY_TOUCH_INTERVAL_S per key and broker; due: the
 * database said it is due (q_auth), or -1 when unknown (a memo hit: the UPDATE is
 * conditional, so one more than needed writes nothing). */
static void touch(brk_req_t *r, int due)
{
    char key[BRK_TENANT_MAX + BRK_KEY_ID_HEX + 2];
    int kn = snprintf(key, sizeof key, "%s/%s", r->principal.tenant, r->principal.key_id);
    if (due != 0 && brk_rate_once(r->server->rate_keys, key, (size_t)kn,
                                  (uint64_t)BRK_KEY_TOUCH_INTERVAL_S * 1000000000u,
                                  brk__http_mono_ns())) {
        /* Its own batch, not waited for: the route does not pay for it. */
        brk_db_op_t op = {&q_touch, 2, {r->principal.tenant, r->principal.key_id}};
        brk_db_submit(r->worker->db, &op, 1, on_touched, NULL);
    }
}

/* memo_admit: authenticates r (tenant, key_id filled in) from the worker's memo when its
 * route rechecks the key itself and the memo is fresh. Returns 1 when r was handled (routed
 * or answered), 0 when the database must be asked. */
static int memo_admit(brk_req_t *r, const char *secret_hash)
{
    const brk_auth_memo_t *m;
    if (!(r->route->flags & BRK_ROUTE_KEY_RECHECK) || (m = memo_find(r)) == NULL)
        return 0;
    /* The stored hash of a key id never changes: a mismatch is what the lookup would say. */
    if (!brk_ct_equal(m->secret_hash, secret_hash, sizeof m->secret_hash)) {
        auth_failed(r);
        return 1;
    }
    r->principal.roles = m->roles;
    r->principal.can_delegate = m->can_delegate;
    memcpy(r->principal.name, m->name, sizeof r->principal.name);
    r->principal.authenticated = 1;
    if (admit(r, m->rate[0] ? m->rate : NULL, m->burst[0] ? m->burst : NULL) != 0)
        return 1;
    touch(r, -1);
    brk__http_run_route(r);
    return 1;
}

static void on_auth(brk_req_t *r, const brk_db_result_t *res)
{
    const char *secret_hash = r->ctx;
    r->ctx = NULL;
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1 || PQgetlength(pr, 0, 0) != 64 ||
        !brk_ct_equal(PQgetvalue(pr, 0, 0), secret_hash, 64)) {
        auth_failed(r);
        return;
    }
    /* A valid key of a tenant that turned its api-key driver off. */
    if (PQgetvalue(pr, 0, 7)[0] != 't') {
        brk__http_auth_fail(r, "driver_disabled", "this tenant does not accept API keys");
        return;
    }
    char *roles = PQgetvalue(pr, 0, 1);
    unsigned mask = 0;
    brk_roles_parse_list(roles, &mask);
    r->principal.roles = mask;
    r->principal.can_delegate = PQgetvalue(pr, 0, 2)[0] == 't';
    snprintf(r->principal.name, sizeof r->principal.name, "%s", PQgetvalue(pr, 0, 3));
    r->principal.authenticated = 1;
    r->principal.driver = "api-key";
    memo_put(r, secret_hash, pr);
    if (admit_pr(r, pr) != 0)
        return;
    /* Due by the database's clock, and not yet sent by another worker of this broker. */
    touch(r, PQgetvalue(pr, 0, 6)[0] == 't');
    brk__http_run_route(r);
}

/* ---- the jwt driver ---- */

/* jwt_key_id: a stable 16-character id for a JWT principal (rate buckets, issuer_key_id of
 * its ACs): "j" and 15 hex digits of SHA-256 over tenant and DID. API key ids are 16 hex
 * digits, so the two can never meet. */
static void jwt_key_id(const char *tenant, const char *did, char out[BRK_KEY_ID_HEX + 1])
{
    uint8_t d[BRK_SHA256_LEN];
    char hex[2 * BRK_SHA256_LEN + 1];
    brk_sha256_ctx_t *c = brk_sha256_new();
    memset(d, 0, sizeof d);
    if (c != NULL) {
        brk_sha256_update(c, tenant, strlen(tenant) + 1);
        brk_sha256_update(c, did, strlen(did));
        brk_sha256_final(c, d);
    }
    brk_sha256_free(c);
    brk_hex(d, sizeof d, hex);
    out[0] = 'j';
    memcpy(out + 1, hex, BRK_KEY_ID_HEX - 1);
    out[BRK_KEY_ID_HEX] = '\0';
}

/* The keys of c: inline (jwks_text as stored: parsed once, cached by digest) or fetched
 * (BRK_EAGAIN until the first fetch finished). unknown_kid asks the fetcher for a fresh copy. */
static int jwt_keys(brk_req_t *r, const brk_jwt_config_t *c, const char *jwks_text,
                    int unknown_kid, brk_jwks_t **ks)
{
    *ks = NULL;
    if (r->server->jwks == NULL)
        return BRK_EAGAIN;
    if (c->jwks_url != NULL)
        return brk_jwks_cache_url(r->server->jwks, c->jwks_url, unknown_kid, ks);
    return brk_jwks_cache_inline(r->server->jwks, jwks_text, strlen(jwks_text), ks);
}

static void on_jwt(brk_req_t *r, const brk_db_result_t *res)
{
    const brk_config_t *cfg = r->server->cfg;
    h2o_iovec_t *tokv = r->ctx;
    brk_jwt_t t;
    brk_jwt_config_t c;
    brk_jwks_t *ks = NULL;
    json_t *settings = NULL;
    const char *code = NULL;
    char msg[256], did[BRK_JWT_DID_MAX + 1];
    unsigned roles = 0;
    int rc;

    r->ctx = NULL;
    memset(&t, 0, sizeof t);
    if (res->err != 0) {
        brk_reply_db_error(r, res);
        return;
    }
    PGresult *pr = res->res[0];
    if (PQntuples(pr) != 1) {
        brk__http_auth_fail(r, "unknown_issuer", "no tenant accepts tokens of this issuer");
        return;
    }
    snprintf(r->principal.tenant, sizeof r->principal.tenant, "%s", PQgetvalue(pr, 0, 0));
    int inline_jwks = !PQgetisnull(pr, 0, 2);
    settings = json_loads(PQgetvalue(pr, 0, 1), 0, NULL);
    if (settings == NULL ||
        brk_jwt_config_parse_stored(settings, inline_jwks, cfg->broker_id, r->principal.tenant,
                                    cfg->jwks_allow_http, &c, msg, sizeof msg) != 0) {
        brk_log_error("jwt driver settings are not valid", "tenant", r->principal.tenant);
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the jwt driver of this tenant is misconfigured");
        goto out;
    }
    if (brk_jwt_decode(tokv->base, tokv->len, &t, &code, msg, sizeof msg) != 0) {
        brk__http_auth_fail(r, code, msg);
        goto out;
    }
    rc = jwt_keys(r, &c, PQgetvalue(pr, 0, 2), 0, &ks);
    if (rc == BRK_EAGAIN) {
        brk_reply_add_header(r, "retry-after", BRK_RETRY_AFTER_S);
        brk_reply_error(r, BRK_EAGAIN, "jwks_unavailable",
                        "the issuer's keys are not available yet; retry shortly");
        goto out;
    }
    if (rc != 0) {
        brk_reply_error(r, BRK_EINTERNAL, NULL, "the jwt driver's JWKS cannot be used");
        goto out;
    }
    if (brk_jwt_verify(&t, ks, c.issuer, c.audience, (int64_t)time(NULL), &code, msg,
                       sizeof msg) != 0) {
        if (strcmp(code, BRK_JWT_E_KID) == 0 && c.jwks_url != NULL) {
            brk_jwks_t *again = NULL; /* a rotation: ask for a fresh copy */
            jwt_keys(r, &c, PQgetvalue(pr, 0, 2), 1, &again);
            brk_jwks_unref(again);
        }
        brk__http_auth_fail(r, code, msg);
        goto out;
    }
    if (brk_jwt_principal(&c, t.claims, cfg->broker_id, r->principal.tenant, did,
                          r->principal.name, sizeof r->principal.name, &roles, &code, msg,
                          sizeof msg) != 0) {
        brk__http_auth_fail(r, code, msg);
        goto out;
    }
    snprintf(r->principal.did, sizeof r->principal.did, "%s", did);
    jwt_key_id(r->principal.tenant, did, r->principal.key_id);
    r->principal.roles = roles;
    r->principal.can_delegate = 0;
    r->principal.authenticated = 1;
    r->principal.driver = "jwt";
    brk_jwt_clear(&t);
    brk_jwks_unref(ks);
    json_decref(settings);
    if (admit_pr(r, pr) == 0)
        brk__http_run_route(r);
    return;
out:
    brk_jwt_clear(&t);
    brk_jwks_unref(ks);
    json_decref(settings);
}

/* jwt_start: looks the token's issuer up (the token is only decoded here, not trusted). */
static void jwt_start(brk_req_t *r, const char *tok, size_t len)
{
    brk_jwt_t t;
    const char *code = NULL;
    char msg[256];

    if (brk_jwt_decode(tok, len, &t, &code, msg, sizeof msg) != 0) {
        brk__http_auth_fail(r, code, msg);
        return;
    }
    if (t.iss == NULL || strlen(t.iss) > BRK_JWT_ISSUER_MAX) {
        brk_jwt_clear(&t);
        brk__http_auth_fail(r, "unknown_issuer", "the token has no iss this broker knows");
        return;
    }
    char *iss = brk_req_alloc(r, strlen(t.iss) + 1);
    memcpy(iss, t.iss, strlen(t.iss));
    brk_jwt_clear(&t);
    h2o_iovec_t *tokv = brk_req_alloc(r, sizeof *tokv);
    *tokv = h2o_iovec_init(tok, len);
    r->ctx = tokv;
    brk_db_op_t op = {&q_jwt, 1, {iss}};
    brk__http_db_primary(r, &op, 1, on_jwt);
}

/* ---- shared by the identity drivers (brk_http_int.h) ---- */

void brk__http_unauthenticated(brk_req_t *r)
{
    if ((r->route->flags & BRK_ROUTE_LOCAL_OK) && brk_req_is_local(r)) {
        brk__http_run_route(r);
        return;
    }
    if (r->route->flags & BRK_ROUTE_VIEW_OK) {
        brk__http_run_route(r); /* the handler checks its view link or answers 401 */
        return;
    }
    brk_reply_error(r, BRK_EAUTH, "missing_token", "an Authorization: Bearer token is required");
}

int brk__http_auth_blocked(brk_req_t *r)
{
    const brk_config_t *cfg = r->server->cfg;
    char addr[64];
    uint32_t retry_after = 0;
    /* An address that failed too often is refused before its credential is looked at, so
     * a token cannot be guessed online faster than GSAP_AUTH_FAIL_MAX per window. */
    size_t alen = peer_key(r, addr, sizeof addr);
    if (brk_rate_fail_blocked(r->server->rate_fail, addr, alen, cfg->auth_fail_max,
                              cfg->auth_fail_window_s, brk__http_mono_ns(), &retry_after)) {
        brk_metrics_add(m_limited_auth, 1);
        reply_limited(r, retry_after, "too many failed authentications from this address");
        return 1;
    }
    return 0;
}

void brk__http_auth_admit(brk_req_t *r, const char *rate_s, const char *burst_s)
{
    r->principal.authenticated = 1;
    if (admit(r, rate_s, burst_s) == 0)
        brk__http_run_route(r);
}

void brk__http_authenticate(brk_req_t *r)
{
    const brk_config_t *cfg = r->server->cfg;
    h2o_iovec_t a = brk_req_header(r, "authorization");
    brk_token_t tok;

    if (a.base == NULL) {
        /* No Authorization: a client certificate, if the connection has one, decides
         * (brk_http_mtls.c); a bearer, when present, always wins over a certificate. */
        if (brk__http_mtls_start(r) == 0)
            return;
        brk__http_unauthenticated(r);
        return;
    }
    if (brk__http_auth_blocked(r))
        return;
    /* Part of the contract of every bearer: it does not travel in clear over the network.
     * Checked before the token is looked at, so a refused one is not counted as a guess. */
    if (!brk_bearer_transport_ok(cfg->plaintext_bearers, brk_req_is_tls(r), brk_req_is_local(r))) {
        brk_reply_error(r, BRK_EAUTH, "tls_required",
                        "bearer tokens are accepted only over HTTPS here");
        return;
    }
    if (a.len >= 7 && h2o_lcstris(a.base, 7, "bearer ", 7) &&
        brk_jwt_looks_like(a.base + 7, a.len - 7)) {
        jwt_start(r, a.base + 7, a.len - 7);
        return;
    }
    if (a.len < 7 || !h2o_lcstris(a.base, 7, "bearer ", 7) || a.len - 7 > BRK_TOKEN_MAX ||
        brk_token_parse(a.base + 7, a.len - 7, &tok) != 0) {
        auth_failed(r);
        return;
    }
    memcpy(r->principal.tenant, tok.tenant, sizeof tok.tenant);
    memcpy(r->principal.key_id, tok.key_id, sizeof tok.key_id);
    r->principal.driver = "api-key";
    if (memo_admit(r, tok.secret_hash))
        return;
    char *hash = brk_req_alloc(r, sizeof tok.secret_hash);
    memcpy(hash, tok.secret_hash, sizeof tok.secret_hash);
    r->ctx = hash;
    brk_db_op_t op = {&q_auth, 2, {r->principal.tenant, r->principal.key_id}};
    brk__http_db_primary(r, &op, 1, on_auth);
}
