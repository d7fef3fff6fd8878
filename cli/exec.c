/*
 * exec: `gsap-broker exec [--json] [--dry-run] [--ac FILE] --exec COMMAND` and
 * `gsap-broker exec [--json] --flush-spool`, a gsh-compatible client of this broker.
 *
 * The steps, each of which decides the exit code when it fails:
 *   1. obtain an AC: GSAP_AC or --ac FILE as given (JSON, or base64 of it), or POST
 *      /governance/authorize/ (and, for a pending AC, poll GET /governance/authorize/{id}/
 *      until an approver decides or the wait runs out);
 *   2. check it offline: the Ed25519 signature against /.well-known/gsap-broker.json, the
 *      ac_cid, expires_at, and that it authorizes this command, this corpus entry and (when
 *      GSAP_PARAMETERS_CID is set) these parameters; for a pre-issued AC, ask the broker
 *      whether it is still usable (not consumed, expired or revoked), so a replayed AC does
 *      not run its command a second time;
 *   3. run `sh -c COMMAND` with no GSAP_* or CHRONICLE_* variable and no descriptor but 0, 1
 *      and 2 (exec_env.h says why), streaming stdout and stderr through SHA-256;
 *   4. POST /governance/complete/, retried on connection errors and 5xx (the broker answers
 *      an identical retry with the same receipt).
 * When the broker cannot be reached in steps 1-2 and GSAP_SELF_AUTH=1, the command runs
 * anyway and its receipt ("self_authorized": true, context "self-<uuid>") is spooled
 * (exec_spool.h) for `--flush-spool`.
 * Exit codes are gsh's (enum cli_exec_exit). The step functions return that enum rather than
 * a brk_err because choosing the exit code is their whole job; the helpers below them keep
 * the 0 / negative enum brk_err convention.
 *
 * Environment: GSAP_BROKER_URL (http[s]://host[:port][/prefix]), GSAP_TOKEN, GSAP_CA_FILE,
 * GSAP_INSECURE, GSAP_AC, GSAP_CORPUS_CID, GSAP_ACCORD_TEMPLATE ("default"),
 * GSAP_PARAMETERS_CID (the CID of {} for the authorize request), GSAP_CAPABILITY_SET,
 * GSAP_ELEVATION_WAIT_S (60), GSAP_SELF_AUTH, GSAP_SPOOL_DIR, CHRONICLE_SESSION_ID,
 * CHRONICLE_BEHAVIOR_STATE ("unavailable"), CHRONICLE_MERKLE_ROOT.
 * An empty variable counts as unset. When GSAP_CORPUS_CID or GSAP_PARAMETERS_CID is unset the
 * receipt repeats the AC's value: the client has no observation of its own to report, and
 * inventing one would make the broker flag a mismatch that did not happen.
 *
 * Caveats: the transport is exec_http (one connection per request). The command's output is
 * read until both pipes close, so a command that leaves a background process holding them
 * keeps exec waiting, as with any shell pipeline. The command runs as our user: it cannot see
 * the token in its environment, in /proc/<exec>/environ or through an inherited socket, and
 * exec is not dumpable (no ptrace by the same user), but root can still read our memory.
 */
#include "exec.h"
#include "help.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "brk_alloc.h"
#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_jcs.h"
#include "brk_json.h"
#include "brk_tls_client.h"
#include "exec_env.h"
#include "exec_int.h"
#include "exec_http.h"
#include "exec_spool.h"
#include "banned.h"

#define EXEC_POLL_MS 500         /* between polls of a pending AC */
#define EXEC_ELEVATION_WAIT_S 60 /* default of GSAP_ELEVATION_WAIT_S */
#define EXEC_ELEVATION_WAIT_MAX_S 86400
#define EXEC_CTX_ID_MAX 128 /* a context id we put into a path */
#define EXEC_IO_CHUNK 65536
#define EXEC_SIG_PREFIX "ed25519:"
#define EXEC_SHELL "/bin/sh"
#define EXEC_SELF_PREFIX "self-" /* context ids of self-authorized runs */

/* ---- small helpers ---------------------------------------------------------------------- */

static int fail(exec_run_t *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records why the run fails (the last reason wins) and returns code, for `return fail(...)`. */
static int fail(exec_run_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof st->error, fmt, ap);
    va_end(ap);
    return code;
}

static const char *env_get(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 UTC with milliseconds and "Z", from the wall clock. */
static void time_now_rfc3339(char out[EXEC_TIME_MAX])
{
    struct timespec ts;
    struct tm tm;
    char base[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, EXEC_TIME_MAX, "%s.%03uZ", base, (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

/* Reads exactly n decimal digits. */
static int read_digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return BRK_EINVAL;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (the broker's form); the fraction is dropped. */
static int parse_rfc3339(const char *s, time_t *out)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, se;

    if (strlen(s) < 20 || read_digits(s, 4, &y) || s[4] != '-' || read_digits(s + 5, 2, &mo) ||
        s[7] != '-' || read_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        read_digits(s + 11, 2, &h) || s[13] != ':' || read_digits(s + 14, 2, &mi) || s[16] != ':' ||
        read_digits(s + 17, 2, &se))
        return BRK_EINVAL;
    s += 19;
    if (*s == '.') {
        if (s[1] < '0' || s[1] > '9')
            return BRK_EINVAL;
        for (s++; *s >= '0' && *s <= '9'; s++)
            ;
    }
    if ((*s != 'Z' && *s != 'z') || s[1] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || se > 60)
        return BRK_EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *out = timegm(&tm);
    return 0;
}

/* A string member of an object, or NULL. */
static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* A string member of a member object ("operation.command_hash"), or NULL. */
static const char *jstr2(const json_t *o, const char *outer, const char *key)
{
    return jstr(json_object_get(o, outer), key);
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

/* ---- broker replies ---------------------------------------------------------------------- */

/* "403 policy_denied: <message>" from an error reply, for diagnostics. */
static void broker_error(const cli_http_resp_t *r, char *buf, size_t cap)
{
    const json_t *e = json_object_get(r->json, "error");
    const char *code = jstr(e, "code"), *msg = jstr(e, "message");
    snprintf(buf, cap, "%d %s%s%s", r->status, code ? code : "(no error code)", msg ? ": " : "",
             msg ? msg : "");
}

/* The failure of a transfer (after its retries), as an exit code and a message: a broker
 * that cannot be reached is exit 4 (the self-authorized fallback keys on it); a TLS failure
 * (a certificate that does not verify) is not "unreachable", it is a refusal to talk. */
static int transfer_failed(const exec_cfg_t *cfg, exec_run_t *st, int rc, const char *what)
{
    if (rc == BRK_ETOOBIG)
        return fail(st, CLI_EXEC_INTERNAL, "%s: the broker's answer is larger than %d bytes", what,
                    CLI_HTTP_MAX_RESPONSE);
    if (rc == BRK_ECRYPTO)
        return fail(st, CLI_EXEC_INTERNAL, "%s: TLS with \"%s\" failed: %s", what, cfg->url,
                    cfg->http->tls_error[0] ? cfg->http->tls_error : "handshake failed");
    if (cli_http_unreachable(rc))
        return fail(st, CLI_EXEC_UNREACHABLE,
                    "%s: cannot reach the broker at \"%s\" (%s, %d tries)", what, cfg->url,
                    brk_strerror(rc), CLI_HTTP_RETRIES + 1);
    return fail(st, CLI_EXEC_INTERNAL, "%s: \"%s\": %s", what, cfg->url, brk_strerror(rc));
}

/* An HTTP answer a step did not expect: 401/403/404 mean we may not use this AC, the rest is
 * a configuration problem or a broker fault. */
static int unexpected_status(exec_run_t *st, const cli_http_resp_t *r, const char *what)
{
    char e[EXEC_ERR_MAX / 2];
    broker_error(r, e, sizeof e);
    if (r->status == 401 || r->status == 403 || r->status == 404)
        return fail(st, CLI_EXEC_AUTH, "%s: %s", what, e);
    if (r->status >= 500)
        return fail(st, CLI_EXEC_INTERNAL, "%s: %s (%d tries)", what, e, CLI_HTTP_RETRIES + 1);
    return fail(st, CLI_EXEC_INTERNAL, "%s: %s", what, e);
}

/* ---- configuration ------------------------------------------------------------------------ */

/* usage: exec's help, from the one table that also makes `gsap-broker help exec` and the man
 * page (cli/help.c). */
static int usage(FILE *f)
{
    cli_help_print(f, "exec");
    return f == stderr ? CLI_EXEC_INTERNAL : CLI_EXEC_OK;
}

/* Returns CLI_EXEC_OK, or -1 after printing the help (exit 0), or an exit code. */
static int parse_args(int argc, char **argv, exec_cfg_t *cfg, exec_run_t *st)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"exec", required_argument, NULL, 'e'},
                                         {"ac", required_argument, NULL, 'a'},
                                         {"flush-spool", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;

    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            cfg->json = 1;
            break;
        case 'n':
            cfg->dry_run = 1;
            break;
        case 'e':
            cfg->command = optarg;
            break;
        case 'a':
            cfg->ac_file = optarg;
            break;
        case 'f':
            cfg->flush_spool = 1;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return fail(st, CLI_EXEC_INTERNAL, "unknown option or missing argument \"%s\"",
                        argv[optind - 1]);
        }
    }
    if (optind < argc) {
        usage(stderr);
        return fail(st, CLI_EXEC_INTERNAL,
                    "unexpected argument \"%s\" (quote the command after --exec)", argv[optind]);
    }
    if (cfg->flush_spool) {
        if (cfg->command || cfg->ac_file || cfg->dry_run) {
            usage(stderr);
            return fail(st, CLI_EXEC_INTERNAL, "--flush-spool takes no --exec, --ac or --dry-run");
        }
        return CLI_EXEC_OK;
    }
    if (cfg->command == NULL) {
        usage(stderr);
        return fail(st, CLI_EXEC_INTERNAL, "--exec COMMAND is required");
    }
    brk_cid_of_bytes(cfg->command, strlen(cfg->command), cfg->command_hash);
    return CLI_EXEC_OK;
}

static int env_cid(const char *name, const char **out, exec_run_t *st)
{
    *out = env_get(name);
    if (*out && !brk_cid_valid(*out))
        return fail(st, CLI_EXEC_INTERNAL, "%s \"%s\" is not a CID (sha256: + 64 lowercase hex)",
                    name, *out);
    return CLI_EXEC_OK;
}

/* The broker: GSAP_BROKER_URL and GSAP_TOKEN (taken out of our environment), TLS trust. */
static int load_broker(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    const char *insecure = env_get("GSAP_INSECURE");

    if ((cfg->url = env_get("GSAP_BROKER_URL")) == NULL)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_BROKER_URL is not set");
    if ((cfg->token = cli_env_take_secret("GSAP_TOKEN")) == NULL)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_TOKEN is not set");
    if (strpbrk(cfg->token, "\r\n") != NULL || strlen(cfg->token) > CLI_HTTP_TOKEN_MAX)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_TOKEN is not a bearer token");
    if (insecure && strcmp(insecure, "1") != 0 && strcmp(insecure, "0") != 0)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_INSECURE \"%s\" is not 0 or 1", insecure);
    if (cli_http_init(cfg->http, cfg->url, cfg->token, env_get(BRK_TLS_CA_ENV),
                      insecure && strcmp(insecure, "1") == 0, err, sizeof err) != 0)
        return fail(st, CLI_EXEC_INTERNAL, "%s", err);
    return CLI_EXEC_OK;
}

/* The AC's text from --ac FILE, else GSAP_AC (taken out of our environment), else none. */
static int load_ac_text(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    char *env_ac = cli_env_take_secret("GSAP_AC");

    if (cfg->ac_file) {
        free(env_ac);
        if (cli_ac_read_file(cfg->ac_file, &cfg->ac_text, &cfg->ac_len, err, sizeof err) != 0)
            return fail(st, CLI_EXEC_INTERNAL, "%s", err);
    } else if (env_ac) {
        cfg->ac_text = env_ac;
        cfg->ac_len = strlen(env_ac);
    }
    return CLI_EXEC_OK;
}

static int load_env(exec_cfg_t *cfg, exec_run_t *st)
{
    const char *wait = env_get("GSAP_ELEVATION_WAIT_S"), *self = env_get("GSAP_SELF_AUTH");
    int code;

    if ((code = load_broker(cfg, st)) != CLI_EXEC_OK ||
        (code = load_ac_text(cfg, st)) != CLI_EXEC_OK)
        return code;
    if ((code = env_cid("GSAP_CORPUS_CID", &cfg->corpus_cid, st)) != CLI_EXEC_OK ||
        (code = env_cid("GSAP_PARAMETERS_CID", &cfg->params_cid, st)) != CLI_EXEC_OK ||
        (code = env_cid("CHRONICLE_MERKLE_ROOT", &cfg->merkle_root, st)) != CLI_EXEC_OK)
        return code;
    if (cfg->ac_text == NULL && cfg->corpus_cid == NULL)
        return fail(st, CLI_EXEC_INTERNAL,
                    "GSAP_CORPUS_CID is not set (needed to request an AC without GSAP_AC)");
    cfg->accord = env_get("GSAP_ACCORD_TEMPLATE") ? env_get("GSAP_ACCORD_TEMPLATE") : "default";
    brk_cid_of_bytes("{}", 2, cfg->params_default);
    cfg->capability_set = env_get("GSAP_CAPABILITY_SET");
    cfg->chronicle_session = env_get("CHRONICLE_SESSION_ID");
    cfg->behavior_state =
        env_get("CHRONICLE_BEHAVIOR_STATE") ? env_get("CHRONICLE_BEHAVIOR_STATE") : "unavailable";
    if (strcmp(cfg->behavior_state, "verified") != 0 &&
        strcmp(cfg->behavior_state, "violated") != 0 &&
        strcmp(cfg->behavior_state, "unavailable") != 0)
        return fail(st, CLI_EXEC_INTERNAL,
                    "CHRONICLE_BEHAVIOR_STATE \"%s\" is not verified, violated or unavailable",
                    cfg->behavior_state);
    cfg->elevation_wait_s = EXEC_ELEVATION_WAIT_S;
    if (wait) {
        char *end;
        errno = 0;
        cfg->elevation_wait_s = strtol(wait, &end, 10);
        if (errno || *end || cfg->elevation_wait_s < 0 ||
            cfg->elevation_wait_s > EXEC_ELEVATION_WAIT_MAX_S)
            return fail(st, CLI_EXEC_INTERNAL, "GSAP_ELEVATION_WAIT_S \"%s\" is not 0..%d", wait,
                        EXEC_ELEVATION_WAIT_MAX_S);
    }
    if (self && strcmp(self, "1") != 0 && strcmp(self, "0") != 0)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_SELF_AUTH \"%s\" is not 0 or 1", self);
    cfg->self_auth = self && strcmp(self, "1") == 0;
    cfg->spool_dir = env_get("GSAP_SPOOL_DIR");
    if (cfg->self_auth && cfg->spool_dir == NULL)
        return fail(st, CLI_EXEC_INTERNAL, "GSAP_SELF_AUTH=1 needs GSAP_SPOOL_DIR");
    if (cfg->self_auth && cfg->corpus_cid == NULL)
        return fail(st, CLI_EXEC_INTERNAL,
                    "GSAP_SELF_AUTH=1 needs GSAP_CORPUS_CID (the receipt's corpus_entry_cid)");
    return CLI_EXEC_OK;
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
        code = fail(st, CLI_EXEC_INTERNAL, "cannot build the authorize request");
        goto out;
    }
    brk_hex(rnd, sizeof rnd, rnd_hex);
    snprintf(key, sizeof key, "exec-%s", rnd_hex);
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_POST, "/governance/authorize/", body, key, &r);
    if (rc != 0) {
        code = transfer_failed(cfg, st, rc, "authorize");
    } else if (r.status == 200 && r.json != NULL) {
        st->ac = json_incref(r.json);
        code = CLI_EXEC_OK;
    } else if (r.status == 403 && json_object_get(r.json, "denial") != NULL) {
        const json_t *d = json_object_get(r.json, "denial");
        code = fail(st, CLI_EXEC_AUTH, "authorization denied (%s): %s, denial %s",
                    jstr(d, "reason_code") ? jstr(d, "reason_code") : "?",
                    jstr(d, "reason") ? jstr(d, "reason") : "no reason given",
                    jstr(d, "denial_id") ? jstr(d, "denial_id") : "?");
    } else if (r.status == 404) {
        /* accord_not_found: the caller's configuration (GSAP_ACCORD_TEMPLATE), not a denial */
        char e[EXEC_ERR_MAX / 2];
        broker_error(&r, e, sizeof e);
        code = fail(st, CLI_EXEC_INTERNAL, "authorize: %s", e);
    } else {
        code = unexpected_status(st, &r, "authorize");
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
        return fail(st, CLI_EXEC_AUTH, "the AC has no usable context_id");
    snprintf(path, sizeof path, "/governance/authorize/%s/", id);
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_GET, path, NULL, NULL, &r);
    if (rc != 0)
        code = transfer_failed(cfg, st, rc, "poll the AC");
    else if (r.status != 200 || r.json == NULL)
        code = unexpected_status(st, &r, "poll the AC");
    else if (jstr(r.json, "context_id") == NULL || strcmp(jstr(r.json, "context_id"), id) != 0)
        code = fail(st, CLI_EXEC_INTERNAL, "poll the AC: the broker answered another context");
    else {
        *out = json_incref(r.json);
        code = CLI_EXEC_OK;
    }
    cli_http_resp_clear(&r);
    return code;
}

static int status_unusable(exec_run_t *st, const char *id, const char *status)
{
    return fail(st, CLI_EXEC_AUTH, "the AC %s is %s", id, status ? status : "without a status");
}

/* A pending AC waits for an approver: poll until it is decided or the wait runs out. */
static int await_elevation(const exec_cfg_t *cfg, exec_run_t *st)
{
    long long deadline = now_ms() + cfg->elevation_wait_s * 1000LL;
    char id[EXEC_CTX_ID_MAX + 1];

    /* A copy: each poll replaces st->ac, and the id with it. */
    snprintf(id, sizeof id, "%s", jstr(st->ac, "context_id") ? jstr(st->ac, "context_id") : "");
    while (jstr(st->ac, "status") && strcmp(jstr(st->ac, "status"), "pending") == 0) {
        json_t *next;
        int code;
        if (now_ms() >= deadline)
            return fail(st, CLI_EXEC_AUTH, "the elevation of AC %s was not approved within %ld s",
                        id, cfg->elevation_wait_s);
        cli_http_sleep_ms(EXEC_POLL_MS);
        if ((code = fetch_ac(cfg, st, id, &next)) != CLI_EXEC_OK)
            return code;
        json_decref(st->ac);
        st->ac = next;
    }
    return CLI_EXEC_OK;
}

static int obtain_ac(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *status;
    int code;

    if (cfg->ac_text) {
        char err[EXEC_ERR_MAX / 2];
        if (cli_ac_decode(cfg->ac_text, cfg->ac_len, &st->ac, err, sizeof err) != 0)
            return fail(st, CLI_EXEC_INTERNAL, "%s %s", cfg->ac_file ? "--ac:" : "GSAP_AC:", err);
        if (!context_id_valid(jstr(st->ac, "context_id")))
            return fail(st, CLI_EXEC_AUTH, "the given AC has no usable context_id");
    } else if ((code = authorize(cfg, st)) != CLI_EXEC_OK) {
        return code;
    }
    if ((code = await_elevation(cfg, st)) != CLI_EXEC_OK)
        return code;
    status = jstr(st->ac, "status");
    if (status == NULL || (strcmp(status, "authorized") != 0 && strcmp(status, "active") != 0))
        return status_unusable(st, jstr(st->ac, "context_id") ? jstr(st->ac, "context_id") : "?",
                               status);
    return CLI_EXEC_OK;
}

/*
 * A pre-issued AC may have been used or have lapsed since it was handed to us: ask the broker
 * before the command runs, so a replay is refused without running anything. The CR post stays
 * the authority (two concurrent runs both pass this check; the broker accepts one CR).
 */
static int preflight(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *id = jstr(st->ac, "context_id");
    json_t *now = NULL;
    int code = fetch_ac(cfg, st, id, &now);

    if (code == CLI_EXEC_OK) {
        const char *status = jstr(now, "status");
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
        code = transfer_failed(cfg, st, rc, "fetch the broker's keys");
        goto out;
    }
    if (r.status != 200 || !json_is_array(keys = json_object_get(r.json, "keys"))) {
        char e[EXEC_ERR_MAX / 2];
        broker_error(&r, e, sizeof e);
        code = fail(st, CLI_EXEC_INTERNAL, "fetch the broker's keys: %s", e);
        goto out;
    }
    json_array_foreach(keys, i, k)
    {
        const char *id = jstr(k, "key_id"), *pk = jstr(k, "public_key");
        if (id && pk && strcmp(id, key_id) == 0) {
            if (brk_b64url_decode(pk, strlen(pk), pub, BRK_ED25519_PUB_LEN) == BRK_ED25519_PUB_LEN)
                code = CLI_EXEC_OK;
            else
                fail(st, code, "the broker publishes a malformed key %s", key_id);
            goto out;
        }
    }
    fail(st, code, "the AC is signed by key %s, which the broker does not publish", key_id);
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
    const char *key_id = jstr(st->ac, "key_id"), *sig = jstr(st->ac, "signature");
    const char *ac_cid = jstr(st->ac, "ac_cid");
    uint8_t pub[BRK_ED25519_PUB_LEN], raw[BRK_ED25519_SIG_LEN];
    size_t plen = strlen(EXEC_SIG_PREFIX), clen;
    char *canon = NULL, cid[BRK_CID_LEN + 1];
    json_t *body = NULL;
    int code;

    if (key_id == NULL || sig == NULL || ac_cid == NULL)
        return fail(st, CLI_EXEC_AUTH, "the AC lacks key_id, signature or ac_cid");
    if ((code = published_key(cfg, st, key_id, pub)) != CLI_EXEC_OK)
        return code;
    code = CLI_EXEC_AUTH;
    if (strncmp(sig, EXEC_SIG_PREFIX, plen) != 0 ||
        brk_b64url_decode(sig + plen, strlen(sig + plen), raw, sizeof raw) != BRK_ED25519_SIG_LEN) {
        fail(st, code, "the AC's signature is not \"ed25519:\" + base64url of 64 bytes");
        goto out;
    }
    body = json_deep_copy(st->ac);
    json_object_del(body, "signature");
    json_object_del(body, "ac_cid");
    json_object_set_new(body, "status", json_string("authorized"));
    if (brk_jcs_canonicalize(body, &canon, &clen) != 0) {
        fail(st, code, "the AC cannot be canonicalized (RFC 8785)");
        goto out;
    }
    if (!brk_ed25519_verify(pub, canon, clen, raw)) {
        fail(st, code, "the AC's signature does not verify with key %s", key_id);
        goto out;
    }
    brk_cid_of_bytes(canon, clen, cid);
    if (strcmp(cid, ac_cid) != 0) {
        fail(st, code, "the AC's ac_cid %s is not the CID of its content (%s)", ac_cid, cid);
        goto out;
    }
    code = CLI_EXEC_OK;
out:
    free(canon);
    if (body)
        json_decref(body);
    return code;
}

/* The AC authorizes this command, on this corpus entry, with these parameters, until when. */
static int verify_scope(const exec_cfg_t *cfg, exec_run_t *st)
{
    const char *exp = jstr(st->ac, "expires_at");
    const char *corpus = jstr2(st->ac, "operation", "corpus_entry_cid");
    const char *cmd = jstr2(st->ac, "operation", "command_hash");
    const char *params = jstr2(st->ac, "operation", "parameters_cid");
    time_t t;

    if (exp == NULL || parse_rfc3339(exp, &t) != 0)
        return fail(st, CLI_EXEC_AUTH, "the AC's expires_at is not an RFC 3339 UTC time");
    if (t <= time(NULL))
        return fail(st, CLI_EXEC_AUTH, "the AC expired at %s", exp);
    if (cfg->corpus_cid && (corpus == NULL || strcmp(corpus, cfg->corpus_cid) != 0))
        return fail(st, CLI_EXEC_VIOLATION, "the AC is for corpus entry %s, not GSAP_CORPUS_CID %s",
                    corpus ? corpus : "(none)", cfg->corpus_cid);
    if (cmd == NULL || strcmp(cmd, cfg->command_hash) != 0)
        return fail(st, CLI_EXEC_VIOLATION, "the AC authorizes command %s, not this one (%s)",
                    cmd ? cmd : "(none)", cfg->command_hash);
    if (cfg->params_cid && (params == NULL || strcmp(params, cfg->params_cid) != 0))
        return fail(st, CLI_EXEC_VIOLATION,
                    "the AC is for parameters %s, not GSAP_PARAMETERS_CID %s",
                    params ? params : "(none)", cfg->params_cid);
    return CLI_EXEC_OK;
}

/* ---- step 3: run the command --------------------------------------------------------------- */

typedef struct stream {
    int fd;     /* our read end, -1 at EOF */
    int out_fd; /* where it is passed through, -1 when captured or broken */
    EVP_MD_CTX *md;
} stream_t;

/* Writes everything; 0, or BRK_EIO (a closed terminal or pipe: the caller stops writing). */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return BRK_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void capture(exec_run_t *st, const char *p, size_t n)
{
    size_t room = EXEC_MAX_CAPTURE - st->captured_len;
    if (st->captured == NULL)
        st->captured = brk_malloc(EXEC_MAX_CAPTURE);
    if (n > room) {
        st->captured_truncated = 1;
        n = room;
    }
    memcpy(st->captured + st->captured_len, p, n);
    st->captured_len += n;
}

/* Reads what one pipe has: hash it, count it, pass it on or capture it. */
static int drain(exec_run_t *st, stream_t *s, int capture_it)
{
    char buf[EXEC_IO_CHUNK];
    ssize_t n = read(s->fd, buf, sizeof buf);

    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : BRK_EIO;
    if (n == 0) {
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    if (EVP_DigestUpdate(s->md, buf, (size_t)n) != 1)
        return BRK_ECRYPTO;
    st->output_bytes += (uint64_t)n;
    if (capture_it)
        capture(st, buf, (size_t)n);
    else if (s->out_fd >= 0 && write_all(s->out_fd, buf, (size_t)n) != 0)
        s->out_fd = -1; /* keep reading and hashing: the command must not block on us */
    return 0;
}

static int pump(const exec_cfg_t *cfg, exec_run_t *st, stream_t s[2])
{
    while (s[0].fd >= 0 || s[1].fd >= 0) {
        struct pollfd p[2] = {{.fd = s[0].fd, .events = POLLIN}, {.fd = s[1].fd, .events = POLLIN}};
        int rc;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return BRK_EIO;
        }
        for (int i = 0; i < 2; i++) {
            if (s[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                (rc = drain(st, &s[i], i == 0 && cfg->json)) != 0)
                return rc;
        }
    }
    return 0;
}

static void digest_cid(EVP_MD_CTX *md, char out[BRK_CID_LEN + 1])
{
    uint8_t d[BRK_SHA256_LEN];
    unsigned len = 0;
    EVP_DigestFinal_ex(md, d, &len);
    memcpy(out, "sha256:", 7);
    brk_hex(d, BRK_SHA256_LEN, out + 7);
}

/* Closes every descriptor from 3 up: whatever exec or its own parent left open (a broker
 * connection, a socket gsh was given) is not the command's to use. */
static void close_from_3(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < (max > 0 ? max : 65536); fd++)
        close((int)fd);
}

/* The child: our stdin, the pipes as stdout and stderr, signals as they were, nothing else
 * inherited, and an environment without GSAP_* and CHRONICLE_* (envp, made before fork). */
static void child(const exec_cfg_t *cfg, char **envp, int out_w, int err_w,
                  const struct sigaction *old_int, const struct sigaction *old_quit,
                  const struct sigaction *old_pipe)
{
    char *argv[] = {"sh", "-c", (char *)cfg->command, NULL};

    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGQUIT, old_quit, NULL);
    sigaction(SIGPIPE, old_pipe, NULL);
    if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        _exit(127);
    close_from_3();
    execve(EXEC_SHELL, argv, envp);
    dprintf(2, "gsap-broker exec: cannot run %s: %s\n", EXEC_SHELL, strerror(errno));
    _exit(127);
}

/*
 * Runs the command and fills started_at, completed_at, cmd_exit, the hashes and the byte
 * count. SIGINT and SIGQUIT are ignored here while it runs, as system(3) does: a Ctrl-C stops
 * the command, and exec still reports how it ended. old_pipe is our SIGPIPE disposition
 * before cli_exec ignored it, for the child to inherit.
 */
static int run_command(const exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe)
{
    int op[2] = {-1, -1}, ep[2] = {-1, -1}, wst, rc = 0;
    stream_t s[2] = {{-1, cfg->json ? -1 : 1, NULL}, {-1, 2, NULL}};
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    pid_t pid;
    int code = CLI_EXEC_INTERNAL;
    char **envp = cli_env_for_child();

    s[0].md = EVP_MD_CTX_new();
    s[1].md = EVP_MD_CTX_new();
    if (!s[0].md || !s[1].md || EVP_DigestInit_ex(s[0].md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(s[1].md, EVP_sha256(), NULL) != 1) {
        fail(st, code, "cannot set up SHA-256");
        goto out;
    }
    if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
        fail(st, code, "cannot create pipes: %s", strerror(errno));
        goto out;
    }
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    fflush(NULL);
    time_now_rfc3339(st->started_at);
    if ((pid = fork()) < 0) {
        fail(st, code, "cannot fork: %s", strerror(errno));
        goto restore;
    }
    if (pid == 0)
        child(cfg, envp, op[1], ep[1], &old_int, &old_quit, old_pipe);
    st->ran = 1;
    close(op[1]);
    close(ep[1]);
    op[1] = ep[1] = -1;
    s[0].fd = op[0];
    s[1].fd = ep[0];
    op[0] = ep[0] = -1;
    rc = pump(cfg, st, s);
    /* After a failed pump, closing our ends lets a child blocked on a full pipe go on (it
     * gets EPIPE) instead of waiting for us forever. */
    for (int i = 0; i < 2; i++) {
        if (s[i].fd >= 0)
            close(s[i].fd);
        s[i].fd = -1;
    }
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    time_now_rfc3339(st->completed_at);
    st->cmd_exit = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
    if (rc != 0) {
        fail(st, code, "cannot read the command's output: %s", brk_strerror(rc));
        goto restore;
    }
    digest_cid(s[0].md, st->stdout_hash);
    digest_cid(s[1].md, st->stderr_hash);
    code = CLI_EXEC_OK;
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
out:
    for (int i = 0; i < 2; i++) {
        if (op[i] >= 0)
            close(op[i]);
        if (ep[i] >= 0)
            close(ep[i]);
        if (s[i].fd >= 0)
            close(s[i].fd);
        EVP_MD_CTX_free(s[i].md);
    }
    free(envp);
    return code;
}

/* ---- step 4: the completion receipt ------------------------------------------------------- */

/* The CR of the run. A self-authorized run has no AC to repeat values from: its context is
 * st->self_id, its corpus GSAP_CORPUS_CID (required), its parameters GSAP_PARAMETERS_CID or
 * the CID of {} as in an authorize request. */
static json_t *completion_request(const exec_cfg_t *cfg, const exec_run_t *st)
{
    int self = st->self_id[0] != '\0';
    const char *ctx = self ? st->self_id : jstr(st->ac, "context_id");
    const char *corpus =
        cfg->corpus_cid ? cfg->corpus_cid : jstr2(st->ac, "operation", "corpus_entry_cid");
    const char *params = cfg->params_cid ? cfg->params_cid
                         : self          ? cfg->params_default
                                         : jstr2(st->ac, "operation", "parameters_cid");
    /* Without a Chronicle recorder there is no session id to report: the member is left out
     * (the broker takes it as optional), and merkle_root is null. */
    json_t *chronicle =
        json_pack("{s:s*,s:s,s:s?}", "session_id", cfg->chronicle_session, "behavior_state",
                  cfg->behavior_state, "merkle_root", cfg->merkle_root);

    return json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:s?,s:s?,s:s,s:s,s:I,s:o,s:b}", "context_id", ctx,
                     "outcome", st->cmd_exit == 0 ? "completed" : "failed", "exit_code",
                     st->cmd_exit, "started_at", st->started_at, "completed_at", st->completed_at,
                     "command_hash", cfg->command_hash, "corpus_entry_cid", corpus,
                     "parameters_cid", params, "stdout_hash", st->stdout_hash, "stderr_hash",
                     st->stderr_hash, "output_bytes", (json_int_t)st->output_bytes, "chronicle",
                     chronicle, "self_authorized", self);
}

/* The broker's judgement of an accepted CR: a violated receipt is a governance violation. */
static int judge_receipt(exec_run_t *st)
{
    const char *eff = jstr(st->receipt, "effective_outcome");
    if (eff && strcmp(eff, "violated") == 0) {
        char *flags = json_dumps(json_object_get(st->receipt, "flags"), JSON_COMPACT);
        int code = fail(st, CLI_EXEC_VIOLATION, "the broker judged the run violated (flags %s)",
                        flags ? flags : "?");
        free(flags);
        return code;
    }
    return CLI_EXEC_OK;
}

/* Writes the CR body to the spool (st->spooled gets the file name). CLI_EXEC_OK or 125. */
static int spool_receipt(const exec_cfg_t *cfg, exec_run_t *st, const char *body)
{
    char err[EXEC_ERR_MAX / 2];
    int dirfd = -1, code = CLI_EXEC_OK;

    if (cli_spool_open(cfg->spool_dir, 1, &dirfd, err, sizeof err) != 0 ||
        cli_spool_write(dirfd, body, st->spooled, err, sizeof err) != 0)
        code = fail(st, CLI_EXEC_INTERNAL, "the command ran, but its receipt cannot be spooled: %s",
                    err);
    else
        fprintf(stderr, "gsap-broker exec: receipt spooled as %s/%s\n", cfg->spool_dir,
                st->spooled);
    if (dirfd >= 0)
        close(dirfd);
    return code;
}

static int complete(const exec_cfg_t *cfg, exec_run_t *st)
{
    json_t *req = completion_request(cfg, st);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    cli_http_resp_t r = {0};
    int rc, code;

    if (body == NULL) {
        code = fail(st, CLI_EXEC_INTERNAL, "cannot build the completion request");
        goto out;
    }
    /* One body for every try: the broker recognises an identical retry of an accepted CR. */
    rc = cli_http_retry(cfg->http, EVHTTP_REQ_POST, "/governance/complete/", body, NULL, &r);
    if (rc != 0) {
        code = transfer_failed(cfg, st, rc, "post the completion receipt");
        /* The broker went away while the command ran: under GSAP_SELF_AUTH the receipt is
         * kept for --flush-spool rather than lost (it names the broker's own context). */
        if (code == CLI_EXEC_UNREACHABLE && cfg->self_auth) {
            fprintf(stderr, "gsap-broker exec: %s\n", st->error);
            st->error[0] = '\0';
            code = spool_receipt(cfg, st, body);
        }
    } else if (r.status == 200 && r.json != NULL) {
        st->receipt = json_incref(r.json);
        code = judge_receipt(st);
    } else if (r.status == 409) {
        char e[EXEC_ERR_MAX / 2];
        broker_error(&r, e, sizeof e);
        code = fail(st, CLI_EXEC_AUTH,
                    "the broker refused the receipt (replayed or consumed AC): %s", e);
    } else {
        code = unexpected_status(st, &r, "post the completion receipt");
    }
out:
    cli_http_resp_clear(&r);
    free(body);
    if (req)
        json_decref(req);
    return code;
}

/* ---- the self-authorized fallback ---------------------------------------------------------- */

/* A random (version 4) UUID after EXEC_SELF_PREFIX: the context id of a self-authorized run. */
static int self_context_id(char out[EXEC_SELF_ID_MAX])
{
    uint8_t u[16];
    char h[33];
    if (brk_random(u, sizeof u) != 0)
        return BRK_ECRYPTO;
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    brk_hex(u, sizeof u, h);
    snprintf(out, EXEC_SELF_ID_MAX, "%s%.8s-%.4s-%.4s-%.4s-%.12s", EXEC_SELF_PREFIX, h, h + 8,
             h + 12, h + 16, h + 20);
    return 0;
}

/*
 * GSAP_SELF_AUTH=1 and the broker cannot be reached: run the command anyway (gsh's
 * fallback) and spool its receipt. The spool is checked (owner, mode, room) before the
 * command runs, so a run whose receipt could not be kept does not happen.
 */
static int self_authorized(const exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe)
{
    char err[EXEC_ERR_MAX / 2];
    json_t *req = NULL;
    char *body = NULL;
    int dirfd = -1, n, code;

    if (cli_spool_open(cfg->spool_dir, 1, &dirfd, err, sizeof err) != 0) {
        code = fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR: %s", err);
        goto out;
    }
    if ((n = cli_spool_count(dirfd)) < 0 || n >= CLI_SPOOL_MAX_FILES) {
        char why[EXEC_ERR_MAX / 2]; /* fail() rewrites st->error: not an argument of its own */
        snprintf(why, sizeof why, "%s", st->error);
        code = fail(st, CLI_EXEC_UNREACHABLE,
                    "%s; not running self-authorized: the spool %s (flush it with "
                    "`gsap-broker exec --flush-spool`)",
                    why, n < 0 ? "cannot be listed" : "is full");
        goto out;
    }
    if (self_context_id(st->self_id) != 0) {
        code = fail(st, CLI_EXEC_INTERNAL, "cannot make a context id");
        goto out;
    }
    fprintf(stderr, "gsap-broker exec: %s; running self-authorized as %s (GSAP_SELF_AUTH=1)\n",
            st->error, st->self_id);
    st->error[0] = '\0';
    if (st->ac) { /* unverified: nothing of it goes into the receipt */
        json_decref(st->ac);
        st->ac = NULL;
    }
    if ((code = run_command(cfg, st, old_pipe)) != CLI_EXEC_OK)
        goto out;
    req = completion_request(cfg, st);
    if ((body = req ? json_dumps(req, JSON_COMPACT) : NULL) == NULL) {
        code = fail(st, CLI_EXEC_INTERNAL, "the command ran, but its receipt cannot be built");
        goto out;
    }
    if ((code = spool_receipt(cfg, st, body)) != CLI_EXEC_OK)
        goto out;
    code = st->cmd_exit == 0
               ? CLI_EXEC_OK
               : fail(st, CLI_EXEC_FAILED, "the command exited with status %d", st->cmd_exit);
out:
    if (dirfd >= 0)
        close(dirfd);
    if (req)
        json_decref(req);
    free(body);
    return code;
}

/* `--flush-spool`: posts the spool; 0 when everything was posted. */
static int flush_spool(exec_cfg_t *cfg, exec_run_t *st)
{
    char err[EXEC_ERR_MAX / 2];
    cli_spool_report_t rep = {0};
    int dirfd = -1, code;

    if ((code = load_broker(cfg, st)) != CLI_EXEC_OK)
        goto out;
    if ((cfg->spool_dir = env_get("GSAP_SPOOL_DIR")) == NULL) {
        code = fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR is not set");
        goto out;
    }
    if (cli_spool_open(cfg->spool_dir, 0, &dirfd, err, sizeof err) != 0) {
        code = fail(st, CLI_EXEC_INTERNAL, "GSAP_SPOOL_DIR: %s", err);
        goto out;
    }
    cli_spool_flush(dirfd, cfg->http, stderr, &rep);
    if (rep.stop_rc != 0)
        code = transfer_failed(cfg, st, rep.stop_rc, "flush the spool");
    else if (rep.stop_status == 401 || rep.stop_status == 403)
        code = fail(st, CLI_EXEC_AUTH, "flush the spool: the broker answered %d", rep.stop_status);
    else if (rep.kept || rep.rejected)
        code = fail(st, CLI_EXEC_FAILED, "flush the spool: %d receipt(s) kept, %d rejected",
                    rep.kept, rep.rejected);
    else
        code = CLI_EXEC_OK;
out:
    if (cfg->json) {
        json_t *o = json_pack("{s:b,s:i,s:i,s:i}", "success", code == CLI_EXEC_OK, "posted",
                              rep.posted, "kept", rep.kept, "rejected", rep.rejected);
        char *text;
        if (code != CLI_EXEC_OK)
            json_object_set_new(o, "error", json_string(st->error));
        if ((text = json_dumps(o, JSON_COMPACT)) != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("posted %d, kept %d, rejected %d\n", rep.posted, rep.kept, rep.rejected);
        if (code != CLI_EXEC_OK)
            fprintf(stderr, "gsap-broker exec: %s\n", st->error);
    }
    fflush(stdout);
    if (dirfd >= 0)
        close(dirfd);
    return code;
}

/* ---- the command ---------------------------------------------------------------------------- */

static int run(exec_cfg_t *cfg, exec_run_t *st, const struct sigaction *old_pipe)
{
    int code = load_env(cfg, st);

    if (code == CLI_EXEC_OK)
        code = obtain_ac(cfg, st);
    if (code == CLI_EXEC_OK)
        code = verify_signature(cfg, st);
    if (code == CLI_EXEC_OK)
        code = verify_scope(cfg, st);
    if (code == CLI_EXEC_OK && cfg->ac_text)
        code = preflight(cfg, st);
    if (code == CLI_EXEC_UNREACHABLE && cfg->self_auth && !cfg->dry_run)
        return self_authorized(cfg, st, old_pipe);
    if (code != CLI_EXEC_OK || cfg->dry_run)
        return code;
    if ((code = run_command(cfg, st, old_pipe)) != CLI_EXEC_OK)
        return code;
    /* The receipt goes in whatever the command did: a failed run is evidence too. */
    if ((code = complete(cfg, st)) != CLI_EXEC_OK)
        return code;
    if (st->cmd_exit != 0)
        return fail(st, CLI_EXEC_FAILED, "the command exited with status %d", st->cmd_exit);
    return CLI_EXEC_OK;
}

int cli_exec(int argc, char **argv)
{
    exec_cfg_t cfg = {0};
    exec_run_t st = {0};
    cli_http_t http = {0};
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    int code = parse_args(argc, argv, &cfg, &st);

    if (code < 0)
        return CLI_EXEC_OK; /* --help */
    cfg.http = &http;
    /* Not dumpable: a process of the same (non-root) user, such as the governed command, may
     * not ptrace us or read /proc/<pid>/mem for the token. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* A reader that went away is an error to handle where it happens (a write to the
     * terminal, a broker socket), not a reason to die before the receipt is posted. */
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    if (code == CLI_EXEC_OK && cfg.flush_spool) {
        code = flush_spool(&cfg, &st);
    } else {
        if (code == CLI_EXEC_OK)
            code = run(&cfg, &st, &old_pipe);
        cli_exec__report(&cfg, &st, code);
    }
    sigaction(SIGPIPE, &old_pipe, NULL);
    cli_http_clear(&http);
    free(cfg.token);
    free(cfg.ac_text);
    if (st.ac)
        json_decref(st.ac);
    if (st.receipt)
        json_decref(st.receipt);
    free(st.captured);
    return code;
}
