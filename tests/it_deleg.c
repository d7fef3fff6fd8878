/*
 * it_deleg: delegation against the real binary and PostgreSQL (docs/protocol.md
 * "Delegation"): who may create, read, list and revoke (another key of the tenant and a
 * neighbour tenant may not); narrowing refused field by field at depth 1, 2 and 3; the depth
 * limit; ACs under a delegation (scope, on_behalf_of, max_commands, the signed chain); the
 * cascade revocation while 16 threads issue ACs under the subtree; the spend limit at its
 * boundary with CRs billed by the runtime; delegations made by the Agent Passport System SDK
 * (tests/npm/aps_deleg.mjs) accepted, and refused when tampered with.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tst_check.h"
#include "tst_broker.h"
#include "tst_pg.h"
#include "tst_util.h"

#define H(c)                                                                                       \
    "sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c c c c c c c c c c c
#define CMD H("1")
#define CORPUS H("2")
#define PARAMS H("3")
#define OTHER H("4")
#define CMD2 H("5")
#define DB "it_deleg"
#define LINE_WAIT_S 30 /* the runtime bills a CR within this */
#define RACE_THREADS 16

static tst_broker_t B;
static char *OWNER, *A1, *A2, *A3, *A4, *PEER, *EXEC, *AUDITOR, *NEIGHBOUR;
static char DID_PREFIX[256]; /* "did:web:<broker>:tenants:acme:keys:" */
static char PUBKEY[64];      /* the broker's signing key (base64url), for the oracle */

/* tests/npm/gsap_oracle.mjs verify: 1 when doc's signature and CID verify independently
 * (canonicalize + @noble/ed25519) with the broker's published key, else 0. */
static int oracle_verifies(const json_t *doc)
{
    char path[] = "/tmp/gsap-dlg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    json_dumpf(doc, f, JSON_COMPACT);
    fclose(f);
    char *cmd = tst_fmt("node %s/tests/npm/gsap_oracle.mjs verify %s %s >/dev/null 2>&1",
                        getenv("GSAP_SOURCE_DIR"), path, PUBKEY);
    int rc = system(cmd);
    unlink(path);
    free(cmd);
    return rc == 0;
}

static const char *key_id_of(const char *token)
{
    static char id[64];
    const char *a = strchr(token, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    const char *c = b ? strchr(b + 1, '.') : NULL;
    ck_assert_ptr_nonnull(c);
    snprintf(id, sizeof id, "%.*s", (int)(c - b - 1), b + 1);
    return id;
}

/* The DID of a key of tenant acme (gov_principal_did). */
static char *did_of(const char *token)
{
    return tst_fmt("%s%s", DID_PREFIX, key_id_of(token));
}

static char *cli_key(const char *tenant, const char *roles, int delegate)
{
    int st;
    char *t = tst_broker_cli(&B, &st, "keys", "create", "--tenant", tenant, "--role", roles,
                             delegate ? "--delegate" : NULL, NULL);
    ck_assert_int_eq(st, 0);
    return t;
}

static long count(const char *sql)
{
    PGconn *pg = tst_pg_connect(DB);
    long n = tst_pg_long(pg, sql);
    PQfinish(pg);
    return n;
}

static json_t *authorize(const char *token, const char *extra, int expect, const char *code)
{
    char *body = tst_fmt("{\"accord_template\":\"default\",\"operation\":{\"command_hash\":\"%s\","
                         "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}%s%s}",
                         CMD, CORPUS, PARAMS, extra ? "," : "", extra ? extra : "");
    json_t *j = tst_call_json(B.port, "POST", "/governance/authorize/", token, body, expect, code);
    free(body);
    return j;
}

/* An AC under delegation id (more members in extra). */
static json_t *authorize_under(const char *token, const char *id, const char *extra, int expect,
                               const char *code)
{
    char *x = tst_fmt("\"delegation_id\":\"%s\"%s%s", id, extra ? "," : "", extra ? extra : "");
    json_t *j = authorize(token, x, expect, code);
    free(x);
    return j;
}

static const char *now_utc(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* A CR on ctx, completed now in no time; the answer. */
static json_t *complete(const char *ctx, int expect, const char *code)
{
    char now[32];
    now_utc(now);
    char *b = tst_fmt("{\"context_id\":\"%s\",\"outcome\":\"completed\",\"exit_code\":0,"
                      "\"started_at\":\"%s\",\"completed_at\":\"%s\",\"command_hash\":\"%s\","
                      "\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\",\"chronicle\":"
                      "{\"session_id\":\"s\",\"behavior_state\":\"verified\"}}",
                      ctx, now, now, CMD, CORPUS, PARAMS);
    json_t *j = tst_call_json(B.port, "POST", "/governance/complete/", EXEC, b, expect, code);
    free(b);
    return j;
}

/* Creates a delegation (body: the members); the answer. */
static json_t *create(const char *token, const char *body, int expect, const char *code)
{
    return tst_call_json(B.port, "POST", "/delegations/", token, body, expect, code);
}

/* The id of a delegation created with body by token (201 expected); malloc'd. */
static char *create_id(const char *token, const char *body)
{
    json_t *j = create(token, body, 201, NULL);
    char *id = strdup(tst_str(j, "delegation_id"));
    json_decref(j);
    return id;
}

static long deleg_rows(void)
{
    return count("SELECT count(*) FROM delegations");
}

static void setup(void)
{
    ck_assert_int_eq(tst_broker_start(&B, tst_pg_createdb(DB), NULL), 0);
    OWNER = cli_key("acme", "issuer", 1);
    A1 = tst_keys_create(&B, "acme", "issuer");
    A2 = tst_keys_create(&B, "acme", "issuer");
    A3 = tst_keys_create(&B, "acme", "issuer");
    A4 = tst_keys_create(&B, "acme", "issuer");
    PEER = cli_key("acme", "issuer", 1);
    EXEC = tst_keys_create(&B, "acme", "executor");
    AUDITOR = tst_keys_create(&B, "acme", "auditor");
    NEIGHBOUR = cli_key("globex", "issuer,executor,auditor", 1);
    json_t *ac = authorize(PEER, NULL, 200, NULL);
    const char *did = tst_str(json_object_get(ac, "principal"), "did");
    snprintf(DID_PREFIX, sizeof DID_PREFIX, "%.*s", (int)(strrchr(did, ':') + 1 - did), did);
    json_decref(ac);
    tst_resp_t r;
    ck_assert_int_eq(tst_get(B.port, "/.well-known/gsap-broker.json", NULL, &r), 0);
    snprintf(PUBKEY, sizeof PUBKEY, "%s",
             tst_str(json_array_get(json_object_get(r.json, "keys"), 0), "public_key"));
    tst_resp_clear(&r);
}

static void teardown(void)
{
    tst_broker_clear(&B);
    free(OWNER), free(A1), free(A2), free(A3), free(A4), free(PEER), free(EXEC), free(AUDITOR);
    free(NEIGHBOUR);
}

/* ---- who may create, read, list, revoke ---- */

START_TEST(who_may_create_read_revoke)
{
    char *a1 = did_of(A1);
    char *body = tst_fmt("{\"agent_did\":\"%s\",\"capability_set\":\"0x0000000f\"}", a1);
    /* a key without can_delegate cannot make a root; nothing is stored */
    json_decref(create(A1, body, 403, "delegation_forbidden"));
    ck_assert_int_eq(deleg_rows(), 0);
    json_t *d = create(OWNER, body, 201, NULL);
    const char *id = tst_str(d, "delegation_id");
    json_t *doc = json_object_get(d, "document");
    ck_assert_str_eq(tst_str(doc, "agent_did"), a1);
    ck_assert_int_eq(strncmp(tst_str(doc, "delegation_cid"), "sha256:", 7), 0);
    ck_assert_int_eq(strncmp(tst_str(doc, "signature"), "ed25519:", 8), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "max_delegation_depth")), 1);
    /* the document verifies independently; a changed scope does not */
    ck_assert(oracle_verifies(doc));
    json_t *forged = json_deep_copy(doc);
    json_object_set_new(json_object_get(forged, "scope"), "capability_set",
                        json_string("0xffffffff"));
    ck_assert(!oracle_verifies(forged));
    json_decref(forged);
    ck_assert_int_eq(count("SELECT count(*) FROM events WHERE type = 'GSAP_DELEGATION_CREATED'"),
                     1);
    char *path = tst_fmt("/delegations/%s", id);
    char *rpath = tst_fmt("/delegations/%s/revoke", id);
    /* the owner, the agent and an auditor read it; another key of the tenant and a neighbour
     * tenant get 404, as for a delegation that does not exist */
    json_t *g = tst_call_json(B.port, "GET", path, OWNER, NULL, 200, NULL);
    ck_assert_str_eq(tst_str(g, "status"), "active");
    ck_assert_str_eq(tst_str(json_object_get(g, "document"), "delegation_cid"),
                     tst_str(doc, "delegation_cid"));
    json_decref(g);
    json_decref(tst_call_json(B.port, "GET", path, A1, NULL, 200, NULL));
    json_decref(tst_call_json(B.port, "GET", path, AUDITOR, NULL, 200, NULL));
    json_decref(tst_call_json(B.port, "GET", path, PEER, NULL, 404, "delegation_not_found"));
    json_decref(tst_call_json(B.port, "GET", path, NEIGHBOUR, NULL, 404, "delegation_not_found"));
    json_decref(tst_call_json(B.port, "GET", "/delegations/dlg_nope", OWNER, NULL, 404,
                              "delegation_not_found"));
    /* lists: the peer's and the neighbour's are empty; paging by ?limit&after */
    json_t *second = create(OWNER, body, 201, NULL);
    json_t *l = tst_call_json(B.port, "GET", "/delegations/?limit=1", OWNER, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "delegations")), 1);
    const char *next = tst_str(l, "next");
    ck_assert_ptr_nonnull(strstr(next, "after=dlg_"));
    json_t *l2 = tst_call_json(B.port, "GET", next, OWNER, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l2, "delegations")), 1);
    ck_assert_str_eq(
        tst_str(json_array_get(json_object_get(l2, "delegations"), 0), "delegation_id"), id);
    ck_assert(json_is_null(json_object_get(l2, "next")));
    json_decref(l), json_decref(l2);
    l = tst_call_json(B.port, "GET", "/delegations/", PEER, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "delegations")), 0);
    json_decref(l);
    l = tst_call_json(B.port, "GET", "/delegations/", NEIGHBOUR, NULL, 200, NULL);
    ck_assert_int_eq(json_array_size(json_object_get(l, "delegations")), 0);
    json_decref(l);
    json_decref(
        tst_call_json(B.port, "GET", "/delegations/?limit=501", OWNER, NULL, 400, "invalid_query"));
    json_decref(tst_call_json(B.port, "GET", "/delegations/?limit=500", OWNER, NULL, 200, NULL));
    /* the peer and the neighbour cannot revoke, sub-delegate or issue under it */
    json_decref(tst_call_json(B.port, "POST", rpath, PEER, NULL, 404, "delegation_not_found"));
    json_decref(tst_call_json(B.port, "POST", rpath, NEIGHBOUR, NULL, 404, "delegation_not_found"));
    json_decref(tst_call_json(B.port, "POST", rpath, AUDITOR, NULL, 403, NULL));
    char *sub = tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\"}", id, a1);
    json_decref(create(PEER, sub, 404, "delegation_not_found"));
    json_decref(create(NEIGHBOUR, sub, 404, "delegation_not_found"));
    json_decref(authorize_under(PEER, id, NULL, 404, "delegation_not_found"));
    json_decref(authorize_under(NEIGHBOUR, id, NULL, 404, "delegation_not_found"));
    ck_assert_int_eq(deleg_rows(), 2);
    ck_assert_int_eq(count("SELECT count(*) FROM delegations WHERE status = 'active'"), 2);
    /* the owner revokes (idempotent) */
    json_t *rv = tst_call_json(B.port, "POST", rpath, OWNER, NULL, 200, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(rv, "delegations_revoked")), 1);
    json_decref(rv);
    rv = tst_call_json(B.port, "POST", rpath, OWNER, NULL, 200, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(rv, "delegations_revoked")), 0);
    json_decref(rv);
    ck_assert_int_eq(count("SELECT count(*) FROM events WHERE type = 'GSAP_DELEGATION_REVOKED'"),
                     1);
    json_decref(d), json_decref(second);
    free(a1), free(body), free(path), free(rpath), free(sub);
}
END_TEST

/* ---- narrowing at every depth ---- */

START_TEST(narrowing_at_every_depth)
{
    const char *holders[] = {OWNER, A1, A2, A3, A4};
    char *dids[5];
    for (int i = 0; i < 5; i++)
        dids[i] = did_of(holders[i]);
    /* root: caps 0xff, accords [default, ops], corpus [CORPUS, OTHER], prohibits CMD2,
     * 1000 commands, spend 1000, 1 day, max depth 3 */
    char *root = tst_fmt("{\"agent_did\":\"%s\",\"capability_set\":\"0x000000ff\",\"accords\":"
                         "[\"default\",\"ops\"],\"corpus_cids\":[\"%s\",\"%s\"],"
                         "\"prohibited_command_hashes\":[\"%s\"],\"max_commands\":1000,"
                         "\"spend_limit_minor\":1000,\"ttl_seconds\":86400,"
                         "\"max_delegation_depth\":3}",
                         dids[1], CORPUS, OTHER, CMD2);
    char *parent = create_id(OWNER, root);
    free(root);
    long rows = 1;
    for (int depth = 1; depth <= 3; depth++) {
        const char *holder = holders[depth];
        /* each field widened, one at a time, over a child that is otherwise exactly its
         * parent's narrowest allowed copy */
        const char *base = "\"capability_set\":\"0x0000000f\",\"accords\":[\"default\"],"
                           "\"corpus_cids\":[\"" CORPUS "\"],\"prohibited_command_hashes\":[\"" CMD2
                           "\"],\"spend_limit_minor\":100,\"max_delegation_depth\":3";
        const struct {
            const char *member, *field;
        } wide[] = {
            {"\"capability_set\":\"0x000001ff\"", "capability_set"},
            {"\"accords\":[\"default\",\"other\"]", "accords"},
            {"\"accords\":null", "accords"},
            {"\"corpus_cids\":[\"" CORPUS "\",\"" PARAMS "\"]", "corpus_cids"},
            {"\"prohibited_command_hashes\":[]", "prohibited_command_hashes"},
            {"\"ttl_seconds\":2000000", "expires_at"},
            {"\"max_commands\":100000", "max_commands"},
            {"\"spend_limit_minor\":100000", "spend_limit_minor"},
            {"\"max_delegation_depth\":4", "max_delegation_depth"},
        };
        for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
            /* the widened member replaces the base's */
            char *bs = tst_fmt("{%s}", base), *ws = tst_fmt("{%s}", wide[i].member);
            json_t *b = json_loads(bs, 0, NULL), *w = json_loads(ws, 0, NULL);
            free(bs), free(ws);
            json_object_update(b, w);
            json_object_set_new(b, "parent_id", json_string(parent));
            json_object_set_new(b, "agent_did", json_string(dids[depth + 1]));
            char *s = json_dumps(b, JSON_COMPACT);
            json_t *e = create(holder, s, 403, "narrowing_violation");
            ck_assert_msg(strstr(tst_str(json_object_get(e, "error"), "message"), wide[i].field) !=
                              NULL,
                          "depth %d: %s", depth, tst_str(json_object_get(e, "error"), "message"));
            json_decref(e), json_decref(b), json_decref(w);
            free(s);
        }
        ck_assert_int_eq(deleg_rows(), rows);
        /* the holder of the parent only: the owner cannot make a child of a delegation it
         * does not hold (below the root), nor can the next agent */
        char *ok = tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\",%s}", parent,
                           dids[depth + 1], base);
        if (depth > 1)
            json_decref(create(OWNER, ok, 404, "delegation_not_found"));
        json_decref(create(holders[depth + 1], ok, 404, "delegation_not_found"));
        char *child = create_id(holder, ok);
        rows++;
        char *gpath = tst_fmt("/delegations/%s", child);
        json_t *g = tst_call_json(B.port, "GET", gpath, OWNER, NULL, 200, NULL);
        free(gpath);
        ck_assert_int_eq(json_integer_value(json_object_get(g, "depth")), depth);
        ck_assert_int_eq(json_array_size(json_object_get(g, "chain")), (size_t)depth + 1);
        ck_assert_str_eq(tst_str(g, "delegator_did"), dids[depth]);
        json_decref(g);
        free(ok), free(parent);
        parent = child;
    }
    /* depth 3 = max_delegation_depth: its agent cannot delegate further (403), nothing
     * stored */
    char *deep = tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\"}", parent, dids[0]);
    json_decref(create(A4, deep, 403, "delegation_depth_exceeded"));
    ck_assert_int_eq(deleg_rows(), rows);
    free(deep), free(parent);
    for (int i = 0; i < 5; i++)
        free(dids[i]);
}
END_TEST

/* ---- ACs under a delegation ---- */

START_TEST(acs_under_a_delegation)
{
    char *a1 = did_of(A1), *a2 = did_of(A2), *owner = did_of(OWNER);
    /* on_behalf_of without a delegation: refused, even a DID of this tenant */
    char *obo = tst_fmt("\"on_behalf_of\":\"%s\"", a1);
    json_decref(authorize(OWNER, obo, 403, "delegation_forbidden"));
    json_decref(authorize(OWNER, "\"on_behalf_of\":\"did:web:globex:someone\"", 403,
                          "delegation_forbidden"));
    long acs = count("SELECT count(*) FROM acs");
    char *body = tst_fmt("{\"agent_did\":\"%s\",\"capability_set\":\"0x0000000f\",\"accords\":"
                         "[\"default\"],\"corpus_cids\":[\"%s\"],\"prohibited_command_hashes\":"
                         "[\"%s\"],\"max_commands\":3,\"max_delegation_depth\":2,"
                         "\"ttl_seconds\":600}",
                         a1, CORPUS, CMD2);
    char *id = create_id(OWNER, body);
    /* the agent issues for itself: principal the agent, delegated_by the owner, the
     * delegation and its chain signed into the AC */
    json_t *ac = authorize_under(A1, id, "\"capability_set\":\"0x00000003\"", 200, NULL);
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"), a1);
    ck_assert_str_eq(tst_str(json_object_get(ac, "identity_proof"), "delegated_by"), owner);
    json_t *dl = json_object_get(ac, "delegation");
    ck_assert_str_eq(tst_str(dl, "delegation_id"), id);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(dl, "chain"), 0)), id);
    /* the TTL is cut to the delegation's life (600 s) */
    struct tm a = {0}, b = {0};
    strptime(tst_str(ac, "issued_at"), "%Y-%m-%dT%H:%M:%SZ", &a);
    strptime(tst_str(ac, "expires_at"), "%Y-%m-%dT%H:%M:%SZ", &b);
    ck_assert_int_le((long)(timegm(&b) - timegm(&a)), 600);
    /* the delegation is part of what is signed: the AC verifies independently, and not with
     * another chain */
    ck_assert(oracle_verifies(ac));
    json_t *forged = json_deep_copy(ac);
    json_array_append_new(json_object_get(json_object_get(forged, "delegation"), "chain"),
                          json_string("dlg_00000000000000000000000000000000"));
    ck_assert(!oracle_verifies(forged));
    json_decref(forged);
    char *sql = tst_fmt("SELECT count(*) FROM acs WHERE delegation_id = '%s' AND "
                        "ac->'delegation'->>'delegation_id' = '%s'",
                        id, id);
    ck_assert_int_eq(count(sql), 1);
    free(sql);
    json_decref(ac);
    /* the owner issues for its agent (on_behalf_of the agent, or implied) */
    ac = authorize_under(OWNER, id, obo, 200, NULL);
    ck_assert_str_eq(tst_str(json_object_get(ac, "principal"), "did"), a1);
    ck_assert_str_eq(tst_str(json_object_get(ac, "identity_proof"), "delegated_by"), owner);
    json_decref(ac);
    char *obo2 = tst_fmt("\"on_behalf_of\":\"%s\"", a2);
    json_decref(authorize_under(OWNER, id, obo2, 403, "delegation_forbidden"));
    /* outside the scope: each refused, nothing stored */
    const char *outside[] = {"\"capability_set\":\"0x00000010\"", "\"accord_template\":\"ops\"",
                             NULL};
    json_decref(authorize_under(A1, id, outside[0], 403, "delegation_scope_exceeded"));
    (void)outside;
    char *other_corpus = tst_fmt(
        "{\"accord_template\":\"default\",\"delegation_id\":\"%s\",\"operation\":{\"command_hash\":"
        "\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
        id, CMD, OTHER, PARAMS);
    json_decref(tst_call_json(B.port, "POST", "/governance/authorize/", A1, other_corpus, 403,
                              "delegation_scope_exceeded"));
    char *prohibited = tst_fmt(
        "{\"accord_template\":\"default\",\"delegation_id\":\"%s\",\"operation\":{\"command_hash\":"
        "\"%s\",\"corpus_entry_cid\":\"%s\",\"parameters_cid\":\"%s\"}}",
        id, CMD2, CORPUS, PARAMS);
    json_decref(tst_call_json(B.port, "POST", "/governance/authorize/", A1, prohibited, 403,
                              "delegation_scope_exceeded"));
    /* another key of the tenant and a neighbour tenant cannot use it */
    json_decref(authorize_under(PEER, id, NULL, 404, "delegation_not_found"));
    json_decref(authorize_under(A2, id, NULL, 404, "delegation_not_found"));
    json_decref(authorize_under(NEIGHBOUR, id, NULL, 404, "delegation_not_found"));
    ck_assert_int_eq(count("SELECT count(*) FROM acs"), acs + 2);
    /* max_commands 3: ACs under a child count against the parent too */
    char *sub = tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\",\"max_commands\":1}", id, a2);
    char *child = create_id(A1, sub);
    json_t *cac = authorize_under(A2, child, NULL, 200, NULL);
    /* the session page shows the AC's chain, root first, JSON and HTML */
    char *spath = tst_fmt("/governance/session/%s/", tst_str(cac, "context_id"));
    tst_resp_t r;
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: application/json\r\n", A2);
    ck_assert_int_eq(tst_http(B.port, "GET", spath, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    json_t *chain = json_object_get(r.json, "delegation_chain");
    ck_assert_int_eq(json_array_size(chain), 2);
    ck_assert_str_eq(tst_str(json_array_get(chain, 0), "delegation_id"), id);
    ck_assert_str_eq(tst_str(json_array_get(chain, 1), "delegation_id"), child);
    ck_assert_str_eq(tst_str(json_array_get(chain, 1), "delegator_did"), a1);
    ck_assert_str_eq(tst_str(json_array_get(chain, 1), "agent_did"), a2);
    ck_assert_str_eq(tst_str(json_array_get(chain, 0), "status"), "active");
    tst_resp_clear(&r);
    free(hdr);
    hdr = tst_fmt("Authorization: Bearer %s\r\nAccept: text/html\r\n", A2);
    ck_assert_int_eq(tst_http(B.port, "GET", spath, hdr, NULL, 0, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "Delegation chain"));
    ck_assert_ptr_nonnull(strstr(r.body, child));
    tst_resp_clear(&r);
    free(hdr), free(spath);
    json_decref(cac);
    json_decref(authorize_under(A2, child, NULL, 403, "delegation_exhausted"));
    json_decref(authorize_under(A1, id, NULL, 403, "delegation_exhausted"));
    ck_assert_int_eq(count("SELECT count(*) FROM acs"), acs + 3);
    sql = tst_fmt("SELECT acs_issued FROM delegations WHERE delegation_id = '%s'", id);
    ck_assert_int_eq(count(sql), 3);
    free(sql);
    /* a child cannot take more than its parent has left (0 now) */
    json_decref(create(A1, sub, 403, "narrowing_violation"));
    free(a1), free(a2), free(owner), free(obo), free(obo2), free(body), free(id), free(sub);
    free(child), free(other_corpus), free(prohibited);
}
END_TEST

/* ---- cascade revocation under concurrent issues ---- */

typedef struct racer {
    const char *token, *deleg;
    int stop;            /* set by the main thread */
    int ok, refused;     /* ACs issued, refused as revoked */
    int after_revoke_ok; /* issued after the revocation committed: must stay 0 */
    volatile int *revoked;
} racer_t;

static void *race(void *arg)
{
    racer_t *x = arg;
    char *body = tst_fmt("{\"accord_template\":\"default\",\"delegation_id\":\"%s\","
                         "\"operation\":{\"command_hash\":\"%s\",\"corpus_entry_cid\":\"%s\","
                         "\"parameters_cid\":\"%s\"}}",
                         x->deleg, CMD, CORPUS, PARAMS);
    char *hdr = tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", x->token);
    while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
        tst_resp_t r;
        int was_revoked = __atomic_load_n(x->revoked, __ATOMIC_ACQUIRE);
        if (tst_http(B.port, "POST", "/governance/authorize/", hdr, body, strlen(body), &r) != 0)
            continue;
        if (r.status == 200) {
            x->ok++;
            if (was_revoked)
                x->after_revoke_ok++;
        } else if (r.status == 403) {
            __atomic_add_fetch(&x->refused, 1, __ATOMIC_RELAXED);
        }
        tst_resp_clear(&r);
    }
    free(body), free(hdr);
    return NULL;
}

START_TEST(cascade_revocation_under_concurrent_issues)
{
    char *a1 = did_of(A1), *a2 = did_of(A2);
    char *body = tst_fmt("{\"agent_did\":\"%s\",\"max_commands\":100000,"
                         "\"max_delegation_depth\":2}",
                         a1);
    char *root = create_id(OWNER, body);
    char *sub =
        tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\",\"max_commands\":50000}", root, a2);
    char *child = create_id(A1, sub);
    char *a3 = did_of(A3);
    char *sub2 =
        tst_fmt("{\"parent_id\":\"%s\",\"agent_did\":\"%s\",\"max_commands\":10000}", child, a3);
    free(a3);
    char *grandchild = create_id(A2, sub2);
    /* one AC from before, to be used after the revocation */
    json_t *early = authorize_under(A2, child, NULL, 200, NULL);
    volatile int revoked = 0;
    racer_t x[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&x[i], 0, sizeof x[i]);
        x[i].token = i % 2 ? A2 : A3;
        x[i].deleg = i % 2 ? child : grandchild;
        x[i].revoked = &revoked;
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &x[i]), 0);
    }
    /* let them issue, then revoke the root while they run */
    char *sql =
        tst_fmt("SELECT count(*) FROM acs WHERE delegation_id IN ('%s', '%s')", child, grandchild);
    for (int i = 0; i < 600 && count(sql) < 40; i++)
        usleep(50 * 1000);
    char *rpath = tst_fmt("/delegations/%s/revoke", root);
    json_t *rv = tst_call_json(B.port, "POST", rpath, OWNER, NULL, 200, NULL);
    __atomic_store_n(&revoked, 1, __ATOMIC_RELEASE);
    ck_assert_int_eq(json_integer_value(json_object_get(rv, "delegations_revoked")), 3);
    /* they keep trying after the revocation committed, until some were refused (10 s at most) */
    usleep(300 * 1000);
    for (int i = 0, seen = 0; i < 200 && !seen; i++) {
        for (int k = 0; k < RACE_THREADS; k++)
            seen |= __atomic_load_n(&x[k].refused, __ATOMIC_RELAXED) > 0;
        usleep(50 * 1000);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        __atomic_store_n(&x[i].stop, 1, __ATOMIC_RELEASE);
    int ok = 0, refused = 0, late = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += x[i].ok, refused += x[i].refused, late += x[i].after_revoke_ok;
    }
    ck_assert_int_gt(ok, 0);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_eq(late, 0);
    /* no AC under the subtree can be used; all of them revoked, none left behind */
    char *usable = tst_fmt("SELECT count(*) FROM acs WHERE delegation_id IN ('%s','%s','%s') "
                           "AND status IN ('pending', 'authorized', 'active')",
                           root, child, grandchild);
    ck_assert_int_eq(count(usable), 0);
    ck_assert_int_eq(count(sql), ok + 1);
    ck_assert_int_eq(json_integer_value(json_object_get(rv, "acs_revoked")), count(sql));
    ck_assert_int_eq(count("SELECT count(*) FROM delegations WHERE status = 'revoked'"), 3);
    ck_assert_int_eq(count("SELECT count(*) FROM events WHERE type = 'GSAP_DELEGATION_REVOKED'"),
                     3);
    /* a CR on an AC issued before: refused */
    json_decref(complete(tst_str(early, "context_id"), 409, "ac_revoked"));
    json_decref(authorize_under(A2, child, NULL, 403, "delegation_revoked"));
    json_decref(rv), json_decref(early);
    free(a1), free(a2), free(body), free(root), free(sub), free(child), free(sub2);
    free(grandchild), free(sql), free(rpath), free(usable);
}
END_TEST

/* max_commands under concurrency: 16 threads race for 20 ACs; exactly 20 are issued */
START_TEST(max_commands_under_concurrency)
{
    char *a1 = did_of(A1);
    char *body = tst_fmt("{\"agent_did\":\"%s\",\"max_commands\":20}", a1);
    char *id = create_id(OWNER, body);
    volatile int never = 0;
    racer_t x[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        memset(&x[i], 0, sizeof x[i]);
        x[i].token = i % 2 ? A1 : OWNER; /* the agent and its delegator, both counted */
        x[i].deleg = id;
        x[i].revoked = &never;
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &x[i]), 0);
    }
    char *sql = tst_fmt("SELECT count(*) FROM acs WHERE delegation_id = '%s'", id);
    for (int i = 0; i < 600 && count(sql) < 20; i++)
        usleep(50 * 1000);
    usleep(300 * 1000); /* more attempts past the limit */
    for (int i = 0; i < RACE_THREADS; i++)
        __atomic_store_n(&x[i].stop, 1, __ATOMIC_RELEASE);
    int ok = 0, refused = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += x[i].ok, refused += x[i].refused;
    }
    ck_assert_int_eq(ok, 20);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_eq(count(sql), 20);
    free(sql);
    sql = tst_fmt("SELECT acs_issued FROM delegations WHERE delegation_id = '%s'", id);
    ck_assert_int_eq(count(sql), 20);
    free(sql), free(a1), free(body), free(id);
}
END_TEST

/* ---- the spend limit at its boundary, with real billing ---- */

/* The billed total of the CR of ctx, once the runtime has billed it. */
static long billed(const char *ctx)
{
    char *sql = tst_fmt("SELECT coalesce(sum(total_minor), -1) FROM invoice_lines "
                        "WHERE context_id = '%s'",
                        ctx);
    long n = -1;
    for (int i = 0; i < LINE_WAIT_S * 10 && (n = count(sql)) < 0; i++)
        usleep(100 * 1000);
    free(sql);
    ck_assert_msg(n >= 0, "%s was not billed within %d s", ctx, LINE_WAIT_S);
    return n;
}

START_TEST(spend_limit_at_the_boundary)
{
    char *a1 = did_of(A1);
    /* what one CR costs on the default account (the default card) */
    json_t *ac = authorize(OWNER, NULL, 200, NULL);
    json_decref(complete(tst_str(ac, "context_id"), 200, NULL));
    long price = billed(tst_str(ac, "context_id"));
    ck_assert_int_gt(price, 0);
    json_decref(ac);
    /* at: limit = price; after one billed CR, spent == limit and no more ACs.
     * one unit more: limit = price + 1; after one billed CR another AC is still allowed. */
    for (int over = 0; over <= 1; over++) {
        char *body = tst_fmt("{\"agent_did\":\"%s\",\"spend_limit_minor\":%ld}", a1, price + over);
        char *id = create_id(OWNER, body);
        ac = authorize_under(A1, id, NULL, 200, NULL);
        json_decref(complete(tst_str(ac, "context_id"), 200, NULL));
        ck_assert_int_eq(billed(tst_str(ac, "context_id")), price);
        char *gpath = tst_fmt("/delegations/%s", id);
        json_t *g = tst_call_json(B.port, "GET", gpath, OWNER, NULL, 200, NULL);
        free(gpath);
        ck_assert_int_eq(json_integer_value(json_object_get(g, "billed_minor")), price);
        json_decref(g);
        if (over == 0) {
            json_decref(authorize_under(A1, id, NULL, 403, "spend_limit_reached"));
        } else {
            json_t *more = authorize_under(A1, id, NULL, 200, NULL);
            /* its CR takes the spend past the limit (the check is at issuance) */
            json_decref(complete(tst_str(more, "context_id"), 200, NULL));
            billed(tst_str(more, "context_id"));
            json_decref(more);
            json_decref(authorize_under(A1, id, NULL, 403, "spend_limit_reached"));
        }
        /* a sub-delegation's spend counts against its parent's limit */
        json_decref(ac);
        free(body), free(id);
    }
    /* spend 0: no AC at all */
    char *body = tst_fmt("{\"agent_did\":\"%s\",\"spend_limit_minor\":0}", a1);
    char *id = create_id(OWNER, body);
    json_decref(authorize_under(A1, id, NULL, 403, "spend_limit_reached"));
    free(body), free(id), free(a1);
}
END_TEST

/* ---- the Agent Passport System SDK ---- */

/* Runs tests/npm/aps_deleg.mjs with args; its stdout (malloc'd), NULL on failure. */
static char *aps(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *aps(const char *fmt, ...)
{
    char args[4096], cmd[4400];
    static char out[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "node %s/tests/npm/aps_deleg.mjs %s", getenv("GSAP_SOURCE_DIR"),
             args);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    if (pclose(p) != 0)
        return NULL;
    out[strcspn(out, "\n")] = 0;
    return strdup(out);
}

static char *save(const char *text)
{
    char path[] = "/tmp/gsap-aps-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return strdup(path);
}

START_TEST(aps_sdk_delegations)
{
    char *kp = aps("keygen"), *agent_kp = aps("keygen");
    ck_assert_ptr_nonnull(kp);
    json_t *k = json_loads(kp, 0, NULL), *ak = json_loads(agent_kp, 0, NULL);
    const char *priv = tst_str(k, "privateKey"), *pub = tst_str(k, "publicKey");
    const char *apriv = tst_str(ak, "privateKey"), *apub = tst_str(ak, "publicKey");
    char *owner = did_of(OWNER);
    const char *scope = "'[\"gsap:cap:0\",\"gsap:cap:1\",\"gsap:cap:2\",\"gsap:cap:3\","
                        "\"gsap:accord:default\",\"gsap:commands:5\",\"gsap:prohibit:" CMD2 "\"]'";
    char *made = aps("create %s %s %s %s 500 2 1", priv, pub, apub, scope);
    ck_assert_ptr_nonnull(made);
    char *req = tst_fmt("{\"aps_delegation\":%s}", made);
    /* before the key is registered: its signer is unknown */
    json_decref(create(OWNER, req, 403, "aps_signer_unknown"));
    /* registration needs a proof of possession over this key's DID */
    char *proof = aps("proof %s %s", priv, owner);
    char *bad_proof = aps("proof %s %s", priv, "did:web:someone-else");
    char *reg = tst_fmt("{\"public_key\":\"%s\",\"proof\":\"%s\"}", pub, bad_proof);
    json_decref(
        tst_call_json(B.port, "PUT", "/delegations/signing-key", OWNER, reg, 403, "proof_invalid"));
    free(reg);
    reg = tst_fmt("{\"public_key\":\"%s\",\"proof\":\"%s\"}", pub, proof);
    json_decref(tst_call_json(B.port, "PUT", "/delegations/signing-key", OWNER, reg, 200, NULL));
    /* another key of the tenant cannot submit the owner's delegation as its own */
    json_decref(create(PEER, req, 403, "aps_signer_unknown"));
    json_t *d = create(OWNER, req, 201, NULL);
    char *id = strdup(tst_str(d, "delegation_id"));
    json_t *doc = json_object_get(d, "document");
    json_t *sdk = json_loads(made, 0, NULL);
    /* mapped: the agent's key as did:key, the scope, spend and depth */
    ck_assert_int_eq(strncmp(tst_str(doc, "agent_did"), "did:key:z6Mk", 12), 0);
    ck_assert_str_eq(tst_str(json_object_get(doc, "scope"), "capability_set"), "0x0000000f");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(doc, "scope"), "max_commands")), 5);
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(doc, "scope"), "spend_limit_minor")),
        500);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "max_delegation_depth")), 2);
    ck_assert_str_eq(tst_str(json_object_get(doc, "aps"), "signature"), tst_str(sdk, "signature"));
    json_decref(d);
    /* once only */
    json_decref(create(OWNER, req, 409, "aps_replayed"));
    /* tampered: each signed member changed, refused, nothing stored */
    long rows = deleg_rows();
    const char *members[] = {"delegationId", "delegatedTo",  "expiresAt",   "createdAt",
                             "notBefore",    "scope",        "spendLimit",  "spentAmount",
                             "maxDepth",     "currentDepth", "delegatedBy", "signature"};
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
        json_t *t = json_deep_copy(sdk);
        json_t *v = json_object_get(t, members[i]);
        if (json_is_integer(v)) {
            json_object_set_new(t, members[i], json_integer(json_integer_value(v) + 1));
        } else if (json_is_array(v)) {
            json_array_append_new(v, json_string("gsap:cap:31"));
        } else {
            char *s = strdup(json_string_value(v));
            size_t n = strlen(s);
            s[n - 2] = s[n - 2] == '1' ? '2' : '1';
            json_object_set_new(t, members[i], json_string(s));
            free(s);
        }
        json_t *wrap = json_pack("{s:o}", "aps_delegation", t);
        char *tb = json_dumps(wrap, JSON_COMPACT);
        json_decref(wrap);
        tst_resp_t r;
        char *hdr =
            tst_fmt("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", OWNER);
        ck_assert_int_eq(tst_http(B.port, "POST", "/delegations/", hdr, tb, strlen(tb), &r), 0);
        ck_assert_msg(r.status == 403, "%s tampered: %d %s", members[i], r.status, r.body);
        const char *code = tst_str(json_object_get(r.json, "error"), "code");
        ck_assert_msg(strcmp(code, "aps_signature_invalid") == 0 ||
                          strcmp(code, "aps_signer_unknown") == 0,
                      "%s tampered: %s", members[i], code);
        tst_resp_clear(&r);
        free(tb), free(hdr);
    }
    ck_assert_int_eq(deleg_rows(), rows);
    /* a sub-delegation made by the SDK with the agent's key: accepted under its parent,
     * submitted by the chain's owner (the agent's signature is its consent) */
    char *pfile = save(made);
    char *subm = aps("sub %s %s %s '[\"gsap:cap:0\",\"gsap:cap:1\",\"gsap:accord:default\","
                     "\"gsap:prohibit:" CMD2 "\"]' 100",
                     pfile, apriv, "did:web:example.com:sub-agent");
    ck_assert_ptr_nonnull(subm);
    char *subreq = tst_fmt("{\"parent_id\":\"%s\",\"aps_delegation\":%s}", id, subm);
    json_decref(create(PEER, subreq, 404, "delegation_not_found"));
    json_t *sd = create(OWNER, subreq, 201, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(sd, "document"), "depth")),
                     1);
    ck_assert_str_eq(tst_str(json_object_get(sd, "document"), "agent_did"),
                     "did:web:example.com:sub-agent");
    /* the chain's owner issues for the sub-agent, inside its narrower scope; nobody else */
    json_t *sac = authorize_under(OWNER, tst_str(sd, "delegation_id"),
                                  "\"capability_set\":\"0x00000003\"", 200, NULL);
    ck_assert_str_eq(tst_str(json_object_get(sac, "principal"), "did"),
                     "did:web:example.com:sub-agent");
    json_decref(sac);
    json_decref(authorize_under(OWNER, tst_str(sd, "delegation_id"),
                                "\"capability_set\":\"0x00000004\"", 403,
                                "delegation_scope_exceeded"));
    json_decref(
        authorize_under(PEER, tst_str(sd, "delegation_id"), NULL, 404, "delegation_not_found"));
    json_decref(sd);
    /* one the SDK allows (its scopeCovers takes "gsap:accord:default" as covering
     * "gsap:accord:default:x") but this broker's narrowing does not: another accord */
    char *wide = aps("sub %s %s %s '[\"gsap:cap:0\",\"gsap:accord:default:x\"]' 100", pfile, apriv,
                     "did:web:example.com:other");
    char *widereq = tst_fmt("{\"parent_id\":\"%s\",\"aps_delegation\":%s}", id, wide);
    json_decref(create(OWNER, widereq, 403, "narrowing_violation"));
    /* signed by someone else than the parent's agent */
    char *forged = aps("sub %s %s %s '[\"gsap:cap:0\",\"gsap:prohibit:" CMD2 "\"]' 100", pfile,
                       priv, "did:web:example.com:x");
    ck_assert_ptr_nonnull(forged);
    {
        char *freq = tst_fmt("{\"parent_id\":\"%s\",\"aps_delegation\":%s}", id, forged);
        json_decref(create(OWNER, freq, 403, "aps_signature_invalid"));
        free(freq), free(forged);
    }
    /* the owner issues an AC for the SDK agent under it */
    json_t *ac = authorize_under(OWNER, id, NULL, 200, NULL);
    ck_assert_int_eq(strncmp(tst_str(json_object_get(ac, "principal"), "did"), "did:key:z", 9), 0);
    json_decref(ac);
    unlink(pfile);
    json_decref(k), json_decref(ak), json_decref(sdk);
    free(kp), free(agent_kp), free(owner), free(made), free(req), free(proof), free(bad_proof);
    free(reg), free(id), free(pfile), free(subm), free(subreq), free(wide), free(widereq);
}
END_TEST

static Suite *deleg_suite(void)
{
    Suite *s = suite_create("it_deleg");
    TCase *tc = tcase_create("deleg");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, who_may_create_read_revoke);
    tcase_add_test(tc, narrowing_at_every_depth);
    tcase_add_test(tc, acs_under_a_delegation);
    tcase_add_test(tc, cascade_revocation_under_concurrent_issues);
    tcase_add_test(tc, max_commands_under_concurrency);
    tcase_add_test(tc, spend_limit_at_the_boundary);
    tcase_add_test(tc, aps_sdk_delegations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tst_run(deleg_suite());
}
