-- gsap_deleg_create: stores a delegation the handler checked and signed (handlers/hnd_deleg.c,
-- gov/gov_deleg.c), with its GSAP_DELEGATION_CREATED event, in one transaction.
-- A sub-delegation locks its parent's chain first, in the one order every writer of a chain
-- uses ((depth, delegation_id), see 0012), then checks again what can have changed since the
-- handler read the parent: every delegation of the chain still active and unexpired, the
-- chain the handler built is the parent's, and the child's max_commands within the parent's
-- remaining (ACs issued in between count).
-- code: 'ok', 'delegation_not_found', 'delegation_revoked', 'delegation_expired',
--       'narrowing_violation' (max_commands over what is left), 'stale' (the chain changed),
--       'aps_replayed' (this SDK delegation was already accepted).
CREATE OR REPLACE FUNCTION gsap_deleg_create(p_tenant text, p_id text, p_parent text,
                              p_chain text[], p_depth integer, p_max_depth integer,
                              p_delegator_did text, p_creator_key text, p_owner_key text,
                              p_agent text, p_caps bigint, p_accords text[], p_corpus text[],
                              p_prohibited text[], p_expires timestamptz, p_max_commands bigint,
                              p_spend bigint, p_doc jsonb, p_cid gsap_cid, p_aps jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p delegations%ROWTYPE;
    d record;
BEGIN
    IF p_parent IS NOT NULL THEN
        SELECT * INTO p FROM delegations x WHERE x.tenant_id = p_tenant
                                              AND x.delegation_id = p_parent;
        IF NOT FOUND THEN
            RETURN 'delegation_not_found';
        END IF;
        IF p_chain IS DISTINCT FROM p.chain || p_id OR p_depth <> p.depth + 1 THEN
            RETURN 'stale';
        END IF;
        FOR d IN SELECT * FROM delegations x WHERE x.tenant_id = p_tenant
                   AND x.delegation_id = ANY (p.chain)
                   ORDER BY x.depth, x.delegation_id FOR UPDATE LOOP
            IF d.status <> 'active' THEN
                RETURN 'delegation_revoked';
            END IF;
            IF d.expires_at <= now() THEN
                RETURN 'delegation_expired';
            END IF;
            IF d.delegation_id = p_parent AND p_max_commands > d.max_commands - d.acs_issued THEN
                RETURN 'narrowing_violation';
            END IF;
        END LOOP;
    END IF;
    INSERT INTO delegations (tenant_id, delegation_id, parent_id, chain, depth, max_depth,
                             delegator_did, creator_key_id, owner_key_id, agent_did,
                             capability_set, accords, corpus, prohibited, expires_at,
                             max_commands, spend_limit_minor, document, delegation_cid, aps)
        VALUES (p_tenant, p_id, p_parent, p_chain, p_depth, p_max_depth, p_delegator_did,
                p_creator_key, p_owner_key, p_agent, p_caps, p_accords, p_corpus, p_prohibited,
                p_expires, p_max_commands, p_spend, p_doc, p_cid, p_aps)
        ON CONFLICT (tenant_id, (aps->>'delegationId')) WHERE aps IS NOT NULL DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'aps_replayed';
    END IF;
    PERFORM gsap_emit(p_tenant, 'GSAP_DELEGATION_CREATED', NULL, jsonb_build_object(
        'delegation_id', p_id, 'parent_id', p_parent, 'depth', p_depth,
        'delegator_did', p_delegator_did, 'agent_did', p_agent, 'creator_key_id', p_creator_key,
        'delegation_cid', p_cid, 'expires_at', p_expires));
    RETURN 'ok';
END $$;
