/*
 * hnd_ops: the operator-facing routes: liveness, readiness, metrics and the broker's
 * published signing keys.
 *
 * /healthz says only that this process answers HTTP. /readyz asks the database (on this
 * loop's pool) whether it answers and has every migration this binary knows, so a load
 * balancer sends nothing to a broker whose database is away or not yet migrated.
 */
#include "hnd.h"

#include <stdio.h>
#include <stdlib.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_http.h"
#include "brk_keys.h"
#include "brk_metrics.h"
#include "brk_server.h"
#include "brk_note.h"
#include "banned.h"

static brk_db_stmt_t q_ready = {"ops_ready", "SELECT count(*) FROM schema_migrations", 0};

static void healthz(brk_req_t *r)
{
    json_t *b = json_pack("{s:s}", "status", "ok");
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void on_ready_result(brk_req_t *r, const brk_db_result_t *res)
{
    if (res->err != 0) {
        brk_reply_error(r, res->err == BRK_EINVAL ? BRK_EDB : res->err, "not_ready",
                        "the database is not available");
        return;
    }
    long have = strtol(PQgetvalue(res->res[0], 0, 0), NULL, 10);
    int want = brk_server_expected_migrations(r->server);
    if (have < want) {
        brk_reply_error(r, BRK_EAGAIN, "not_ready", "the schema has %ld of %d migrations", have,
                        want);
        return;
    }
    json_t *b = json_pack("{s:s,s:I}", "status", "ready", "migrations", (json_int_t)have);
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static void readyz(brk_req_t *r)
{
    brk_db_op_t op = {&q_ready, 0, {0}};
    brk_req_db(r, &op, 1, on_ready_result);
}

static void metrics(brk_req_t *r)
{
    size_t len;
    char *text = brk_metrics_render(&len);
    brk_reply_raw(r, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

static void well_known(brk_req_t *r)
{
    const brk_keyring_t *kr = brk_server_keys(r->server);
    json_t *keys = json_array();
    for (size_t i = 0; i < brk_keyring_count(kr); i++) {
        char pub[BRK_ED25519_PUB_LEN * 2];
        brk_b64url_encode(brk_keyring_public(kr, i), BRK_ED25519_PUB_LEN, pub);
        json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:b}", "key_id",
                                              brk_keyring_key_id(kr, i), "alg", "Ed25519",
                                              "public_key", pub, "current", i == 0));
    }
    json_t *b = json_pack("{s:s,s:s,s:s,s:o}", "broker_id", brk_server_config(r->server)->broker_id,
                          "gsap_version", "1.0", "current_key_id", brk_keyring_current_id(kr),
                          "keys", keys);
    /* The checkpoint signer, in the form Go's note.NewVerifier takes, so an auditor can open
     * GET /governance/log/checkpoint notes with the key published here (the current key: the
     * one that signs new checkpoints). */
    char name[BRK_NOTE_NAME_MAX + 1], vkey[BRK_NOTE_VKEY_MAX];
    if (b != NULL && brk_note_key_name(brk_server_config(r->server)->broker_id, name) == 0) {
        if (brk_note_verifier_key(name, brk_keyring_public(kr, 0), vkey) == 0) {
            json_object_set_new(b, "checkpoint_key_name", json_string(name));
            json_object_set_new(b, "checkpoint_verifier_key", json_string(vkey));
        }
    }
    brk_reply_json(r, 200, b);
    json_decref(b);
}

static const brk_route_t routes[] = {
    {"GET", "/healthz", 0, 0, healthz},
    {"GET", "/readyz", 0, 0, readyz},
    {"GET", "/metrics", BRK_ROLE_ADMIN, BRK_ROUTE_LOCAL_OK, metrics},
    {"GET", "/.well-known/gsap-broker.json", 0, 0, well_known},
};

int hnd_ops_register(void)
{
    int rc = brk_db_register(&q_ready);
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
