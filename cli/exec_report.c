/*
 * exec_report: how `gsap-broker exec` tells its caller what happened: gsh's --json object
 * (success, exit_code, output, lineage_cid, session_url, and this client's extra members) or
 * a line on stderr. The captured output is made valid UTF-8 for JSON; its hash in the receipt
 * covers the bytes as they were.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "brk_alloc.h"
#include "exec.h"
#include "exec_int.h"
#include "banned.h"

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;

    if (p[0] < 0x80)
        return 1;
    if (p[0] < 0xc2 || p[0] > 0xf4)
        return 0;
    len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (p[0] == 0xe0)
        lo = 0xa0; /* overlong */
    else if (p[0] == 0xed)
        hi = 0x9f; /* surrogates */
    else if (p[0] == 0xf0)
        lo = 0x90; /* overlong */
    else if (p[0] == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (len > n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* JSON strings must be UTF-8: invalid bytes of the captured output become U+FFFD. */
static json_t *utf8_string(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    char *fixed;
    size_t o = 0;

    if (s)
        return s;
    fixed = brk_malloc(n * 3 + 1);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq((const unsigned char *)p + i, n - i);
        if (len > 0) {
            memcpy(fixed + o, p + i, len);
            o += len;
            i += len;
        } else {
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
    const char *v = jstr(primary, key) ? jstr(primary, key) : jstr(fallback, key);
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
