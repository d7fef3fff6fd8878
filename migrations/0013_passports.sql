-- 0013_passports: agent passports (Agent Passport System, gov/gov_passport.h) and the issuers
-- a tenant trusts to countersign them; receipts record the agent that signed them.
--
-- An issuer is trusted by one tenant under a name of that tenant's choosing; its key is
-- unique within the tenant (one key, one name). Revoking an issuer stops every passport it
-- countersigned from counting, at once, without touching the passports.
CREATE TABLE trusted_issuers (
    tenant_id text NOT NULL REFERENCES tenants,
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    public_key text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, name)
);
CREATE UNIQUE INDEX trusted_issuers_key ON trusted_issuers (tenant_id, public_key);

-- A passport as registered: only its signed members (gov_passport_check's "stored"), keyed
-- by their CID, so a receipt can name the exact passport that vouched for its agent. An
-- agent may hold several (renewals); revoking the agent revokes them all, and a revoked
-- agent cannot be registered again in the tenant.
CREATE TABLE agent_passports (
    tenant_id text NOT NULL REFERENCES tenants,
    passport_cid gsap_cid NOT NULL,
    agent_did text NOT NULL CHECK (agent_did ~ '^did:aps:z[1-9A-HJ-NP-Za-km-z]{1,55}$'),
    public_key text NOT NULL CHECK (public_key ~ '^[0-9a-f]{64}$'),
    issuer_name text NOT NULL,
    issuer_public_key text NOT NULL,
    passport jsonb NOT NULL,
    not_before timestamptz,       -- the passport's notBefore; NULL: none (no lower bound)
    expires_at timestamptz NOT NULL,
    registered_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (tenant_id, passport_cid),
    FOREIGN KEY (tenant_id, issuer_name) REFERENCES trusted_issuers
);
CREATE INDEX agent_passports_did ON agent_passports (tenant_id, agent_did, created_at DESC);

-- The agent a receipt names (CR member agent_did) and the passport its signature was
-- verified with (NULL when it was not: no passport, or a bad signature; crs.flags says which).
ALTER TABLE crs ADD COLUMN agent_did text, ADD COLUMN agent_passport_cid gsap_cid;
