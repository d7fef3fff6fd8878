/*
 * hnd_ops: the operator-facing routes: liveness, readiness, metrics and the broker's
 * published signing keys.
 *
 * /healthz says only that this process answers HTTP. /readyz asks the database (on this
 * loop's pool) whether it answers and has every migration this binary knows, so a load
 * balancer sends nothing to a broker whose database is away or not yet migrated; with a read
 * replica configured (GSAP_READ_DATABASE_URL), also nothing while the replica is away.
 *
 * /metrics measures the function queue in the database at every scrape (q_fn_queue, on this
 * loop's ops pool, BRK_ROUTE_OPS: a connection of its own, so a scrape never queues behind
 * request traffic, and waits at most GSAP_DB_TIMEOUT_MS for it): the pending (event,
 * function) pairs of every broker and worker on the database, the age of the oldest pending
 * event, the dead letters. Nothing is cached and nothing comes from the runtime's own
 * bookkeeping, so the figures are true while the runtime is busy, stuck or stopped. When the
 * database does not answer, the gauges keep their last values and gsap_fn_queue_measured is 0.
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

/* The pending count walks the partial index fn_runs_pending (event_id), which holds only the backlog;
 * the oldest pending pair is its lowest event_id (event ids grow with time), found through
 * the same index, not by joining the whole backlog. */
static brk_db_stmt_t q_fn_queue = {
    "ops_fn_queue",
    "SELECT (SELECT count(*) FROM fn_runs WHERE done_at IS NULL AND dead_at IS NULL), "
    "coalesce((SELECT floor(extract(epoch FROM clock_timestamp() - e.created_at) * 1000)::bigint "
    "  FROM events e JOIN (SELECT tenant_id, event_id FROM fn_runs "
    "    WHERE done_at IS NULL AND dead_at IS NULL ORDER BY event_id LIMIT 1) p "
    "  ON e.tenant_id = p.tenant_id AND e.event_id = p.event_id), 0), "
    "(SELECT count(*) FROM fn_runs WHERE dead_at IS NOT NULL)",
    0};

/* Gauge slots of the function queue (hnd_ops_register). */
static int g_depth = -1, g_oldest_s = -1, g_dead = -1, g_measured = -1;

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
    /* With a read replica, finance and auditor routes depend on it: not ready without it. */
    if (!brk_req_read_db_up(r)) {
        brk_reply_error(r, BRK_EDB, "read_database_unavailable",
                        "the read database (GSAP_READ_DATABASE_URL) does not answer");
        return;
    }
    brk_req_db(r, &op, 1, on_ready_result);
}

static void on_fn_queue(brk_req_t *r, const brk_db_result_t *res)
{
    size_t len;
    if (res->err == 0 && PQntuples(res->res[0]) == 1) {
        long long ms = strtoll(PQgetvalue(res->res[0], 0, 1), NULL, 10);
        if (ms < 0) /* clock steps between brokers and database: not a negative age */
            ms = 0;
        brk_metrics_set(g_depth, strtoll(PQgetvalue(res->res[0], 0, 0), NULL, 10));
        brk_metrics_set(g_oldest_s, ms / 1000);
        brk_metrics_set(g_dead, strtoll(PQgetvalue(res->res[0], 0, 2), NULL, 10));
        brk_metrics_set(g_measured, 1);
    } else {
        brk_metrics_set(g_measured, 0);
    }
    char *text = brk_metrics_render(&len);
    brk_reply_raw(r, 200, "text/plain; version=0.0.4", text, len);
    free(text);
}

static void metrics(brk_req_t *r)
{
    brk_db_op_t op = {&q_fn_queue, 0, {0}};
    brk_req_db(r, &op, 1, on_fn_queue);
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
    {"GET", "/metrics", BRK_ROLE_ADMIN, BRK_ROUTE_LOCAL_OK | BRK_ROUTE_OPS, metrics},
    {"GET", "/.well-known/gsap-broker.json", 0, 0, well_known},
};

int hnd_ops_register(void)
{
    int rc = brk_db_register(&q_ready);
    if (rc == 0)
        rc = brk_db_register(&q_fn_queue);
    g_depth = brk_metrics_gauge("gsap_fn_queue_depth",
                                "Pending (event, function) pairs in the database, at this scrape.");
    g_oldest_s = brk_metrics_gauge("gsap_fn_oldest_pending_seconds",
                                   "Age of the oldest event with a pending pair, at this scrape.");
    g_dead = brk_metrics_gauge("gsap_fn_dead_letters", "Dead-lettered (event, function) pairs.");
    g_measured = brk_metrics_gauge("gsap_fn_queue_measured",
                                   "1 when this scrape measured the function queue in the "
                                   "database, 0 when it could not (the gauges keep their "
                                   "last values).");
    return rc ? rc : brk_router_add(routes, sizeof(routes) / sizeof(routes[0]));
}
