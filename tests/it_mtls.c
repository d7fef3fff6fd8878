/*
 * it_mtls: the mtls identity driver end to end: a broker serving HTTPS, client certificates
 * made here at test time with the OpenSSL API (two test CAs; a valid SPIFFE certificate, an
 * expired one, one from the other CA, one without a URI SAN, one outside the prefix), and
 * requests made with the curl command (it sends a client certificate; the harness's client
 * speaks plain HTTP only). Checks status and error code of each refusal, the principal DID
 * and driver in the AC a valid certificate obtains, that tenant B's CA never acts in tenant
 * A, that a bearer decides when both are present, and the configuration routes and CLI with
 * their limits.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "brk_mtls.h"
#include "tst_broker.h"
#include "tst_check.h"
#include "tst_pg.h"
#include "tst_util.h"

#define DB "it_mtls"
#define DAY (24L * 3600)
#define H(c) "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
             c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define AUTHORIZE_BODY                                                                         \
    "{\"accord_template\":\"default\",\"capability_set\":\"0x00000001\",\"operation\":{"       \
    "\"command_hash\":\"" H("1") "\",\"corpus_entry_cid\":\"" H("2") "\","                     \
    "\"parameters_cid\":\"" H("3") "\"}}"

static tst_broker_t B;
static pid_t TLS_PID;
static unsigned short TLS_PORT;
static char DIR_[] = "/tmp/gsap-mtls-XXXXXX";
static char *ADMIN_A, *ADMIN_B, *AUDITOR_A;

/* ---- certificates ---- */

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
    char *path = tst_fmt("%s/%s.pem", DIR_, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
    free(path);
    if (k == NULL)
        return;
    path = tst_fmt("%s/%s.key", DIR_, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    free(path);
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_msg(e != NULL, "extension %d=%s", nid, value);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/*
 * mk_cert: a P-256 certificate named cn, valid from now + nb to now + na (seconds), signed
 * by issuer (itself when NULL); a CA when ca, else a TLS client certificate with the
 * subjectAltName san (NULL: none). Writes DIR_/name.pem and name.key.
 */
/* The extendedKeyUsage mk_cert gives a client certificate. */
static const char *g_eku = "clientAuth,serverAuth";

static void mk_cert(const char *name, X509 *issuer, EVP_PKEY *issuer_key, long nb, long na,
                    int ca, const char *san, X509 **out_x, EVP_PKEY **out_k)
{
    static long serial = 1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ck_assert_ptr_nonnull(k);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), nb);
    X509_gmtime_adj(X509_getm_notAfter(x), na);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
    if (ca) {
        add_ext(x, issuer ? issuer : x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer ? issuer : x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
        add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
        add_ext(x, issuer, NID_ext_key_usage, g_eku);
        if (san != NULL)
            add_ext(x, issuer, NID_subject_alt_name, san);
    }
    ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : k, EVP_sha256()), 0);
    write_pem(name, x, k);
    if (out_x) {
        *out_x = x;
        *out_k = k;
    } else {
        X509_free(x);
        EVP_PKEY_free(k);
    }
}

static void make_certs(void)
{
    X509 *ca_a, *ca_b;
    EVP_PKEY *ka, *kb;
    mk_cert("server", NULL, NULL, -DAY, DAY, 0, "DNS:localhost,IP:127.0.0.1", NULL, NULL);
    mk_cert("ca-a", NULL, NULL, -DAY, 30 * DAY, 1, NULL, &ca_a, &ka);
    mk_cert("ca-b", NULL, NULL, -DAY, 30 * DAY, 1, NULL, &ca_b, &kb);
    mk_cert("valid", ca_a, ka, -DAY, DAY, 0, "URI:spiffe://a.example/ci/runner", NULL, NULL);
    mk_cert("expired", ca_a, ka, -2 * DAY, -DAY, 0, "URI:spiffe://a.example/ci/runner", NULL,
            NULL);
    mk_cert("future", ca_a, ka, DAY, 2 * DAY, 0, "URI:spiffe://a.example/ci/runner", NULL, NULL);
    /* tenant B's CA claiming tenant A's trust domain */
    mk_cert("other-ca", ca_b, kb, -DAY, DAY, 0, "URI:spiffe://a.example/ci/runner", NULL, NULL);
    mk_cert("no-san", ca_a, ka, -DAY, DAY, 0, "DNS:runner.a.example", NULL, NULL);
    mk_cert("two-uris", ca_a, ka, -DAY, DAY, 0,
            "URI:spiffe://a.example/ci/runner,URI:spiffe://a.example/ci/other", NULL, NULL);
    mk_cert("outside", ca_a, ka, -DAY, DAY, 0, "URI:spiffe://a.example/other/x", NULL, NULL);
    mk_cert("b-valid", ca_b, kb, -DAY, DAY, 0, "URI:spiffe://b.example/ci/x", NULL, NULL);
    /* a server certificate is not a client one (purpose sslclient) */
    g_eku = "serverAuth";
    mk_cert("server-only", ca_a, ka, -DAY, DAY, 0, "URI:spiffe://a.example/ci/runner", NULL,
            NULL);
    g_eku = "clientAuth,serverAuth";
    /* BRK_MTLS_URI_MAX bytes of SAN URI, and one more */
    char uri[BRK_MTLS_URI_MAX + 8];
    size_t n = (size_t)snprintf(uri, sizeof uri, "URI:spiffe://a.example/ci/");
    while (n < 4 + BRK_MTLS_URI_MAX)
        uri[n++] = 'u';
    uri[n] = '\0';
    mk_cert("uri-max", ca_a, ka, -DAY, DAY, 0, uri, NULL, NULL);
    uri[n++] = 'u';
    uri[n] = '\0';
    mk_cert("uri-over", ca_a, ka, -DAY, DAY, 0, uri, NULL, NULL);
    /* an intermediate of A, and a client under it that sends the intermediate along */
    X509 *int_a;
    EVP_PKEY *ki;
    mk_cert("int-a", ca_a, ka, -DAY, 30 * DAY, 1, NULL, &int_a, &ki);
    mk_cert("via-int", int_a, ki, -DAY, DAY, 0, "URI:spiffe://a.example/ci/deep", NULL, NULL);
    char *path = tst_fmt("%s/via-int.pem", DIR_);
    FILE *f = fopen(path, "a");
    ck_assert_int_eq(PEM_write_X509(f, int_a), 1);
    fclose(f);
    free(path);
    X509_free(int_a);
    EVP_PKEY_free(ki);
    X509_free(ca_a);
    X509_free(ca_b);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
}

static char *slurp(const char *name)
{
    char *path = tst_fmt("%s/%s", DIR_, name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s", path);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    free(path);
    return buf;
}

/* ---- the HTTPS broker and requests to it ---- */

typedef struct resp {
    int status;
    json_t *json;
    char *body;
} resp_t;

static void resp_clear(resp_t *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/*
 * call: METHOD path over HTTPS with curl, presenting DIR_/cert.pem (cert NULL: no client
 * certificate), with "Authorization: Bearer token" when token is set, one extra header line
 * when header is set, and a JSON body when body is set.
 */
static void call(const char *method, const char *path, const char *cert, const char *token,
                 const char *header, const char *body, resp_t *out)
{
    static int seq;
    char *bodyfile = tst_fmt("%s/req-%d-%d.json", DIR_, (int)getpid(), seq);
    char *outfile = tst_fmt("%s/resp-%d-%d.json", DIR_, (int)getpid(), seq++);
    char *certopt = cert ? tst_fmt("--cert %s/%s.pem --key %s/%s.key", DIR_, cert, DIR_, cert)
                         : tst_fmt("%s", "");
    char *auth = token ? tst_fmt("-H 'Authorization: Bearer %s'", token) : tst_fmt("%s", "");
    char *hdr = header ? tst_fmt("-H '%s'", header) : tst_fmt("%s", "");
    char *data = tst_fmt("%s", "");
    if (body != NULL) {
        FILE *f = fopen(bodyfile, "w");
        fputs(body, f);
        fclose(f);
        free(data);
        data = tst_fmt("-H 'Content-Type: application/json' --data-binary @%s", bodyfile);
    }
    char *cmd = tst_fmt("curl -sk --max-time 30 -X %s %s %s %s %s -o %s -w '%%{http_code}' "
                        "'https://127.0.0.1:%u%s'",
                        method, certopt, auth, hdr, data, outfile, TLS_PORT, path);
    FILE *p = popen(cmd, "r");
    char code[16] = "";
    size_t n = fread(code, 1, sizeof code - 1, p);
    code[n] = '\0';
    pclose(p);
    memset(out, 0, sizeof *out);
    out->status = atoi(code);
    FILE *f = fopen(outfile, "r");
    out->body = malloc(1 << 20);
    n = f ? fread(out->body, 1, (1 << 20) - 1, f) : 0;
    out->body[n] = '\0';
    if (f)
        fclose(f);
    out->json = json_loads(out->body, 0, NULL);
    unlink(outfile);
    unlink(bodyfile);
    free(cmd);
    free(data);
    free(hdr);
    free(auth);
    free(certopt);
    free(outfile);
    free(bodyfile);
}

static const char *err_code(const resp_t *r)
{
    return tst_str(json_object_get(r->json, "error"), "code");
}

/* expect_error: the call answers status with error code (and a request id). */
static void expect_error(const char *method, const char *path, const char *cert,
                         const char *token, const char *header, const char *body, int status,
                         const char *code)
{
    resp_t r;
    call(method, path, cert, token, header, body, &r);
    ck_assert_msg(r.status == status && err_code(&r) != NULL && strcmp(err_code(&r), code) == 0,
                  "%s %s with %s: want %d %s, got %d %s", method, path, cert ? cert : "no cert",
                  status, code, r.status, r.body);
    ck_assert_ptr_nonnull(tst_str(json_object_get(r.json, "error"), "request_id"));
    resp_clear(&r);
}

static json_t *expect_ok(const char *method, const char *path, const char *cert,
                         const char *token, const char *header, const char *body)
{
    resp_t r;
    call(method, path, cert, token, header, body, &r);
    ck_assert_msg(r.status == 200, "%s %s with %s: %d %s", method, path,
                  cert ? cert : "no cert", r.status, r.body);
    json_t *j = json_incref(r.json);
    resp_clear(&r);
    return j;
}

static int tls_start(void)
{
    char *listen = tst_fmt("GSAP_LISTEN=127.0.0.1:%u", TLS_PORT);
    char *dbenv = tst_fmt("GSAP_DATABASE_URL=%s", B.conninfo);
    char *dirv = tst_fmt("GSAP_DATA_DIR=%s", B.dir);
    char *cert = tst_fmt("GSAP_TLS_CERT=%s/server.pem", DIR_);
    char *key = tst_fmt("GSAP_TLS_KEY=%s/server.key", DIR_);
    char *log = tst_fmt("%s/tls-broker.log", DIR_);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        putenv(listen);
        putenv(dbenv);
        putenv(dirv);
        putenv(cert);
        putenv(key);
        putenv("GSAP_THREADS=2");
        /* the refusals below are many 401s from one address */
        putenv("GSAP_AUTH_FAIL_MAX=100000");
        execl(getenv("GSAP_BROKER_BIN"), "gsap-broker", "serve", (char *)NULL);
        _exit(127);
    }
    free(listen);
    free(dbenv);
    free(dirv);
    free(cert);
    free(key);
    free(log);
    TLS_PID = pid;
    for (int i = 0; i < 300; i++) {
        resp_t r;
        call("GET", "/healthz", NULL, NULL, NULL, NULL, &r);
        int ok = r.status == 200;
        resp_clear(&r);
        if (ok)
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

/* A port nothing listens on right now (bind to 0, read it back, close). */
static char *config_body(const char *ca_file, const char *prefix, const char *extra)
{
    char *pem = slurp(ca_file);
    json_t *b = json_pack("{s:s,s:s,s:[s]}", "ca_pem", pem, "san_uri_prefix", prefix, "roles",
                          "issuer");
    if (extra != NULL) {
        json_t *x = json_loads(extra, 0, NULL);
        json_object_update(b, x);
        json_decref(x);
    }
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    free(pem);
    return s;
}

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(DIR_));
    make_certs();
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    ADMIN_A = tst_keys_create(&B, "mt-a", "admin,issuer");
    ADMIN_B = tst_keys_create(&B, "mt-b", "admin,issuer");
    AUDITOR_A = tst_keys_create(&B, "mt-a", "auditor");
    ck_assert_int_eq(tst_free_port(&TLS_PORT), 0);
    ck_assert_int_ne(TLS_PORT, 0);
    ck_assert_int_eq(tst_broker_stop(&B), 0);
    ck_assert_msg(tls_start() == 0, "the HTTPS broker did not start (see %s/tls-broker.log)",
                  DIR_);
    /* tenant A through the admin route, over TLS without a client certificate */
    char *body = config_body("ca-a.pem", "spiffe://a.example/ci/", NULL);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body));
    free(body);
    /* tenant B through the CLI, with its own DID prefix */
    char *ca = tst_fmt("%s/ca-b.pem", DIR_);
    int st = -1;
    char *out = tst_broker_cli(&B, &st, "mtls", "set", "--tenant", "mt-b", "--ca", ca,
                               "--san-prefix", "spiffe://b.example/ci/", "--role", "issuer",
                               "--did-prefix", "did:example:b:", NULL);
    ck_assert_msg(st == 0, "mtls set: %d %s", st, out);
    free(out);
    free(ca);
}

static void teardown(void)
{
    int st = -1;
    if (TLS_PID > 0) {
        kill(TLS_PID, SIGTERM);
        waitpid(TLS_PID, &st, 0);
        TLS_PID = 0;
    }
    /* a clean graceful stop: under the sanitizers, no leak (the peer table included) */
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the HTTPS broker did not stop cleanly (status %d, see %s/tls-broker.log)", st,
                  DIR_);
    tst_broker_clear(&B);
    if (getenv("GSAP_TEST_KEEP") == NULL) {
        char *cmd = tst_fmt("rm -rf %s", DIR_);
        ck_assert_int_eq(system(cmd), 0);
        free(cmd);
    }
    free(ADMIN_A);
    free(ADMIN_B);
    free(AUDITOR_A);
}

/* ---- tests ---- */

START_TEST(valid_cert_gets_an_ac)
{
    json_t *ac = expect_ok("POST", "/governance/authorize/", "valid", NULL, NULL, AUTHORIZE_BODY);
    ck_assert_str_eq(tst_str(ac, "status"), "authorized");
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"),
                     "did:web:a.example:ci:runner");
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "display_name"),
                     "spiffe://a.example/ci/runner");
    json_t *idp = json_object_get(ac, "identity_proof");
    ck_assert_str_eq(tst_str(idp, "driver"), "mtls");
    ck_assert_str_eq(tst_str(idp, "tenant"), "mt-a");
    /* the AC is stored in tenant A */
    PGconn *c = tst_pg_connect(DB);
    char *sql = tst_fmt("SELECT tenant_id FROM acs WHERE context_id = '%s'",
                        tst_str(ac, "context_id"));
    char *t = tst_pg_scalar(c, sql);
    ck_assert_str_eq(t, "mt-a");
    free(t);
    free(sql);
    PQfinish(c);
    json_decref(ac);
    /* the certificate's roles are the configured ones: issuer, not admin */
    expect_error("GET", "/admin/identity/mtls", "valid", NULL, NULL, NULL, 403, "forbidden");
}
END_TEST

START_TEST(refused_certificates)
{
    PGconn *c = tst_pg_connect(DB);
    long before = tst_pg_long(c, "SELECT count(*) FROM acs");
    expect_error("POST", "/governance/authorize/", "expired", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_expired");
    expect_error("POST", "/governance/authorize/", "future", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_not_yet_valid");
    expect_error("POST", "/governance/authorize/", "other-ca", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_untrusted");
    expect_error("POST", "/governance/authorize/", "server-only", NULL, NULL, AUTHORIZE_BODY,
                 401, "cert_untrusted");
    expect_error("POST", "/governance/authorize/", "no-san", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_no_san_uri");
    expect_error("POST", "/governance/authorize/", "two-uris", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_bad_san_uri");
    expect_error("POST", "/governance/authorize/", "outside", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_san_not_allowed");
    /* the SAN URI's length: BRK_MTLS_URI_MAX bytes work, one more does not */
    json_t *ac = expect_ok("POST", "/governance/authorize/", "uri-max", NULL, NULL,
                           AUTHORIZE_BODY);
    const char *did = tst_str(json_object_get(ac, "principal"), "did");
    ck_assert_uint_eq(strlen(did), strlen("did:web:") + BRK_MTLS_URI_MAX - strlen("spiffe://"));
    json_decref(ac);
    before++;
    expect_error("POST", "/governance/authorize/", "uri-over", NULL, NULL, AUTHORIZE_BODY, 401,
                 "cert_bad_san_uri");
    /* a CA is not a client: the CA's own certificate (no SAN URI) */
    expect_error("GET", "/governance/drivers/", "ca-a", NULL, NULL, NULL, 401, "cert_no_san_uri");
    /* nothing was issued to any of them */
    ck_assert_int_eq(tst_pg_long(c, "SELECT count(*) FROM acs"), before);
    PQfinish(c);
}
END_TEST

START_TEST(chain_through_intermediate)
{
    json_t *ac = expect_ok("POST", "/governance/authorize/", "via-int", NULL, NULL,
                           AUTHORIZE_BODY);
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"),
                     "did:web:a.example:ci:deep");
    json_decref(ac);
}
END_TEST

/* A certificate that does not authenticate is ignored where no credential is needed: a view
 * link still opens the session page, /metrics still answers loopback. */
START_TEST(unrelated_cert_on_open_routes)
{
    json_t *ac = expect_ok("POST", "/governance/authorize/", "valid", NULL, NULL, AUTHORIZE_BODY);
    char *p = tst_fmt("/governance/session/%s/link", tst_str(ac, "context_id"));
    json_t *link = expect_ok("POST", p, "valid", NULL, NULL, NULL);
    const char *path = strstr(tst_str(link, "url"), "/governance/session/");
    ck_assert_ptr_nonnull(path);
    json_t *page = expect_ok("GET", path, "no-san", NULL, "Accept: application/json", NULL);
    ck_assert_str_eq(tst_str(json_object_get(page, "ac"), "context_id"),
                     tst_str(ac, "context_id"));
    json_decref(page);
    /* the same link with a certificate of another CA, and with none */
    json_decref(expect_ok("GET", path, "other-ca", NULL, "Accept: application/json", NULL));
    json_decref(expect_ok("GET", path, NULL, NULL, "Accept: application/json", NULL));
    /* but the page without the link stays closed to a failing certificate */
    char *bare = tst_fmt("/governance/session/%s/", tst_str(ac, "context_id"));
    resp_t r;
    call("GET", bare, "no-san", NULL, "Accept: application/json", NULL, &r);
    ck_assert_int_eq(r.status, 401);
    resp_clear(&r);
    /* /metrics from loopback */
    call("GET", "/metrics", "no-san", NULL, NULL, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "gsap_auth_failures_total"));
    resp_clear(&r);
    free(bare);
    json_decref(link);
    free(p);
    json_decref(ac);
}
END_TEST

START_TEST(tenant_b_never_acts_in_a)
{
    /* B's CA signing a certificate in A's trust domain: A's CA refuses it */
    expect_error("GET", "/governance/drivers/", "other-ca", NULL, NULL, NULL, 401,
                 "cert_untrusted");
    /* B's own certificate asking for tenant A */
    expect_error("GET", "/governance/drivers/", "b-valid", NULL, "X-GSAP-Tenant: mt-a", NULL, 403,
                 "tenant_forbidden");
    /* in its own tenant it works, with the DID prefix set by the CLI */
    json_t *ac = expect_ok("POST", "/governance/authorize/", "b-valid", NULL, NULL,
                           AUTHORIZE_BODY);
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"), "did:example:b:x");
    ck_assert_str_eq(tst_str(json_object_get(ac, "identity_proof"), "tenant"), "mt-b");
    json_decref(ac);
    /* B cannot take A's trust domain, through the route or the CLI */
    char *body = config_body("ca-b.pem", "spiffe://a.example/", NULL);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_B, NULL, body, 409,
                 "trust_domain_taken");
    free(body);
    char *ca = tst_fmt("%s/ca-b.pem", DIR_);
    int st = -1;
    char *out = tst_broker_cli(&B, &st, "mtls", "set", "--tenant", "mt-b", "--ca", ca,
                               "--san-prefix", "spiffe://a.example/x/", "--role", "admin", NULL);
    ck_assert_int_eq(st, 1);
    free(out);
    free(ca);
    json_t *cfg = expect_ok("GET", "/admin/identity/mtls", NULL, ADMIN_B, NULL, NULL);
    ck_assert_str_eq(tst_str(cfg, "trust_domain"), "spiffe://b.example");
    json_decref(cfg);
}
END_TEST

START_TEST(bearer_and_no_cert)
{
    /* no certificate: the API key works over TLS as before */
    json_t *keys = expect_ok("GET", "/admin/keys", NULL, ADMIN_A, NULL, NULL);
    ck_assert_str_eq(tst_str(keys, "tenant_id"), "mt-a");
    json_decref(keys);
    /* no certificate, no token */
    expect_error("GET", "/admin/keys", NULL, NULL, NULL, NULL, 401, "missing_token");
    /* both: the bearer decides (tenant B's admin key with tenant A's certificate) */
    json_t *cfg = expect_ok("GET", "/admin/identity/mtls", "valid", ADMIN_B, NULL, NULL);
    ck_assert_str_eq(tst_str(cfg, "tenant_id"), "mt-b");
    json_decref(cfg);
    /* a bad bearer is not rescued by a good certificate */
    expect_error("GET", "/governance/drivers/", "valid", "gsap.mt-a.0000000000000000.x", NULL,
                 NULL, 401, "invalid_token");
}
END_TEST

START_TEST(disable_takes_effect)
{
    json_t *cfg = expect_ok("GET", "/admin/identity/mtls", NULL, ADMIN_A, NULL, NULL);
    ck_assert_int_eq(json_is_true(json_object_get(cfg, "enabled")), 1);
    json_decref(cfg);
    char *body = config_body("ca-a.pem", "spiffe://a.example/ci/", "{\"enabled\":false}");
    cfg = expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body);
    ck_assert_int_eq(json_is_false(json_object_get(cfg, "enabled")), 1);
    json_decref(cfg);
    free(body);
    expect_error("GET", "/governance/drivers/", "valid", NULL, NULL, NULL, 401,
                 "mtls_not_configured");
    body = config_body("ca-a.pem", "spiffe://a.example/ci/", NULL);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body));
    free(body);
    /* the drivers list shows mtls enabled with the trust domain a client needs */
    json_t *dl = expect_ok("GET", "/governance/drivers/", "valid", NULL, NULL, NULL);
    json_t *m = NULL;
    for (size_t i = 0; i < json_array_size(json_object_get(dl, "drivers")); i++)
        if (strcmp(json_string_value(json_object_get(
                       json_array_get(json_object_get(dl, "drivers"), i), "name")),
                   "mtls") == 0)
            m = json_array_get(json_object_get(dl, "drivers"), i);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(json_is_true(json_object_get(m, "enabled")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(m, "trust_domain")), "spiffe://a.example");
    ck_assert_ptr_null(json_object_get(m, "ca_pem"));
    json_decref(dl);
    /* ...and it is configured with its own route only */
    expect_error("PUT", "/admin/drivers/mtls", NULL, ADMIN_A, NULL, "{\"enabled\":true}", 400,
                 "driver_has_own_route");
    /* replacing the CA by B's: A's own certificates stop working at once */
    body = config_body("ca-b.pem", "spiffe://a.example/ci/", NULL);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body));
    free(body);
    expect_error("GET", "/governance/drivers/", "valid", NULL, NULL, NULL, 401, "cert_untrusted");
    body = config_body("ca-a.pem", "spiffe://a.example/ci/", NULL);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body));
    free(body);
}
END_TEST

START_TEST(config_validation_and_limits)
{
    json_t *cfg = expect_ok("GET", "/admin/identity/mtls", NULL, ADMIN_A, NULL, NULL);
    ck_assert_str_eq(tst_str(cfg, "san_uri_prefix"), "spiffe://a.example/ci/");
    ck_assert_ptr_null(json_object_get(cfg, "ca_pem"));
    json_t *c0 = json_array_get(json_object_get(cfg, "ca_certs"), 0);
    ck_assert_str_eq(tst_str(c0, "subject"), "/CN=ca-a");
    ck_assert_uint_eq(strlen(tst_str(c0, "sha256")), 64);
    json_decref(cfg);
    /* roles as the other admin routes */
    expect_error("GET", "/admin/identity/mtls", NULL, AUDITOR_A, NULL, NULL, 403, "forbidden");
    /* a prefix must end at a segment boundary; a DID prefix must be a DID's start */
    char *body = config_body("ca-a.pem", "spiffe://a.example/ci", NULL);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body, 400,
                 "invalid_san_uri_prefix");
    free(body);
    body = config_body("ca-a.pem", "spiffe://a.example/ci/", "{\"did_prefix\":\"web:x\"}");
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body, 400,
                 "invalid_did_prefix");
    free(body);
    /* a leaf is not a CA; a key is not a certificate */
    body = config_body("valid.pem", "spiffe://a.example/ci/", NULL);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body, 400, "invalid_ca");
    free(body);
    body = config_body("valid.key", "spiffe://a.example/ci/", NULL);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, body, 400, "invalid_ca");
    free(body);
    /* BRK_MTLS_CA_CERTS_MAX certificates, and one more */
    char *pem = slurp("ca-a.pem");
    size_t pl = strlen(pem);
    char *many = calloc(1, pl * (BRK_MTLS_CA_CERTS_MAX + 1) + 1);
    for (int i = 0; i < BRK_MTLS_CA_CERTS_MAX; i++)
        memcpy(many + i * pl, pem, pl);
    json_t *b = json_pack("{s:s,s:s,s:[s]}", "ca_pem", many, "san_uri_prefix",
                          "spiffe://a.example/ci/", "roles", "issuer");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s));
    free(s);
    memcpy(many + BRK_MTLS_CA_CERTS_MAX * pl, pem, pl);
    json_object_set_new(b, "ca_pem", json_string(many));
    s = json_dumps(b, JSON_COMPACT);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s, 400, "invalid_ca");
    free(s);
    /* BRK_MTLS_CA_PEM_MAX bytes (the PEM, then blank lines), and one more */
    char *big = malloc(BRK_MTLS_CA_PEM_MAX + 2);
    memcpy(big, pem, pl);
    memset(big + pl, '\n', BRK_MTLS_CA_PEM_MAX - pl);
    big[BRK_MTLS_CA_PEM_MAX] = '\0';
    json_object_set_new(b, "ca_pem", json_string(big));
    s = json_dumps(b, JSON_COMPACT);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s));
    free(s);
    big[BRK_MTLS_CA_PEM_MAX] = '\n';
    big[BRK_MTLS_CA_PEM_MAX + 1] = '\0';
    json_object_set_new(b, "ca_pem", json_string(big));
    s = json_dumps(b, JSON_COMPACT);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s, 400, "field_too_long");
    free(s);
    /* BRK_MTLS_URI_MAX for the prefix: exactly, and one more */
    char prefix[BRK_MTLS_URI_MAX + 2];
    size_t n = (size_t)snprintf(prefix, sizeof prefix, "spiffe://a.example/ci/");
    while (n < BRK_MTLS_URI_MAX - 1)
        prefix[n++] = 'p';
    prefix[n++] = '/';
    prefix[n] = '\0';
    json_object_set_new(b, "ca_pem", json_string(pem));
    json_object_set_new(b, "san_uri_prefix", json_string(prefix));
    s = json_dumps(b, JSON_COMPACT);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s));
    free(s);
    memmove(prefix + 1, prefix, n + 1); /* "sspiffe://...": one byte longer, still well formed */
    json_object_set_new(b, "san_uri_prefix", json_string(prefix));
    s = json_dumps(b, JSON_COMPACT);
    expect_error("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s, 400, "field_too_long");
    free(s);
    /* the refused ones changed nothing: the last accepted configuration is in force */
    cfg = expect_ok("GET", "/admin/identity/mtls", NULL, ADMIN_A, NULL, NULL);
    ck_assert_uint_eq(strlen(tst_str(cfg, "san_uri_prefix")), BRK_MTLS_URI_MAX);
    json_decref(cfg);
    /* back to the configuration the other tests use */
    json_object_set_new(b, "san_uri_prefix", json_string("spiffe://a.example/ci/"));
    s = json_dumps(b, JSON_COMPACT);
    json_decref(expect_ok("PUT", "/admin/identity/mtls", NULL, ADMIN_A, NULL, s));
    free(s);
    json_decref(b);
    free(big);
    free(many);
    free(pem);
    /* the CLI refuses a bad CA file before touching the database */
    char *ca = tst_fmt("%s/valid.pem", DIR_);
    int st = -1;
    char *out = tst_broker_cli(&B, &st, "mtls", "set", "--tenant", "mt-a", "--ca", ca,
                               "--san-prefix", "spiffe://a.example/ci/", "--role", "admin", NULL);
    ck_assert_int_eq(st, 2);
    free(out);
    free(ca);
    out = tst_broker_cli(&B, &st, "mtls", "show", "--tenant", "mt-a", NULL);
    ck_assert_int_eq(st, 0);
    json_t *shown = json_loads(out, 0, NULL);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(shown, "roles"), 0)),
                     "issuer");
    json_decref(shown);
    free(out);
}
END_TEST

/*
 * resumed_session_keeps_cert: a resumed TLS session sends no certificate; the broker still
 * finds the one the session was made with (the handshake-done callback fires on resumption
 * too). TLS 1.2 (session ids) and TLS 1.3 (tickets), with openssl s_client.
 */
START_TEST(resumed_session_keeps_cert)
{
    const char *versions[] = {"-tls1_2", "-tls1_3"};
    for (int v = 0; v < 2; v++) {
        char *sess = tst_fmt("%s/sess-%d", DIR_, v);
        int reused = 0;
        for (int round = 0; round < 2; round++) {
            char *cmd = tst_fmt(
                "printf 'GET /governance/drivers/ HTTP/1.1\\r\\nHost: x\\r\\n"
                "Connection: close\\r\\n\\r\\n' | openssl s_client %s -connect "
                "127.0.0.1:%u -cert %s/valid.pem -key %s/valid.key %s %s -ign_eof 2>&1",
                versions[v], TLS_PORT, DIR_, DIR_, round ? "-sess_in" : "-sess_out", sess);
            FILE *p = popen(cmd, "r");
            char *out = calloc(1, 1 << 16);
            size_t n = fread(out, 1, (1 << 16) - 1, p);
            out[n] = '\0';
            pclose(p);
            ck_assert_msg(strstr(out, "HTTP/1.1 200") != NULL, "%s round %d: %s", versions[v],
                          round, out);
            if (round == 1)
                reused = strstr(out, "Reused,") != NULL;
            free(out);
            free(cmd);
        }
        ck_assert_msg(reused, "%s: the second connection did not resume", versions[v]);
        free(sess);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("it_mtls");
    TCase *tc = tcase_create("mtls");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, valid_cert_gets_an_ac);
    tcase_add_test(tc, refused_certificates);
    tcase_add_test(tc, chain_through_intermediate);
    tcase_add_test(tc, unrelated_cert_on_open_routes);
    tcase_add_test(tc, tenant_b_never_acts_in_a);
    tcase_add_test(tc, bearer_and_no_cert);
    tcase_add_test(tc, disable_takes_effect);
    tcase_add_test(tc, config_validation_and_limits);
    tcase_add_test(tc, resumed_session_keeps_cert);
    suite_add_tcase(s, tc);
    return tst_run(s);
}
