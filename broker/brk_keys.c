/*
 * brk_keys: tenants, API keys, bearer tokens and roles.
 *
 * A token is "gsap.<tenant>.<key_id>.<secret>". Parsing is strict and total: every byte is
 * checked against the form in brk_keys.h, so a token that parses has no dot, space or
 * control character left in any part, and the parts can go into a query parameter as they
 * are. The stored hash is SHA-256 of the secret's base64url text (what the client sends), so
 * verification hashes the bytes received without decoding them.
 *
 * The secret exists in memory only while brk_keys_create formats the token; its buffers are
 * wiped before return.
 */
#include "brk_keys.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "brk_crypto.h"
#include "brk_err.h"
#include "brk_pq.h"
#include "banned.h"

#define BRK_TOKEN_PREFIX "gsap."
#define BRK_SECRET_BYTES 32
#define BRK_KEY_ID_BYTES (BRK_KEY_ID_HEX / 2)

static const char *const role_names[] = {"issuer",  "executor", "approver",
                                         "finance", "auditor",  "admin"};
#define ROLE_COUNT (sizeof role_names / sizeof role_names[0])

int brk_tenant_valid(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > BRK_TENANT_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0)))
            return 0;
    }
    return 1;
}

unsigned brk_role_parse(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < ROLE_COUNT; i++) {
        if (strlen(role_names[i]) == n && memcmp(role_names[i], s, n) == 0)
            return 1u << i;
    }
    return 0;
}

int brk_roles_parse_list(const char *s, unsigned *mask)
{
    unsigned m = 0, bit;
    const char *p = s, *comma;
    size_t n;

    for (;;) {
        comma = strchr(p, ',');
        n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        bit = brk_role_parse(p, n);
        if (bit == 0)
            return BRK_EINVAL; /* also an empty element: "", "a,,b", "a," */
        m |= bit;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *mask = m;
    return 0;
}

const char *brk_role_name(unsigned bit)
{
    size_t i;

    for (i = 0; i < ROLE_COUNT; i++) {
        if (bit == 1u << i)
            return role_names[i];
    }
    return NULL;
}

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

int brk_token_parse(const char *p, size_t n, brk_token_t *out)
{
    const size_t plen = sizeof BRK_TOKEN_PREFIX - 1;
    const char *tenant, *key_id, *secret, *dot;
    size_t tlen, i;
    uint8_t md[BRK_SHA256_LEN];

    memset(out, 0, sizeof *out);
    if (p == NULL || n > BRK_TOKEN_MAX || n < plen || memcmp(p, BRK_TOKEN_PREFIX, plen) != 0)
        return BRK_EAUTH;
    tenant = p + plen;
    dot = memchr(tenant, '.', n - plen);
    if (dot == NULL)
        return BRK_EAUTH;
    tlen = (size_t)(dot - tenant);
    if (!brk_tenant_valid(tenant, tlen))
        return BRK_EAUTH;
    key_id = dot + 1;
    /* What is left must be exactly key_id "." secret. */
    if ((size_t)(p + n - key_id) != BRK_KEY_ID_HEX + 1 + BRK_SECRET_B64_LEN ||
        key_id[BRK_KEY_ID_HEX] != '.')
        return BRK_EAUTH;
    for (i = 0; i < BRK_KEY_ID_HEX; i++) {
        if (!is_lower_hex(key_id[i]))
            return BRK_EAUTH;
    }
    secret = key_id + BRK_KEY_ID_HEX + 1;
    for (i = 0; i < BRK_SECRET_B64_LEN; i++) {
        if (!is_b64url(secret[i]))
            return BRK_EAUTH;
    }
    memcpy(out->tenant, tenant, tlen);
    out->tenant[tlen] = '\0';
    memcpy(out->key_id, key_id, BRK_KEY_ID_HEX);
    out->key_id[BRK_KEY_ID_HEX] = '\0';
    brk_sha256(secret, BRK_SECRET_B64_LEN, md);
    brk_hex(md, sizeof md, out->secret_hash);
    return 0;
}

/* roles_literal: a mask as a PostgreSQL text[] literal, "{issuer,auditor}". */
static void roles_literal(unsigned roles, char *out, size_t cap)
{
    size_t i, used = 0;

    used += (size_t)snprintf(out, cap, "{");
    for (i = 0; i < ROLE_COUNT && used < cap; i++) {
        if (roles & (1u << i))
            used += (size_t)snprintf(out + used, cap - used, "%s%s", used > 1 ? "," : "",
                                     role_names[i]);
    }
    if (used < cap)
        snprintf(out + used, cap - used, "}");
}

int brk_keys_mint(const char *tenant, char key_id[BRK_KEY_ID_HEX + 1], char secret_hash[65],
                  char *token, size_t cap)
{
    uint8_t raw_id[BRK_KEY_ID_BYTES], raw_secret[BRK_SECRET_BYTES], md[BRK_SHA256_LEN];
    char secret[BRK_SECRET_B64_LEN + 1];
    int rc = 0, n;

    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)) || cap < BRK_TOKEN_MAX) {
        rc = BRK_EINVAL;
        goto out;
    }
    if (brk_random(raw_id, sizeof raw_id) < 0 || brk_random(raw_secret, sizeof raw_secret) < 0) {
        rc = BRK_ECRYPTO;
        goto out;
    }
    brk_hex(raw_id, sizeof raw_id, key_id);
    if (brk_b64url_encode(raw_secret, sizeof raw_secret, secret) != BRK_SECRET_B64_LEN) {
        rc = BRK_EINTERNAL;
        goto out;
    }
    brk_sha256(secret, BRK_SECRET_B64_LEN, md);
    brk_hex(md, sizeof md, secret_hash);
    n = snprintf(token, cap, BRK_TOKEN_PREFIX "%s.%s.%s", tenant, key_id, secret);
    if (n < 0 || (size_t)n >= cap)
        rc = BRK_EINTERNAL; /* cannot happen: cap >= BRK_TOKEN_MAX checked above */
out:
    if (rc < 0 && token != NULL && cap > 0)
        token[0] = '\0';
    explicit_bzero(raw_secret, sizeof raw_secret);
    explicit_bzero(secret, sizeof secret);
    return rc;
}

int brk_keys_create(PGconn *conn, const char *tenant, unsigned roles, const char *name,
                    int can_delegate, char *token, size_t cap)
{
    return brk_keys_create_expiring(conn, tenant, roles, name, can_delegate, 0, token, cap);
}

int brk_keys_create_expiring(PGconn *conn, const char *tenant, unsigned roles, const char *name,
                             int can_delegate, long long expires_in_s, char *token, size_t cap)
{
    char key_id[BRK_KEY_ID_HEX + 1], hash[65], rl[96], exp[24];
    const char *params[7];
    int rc = 0, in_tx = 0;

    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)) || roles == 0 ||
        (roles & ~(unsigned)BRK_ROLE_ALL) != 0 ||
        (name != NULL && strlen(name) > BRK_KEY_NAME_MAX) || token == NULL || cap < BRK_TOKEN_MAX) {
        rc = BRK_EINVAL;
        goto out;
    }
    if (expires_in_s < 0 || expires_in_s > BRK_KEY_EXPIRES_MAX_S) {
        rc = BRK_ERANGE;
        goto out;
    }
    if ((rc = brk_keys_mint(tenant, key_id, hash, token, cap)) != 0)
        goto out;
    roles_literal(roles, rl, sizeof rl);
    snprintf(exp, sizeof exp, "%lld", expires_in_s);

    rc = brk_pq_cmd(conn, "BEGIN", 0, NULL, NULL, NULL, 0);
    if (rc < 0)
        goto out;
    in_tx = 1;
    params[0] = tenant;
    rc = brk_pq_cmd(conn, "INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", 1,
                    params, NULL, NULL, 0);
    if (rc < 0)
        goto out;
    params[1] = key_id;
    params[2] = name;
    params[3] = rl;
    params[4] = hash;
    params[5] = can_delegate ? "true" : "false";
    params[6] = expires_in_s > 0 ? exp : NULL;
    rc = brk_pq_cmd(conn,
                    "INSERT INTO api_keys (tenant_id, key_id, name, roles, secret_hash, "
                    "can_delegate, expires_at) VALUES ($1, $2, $3, $4::text[], $5, $6::boolean, "
                    "now() + make_interval(secs => $7::bigint))",
                    7, params, NULL, NULL, 0);
    if (rc < 0)
        goto out;
    rc = brk_pq_cmd(conn, "COMMIT", 0, NULL, NULL, NULL, 0);
    if (rc < 0)
        goto out;
    in_tx = 0;
out:
    if (in_tx)
        PQclear(PQexec(conn, "ROLLBACK"));
    if (rc < 0 && token != NULL && cap > 0)
        explicit_bzero(token, cap);
    return rc;
}

int brk_key_id_valid(const char *s, size_t n)
{
    size_t i;

    if (s == NULL || n != BRK_KEY_ID_HEX)
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_lower_hex(s[i]))
            return 0;
    }
    return 1;
}

/* ts_or_null: a formatted timestamp column, or JSON null. */
static json_t *ts_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

json_t *brk_keys_row_json(const PGresult *res, int row)
{
    json_t *roles = json_array();
    const char *rl = PQgetvalue(res, row, 2), *comma;
    const char *status = !PQgetisnull(res, row, 7)     ? "revoked"
                         : PQgetvalue(res, row, 8)[0] == 't' ? "expired"
                                                              : "active";

    while (*rl != '\0') {
        comma = strchr(rl, ',');
        size_t n = comma ? (size_t)(comma - rl) : strlen(rl);
        json_array_append_new(roles, json_stringn(rl, n));
        rl += n + (comma != NULL);
    }
    return json_pack("{s:s,s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:s}", "key_id", PQgetvalue(res, row, 0),
                     "name", PQgetisnull(res, row, 1) ? json_null()
                                                      : json_string(PQgetvalue(res, row, 1)),
                     "roles", roles, "can_delegate", PQgetvalue(res, row, 3)[0] == 't',
                     "created_at", ts_or_null(res, row, 4), "last_used_at",
                     ts_or_null(res, row, 5), "expires_at", ts_or_null(res, row, 6),
                     "revoked_at", ts_or_null(res, row, 7), "status", status);
}

int brk_keys_list(PGconn *conn, const char *tenant, json_t **out)
{
    char lim[16];
    const char *params[2] = {tenant, lim};
    PGresult *r = NULL;
    json_t *keys = NULL;
    int rc = 0, n, i;

    *out = NULL;
    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)))
        return BRK_EINVAL;
    /* One more than shown, to tell a full page from a cut one. */
    snprintf(lim, sizeof lim, "%d", BRK_KEYS_LIST_MAX + 1);
    r = PQexecParams(conn, BRK_KEYS_LIST_SQL, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = BRK_EDB;
        goto out;
    }
    n = PQntuples(r);
    keys = json_array();
    for (i = 0; i < n && i < BRK_KEYS_LIST_MAX; i++)
        json_array_append_new(keys, brk_keys_row_json(r, i));
    *out = json_pack("{s:s,s:o,s:b}", "tenant_id", tenant, "keys", keys, "truncated",
                     n > BRK_KEYS_LIST_MAX);
    keys = NULL;
out:
    json_decref(keys);
    PQclear(r);
    return rc;
}

int brk_keys_revoke(PGconn *conn, const char *tenant, const char *key_id, const char *by,
                    json_t **out)
{
    const char *params[3] = {tenant, key_id, by};
    PGresult *r = NULL;
    int rc = 0;

    *out = NULL;
    if (tenant == NULL || !brk_tenant_valid(tenant, strlen(tenant)) || key_id == NULL ||
        by == NULL)
        return BRK_EINVAL;
    if (!brk_key_id_valid(key_id, strlen(key_id)))
        return BRK_ENOTFOUND;
    r = PQexecParams(conn, BRK_KEYS_REVOKE_SQL, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = BRK_EDB;
        goto out;
    }
    if (PQntuples(r) != 1) {
        rc = BRK_ENOTFOUND;
        goto out;
    }
    *out = brk_keys_row_json(r, 0);
out:
    PQclear(r);
    return rc;
}
