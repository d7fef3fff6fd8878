/*
 * brk_keys: API keys and roles.
 *
 * A bearer token reads "gsap.<tenant>.<key_id>.<secret>": tenant as brk_tenant_valid allows,
 * key_id 16 lowercase hex digits, secret 43 base64url characters (32 random bytes). Only
 * SHA-256(secret) is stored (api_keys.secret_hash, hex); the token is shown once, at creation.
 * Verification finds the row by (tenant, key_id), the table's primary key, and compares the
 * hashes with brk_ct_equal, so a guess learns nothing from timing.
 *
 * Parsing and role functions are pure (any thread). brk_keys_create is blocking: CLI and
 * start-up only, never on an HTTP loop.
 */
#ifndef BRK_KEYS_H
#define BRK_KEYS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "brk_limits.h"

#define BRK_KEY_NAME_MAX 128
#define BRK_TOKEN_MAX 160 /* longest token accepted in an Authorization header */
#define BRK_KEY_ID_HEX 16
#define BRK_SECRET_B64_LEN 43
/* api_keys.last_used_at is written at most once per this many seconds per key, so that
 * authentication stays a read on the hot path (list shows it to this precision). */
#define BRK_KEY_TOUCH_INTERVAL_S 60
/* Longest lifetime a key may be given at creation (--expires-in, expires_in_seconds). */
#define BRK_KEY_EXPIRES_MAX_S (10 * 366 * 86400)

enum brk_role {
    BRK_ROLE_ISSUER = 1 << 0,
    BRK_ROLE_EXECUTOR = 1 << 1,
    BRK_ROLE_APPROVER = 1 << 2,
    BRK_ROLE_FINANCE = 1 << 3,
    BRK_ROLE_AUDITOR = 1 << 4,
    BRK_ROLE_ADMIN = 1 << 5,
};
#define BRK_ROLE_ALL 0x3f

/* brk_tenant_valid: 1 when s matches [a-z0-9][a-z0-9-]{0,62}, else 0. */
int brk_tenant_valid(const char *s, size_t n);

/* brk_role_parse: one role name ("issuer", ...) to its bit; 0 when unknown. */
unsigned brk_role_parse(const char *s, size_t n);

/* brk_roles_parse_list: "issuer,executor" to a mask. Returns 0 or BRK_EINVAL (empty, unknown). */
int brk_roles_parse_list(const char *s, unsigned *mask);

/* brk_role_name: the name of one role bit, or NULL. Static storage. */
const char *brk_role_name(unsigned bit);

typedef struct brk_token {
    char tenant[BRK_TENANT_MAX + 1];
    char key_id[BRK_KEY_ID_HEX + 1];
    char secret_hash[65]; /* hex SHA-256 of the secret part */
} brk_token_t;

/* brk_token_parse: splits and checks a token (p, n) and hashes its secret.
 * Returns 0 or BRK_EAUTH (malformed). */
int brk_token_parse(const char *p, size_t n, brk_token_t *out);

/*
 * brk_keys_mint: a new key for tenant: a random key id, the token (into token, cap >=
 * BRK_TOKEN_MAX) and the hex SHA-256 of its secret, the only part to store. Stores nothing.
 * Pure; any thread. Returns 0, BRK_EINVAL (bad tenant, small cap), BRK_ECRYPTO.
 */
int brk_keys_mint(const char *tenant, char key_id[BRK_KEY_ID_HEX + 1], char secret_hash[65],
                  char *token, size_t cap);

/*
 * brk_keys_create: creates the tenant (and whatever a new tenant gets) when missing, then a
 * key with the given roles, name (may be NULL) and delegation right. conn is a blocking
 * connection. Writes the token (NUL-terminated) into token (cap >= BRK_TOKEN_MAX).
 * Returns 0, BRK_EINVAL (bad tenant), BRK_EDB.
 */
int brk_keys_create(PGconn *conn, const char *tenant, unsigned roles, const char *name,
                    int can_delegate, char *token, size_t cap);

/*
 * brk_keys_create_expiring: brk_keys_create for a key that stops working expires_in_s
 * seconds from now (1..BRK_KEY_EXPIRES_MAX_S; 0: never). Returns as brk_keys_create, and
 * BRK_ERANGE for an expiry out of range.
 */
int brk_keys_create_expiring(PGconn *conn, const char *tenant, unsigned roles, const char *name,
                             int can_delegate, long long expires_in_s, char *token, size_t cap);

#define BRK_KEYS_LIST_MAX 1000 /* keys one list shows (newest first); "truncated" past it */

/*
 * A key as listed, for the admin route and the CLI alike: the SELECT list over api_keys
 * (alias k) whose rows brk_keys_row_json turns into {key_id, name, roles, can_delegate,
 * created_at, last_used_at, expires_at, revoked_at, status}. Never the secret or its hash.
 */
#define BRK__TS(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define BRK_KEYS_COLUMNS                                                                     \
    "k.key_id, k.name, array_to_string(k.roles, ','), k.can_delegate, " BRK__TS("k.created_at") \
    ", " BRK__TS("k.last_used_at") ", " BRK__TS("k.expires_at") ", " BRK__TS("k.revoked_at")   \
    ", k.expires_at IS NOT NULL AND k.expires_at <= now()"
#define BRK_KEYS_NCOLUMNS 9

/* brk_keys_row_json: row (BRK_KEYS_COLUMNS first, in order) of res as a new JSON object
 * (caller owns it). Any thread. */
json_t *brk_keys_row_json(const PGresult *res, int row);

/*
 * brk_keys_list: {"keys": [...], "truncated": bool} for tenant, newest first, at most
 * BRK_KEYS_LIST_MAX. Blocking (CLI). *out is the caller's. Returns 0, BRK_EINVAL, BRK_EDB.
 */
int brk_keys_list(PGconn *conn, const char *tenant, json_t **out);

/*
 * brk_keys_revoke: revokes tenant's key key_id (idempotent; the first revocation's time
 * stays), recorded as revoked by `by` ("cli" or a key id) with a GSAP_KEY_REVOKED event.
 * Blocking (CLI). *out gets the key as listed. Returns 0, BRK_ENOTFOUND, BRK_EINVAL, BRK_EDB.
 */
int brk_keys_revoke(PGconn *conn, const char *tenant, const char *key_id, const char *by,
                    json_t **out);

/* brk_key_id_valid: 1 when s is BRK_KEY_ID_HEX lowercase hex digits. */
int brk_key_id_valid(const char *s, size_t n);

/* The revocation statement (migrations/functions/20_gsap_key_revoke.sql), for the admin route
 * and the CLI: $1 tenant, $2 key id, $3 who; the row is BRK_KEYS_NCOLUMNS columns then "newly". */
#define BRK_KEYS_REVOKE_SQL                                                                  \
    "SELECT " BRK_KEYS_COLUMNS ", k.newly FROM gsap_key_revoke($1, $2, $3) k"
#define BRK_KEYS_LIST_SQL                                                                    \
    "SELECT " BRK_KEYS_COLUMNS " FROM api_keys k WHERE k.tenant_id = $1 "                    \
    "ORDER BY k.created_at DESC, k.key_id LIMIT $2"

#endif
