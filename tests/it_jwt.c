/*
 * it_jwt: the jwt identity driver and the TLS-only bearer rule against the real binary.
 *
 * Keys, JWKS documents and tokens come from npm `jose` (tests/npm/jwt_oracle.mjs), an
 * independent JOSE implementation; a remote JWKS is served by the same script on 127.0.0.1.
 * Tenants: acme (inline JWKS: rsa1, ec1, ed1; DIDs from a template; roles from "groups"),
 * beta (its own issuer and key), gamma (the subject claim is the DID), delta (jwks_url).
 * Every refusal is checked for its status, its error code and for leaving no row behind.
 */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define DB "it_jwt"
#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define ACME_ISS "https://idp.acme.test/realms/acme"
#define BETA_ISS "https://idp.beta.test"
#define GAMMA_ISS "https://idp.gamma.test"
#define DELTA_ISS "https://idp.delta.test"

static tst_broker_t B;
static char *ADMIN, *BETA_ADMIN, *GAMMA_ADMIN, *DELTA_ADMIN;
static char KDIR[] = "/tmp/gsap-jwt-XXXXXX";
static int have_kdir;

static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    size_t cap = 1 << 20, n;
    char *out = malloc(cap);
    ck_assert_ptr_nonnull(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    ck_assert_msg(pclose(p) == 0, "command failed: %s", cmd);
    return out;
}

static char *oracle_path(void)
{
    return tst_fmt("%s/tests/npm/jwt_oracle.mjs", getenv("GSAP_SOURCE_DIR"));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* tokens: spec (a JSON object text, see jwt_oracle.mjs) -> {name: token}. */
static json_t *tokens(const char *spec)
{
    char *path = tst_fmt("%s/spec.json", KDIR), *o = oracle_path();
    FILE *f = fopen(path, "w");
    fputs(spec, f);
    fclose(f);
    char *cmd = tst_fmt("node %s tokens %s %s", o, KDIR, path);
    char *out = run(cmd);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_msg(j != NULL, "oracle output: %s", out);
    free(out), free(cmd), free(path), free(o);
    return j;
}

static long now_s(void)
{
    return (long)time(NULL);
}

/* One claims object text for issuer iss, subject sub, groups, audience and times. */
static char *claims(const char *iss, const char *sub, const char *groups, const char *aud,
                    long exp, long nbf)
{
    char nb[32] = "";
    if (nbf)
        snprintf(nb, sizeof nb, ",\"nbf\":%ld", nbf);
    return tst_fmt("{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":%s,\"exp\":%ld%s%s%s}", iss, sub, aud,
                   exp, nb, groups ? ",\"groups\":" : "", groups ? groups : "");
}

static int req(const char *method, const char *path, const char *token, const char *extra_hdr,
               const char *body, tst_resp_t *r)
{
    char *hdr =
        tst_fmt("Authorization: Bearer %s\r\n%s%s", token,
                body ? "Content-Type: application/json\r\n" : "", extra_hdr ? extra_hdr : "");
    int rc = tst_http(B.port, method, path, hdr, body, body ? strlen(body) : 0, r);
    free(hdr);
    ck_assert_int_eq(rc, 0);
    return r->status;
}

static const char *err_code(const tst_resp_t *r)
{
    return tst_str(json_object_get(r->json, "error"), "code");
}

/* expect_refused: token on path answers 401 with code. */
static void expect_refused(const char *method, const char *path, const char *token,
                           const char *body, const char *code)
{
    tst_resp_t r;
    req(method, path, token, NULL, body, &r);
    ck_assert_msg(r.status == 401 && err_code(&r) && strcmp(err_code(&r), code) == 0,
                  "%s %s: want 401 %s, got %d %s", method, path, code, r.status, r.body);
    tst_resp_clear(&r);
}

static void put_driver(const char *admin, const char *driver, const char *body, int want,
                       const char *want_code)
{
    tst_resp_t r;
    char *path = tst_fmt("/admin/drivers/%s", driver);
    req("PUT", path, admin, NULL, body, &r);
    ck_assert_msg(r.status == want, "PUT %s: want %d, got %d %s", path, want, r.status, r.body);
    if (want_code)
        ck_assert_str_eq(err_code(&r), want_code);
    tst_resp_clear(&r);
    free(path);
}

static char *jwt_settings(const char *iss, const char *jwks_file, const char *extra)
{
    char *path = tst_fmt("%s/%s", KDIR, jwks_file);
    char *jwks = slurp(path);
    jwks[strcspn(jwks, "\n")] = 0;
    char *s = tst_fmt("{\"enabled\":true,\"settings\":{\"issuer\":\"%s\",\"audience\":\"gsap\","
                      "\"jwks\":%s%s%s}}",
                      iss, jwks, extra ? "," : "", extra ? extra : "");
    free(jwks), free(path);
    return s;
}

static void setup(void)
{
    static const char *const env[] = {"GSAP_AUTH_FAIL_MAX=10000", "GSAP_JWKS_ALLOW_HTTP=1",
                                      "GSAP_JWKS_REFRESH_S=2", NULL};
    ck_assert_ptr_nonnull(mkdtemp(KDIR));
    have_kdir = 1;
    char *o = oracle_path(), *cmd = tst_fmt("node %s keys %s", o, KDIR);
    free(run(cmd));
    free(cmd), free(o);
    const char *ci = tst_pg_createdb(DB);
    ck_assert_int_eq(tst_broker_start(&B, ci, env), 0);
    ADMIN = tst_keys_create(&B, "acme", "admin,auditor");
    BETA_ADMIN = tst_keys_create(&B, "beta", "admin");
    GAMMA_ADMIN = tst_keys_create(&B, "gamma", "admin");
    DELTA_ADMIN = tst_keys_create(&B, "delta", "admin");
    char *s = jwt_settings(ACME_ISS, "jwks_acme.json",
                           "\"did_template\":\"did:web:idp.acme.test:users:{subject}\","
                           "\"roles_claim\":\"groups\",\"role_map\":{\"gsap-issuers\":[\"issuer\"],"
                           "\"gsap-admins\":\"admin\",\"gsap-auditors\":[\"auditor\"]}");
    put_driver(ADMIN, "jwt", s, 200, NULL);
    free(s);
    s = jwt_settings(BETA_ISS, "jwks_beta.json",
                     "\"did_template\":\"did:web:idp.beta.test:{subject}\","
                     "\"roles_claim\":\"groups\",\"role_map\":{\"all\":[\"issuer\",\"auditor\"]}");
    put_driver(BETA_ADMIN, "jwt", s, 200, NULL);
    free(s);
    s = jwt_settings(GAMMA_ISS, "jwks_gamma.json",
                     "\"roles_claim\":\"groups\",\"role_map\":{\"all\":[\"auditor\"]}");
    put_driver(GAMMA_ADMIN, "jwt", s, 200, NULL);
    free(s);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(ADMIN), free(BETA_ADMIN), free(GAMMA_ADMIN), free(DELTA_ADMIN);
    ADMIN = BETA_ADMIN = GAMMA_ADMIN = DELTA_ADMIN = NULL;
    if (have_kdir && getenv("GSAP_TEST_KEEP") == NULL) {
        char *cmd = tst_fmt("rm -rf %s", KDIR);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", KDIR);
        free(cmd);
    }
    have_kdir = 0;
    strcpy(KDIR, "/tmp/gsap-jwt-XXXXXX");
}

#define AUTHZ_BODY                                                                                 \
    "{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"" H(                       \
        "1") "\",\"corpus_entry_cid\":\"" H("2") "\",\"parameters_cid\":\"" H("3") "\"}}"

START_TEST(valid_tokens_map_principal_and_roles)
{
    long t = now_s();
    char *c1 =
        claims(ACME_ISS, "alice", "[\"gsap-issuers\",\"unmapped\"]", "\"gsap\"", t + 600, t - 10);
    char *c2 = claims(ACME_ISS, "bob", "\"gsap-auditors\"", "[\"x\",\"gsap\"]", t + 600, 0);
    char *spec =
        tst_fmt("{\"rs\":{\"kid\":\"rsa1\",\"claims\":%s},\"es\":{\"kid\":\"ec1\",\"claims\":%s},"
                "\"ed\":{\"kid\":\"ed1\",\"claims\":%s}}",
                c1, c2, c1);
    json_t *tk = tokens(spec);
    const char *rs = tst_str(tk, "rs"), *es = tst_str(tk, "es"), *ed = tst_str(tk, "ed");
    tst_resp_t r;

    /* the drivers list: api-key and jwt enabled, the issuer shown, no keys */
    ck_assert_int_eq(req("GET", "/governance/drivers/", es, NULL, NULL, &r), 200);
    json_t *d = json_object_get(r.json, "drivers");
    ck_assert_str_eq(tst_str(json_array_get(d, 0), "name"), "api-key");
    ck_assert(json_is_true(json_object_get(json_array_get(d, 0), "enabled")));
    ck_assert_str_eq(tst_str(json_array_get(d, 1), "name"), "jwt");
    ck_assert(json_is_true(json_object_get(json_array_get(d, 1), "enabled")));
    ck_assert_str_eq(tst_str(json_array_get(d, 1), "issuer"), ACME_ISS);
    ck_assert_ptr_null(strstr(r.body, "\"keys\""));
    ck_assert_ptr_null(strstr(r.body, "\"n\""));
    tst_resp_clear(&r);
    /* a neighbour without a jwt driver lists it disabled */
    ck_assert_int_eq(req("GET", "/governance/drivers/", DELTA_ADMIN, NULL, NULL, &r), 200);
    ck_assert(json_is_false(
        json_object_get(json_array_get(json_object_get(r.json, "drivers"), 1), "enabled")));
    tst_resp_clear(&r);

    /* RS256 with the issuer role: an AC whose principal is the mapped DID */
    ck_assert_int_eq(req("POST", "/governance/authorize/", rs, NULL, AUTHZ_BODY, &r), 200);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "principal"), "did"),
                     "did:web:idp.acme.test:users:alice");
    ck_assert_str_eq(tst_str(json_object_get(r.json, "identity_proof"), "driver"), "jwt");
    tst_resp_clear(&r);
    /* EdDSA: the same principal */
    ck_assert_int_eq(req("POST", "/governance/authorize/", ed, NULL, AUTHZ_BODY, &r), 200);
    ck_assert_str_eq(tst_str(json_object_get(r.json, "principal"), "did"),
                     "did:web:idp.acme.test:users:alice");
    tst_resp_clear(&r);
    /* ES256, auditor only: may read, may not issue nor administer */
    ck_assert_int_eq(req("POST", "/governance/authorize/", es, NULL, AUTHZ_BODY, &r), 403);
    tst_resp_clear(&r);
    ck_assert_int_eq(req("GET", "/admin/drivers", es, NULL, NULL, &r), 403);
    tst_resp_clear(&r);
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs WHERE tenant_id = 'acme' "
                                     "AND issuer_key_id ~ '^j[0-9a-f]{15}$'"),
                     2);
    PQfinish(pg);
    /* the admin view holds the settings */
    ck_assert_int_eq(req("GET", "/admin/drivers", ADMIN, NULL, NULL, &r), 200);
    ck_assert_str_eq(
        tst_str(json_object_get(json_array_get(json_object_get(r.json, "drivers"), 1), "settings"),
                "issuer"),
        ACME_ISS);
    tst_resp_clear(&r);
    json_decref(tk);
    free(spec), free(c1), free(c2);
    /* a clean stop: under the sanitizers, nothing leaked or went wrong in the broker */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

START_TEST(refusals_are_401_and_store_nothing)
{
    long t = now_s();
    const char *g = "[\"gsap-issuers\",\"gsap-admins\"]";
    char *ok = claims(ACME_ISS, "alice", g, "\"gsap\"", t + 600, 0);
    char *expired = claims(ACME_ISS, "alice", g, "\"gsap\"", t - 3600, 0);
    char *early = claims(ACME_ISS, "alice", g, "\"gsap\"", t + 7200, t + 3600);
    char *aud = claims(ACME_ISS, "alice", g, "\"other\"", t + 600, 0);
    char *iss = claims("https://idp.nobody.test", "alice", g, "\"gsap\"", t + 600, 0);
    char *spec = tst_fmt(
        "{\"expired\":{\"kid\":\"rsa1\",\"claims\":%s},\"early\":{\"kid\":\"ec1\",\"claims\":%s},"
        "\"aud\":{\"kid\":\"ed1\",\"claims\":%s},\"iss\":{\"kid\":\"rsa1\",\"claims\":%s},"
        "\"badsig\":{\"kid\":\"ec1\",\"mode\":\"badsig\",\"claims\":%s},"
        "\"none\":{\"kid\":\"rsa1\",\"mode\":\"none\",\"claims\":%s},"
        "\"hs256\":{\"kid\":\"rsa1\",\"mode\":\"hs256-pem\",\"claims\":%s},"
        "\"kid\":{\"kid\":\"rsa2\",\"claims\":%s},"
        "\"confused\":{\"kid\":\"rsa1\",\"alg\":\"ES256\",\"signer\":\"ec1\",\"claims\":%s},"
        "\"at_limit\":{\"kid\":\"ed1\",\"claims\":%s,\"claims_bytes\":4096},"
        "\"past_limit\":{\"kid\":\"ed1\",\"claims\":%s,\"claims_bytes\":4097},"
        "\"too_long\":{\"kid\":\"ed1\",\"claims\":%s,\"length\":8193}}",
        expired, early, aud, iss, ok, ok, ok, ok, ok, ok, ok, ok);
    json_t *tk = tokens(spec);
    static const char *const cases[][2] = {
        {"expired", "token_expired"},     {"early", "token_not_yet_valid"},
        {"aud", "wrong_audience"},        {"iss", "unknown_issuer"},
        {"badsig", "bad_signature"},      {"none", "alg_not_allowed"},
        {"hs256", "alg_not_allowed"},     {"kid", "unknown_kid"},
        {"confused", "key_alg_mismatch"}, {"past_limit", "token_too_large"},
        {"too_long", "token_too_large"},
    };
    const char *rate = "{\"rate_per_s\":7,\"burst\":7}";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *tok = tst_str(tk, cases[i][0]);
        ck_assert_ptr_nonnull(tok);
        expect_refused("POST", "/governance/authorize/", tok, AUTHZ_BODY, cases[i][1]);
        expect_refused("PUT", "/admin/tenant/rate-limit", tok, rate, cases[i][1]);
        expect_refused("PUT", "/admin/drivers/api-key", tok, "{\"enabled\":false}", cases[i][1]);
    }
    /* malformed bearers that look like a JWS */
    expect_refused("GET", "/governance/drivers/", "eyJ.eyJ.x", NULL, "invalid_token");
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs"), 0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM tenants WHERE rate_per_s IS NOT NULL"),
                     0);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM auth_drivers WHERE driver = 'api-key'"),
                     0);
    /* claims of exactly BRK_JWT_MAX_CLAIMS_JSON bytes are accepted (a token past
     * BRK_JWT_MAX_TOKEN is refused above; one at it cannot hold claims within their limit) */
    tst_resp_t r;
    ck_assert_int_eq(strlen(tst_str(tk, "too_long")), 8193);
    ck_assert_int_eq(
        req("POST", "/governance/authorize/", tst_str(tk, "at_limit"), NULL, AUTHZ_BODY, &r), 200);
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM acs"), 1);
    PQfinish(pg);
    json_decref(tk);
    free(spec), free(ok), free(expired), free(early), free(aud), free(iss);
    /* a clean stop: under the sanitizers, nothing leaked or went wrong in the broker */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

START_TEST(neighbours_cannot_cross)
{
    long t = now_s();
    char *beta = claims(BETA_ISS, "carol", "[\"all\"]", "\"gsap\"", t + 600, 0);
    char *acme =
        claims(ACME_ISS, "alice", "[\"gsap-admins\",\"gsap-issuers\"]", "\"gsap\"", t + 600, 0);
    char *foreign = claims(GAMMA_ISS, "did:web:gsap-broker:tenants:acme:users:alice", "[\"all\"]",
                           "\"gsap\"", t + 600, 0);
    char *keydid = claims(GAMMA_ISS, "did:web:gsap-broker:tenants:gamma:keys:0123456789abcdef",
                          "[\"all\"]", "\"gsap\"", t + 600, 0);
    char *own = claims(GAMMA_ISS, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
                       "[\"all\"]", "\"gsap\"", t + 600, 0);
    char *spec = tst_fmt("{\"beta\":{\"kid\":\"beta1\",\"claims\":%s},\"beta_acme_key\":{\"kid\":"
                         "\"rsa1\",\"claims\":%s},"
                         "\"acme_beta_key\":{\"kid\":\"beta1\",\"claims\":%s},\"acme_admin\":{"
                         "\"kid\":\"ed1\",\"claims\":%s},"
                         "\"foreign\":{\"kid\":\"gamma1\",\"claims\":%s},\"keydid\":{\"kid\":"
                         "\"gamma1\",\"claims\":%s},"
                         "\"own\":{\"kid\":\"gamma1\",\"claims\":%s}}",
                         beta, beta, acme, acme, foreign, keydid, own);
    json_t *tk = tokens(spec);
    tst_resp_t r;

    /* beta's token works in beta, and cannot be pointed at acme */
    ck_assert_int_eq(req("GET", "/governance/drivers/", tst_str(tk, "beta"), NULL, NULL, &r), 200);
    ck_assert_str_eq(tst_str(json_array_get(json_object_get(r.json, "drivers"), 1), "issuer"),
                     BETA_ISS);
    tst_resp_clear(&r);
    ck_assert_int_eq(req("POST", "/governance/authorize/", tst_str(tk, "beta"),
                         "X-GSAP-Tenant: acme\r\n", AUTHZ_BODY, &r),
                     403);
    ck_assert_str_eq(err_code(&r), "tenant_forbidden");
    tst_resp_clear(&r);
    /* a token of beta's issuer signed with acme's key, and the other way round */
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "beta_acme_key"), NULL,
                   "unknown_kid");
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "acme_beta_key"), NULL,
                   "unknown_kid");
    /* a subject that names another tenant's DID, or an API key's DID of its own tenant */
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "foreign"), NULL,
                   "principal_forbidden");
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "keydid"), NULL,
                   "principal_forbidden");
    ck_assert_int_eq(req("GET", "/governance/drivers/", tst_str(tk, "own"), NULL, NULL, &r), 200);
    tst_resp_clear(&r);
    /* beta cannot take acme's issuer, nor make DIDs in acme's namespace */
    char *s = jwt_settings(ACME_ISS, "jwks_beta.json", NULL);
    put_driver(BETA_ADMIN, "jwt", s, 409, "issuer_taken");
    free(s);
    s = jwt_settings(BETA_ISS, "jwks_beta.json",
                     "\"did_template\":\"did:web:gsap-broker:tenants:acme:users:{subject}\"");
    put_driver(BETA_ADMIN, "jwt", s, 400, "invalid_settings");
    free(s);
    s = jwt_settings(BETA_ISS, "jwks_beta.json",
                     "\"role_map\":{\"x\":[\"root\"]},\"roles_claim\":\"g\"");
    put_driver(BETA_ADMIN, "jwt", s, 422, "invalid_role");
    free(s);
    put_driver(BETA_ADMIN, "jwt", "{\"enabled\":true}", 400, "invalid_field");
    put_driver(BETA_ADMIN, "nope", "{\"enabled\":true}", 404, "driver_not_found");
    PGconn *pg = tst_pg_connect(DB);
    char *still =
        tst_pg_scalar(pg, "SELECT settings->>'issuer' FROM auth_drivers WHERE tenant_id = 'beta'");
    ck_assert_str_eq(still, BETA_ISS);
    free(still);

    /* acme turns API keys off: its key stops, its admin JWT still works and turns them on */
    put_driver(ADMIN, "api-key", "{\"enabled\":false}", 200, NULL);
    expect_refused("GET", "/governance/drivers/", ADMIN, NULL, "driver_disabled");
    ck_assert_int_eq(req("GET", "/governance/drivers/", BETA_ADMIN, NULL, NULL, &r), 200);
    tst_resp_clear(&r);
    put_driver(tst_str(tk, "acme_admin"), "api-key", "{\"enabled\":true}", 200, NULL);
    ck_assert_int_eq(req("GET", "/governance/drivers/", ADMIN, NULL, NULL, &r), 200);
    tst_resp_clear(&r);
    /* and disabling jwt stops every token of its issuer at once */
    put_driver(ADMIN, "jwt", "{\"enabled\":false}", 200, NULL);
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "acme_admin"), NULL,
                   "unknown_issuer");
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM auth_drivers WHERE tenant_id = 'acme' "
                                     "AND driver = 'jwt' AND settings->>'issuer' = '" ACME_ISS "'"),
                     1);
    PQfinish(pg);
    json_decref(tk);
    free(spec), free(beta), free(acme), free(foreign), free(keydid), free(own);
    /* a clean stop: under the sanitizers, nothing leaked or went wrong in the broker */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

static pid_t serve_jwks(const char *file, unsigned *port)
{
    char *o = oracle_path(), *pf = tst_fmt("%s/port", KDIR);
    unlink(pf);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execlp("node", "node", o, "serve", file, pf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && access(pf, R_OK) != 0; i++)
        usleep(100 * 1000);
    char *p = slurp(pf);
    *port = (unsigned)strtoul(p, NULL, 10);
    ck_assert_uint_gt(*port, 0);
    free(p), free(o), free(pf);
    return pid;
}

/* status of GET /governance/drivers/ with token, polled until it is want (up to secs). */
static int poll_status(const char *token, int want, int secs, char *code, size_t cap)
{
    int st = 0;
    for (int i = 0; i < secs * 5; i++) {
        tst_resp_t r;
        st = req("GET", "/governance/drivers/", token, NULL, NULL, &r);
        snprintf(code, cap, "%s", err_code(&r) ? err_code(&r) : "");
        tst_resp_clear(&r);
        if (st == want)
            break;
        usleep(200 * 1000);
    }
    return st;
}

START_TEST(jwks_url_refresh_follows_rotation)
{
    char *served = tst_fmt("%s/served.json", KDIR), *cmd;
    unsigned port = 0;
    char code[64];
    cmd = tst_fmt("cp %s/jwks_rsa1.json %s", KDIR, served);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    pid_t srv = serve_jwks(served, &port);
    char *s = tst_fmt("{\"enabled\":true,\"settings\":{\"issuer\":\"" DELTA_ISS
                      "\",\"audience\":\"gsap\","
                      "\"jwks_url\":\"http://127.0.0.1:%u/"
                      "jwks\",\"did_template\":\"did:web:idp.delta.test:{subject}\","
                      "\"roles_claim\":\"groups\",\"role_map\":{\"all\":\"auditor\"}}}",
                      port);
    put_driver(DELTA_ADMIN, "jwt", s, 200, NULL);
    free(s);
    long t = now_s();
    char *c = claims(DELTA_ISS, "dave", "[\"all\"]", "\"gsap\"", t + 600, 0);
    char *spec = tst_fmt(
        "{\"old\":{\"kid\":\"rsa1\",\"claims\":%s},\"new\":{\"kid\":\"rsa2\",\"claims\":%s}}", c,
        c);
    json_t *tk = tokens(spec);
    /* the first fetch happens in the background: 503 jwks_unavailable until it is done */
    ck_assert_int_eq(poll_status(tst_str(tk, "old"), 200, 15, code, sizeof code), 200);
    /* rotate on the server: the new kid works after a refresh, the old one stops */
    cmd = tst_fmt("cp %s/jwks_rsa2.json %s.tmp && mv %s.tmp %s", KDIR, served, served, served);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    ck_assert_int_eq(poll_status(tst_str(tk, "new"), 200, 15, code, sizeof code), 200);
    ck_assert_int_eq(poll_status(tst_str(tk, "old"), 401, 15, code, sizeof code), 401);
    ck_assert_str_eq(code, "unknown_kid");
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    json_decref(tk);
    free(spec), free(c), free(served);
    /* a clean stop: under the sanitizers, nothing leaked or went wrong in the broker */
    ck_assert_int_eq(tst_broker_stop(&B), 0);
}
END_TEST

/* A broker by hand (tst_broker_start polls plain HTTP), as it_http's TLS test does. */
START_TEST(plaintext_bearers_never)
{
    static const char *const env[] = {"GSAP_PLAINTEXT_BEARERS=never", NULL};
    tst_broker_t p = {0};
    tst_resp_t r;
    long t = now_s();
    char *c = claims(ACME_ISS, "alice", "[\"gsap-auditors\"]", "\"gsap\"", t + 600, 0);
    char *spec = tst_fmt("{\"ok\":{\"kid\":\"ed1\",\"claims\":%s}}", c);
    json_t *tk = tokens(spec);

    /* plain HTTP from 127.0.0.1 under "never": both drivers' bearers are refused unread */
    ck_assert_int_eq(tst_broker_start(&p, tst_pg_conninfo(DB), env), 0);
    ck_assert_int_eq(tst_get(p.port, "/governance/drivers/", ADMIN, &r), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(err_code(&r), "tls_required");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(p.port, "/governance/drivers/", tst_str(tk, "ok"), &r), 0);
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(err_code(&r), "tls_required");
    tst_resp_clear(&r);
    ck_assert_int_eq(tst_get(p.port, "/healthz", NULL, &r), 0); /* no bearer: not concerned */
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);
    tst_broker_clear(&p);
    /* the default (loopback) accepts them from 127.0.0.1 */
    ck_assert_int_eq(tst_get(B.port, "/governance/drivers/", tst_str(tk, "ok"), &r), 0);
    ck_assert_int_eq(r.status, 200);
    tst_resp_clear(&r);

    /* HTTPS under "never": accepted */
    char dir[] = "/tmp/gsap-jwt-tls-XXXXXX", *cmd, out[64] = "";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    cmd =
        tst_fmt("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                "-subj /CN=localhost -keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
                dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    unsigned short port = 0;
    ck_assert_int_eq(tst_free_port(&port), 0);
    cmd =
        tst_fmt("cd %s && GSAP_DATABASE_URL='%s' GSAP_LISTEN=127.0.0.1:%u GSAP_DATA_DIR=%s "
                "GSAP_PLAINTEXT_BEARERS=never GSAP_TLS_CERT=%s/cert.pem GSAP_TLS_KEY=%s/key.pem "
                "%s serve >%s/log 2>&1 & echo $! >%s/pid",
                dir, tst_pg_conninfo(DB), port, dir, dir, dir, getenv("GSAP_BROKER_BIN"), dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    for (int i = 0; i < 100 && strcmp(out, "200 200") != 0; i++) {
        usleep(100 * 1000);
        cmd = tst_fmt(
            "curl -sk -o /dev/null -w '%%{http_code} ' -H 'Authorization: Bearer %s' "
            "https://127.0.0.1:%u/governance/drivers/ ; curl -sk -o /dev/null -w '%%{http_code}' "
            "-H 'Authorization: Bearer %s' https://127.0.0.1:%u/governance/drivers/",
            ADMIN, port, tst_str(tk, "ok"), port);
        FILE *pp = popen(cmd, "r");
        size_t n = fread(out, 1, sizeof out - 1, pp);
        out[n] = 0;
        pclose(pp);
        free(cmd);
    }
    ck_assert_str_eq(out, "200 200");
    cmd = tst_fmt("kill -TERM $(cat %s/pid); sleep 1; rm -rf %s", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
    json_decref(tk);
    free(spec), free(c);
}
END_TEST

/* The settings body for tenant beta with a JWKS of n copies of beta's key (kids k0..). */
static char *jwks_of(size_t n)
{
    char *path = tst_fmt("%s/jwks_beta.json", KDIR), *text = slurp(path);
    json_t *doc = json_loads(text, 0, NULL), *key = json_array_get(json_object_get(doc, "keys"), 0);
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_deep_copy(key);
        char kid[16];
        snprintf(kid, sizeof kid, "k%zu", i);
        json_object_set_new(c, "kid", json_string(kid));
        json_array_append_new(keys, c);
    }
    json_t *body = json_pack("{s:b,s:{s:s,s:s,s:{s:o}}}", "enabled", 1, "settings", "issuer",
                             BETA_ISS, "audience", "gsap", "jwks", "keys", keys);
    char *out = json_dumps(body, JSON_COMPACT);
    json_decref(body), json_decref(doc);
    free(text), free(path);
    return out;
}

START_TEST(jwks_key_limit_at_put)
{
    char *at = jwks_of(16), *past = jwks_of(17);
    put_driver(BETA_ADMIN, "jwt", past, 400, "invalid_settings");
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT jsonb_array_length(settings->'jwks'->'keys') "
                                     "FROM auth_drivers WHERE tenant_id = 'beta'"), 1);
    put_driver(BETA_ADMIN, "jwt", at, 200, NULL);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT jsonb_array_length(settings->'jwks'->'keys') "
                                     "FROM auth_drivers WHERE tenant_id = 'beta'"), 16);
    PQfinish(pg);
    free(at), free(past);
}
END_TEST

START_TEST(cli_configures_drivers)
{
    int st = -1;
    char *sf = tst_fmt("%s/eps.json", KDIR), *jf = tst_fmt("%s/jwks_gamma.json", KDIR);
    FILE *f = fopen(sf, "w");
    fputs("{\"issuer\":\"https://idp.eps.test\",\"audience\":\"gsap\","
          "\"did_template\":\"did:web:idp.eps.test:{subject}\",\"roles_claim\":\"groups\","
          "\"role_map\":{\"all\":\"auditor\"}}",
          f);
    fclose(f);
    char *out = tst_broker_cli(&B, &st, "drivers", "put", "--tenant", "epsilon", "--driver", "jwt",
                               "--enable", "--settings", sf, "--jwks-file", jf, (char *)NULL);
    ck_assert_msg(st == 0, "drivers put: %d %s", st, out ? out : "");
    json_t *row = json_loads(out, 0, NULL);
    ck_assert(json_is_true(json_object_get(row, "enabled")));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(row, "settings"), "jwks"));
    json_decref(row);
    free(out);
    long t = now_s();
    char *c = claims("https://idp.eps.test", "erin", "[\"all\"]", "\"gsap\"", t + 600, 0);
    char *spec = tst_fmt("{\"ok\":{\"kid\":\"gamma1\",\"claims\":%s}}", c);
    json_t *tk = tokens(spec);
    tst_resp_t r;
    ck_assert_int_eq(req("GET", "/governance/drivers/", tst_str(tk, "ok"), NULL, NULL, &r), 200);
    tst_resp_clear(&r);
    /* another tenant's issuer: refused (1); invalid settings: refused before the database (2) */
    f = fopen(sf, "w");
    fputs("{\"issuer\":\"" BETA_ISS "\",\"audience\":\"gsap\"}", f);
    fclose(f);
    free(tst_broker_cli(&B, &st, "drivers", "put", "--tenant", "zeta", "--driver", "jwt",
                        "--enable", "--settings", sf, "--jwks-file", jf, (char *)NULL));
    ck_assert_int_eq(st, 1);
    f = fopen(sf, "w");
    fputs("{\"issuer\":\"https://idp.zeta.test\",\"audience\":\"gsap\",\"jwks_url\":\"ftp://x\"}",
          f);
    fclose(f);
    free(tst_broker_cli(&B, &st, "drivers", "put", "--tenant", "zeta", "--driver", "jwt",
                        "--enable", "--settings", sf, (char *)NULL));
    ck_assert_int_eq(st, 2);
    PGconn *pg = tst_pg_connect(DB);
    ck_assert_int_eq(tst_pg_long(pg, "SELECT count(*) FROM auth_drivers WHERE tenant_id = 'zeta'"),
                     0);
    PQfinish(pg);
    /* turning epsilon's jwt off from the command line stops its tokens */
    free(tst_broker_cli(&B, &st, "drivers", "put", "--tenant", "epsilon", "--driver", "jwt",
                        "--disable", (char *)NULL));
    ck_assert_int_eq(st, 0);
    expect_refused("GET", "/governance/drivers/", tst_str(tk, "ok"), NULL, "unknown_issuer");
    out = tst_broker_cli(&B, &st, "drivers", "list", "--tenant", "epsilon", (char *)NULL);
    ck_assert_int_eq(st, 0);
    json_t *l = json_loads(out, 0, NULL);
    ck_assert(json_is_false(
        json_object_get(json_array_get(json_object_get(l, "drivers"), 1), "enabled")));
    json_decref(l);
    free(out);
    json_decref(tk);
    free(spec), free(c), free(sf), free(jf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_jwt");
    TCase *tc = tcase_create("jwt");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, valid_tokens_map_principal_and_roles);
    tcase_add_test(tc, refusals_are_401_and_store_nothing);
    tcase_add_test(tc, neighbours_cannot_cross);
    tcase_add_test(tc, jwks_url_refresh_follows_rotation);
    tcase_add_test(tc, plaintext_bearers_never);
    tcase_add_test(tc, cli_configures_drivers);
    tcase_add_test(tc, jwks_key_limit_at_put);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
