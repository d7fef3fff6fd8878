-- 0001_core: tenants and their API keys.
--
-- Every table's primary key starts with tenant_id, so the schema can be distributed by
-- tenant (Citus) without rewriting queries. A key stores only the SHA-256 (hex) of its
-- secret; the bearer token "gsap.<tenant>.<key_id>.<secret>" is shown once, at creation
-- (broker/brk_keys.h). Roles are a non-empty subset of the broker's six roles.
--
-- Shipped migrations are never edited: add a new numbered file instead.

CREATE TABLE tenants (
    tenant_id text PRIMARY KEY CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    tenant_id text NOT NULL REFERENCES tenants,
    key_id text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    name text CHECK (length(name) <= 128),
    roles text[] NOT NULL CHECK (roles <@ ARRAY['issuer', 'executor', 'approver', 'finance',
                                                'auditor', 'admin']
                                 AND cardinality(roles) > 0),
    secret_hash text NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    can_delegate boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);
