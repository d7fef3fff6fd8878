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

#include <libpq-fe.h>
#include <stddef.h>

#define BRK_TENANT_MAX 63
#define BRK_KEY_NAME_MAX 128
#define BRK_TOKEN_MAX 160 /* longest token accepted in an Authorization header */
#define BRK_KEY_ID_HEX 16
#define BRK_SECRET_B64_LEN 43

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

#endif
