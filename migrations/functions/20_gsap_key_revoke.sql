-- gsap_key_revoke: revokes a key of p_tenant (idempotent: a second call keeps the first
-- time) and records who did it in the outbox (GSAP_KEY_REVOKED) in the same transaction.
-- Returns the key's row after the change, or no row when the tenant has no such key.
CREATE OR REPLACE FUNCTION gsap_key_revoke(p_tenant text, p_key_id text, p_by text)
RETURNS TABLE (key_id text, name text, roles text[], can_delegate boolean,
               created_at timestamptz, last_used_at timestamptz, expires_at timestamptz,
               revoked_at timestamptz, newly boolean)
LANGUAGE plpgsql AS $$
DECLARE
    k api_keys%ROWTYPE;
    v_new boolean;
BEGIN
    SELECT * INTO k FROM api_keys a WHERE a.tenant_id = p_tenant AND a.key_id = p_key_id
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_new := k.revoked_at IS NULL;
    IF v_new THEN
        UPDATE api_keys a SET revoked_at = now(), revoked_by = p_by
            WHERE a.tenant_id = p_tenant AND a.key_id = p_key_id
            RETURNING * INTO k;
        PERFORM gsap_emit(p_tenant, 'GSAP_KEY_REVOKED', NULL,
                          jsonb_build_object('key_id', k.key_id, 'revoked_by', p_by,
                                             'revoked_at', k.revoked_at));
    END IF;
    RETURN QUERY SELECT k.key_id, k.name, k.roles, k.can_delegate, k.created_at,
                        k.last_used_at, k.expires_at, k.revoked_at, v_new;
END $$;
