-- 0014_auth_drivers: which identity drivers each tenant accepts, and their settings.
--
-- One row per (tenant, driver). No row means the driver's default: `api-key` is enabled, every
-- other driver is disabled until configured. `settings` holds what the driver needs (for
-- `jwt`: issuer, audience, jwks or jwks_url, claim mapping; see broker/brk_jwt.h), validated
-- by the broker before it is stored; it holds no secret (a JWKS is public keys).
--
-- The jwt driver finds a token's tenant by its `iss`: one issuer belongs to one tenant at
-- most, which the unique index enforces, so a token can never be read under another tenant's
-- settings. `mtls` is listed so its driver needs no change to this table.

CREATE TABLE auth_drivers (
    tenant_id text NOT NULL REFERENCES tenants,
    driver text NOT NULL CHECK (driver IN ('api-key', 'jwt', 'mtls')),
    enabled boolean NOT NULL,
    settings jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, driver)
);

CREATE UNIQUE INDEX auth_drivers_jwt_issuer ON auth_drivers ((settings->>'issuer'))
    WHERE driver = 'jwt';
