/*
 * exec_report: how `gsap-broker exec` tells its caller what happened. Owns the reason of a
 * failure (cli_exec__fail and the translation of broker answers and transfer failures into
 * exit codes) and the printing of the outcome: gsh's --json object (success, exit_code,
 * output, lineage_cid, session_url, and this client's extra members) or a line on stderr,
 * and the counts of --flush-spool. The captured output is made valid UTF-8 for JSON; its hash
 * in the receipt covers the bytes as they were.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "brk_alloc.h"
#include "brk_err.h"
#include "brk_uri.h"
#include "exec.h"
#include "exec_int.h"
#include "banned.h"

/* ---- why a run fails ---------------------------------------------------------------------- */

int cli_exec__fail(exec_run_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error, sizeof st->error, fmt, ap);
    va_end(ap);
    return code;
}

void cli_exec__broker_error(const cli_http_resp_t *r, char *buf, size_t cap)
{
    const json_t *e = json_object_get(r->json, "error");
    const char *code = cli_exec__jstr(e, "code"), *msg = cli_exec__jstr(e, "message");
    snprintf(buf, cap, "%d %s%s%s", r->status, code ? code : "(no error code)", msg ? ": " : "",
             msg ? msg : "");
}

/* A TLS failure (a certificate that does not verify) is not "unreachable": it is a refusal
 * to talk, and must not start the self-authorized fallback. */
int cli_exec__transfer_failed(const exec_cfg_t *cfg, exec_run_t *st, int rc, const char *what)
{
    if (rc == BRK_ETOOBIG)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL,
                              "%s: the broker's answer is larger than %d bytes", what,
                              CLI_HTTP_MAX_RESPONSE);
    if (rc == BRK_ECRYPTO)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s: TLS with \"%s\" failed: %s", what,
                              cfg->url,
                              cfg->http->tls_error[0] ? cfg->http->tls_error : "handshake failed");
    if (cli_http_unreachable(rc))
        return cli_exec__fail(st, CLI_EXEC_UNREACHABLE,
                              "%s: cannot reach the broker at \"%s\" (%s, %d tries)", what,
                              cfg->url, brk_strerror(rc), CLI_HTTP_RETRIES + 1);
    return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s: \"%s\": %s", what, cfg->url,
                          brk_strerror(rc));
}

/* 401/403/404 mean we may not use this AC; the rest is a configuration problem or a broker
 * fault. */
int cli_exec__unexpected_status(exec_run_t *st, const cli_http_resp_t *r, const char *what)
{
    char e[EXEC_ERR_MAX / 2];
    cli_exec__broker_error(r, e, sizeof e);
    if (r->status == 401 || r->status == 403 || r->status == 404)
        return cli_exec__fail(st, CLI_EXEC_AUTH, "%s: %s", what, e);
    if (r->status >= 500)
        return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s: %s (%d tries)", what, e,
                              CLI_HTTP_RETRIES + 1);
    return cli_exec__fail(st, CLI_EXEC_INTERNAL, "%s: %s", what, e);
}

/* ---- printing the outcome ----------------------------------------------------------------- */

/* JSON strings must be UTF-8: each byte of the captured output that does not start a
 * well-formed sequence (brk_uri's rule: no overlong forms, surrogates or code points past
 * U+10FFFF) becomes U+FFFD. */
static json_t *utf8_string(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    char *fixed;
    size_t o = 0;

    if (s)
        return s;
    fixed = brk_malloc(n * 3 + 1);
    for (size_t i = 0; i < n;) {
        size_t good = brk_utf8_valid_prefix(p + i, n - i);
        memcpy(fixed + o, p + i, good);
        o += good;
        i += good;
        if (i < n) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    s = json_stringn(fixed, o);
    free(fixed);
    return s;
}

/* A string member of the receipt, else of the AC, as a JSON string or null. */
static json_t *field(const json_t *primary, const json_t *fallback, const char *key)
{
    const char *v =
        cli_exec__jstr(primary, key) ? cli_exec__jstr(primary, key) : cli_exec__jstr(fallback, key);
    return v ? json_string(v) : json_null();
}

/* The --json summary: one object on one line. */
static void report_json(const exec_cfg_t *cfg, const exec_run_t *st, int code)
{
    json_t *o = json_object();
    char *text;

    json_object_set_new(o, "success", json_boolean(code == CLI_EXEC_OK));
    json_object_set_new(o, "exit_code", st->ran ? json_integer(st->cmd_exit) : json_null());
    json_object_set_new(
        o, "ac_id", st->self_id[0] ? json_string(st->self_id) : field(st->ac, NULL, "context_id"));
    json_object_set_new(o, "cr_id", field(st->receipt, NULL, "cr_id"));
    json_object_set_new(o, "chronicle_cid", field(st->receipt, NULL, "chronicle_cid"));
    json_object_set_new(o, "lineage_cid", field(st->receipt, NULL, "lineage_cid"));
    json_object_set_new(o, "session_url", field(st->receipt, st->ac, "session_url"));
    json_object_set_new(o, "ac_mode",
                        st->ac == NULL ? json_null()
                        : json_is_true(json_object_get(st->ac, "session_mode"))
                            ? json_string("session")
                            : json_string("single"));
    if (st->receipt)
        json_object_set_new(o, "effective_outcome", field(st->receipt, NULL, "effective_outcome"));
    if (cfg->dry_run)
        json_object_set_new(o, "dry_run", json_true());
    if (st->self_id[0])
        json_object_set_new(o, "self_authorized", json_true());
    if (st->self_id[0] || st->spooled[0])
        json_object_set_new(o, "spool_file",
                            st->spooled[0] ? json_string(st->spooled) : json_null());
    /* gsh's "output": the command's stdout as captured (EXEC_MAX_CAPTURE bytes at most; the
     * receipt's stdout_hash covers all of it); "stdout" is the same, for older readers. */
    if (st->ran) {
        json_t *out = utf8_string(st->captured ? st->captured : "", st->captured_len);
        json_object_set(o, "output", out);
        json_object_set_new(o, "stdout", out);
        if (st->captured_truncated) {
            json_object_set_new(o, "output_truncated", json_true());
            json_object_set_new(o, "stdout_truncated", json_true());
        }
    } else {
        json_object_set_new(o, "output", json_null());
    }
    if (code != CLI_EXEC_OK)
        json_object_set_new(o, "error", json_string(st->error[0] ? st->error : "failed"));
    text = json_dumps(o, JSON_COMPACT);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(o);
}

void cli_exec__report(const exec_cfg_t *cfg, const exec_run_t *st, int code)
{
    if (cfg->json) {
        report_json(cfg, st, code);
    } else if (code != CLI_EXEC_OK) {
        fprintf(stderr, "gsap-broker exec: %s\n", st->error[0] ? st->error : "failed");
    } else if (cfg->dry_run && st->ac) {
        char *text = json_dumps(st->ac, JSON_INDENT(2));
        if (text)
            printf("%s\n", text);
        free(text);
    }
    fflush(stdout);
}

void cli_exec__report_flush(const exec_cfg_t *cfg, const exec_run_t *st,
                            const cli_spool_report_t *rep, int code)
{
    if (cfg->json) {
        json_t *o = json_pack("{s:b,s:i,s:i,s:i}", "success", code == CLI_EXEC_OK, "posted",
                              rep->posted, "kept", rep->kept, "rejected", rep->rejected);
        char *text;
        if (code != CLI_EXEC_OK)
            json_object_set_new(o, "error", json_string(st->error));
        if ((text = json_dumps(o, JSON_COMPACT)) != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else {
        printf("posted %d, kept %d, rejected %d\n", rep->posted, rep->kept, rep->rejected);
        if (code != CLI_EXEC_OK)
            fprintf(stderr, "gsap-broker exec: %s\n", st->error);
    }
    fflush(stdout);
}
