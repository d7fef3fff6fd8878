-- 0012_delegations: a principal (an API key's DID) delegates part of its authority to an agent
-- (a did:), and an agent that is itself a key of the tenant may sub-delegate a narrower part.
--
-- One row per delegation. "chain" is the ids from the root to this row (immutable), so the
-- ancestors of a delegation are its chain and its subtree is every row whose chain contains
-- its id. The scope columns are the delegation's own limits; an AC issued under a delegation
-- counts against every delegation of its chain (acs_issued), and its billed lines count
-- against every spend limit of the chain, so a sub-delegation never lets its agent do more
-- than the delegator could. NULL accords / corpus means "any" (only a root may say so:
-- gov_deleg.c refuses a child that widens a listed parent to "any").
--
-- Locks: whoever writes rows of a chain (issuing an AC, creating a child, revoking a subtree)
-- locks the delegation rows it needs FOR UPDATE in one order, (depth, delegation_id), before
-- touching acs, so an issue racing a revocation either commits first (and the revocation then
-- revokes its AC) or waits and then sees the revocation (migrations/functions/20_gsap_deleg*).
CREATE TABLE delegations (
    tenant_id text NOT NULL REFERENCES tenants,
    delegation_id text NOT NULL CHECK (delegation_id ~ '^dlg_[0-9a-f]{32}$'),
    parent_id text,
    chain text[] NOT NULL CHECK (cardinality(chain) BETWEEN 1 AND 17),
    depth integer NOT NULL CHECK (depth BETWEEN 0 AND 16),
    max_depth integer NOT NULL CHECK (max_depth BETWEEN 0 AND 16 AND depth <= max_depth),
    delegator_did text NOT NULL CHECK (length(delegator_did) <= 256),
    creator_key_id text NOT NULL,     -- the API key that created the row
    owner_key_id text NOT NULL,       -- the key whose authority the chain narrows (the root's)
    agent_did text NOT NULL CHECK (agent_did ~ '^did:' AND length(agent_did) <= 256),
    capability_set bigint NOT NULL CHECK (capability_set BETWEEN 0 AND 4294967295),
    accords text[],                   -- NULL: any accord
    corpus text[],                    -- NULL: any corpus entry
    prohibited text[] NOT NULL DEFAULT '{}',
    expires_at timestamptz NOT NULL,
    max_commands bigint NOT NULL CHECK (max_commands >= 0),
    acs_issued bigint NOT NULL DEFAULT 0 CHECK (acs_issued >= 0),
    spend_limit_minor bigint CHECK (spend_limit_minor >= 0), -- NULL: no spend limit
    document jsonb NOT NULL,          -- the delegation as the broker signed it
    delegation_cid gsap_cid NOT NULL,
    aps jsonb,                        -- the Agent Passport System delegation it was made from
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at timestamptz,
    revoked_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delegation_id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES delegations (tenant_id, delegation_id),
    CHECK ((parent_id IS NULL) = (depth = 0)),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX delegations_chain ON delegations USING gin (chain);
CREATE INDEX delegations_list ON delegations (tenant_id, created_at DESC, delegation_id DESC);
-- An SDK delegation is accepted once per tenant: its id cannot name two rows.
CREATE UNIQUE INDEX delegations_aps_once ON delegations (tenant_id, (aps->>'delegationId'))
    WHERE aps IS NOT NULL;

ALTER TABLE acs ADD COLUMN delegation_id text,
    ADD FOREIGN KEY (tenant_id, delegation_id) REFERENCES delegations (tenant_id, delegation_id);
CREATE INDEX acs_delegation ON acs (tenant_id, delegation_id) WHERE delegation_id IS NOT NULL;

-- The Ed25519 public key (64 hex digits) a key signs Agent Passport System delegations with,
-- registered by the key itself with a proof of possession (PUT /delegations/signing-key).
ALTER TABLE api_keys ADD COLUMN delegation_public_key text
    CHECK (delegation_public_key ~ '^[0-9a-f]{64}$');
