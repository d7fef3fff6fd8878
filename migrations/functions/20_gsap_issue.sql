-- gsap_issue: stores a signed AC (or finds the one an idempotency key already produced).
-- Returns inserted = false with the earlier AC and its request hash on a repeated key.
CREATE OR REPLACE FUNCTION gsap_issue(p_tenant text, p_context text, p_status text, p_accord text,
                           p_session boolean, p_caps bigint, p_command gsap_cid, p_corpus gsap_cid,
                           p_params gsap_cid, p_env gsap_cid, p_description text, p_ttl integer,
                           p_issued timestamptz, p_expires timestamptz, p_issuer text,
                           p_account text, p_ac jsonb, p_ac_cid gsap_cid, p_idem text,
                           p_request_hash text, p_elevation jsonb)
RETURNS TABLE (inserted boolean, ac jsonb, request_hash text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO acs (tenant_id, context_id, status, accord_name, session_mode, capability_set,
                     command_hash, corpus_entry_cid, parameters_cid, environment_commitment,
                     description, ttl_seconds, issued_at, expires_at, issuer_key_id,
                     billing_account, ac, ac_cid, idempotency_key, request_hash, elevation)
    VALUES (p_tenant, p_context, p_status, p_accord, p_session, p_caps, p_command, p_corpus,
            p_params, p_env, p_description, p_ttl, p_issued, p_expires, p_issuer, p_account,
            p_ac, p_ac_cid, p_idem, p_request_hash, p_elevation)
    ON CONFLICT (tenant_id, issuer_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL
    DO NOTHING;
    IF FOUND THEN
        PERFORM gsap_emit(p_tenant,
            CASE WHEN p_status = 'pending' THEN 'GSAP_AC_PENDING' ELSE 'GSAP_AC_ISSUED' END,
            p_context, jsonb_build_object('context_id', p_context, 'ac_cid', p_ac_cid,
                                          'status', p_status, 'issuer_key_id', p_issuer,
                                          'billing_account', p_account));
        RETURN QUERY SELECT true, p_ac, p_request_hash;
    ELSE
        RETURN QUERY SELECT false, a.ac, a.request_hash FROM acs a
            WHERE a.tenant_id = p_tenant AND a.issuer_key_id = p_issuer
              AND a.idempotency_key = p_idem;
    END IF;
END $$;

ALTER FUNCTION gsap_issue(text, text, text, text, boolean, bigint, gsap_cid, gsap_cid, gsap_cid,
                          gsap_cid, text, integer, timestamptz, timestamptz, text, text, jsonb,
                          gsap_cid, text, text, jsonb)
    SET plan_cache_mode = force_custom_plan;
