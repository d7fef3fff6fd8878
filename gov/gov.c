/* gov: ids, DIDs, session URLs and capability masks; see gov.h. */
#include "gov.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "banned.h"

int gov_fail(gov_err_t *e, int rc, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->rc = rc;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return rc;
}

void gov_new_id(const char *prefix, char out[GOV_ID_LEN + 1])
{
    uint8_t rnd[16];
    size_t pl = strlen(prefix);
    brk_random(rnd, sizeof rnd);
    memcpy(out, prefix, pl);
    brk_hex(rnd, sizeof rnd, out + pl);
}

void gov_principal_did(const char *broker_id, const char *tenant, const char *key_id,
                       char *out, size_t cap)
{
    char id[129];
    size_t i;
    for (i = 0; broker_id[i] && i < sizeof id - 1; i++) {
        char c = broker_id[i];
        id[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '.' || c == '-'
                    ? c
                    : '-';
    }
    id[i] = '\0';
    snprintf(out, cap, "did:web:%s:tenants:%s:keys:%s", id, tenant, key_id);
}

void gov_session_url(const char *public_url, const char *context_id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/governance/session/%s/", public_url, context_id);
}

int gov_self_context_valid(const char *s)
{
    size_t pl = strlen(GOV_SELF_CONTEXT_PREFIX), n = strlen(s);
    if (n <= pl || n > GOV_CONTEXT_ID_MAX || strncmp(s, GOV_SELF_CONTEXT_PREFIX, pl) != 0)
        return 0;
    for (size_t i = pl; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == pl || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

int gov_caps_parse(const char *s, uint32_t *out)
{
    size_t n = strlen(s);
    uint32_t v = 0;
    if (n < 3 || n > GOV_CAPS_STR_MAX || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return BRK_EINVAL;
    for (size_t i = 2; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return BRK_EINVAL;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

void gov_caps_fmt(uint32_t v, char out[GOV_CAPS_STR_MAX + 1])
{
    snprintf(out, GOV_CAPS_STR_MAX + 1, "0x%08x", v);
}
