CREATE OR REPLACE FUNCTION gsap_deny(p_tenant text, p_denial text, p_reason text, p_accord text,
                          p_issuer text, p_receipt jsonb, p_cid gsap_cid)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO denials (tenant_id, denial_id, reason_code, accord_name, issuer_key_id,
                         receipt, denial_cid)
        VALUES (p_tenant, p_denial, p_reason, p_accord, p_issuer, p_receipt, p_cid);
    PERFORM gsap_emit(p_tenant, 'GSAP_AC_DENIED', NULL,
        jsonb_build_object('denial_id', p_denial, 'reason_code', p_reason,
                           'denial_cid', p_cid, 'issuer_key_id', p_issuer));
END $$;
