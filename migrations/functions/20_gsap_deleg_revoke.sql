-- gsap_deleg_revoke: revokes a delegation, everything below it (its subtree: every row whose
-- chain contains it) and every AC issued under any of them that can still be used (pending,
-- authorized, active), in one transaction, with one GSAP_DELEGATION_REVOKED event per
-- delegation it revoked. The subtree is locked first, in the (depth, delegation_id) order
-- gsap_issue locks a chain in: an AC issue that got its locks first commits before this
-- reads acs (and its AC is revoked here); one that comes later waits and then sees the
-- revocation (READ COMMITTED re-reads the locked rows), so no usable AC survives under a
-- revoked delegation. Idempotent: a delegation already revoked keeps its first time.
-- Returns the number of delegations and ACs this call revoked; no row when the tenant has
-- no such delegation.
CREATE OR REPLACE FUNCTION gsap_deleg_revoke(p_tenant text, p_id text, p_by text)
RETURNS TABLE (delegations_revoked integer, acs_revoked integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
    v_new text[];
    v_acs integer;
    v_now timestamptz := now();
    d record;
BEGIN
    PERFORM 1 FROM delegations s WHERE s.tenant_id = p_tenant AND s.chain @> ARRAY[p_id]
        ORDER BY s.depth, s.delegation_id FOR UPDATE;
    -- Read the subtree again in a new statement (a new snapshot): a child created while the
    -- statement above waited held a lock on p_id (it locks its parent's chain), so it has
    -- committed and is seen now; later ones wait for this transaction.
    SELECT array_agg(x.delegation_id ORDER BY x.depth, x.delegation_id) INTO v_ids
        FROM (SELECT s.delegation_id, s.depth FROM delegations s
               WHERE s.tenant_id = p_tenant AND s.chain @> ARRAY[p_id]
               ORDER BY s.depth, s.delegation_id FOR UPDATE) x;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    WITH r AS (
        UPDATE delegations s SET status = 'revoked', revoked_at = v_now, revoked_by = p_by
         WHERE s.tenant_id = p_tenant AND s.chain @> ARRAY[p_id] AND s.status = 'active'
        RETURNING s.delegation_id)
    SELECT coalesce(array_agg(r.delegation_id), '{}') INTO v_new FROM r;
    UPDATE acs a SET status = 'revoked'
     WHERE a.tenant_id = p_tenant AND a.delegation_id = ANY (v_ids)
       AND a.status IN ('pending', 'authorized', 'active');
    GET DIAGNOSTICS v_acs = ROW_COUNT;
    FOR d IN SELECT s.delegation_id, s.parent_id, s.agent_did FROM delegations s
              WHERE s.tenant_id = p_tenant AND s.delegation_id = ANY (v_new)
              ORDER BY s.depth, s.delegation_id LOOP
        PERFORM gsap_emit(p_tenant, 'GSAP_DELEGATION_REVOKED', NULL, jsonb_build_object(
            'delegation_id', d.delegation_id, 'parent_id', d.parent_id,
            'agent_did', d.agent_did, 'revoked_by', p_by, 'revoked_at', v_now,
            'cascade_from', p_id));
    END LOOP;
    RETURN QUERY SELECT cardinality(v_new), v_acs;
END $$;
