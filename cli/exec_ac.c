/*
 * exec_ac: the Authorization Context of one `gsap-broker exec` run.
 *
 * Obtaining it: GSAP_AC or --ac FILE as given (decoded by exec_env), or POST
 * /governance/authorize/ under an Idempotency-Key; a pending AC is polled (GET
 * /governance/authorize/{id}/) until an approver decides or GSAP_ELEVATION_WAIT_S runs out. A
 * pre-issued AC is asked about once more before the command runs (preflight), so a consumed,
 * expired or revoked one is refused without running anything.
 *
 * Checking it offline: the Ed25519 signature against the key the broker publishes at
 * /.well-known/gsap-broker.json and the ac_cid recomputed over the canonical (RFC 8785) AC,
 * both by brk_doc_verify (the other half of the broker's brk_doc_sign), the expiry, and that it
 * covers this command, this corpus entry and (when GSAP_PARAMETERS_CID is set) these parameters.
 *
 * Invariant: a context id goes into a URL path only after context_id_valid. The broker's CR
 * post stays the authority on single use: two concurrent runs may both pass the preflight.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <jansson.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_sign.h"
#include "brk_time.h"
#include "exec.h"
#include "exec_env.h"
#include "exec_http.h"
#include "exec_int.h"
#include "banned.h"

#define EXEC_POLL_MS 500    /* between polls of a pending AC */
#define EXEC_CTX_ID_MAX 128 /* a context id we put into a path */

/* Milliseconds of the monotonic clock, for the elevation deadline. */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A context id goes into a URL path: refuse anything but the broker's id characters. */
static int context_id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > EXEC_CTX_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- step 1: obtain the AC ---------------------------------------------------------------- */

static int authorize(const exec_cfg_t *cfg, exec_run_t *st)
{
    json_t *req =
        json_pack("{s:s,s:{s:s,s:s,s:s}}", "accord_template", cfg->accord, "operation",
                  "command_hash", cfg->command_hash, "corpus_entry_cid", cfg->corpus_cid,
                  "parameters_cid", cfg->params_cid ? cfg->params_cid : cfg->params_default);
    char *body = NULL, key[48], rnd_hex[33];
    uint8_t rnd[16];
    cli_http_resp_t r = {0};
    int rc, code;

    if (cfg->capability_set)
        json_object_set_new(req, "capability_set", json_string(cfg->capability_set));
    body = json_dumps(req, JSON_COMPACT);
    /* Retrying the POST is safe only under an Idempotency-Key: the broker then answers a
     * repeat with the first AC instead of issuing a second one. */
    if (body == NULL || brk_random(rnd, sizeof rnd) != 0) {
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "cannot build the authorize request");
        goto out;
    }
    brk_hex(rnd, sizeof rnd, rnd_hex);
    snprintf(key, sizeof key, "exec-%s", rnd_hex);
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_POST, "/governance/authorize/", body, key, &r);
    if (rc != 0) {
        code = cli_exec__transfer_failed(cfg, st, rc, "authorize");
    } else if (r.status == 200 && r.json != NULL) {
        st->ac = json_incref(r.json);
        code = CLI_EXEC_OK;
    } else if (r.status == 403 && json_object_get(r.json, "denial") != NULL) {
        const json_t *d = json_object_get(r.json, "denial");
        code = cli_exec__fail(
            st, CLI_EXEC_AUTH, "authorization denied (%s): %s, denial %s",
            cli_exec__jstr(d, "reason_code") ? cli_exec__jstr(d, "reason_code") : "?",
            cli_exec__jstr(d, "reason") ? cli_exec__jstr(d, "reason") : "no reason given",
            cli_exec__jstr(d, "denial_id") ? cli_exec__jstr(d, "denial_id") : "?");
    } else if (r.status == 404) {
        /* accord_not_found: the caller's configuration (GSAP_ACCORD_TEMPLATE), not a denial */
        char e[EXEC_ERR_MAX / 2];
        cli_exec__broker_error(&r, e, sizeof e);
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "authorize: %s", e);
    } else {
        code = cli_exec__unexpected_status(st, &r, "authorize");
    }
out:
    cli_http_resp_clear(&r);
    free(body);
    json_decref(req);
    return code;
}

/* GET /governance/authorize/{id}/: the AC as the broker holds it now, into *out (owned). */
static int fetch_ac(const exec_cfg_t *cfg, exec_run_t *st, const char *id, json_t **out)
{
    char path[EXEC_CTX_ID_MAX + 32];
    cli_http_resp_t r = {0};
    int rc, code;

    *out = NULL;
    if (!context_id_valid(id))
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC has no usable context_id");
    snprintf(path, sizeof path, "/governance/authorize/%s/", id);
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_GET, path, NULL, NULL, &r);
    if (rc != 0)
        code = cli_exec__transfer_failed(cfg, st, rc, "poll the AC");
    else if (r.status != 200 || r.json == NULL)
        code = cli_exec__unexpected_status(st, &r, "poll the AC");
    else if (cli_exec__jstr(r.json, "context_id") == NULL ||
             strcmp(cli_exec__jstr(r.json, "context_id"), id) != 0)
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "poll the AC: the broker answered another context");
    else {
        *out = json_incref(r.json);
        code = CLI_EXEC_OK;
    }
    cli_http_resp_clear(&r);
    return code;
}

static int status_unusable(exec_run_t *st, const char *id, const char *status)
{
    return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC %s is %s", id,
                          status ? status : "without a status");
}

/* A pending AC waits for an approver: poll until it is decided or the wait runs out. */
static int await_elevation(const exec_cfg_t *cfg, exec_run_t *st)
{
    long long deadline = now_ms() + cfg->elevation_wait_s * 1000LL;
    char id[EXEC_CTX_ID_MAX + 1];

    /* A copy: each poll replaces st->ac, and the id with it. */
    snprintf(id, sizeof id, "%s",
             cli_exec__jstr(st->ac, "context_id") ? cli_exec__jstr(st->ac, "context_id") : "");
    while (cli_exec__jstr(st->ac, "status") &&
           strcmp(cli_exec__jstr(st->ac, "status"), "pending") == 0) {
        json_t *next;
        int code;
        if (now_ms() >= deadline)
            return cli_exec__fail(st, CLI_EXEC_AUTH,
                                  "the elevation of AC %s was not approved within %ld s", id,
                                  cfg->elevation_wait_s);
        cli_http_sleep_ms(EXEC_POLL_MS);
        if ((code = fetch_ac(cfg, st, id, &next)) != CLI_EXEC_OK)
            return code;
        json_decref(st->ac);
        st->ac = next;
    }
    return CLI_EXEC_OK;
}

int cli_exec__obtain_ac(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *status;
    int code;

    if (cfg->ac_text) {
        char err[EXEC_ERR_MAX / 2];
        if (cli_ac_decode(cfg->ac_text, cfg->ac_len, &st->ac, err, sizeof err) != 0)
            return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s %s",
                                  cfg->ac_file ? "--ac:" : "GSAP_AC:", err);
        if (!context_id_valid(cli_exec__jstr(st->ac, "context_id")))
            return cli_exec__fail(st, CLI_EXEC_AUTH, "the given AC has no usable context_id");
    } else if ((code = authorize(cfg, st)) != CLI_EXEC_OK) {
        return code;
    }
    if ((code = await_elevation(cfg, st)) != CLI_EXEC_OK)
        return code;
    status = cli_exec__jstr(st->ac, "status");
    if (status == NULL || (strcmp(status, "authorized") != 0 && strcmp(status, "active") != 0))
        return status_unusable(
            st, cli_exec__jstr(st->ac, "context_id") ? cli_exec__jstr(st->ac, "context_id") : "?",
            status);
    return CLI_EXEC_OK;
}

/* A pre-issued AC may have been used or have lapsed since it was handed to us. */
int cli_exec__preflight(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *id = cli_exec__jstr(st->ac, "context_id");
    json_t *now = NULL;
    int code = fetch_ac(cfg, st, id, &now);

    if (code == CLI_EXEC_OK) {
        const char *status = cli_exec__jstr(now, "status");
        if (status == NULL || (strcmp(status, "authorized") != 0 && strcmp(status, "active") != 0))
            code = status_unusable(st, id, status);
    }
    if (now)
        json_decref(now);
    return code;
}

/* ---- step 2: check the AC ----------------------------------------------------------------- */

/* The raw public key published under key_id, from /.well-known/gsap-broker.json. */
static int published_key(const exec_cfg_t *cfg, exec_run_t *st, const char *key_id,
                         uint8_t pub[BRK_ED25519_PUB_LEN])
{
    cli_http_resp_t r = {0};
    const json_t *keys, *k;
    size_t i;
    int rc =
        cli_http_retry(cfg->http, EVHTTP_REQ_GET, "/.well-known/gsap-broker.json", NULL, NULL, &r);
    int code = CLI_EXEC_AUTH;

    if (rc != 0) {
        code = cli_exec__transfer_failed(cfg, st, rc, "fetch the broker's keys");
        goto out;
    }
    if (r.status != 200 || !json_is_array(keys = json_object_get(r.json, "keys"))) {
        char e[EXEC_ERR_MAX / 2];
        cli_exec__broker_error(&r, e, sizeof e);
        code = cli_exec__fail(st, CLI_EXEC_INTERNAL, "fetch the broker's keys: %s", e);
        goto out;
    }
    json_array_foreach(keys, i, k)
    {
        const char *id = cli_exec__jstr(k, "key_id"), *pk = cli_exec__jstr(k, "public_key");
        if (id && pk && strcmp(id, key_id) == 0) {
            if (brk_b64url_decode(pk, strlen(pk), pub, BRK_ED25519_PUB_LEN) == BRK_ED25519_PUB_LEN)
                code = CLI_EXEC_OK;
            else
                cli_exec__fail(st, code, "the broker publishes a malformed key %s", key_id);
            goto out;
        }
    }
    cli_exec__fail(st, code, "the AC is signed by key %s, which the broker does not publish",
                   key_id);
out:
    cli_http_resp_clear(&r);
    return code;
}

/*
 * The AC's signature and ac_cid cover the AC without both, as signed: with status
 * "authorized" (docs/protocol.md: a polled AC whose status moved on verifies with its status
 * set back). Pending ACs never get here.
 */
static int verify_signature(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *key_id = cli_exec__jstr(st->ac, "key_id");
    const char *ac_cid = cli_exec__jstr(st->ac, "ac_cid");
    uint8_t pub[BRK_ED25519_PUB_LEN];
    char cid[BRK_CID_LEN + 1];
    json_t *as_signed;
    int code, rc;

    if (key_id == NULL || cli_exec__jstr(st->ac, "signature") == NULL || ac_cid == NULL)
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC lacks key_id, signature or ac_cid");
    if ((code = published_key(cfg, st, key_id, pub)) != CLI_EXEC_OK)
        return code;
    as_signed = json_copy(st->ac); /* shallow: only "status" differs */
    json_object_set_new(as_signed, "status", json_string("authorized"));
    rc = brk_doc_verify(pub, as_signed, "ac_cid", cid);
    json_decref(as_signed);
    switch (rc) {
    case 0:
        return CLI_EXEC_OK;
    case BRK_EAUTH:
        return cli_exec__fail(st, CLI_EXEC_AUTH,
                              "the AC's signature is not \"ed25519:\" + base64url of 64 bytes");
    case BRK_EINVAL:
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC cannot be canonicalized (RFC 8785)");
    case BRK_ECONFLICT:
        return cli_exec__fail(st, CLI_EXEC_AUTH,
                              "the AC's ac_cid %s is not the CID of its content (%s)", ac_cid, cid);
    default:
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC's signature does not verify with key %s",
                              key_id);
    }
}

/* The AC authorizes this command, on this corpus entry, with these parameters, until when. */
static int verify_scope(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *exp = cli_exec__jstr(st->ac, "expires_at");
    const char *corpus = cli_exec__jstr2(st->ac, "operation", "corpus_entry_cid");
    const char *cmd = cli_exec__jstr2(st->ac, "operation", "command_hash");
    const char *params = cli_exec__jstr2(st->ac, "operation", "parameters_cid");
    int64_t us;

    if (exp == NULL || brk_time_parse_us(exp, &us) != 0)
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC's expires_at is not an RFC 3339 UTC time");
    /* whole seconds: dropping the fraction errs on the side of calling the AC expired */
    if ((time_t)(us / 1000000) <= time(NULL))
        return cli_exec__fail(st, CLI_EXEC_AUTH, "the AC expired at %s", exp);
    if (cfg->corpus_cid && (corpus == NULL || strcmp(corpus, cfg->corpus_cid) != 0))
        return cli_exec__fail(st, CLI_EXEC_VIOLATION,
                              "the AC is for corpus entry %s, not GSAP_CORPUS_CID %s",
                              corpus ? corpus : "(none)", cfg->corpus_cid);
    if (cmd == NULL || strcmp(cmd, cfg->command_hash) != 0)
        return cli_exec__fail(st, CLI_EXEC_VIOLATION,
                              "the AC authorizes command %s, not this one (%s)",
                              cmd ? cmd : "(none)", cfg->command_hash);
    if (cfg->params_cid && (params == NULL || strcmp(params, cfg->params_cid) != 0))
        return cli_exec__fail(st, CLI_EXEC_VIOLATION,
                              "the AC is for parameters %s, not GSAP_PARAMETERS_CID %s",
                              params ? params : "(none)", cfg->params_cid);
    return CLI_EXEC_OK;
}

int cli_exec__verify_ac(const exec_cfg_t *cfg, exec_run_t *st)
{
    int code = verify_signature(cfg, st);
    return code == CLI_EXEC_OK ? verify_scope(cfg, st) : code;
}
