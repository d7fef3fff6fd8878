-- gsap_issue: stores a signed AC (or finds the one an idempotency key already produced).
-- Returns inserted = false with the earlier AC and its request hash on a repeated key.
--
-- Under a delegation (p_delegation, 0012): the delegation's chain is locked first, in the
-- (depth, delegation_id) order gsap_deleg_create and gsap_deleg_revoke use, then every
-- delegation of the chain must be active, unexpired and outlive the AC, have issued fewer
-- ACs than its max_commands, and have been billed less than its spend limit (invoice lines
-- of the ACs of its subtree; a limit is reached when billed == limit). The AC then counts
-- against every delegation of the chain. A refusal is returned in "refusal" (nothing is
-- written): 'delegation_not_found', 'delegation_revoked', 'delegation_expired',
-- 'delegation_scope_exceeded', 'delegation_exhausted', 'spend_limit_reached'.
--
-- 0012 added p_delegation and the refusal column: the 21-argument signature is dropped
-- (CREATE OR REPLACE cannot change a signature).
DROP FUNCTION IF EXISTS gsap_issue(text, text, text, text, boolean, bigint, gsap_cid, gsap_cid,
                                   gsap_cid, gsap_cid, text, integer, timestamptz, timestamptz,
                                   text, text, jsonb, gsap_cid, text, text, jsonb);

CREATE OR REPLACE FUNCTION gsap_issue(p_tenant text, p_context text, p_status text, p_accord text,
                           p_session boolean, p_caps bigint, p_command gsap_cid, p_corpus gsap_cid,
                           p_params gsap_cid, p_env gsap_cid, p_description text, p_ttl integer,
                           p_issued timestamptz, p_expires timestamptz, p_issuer text,
                           p_account text, p_ac jsonb, p_ac_cid gsap_cid, p_idem text,
                           p_request_hash text, p_elevation jsonb, p_delegation text)
RETURNS TABLE (inserted boolean, ac jsonb, request_hash text, refusal text)
LANGUAGE plpgsql AS $$
DECLARE
    v_chain text[];
    v_spent bigint;
    d record;
BEGIN
    IF p_delegation IS NOT NULL THEN
        SELECT x.chain INTO v_chain FROM delegations x
            WHERE x.tenant_id = p_tenant AND x.delegation_id = p_delegation;
        IF NOT FOUND THEN
            RETURN QUERY SELECT false, NULL::jsonb, NULL::text, 'delegation_not_found'::text;
            RETURN;
        END IF;
        FOR d IN SELECT * FROM delegations x WHERE x.tenant_id = p_tenant
                   AND x.delegation_id = ANY (v_chain)
                   ORDER BY x.depth, x.delegation_id FOR UPDATE LOOP
            IF d.status <> 'active' THEN
                RETURN QUERY SELECT false, NULL::jsonb, NULL::text, 'delegation_revoked'::text;
                RETURN;
            END IF;
            IF d.expires_at <= now() THEN
                RETURN QUERY SELECT false, NULL::jsonb, NULL::text, 'delegation_expired'::text;
                RETURN;
            END IF;
            IF p_expires > d.expires_at THEN
                RETURN QUERY SELECT false, NULL::jsonb, NULL::text,
                                    'delegation_scope_exceeded'::text;
                RETURN;
            END IF;
            IF d.acs_issued >= d.max_commands THEN
                RETURN QUERY SELECT false, NULL::jsonb, NULL::text, 'delegation_exhausted'::text;
                RETURN;
            END IF;
            IF d.spend_limit_minor IS NOT NULL THEN
                SELECT coalesce(sum(il.total_minor), 0) INTO v_spent
                    FROM delegations s
                    JOIN acs a ON a.tenant_id = s.tenant_id AND a.delegation_id = s.delegation_id
                    JOIN invoice_lines il ON il.tenant_id = a.tenant_id
                                         AND il.context_id = a.context_id
                    WHERE s.tenant_id = p_tenant AND s.chain @> ARRAY[d.delegation_id];
                IF v_spent >= d.spend_limit_minor THEN
                    RETURN QUERY SELECT false, NULL::jsonb, NULL::text,
                                        'spend_limit_reached'::text;
                    RETURN;
                END IF;
            END IF;
        END LOOP;
    END IF;
    INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, capability_set,
                     command_hash, corpus_entry_cid, parameters_cid, environment_commitment,
                     description, ttl_seconds, issued_at, expires_at, issuer_key_id,
                     billing_account, ac, ac_cid, idempotency_key, request_hash, elevation,
                     delegation_id)
    VALUES (p_tenant, p_context, p_status, p_accord, p_session, p_caps, p_command, p_corpus,
            p_params, p_env, p_description, p_ttl, p_issued, p_expires, p_issuer, p_account,
            p_ac, p_ac_cid, p_idem, p_request_hash, p_elevation, p_delegation)
    ON CONFLICT (tenant_id, issuer_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    DO NOTHING;
    IF FOUND THEN
        IF p_delegation IS NOT NULL THEN
            UPDATE delegations x SET acs_issued = x.acs_issued + 1
                WHERE x.tenant_id = p_tenant AND x.delegation_id = ANY (v_chain);
        END IF;
        PERFORM gsap_emit(p_tenant,
            CASE WHEN p_status = 'pending' THEN 'GSAP_AC_PENDING' ELSE 'GSAP_AC_ISSUED' END,
            p_context, jsonb_build_object('context_id', p_context, 'ac_cid', p_ac_cid,
                                          'status', p_status, 'issuer_key_id', p_issuer,
                                          'billing_account', p_account,
                                          'delegation_id', p_delegation));
        RETURN QUERY SELECT true, p_ac, p_request_hash, NULL::text;
    ELSE
        RETURN QUERY SELECT false, a.ac, a.request_hash, NULL::text FROM acs a
            WHERE a.tenant_id = p_tenant AND a.issuer_key_id = p_issuer
              AND a.idempotency_key = p_idem;
    END IF;
END $$;
