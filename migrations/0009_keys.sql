-- 0009_keys: key expiry, last use, revocation as an audited event, per-tenant rate limits.
--
-- api_keys.expires_at: NULL means the key does not expire; the authentication statement
-- (broker/brk_http.c) refuses a key whose expires_at has passed, as it refuses a revoked one,
-- in the same statement that finds the key, so a change is seen by the next request on every
-- worker of every broker: there is no key cache to invalidate.
-- api_keys.last_used_at: written at most once per BRK_KEY_TOUCH_INTERVAL_S per key (a
-- conditional UPDATE after a successful authentication), so reads stay reads.
-- tenants.rate_per_s / rate_burst: a tenant's override of GSAP_RATE_PER_S / GSAP_RATE_BURST;
-- NULL means the broker's setting. Read by the same authentication statement.

ALTER TABLE api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN revoked_by text CHECK (revoked_by ~ '^[0-9a-f]{16}$' OR revoked_by = 'cli');

ALTER TABLE tenants
    ADD COLUMN rate_per_s integer CHECK (rate_per_s BETWEEN 1 AND 1000000),
    ADD COLUMN rate_burst integer CHECK (rate_burst BETWEEN 1 AND 1000000);

-- gsap_key_revoke (revocation with its GSAP_KEY_REVOKED event): migrations/functions/.
