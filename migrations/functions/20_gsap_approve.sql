-- gsap_approve: records one approver's decision on a pending elevation, under the AC's row
-- lock. The caller read the AC with p_seen decisions recorded, built the elevation record
-- as it will be after this decision (p_elevation) and, when this approval completes the
-- count, the AC re-signed as authorized (p_ac, p_ac_cid, issued p_decided, expiring
-- p_expires; NULL otherwise).
-- code: 'ok'; 'not_found'; 'decided' (not pending any more, or expired); 'self' (the approver's key or
-- DID requested the AC: separation of duties); 'duplicate' (this key or DID has decided
-- already); 'stale' (another decision was recorded since the caller read the AC: read
-- again and retry). Nothing is written unless the code is 'ok'.
CREATE OR REPLACE FUNCTION gsap_approve(p_tenant text, p_context text, p_key text, p_did text,
                             p_approve boolean, p_reason text, p_decided timestamptz,
                             p_seen integer, p_elevation jsonb, p_ac jsonb, p_ac_cid gsap_cid,
                             p_expires timestamptz)
RETURNS TABLE (code text, ac jsonb, status text, elevation jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    a acs%ROWTYPE;
    n integer;
    v_required integer;
    v_final boolean;
BEGIN
    SELECT * INTO a FROM acs WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context
        FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::jsonb, NULL::text, NULL::jsonb;
        RETURN;
    END IF;
    -- Past its expires_at a pending AC is expired, whether or not the expiry job has marked
    -- it yet: an approval cannot revive it.
    IF a.status <> 'pending' OR a.expires_at < now() THEN
        RETURN QUERY SELECT 'decided'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    IF p_key = a.issuer_key_id OR p_did = a.ac->'principal'->>'did'
       OR p_did = a.ac->'identity_proof'->>'delegated_by' THEN
        RETURN QUERY SELECT 'self'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM ac_approvals x WHERE x.tenant_id = p_tenant
               AND x.context_id = p_context
               AND (x.approver_key_id = p_key OR x.approver_did = p_did)) THEN
        RETURN QUERY SELECT 'duplicate'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM ac_approvals x
        WHERE x.tenant_id = p_tenant AND x.context_id = p_context;
    -- ACs pending before this migration have no approvals_required: one approval, as then.
    v_required := coalesce((a.elevation->>'approvals_required')::integer, 1);
    v_final := NOT p_approve OR n + 1 >= v_required;
    IF n <> p_seen OR (p_approve AND v_final) <> (p_ac IS NOT NULL) THEN
        RETURN QUERY SELECT 'stale'::text, a.ac, a.status, a.elevation;
        RETURN;
    END IF;
    INSERT INTO ac_approvals (tenant_id, context_id, approver_key_id, approver_did, decision,
                              reason, decided_at)
        VALUES (p_tenant, p_context, p_key, p_did,
                CASE WHEN p_approve THEN 'approve' ELSE 'refuse' END, p_reason, p_decided);
    IF NOT p_approve THEN
        UPDATE acs SET status = 'revoked', elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    ELSIF v_final THEN
        UPDATE acs SET status = 'authorized', ac = p_ac, ac_cid = p_ac_cid,
                       issued_at = p_decided, expires_at = p_expires, elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    ELSE
        UPDATE acs SET elevation = p_elevation
            WHERE acs.tenant_id = p_tenant AND acs.context_id = p_context;
    END IF;
    PERFORM gsap_emit(p_tenant,
        CASE WHEN NOT p_approve THEN 'GSAP_ELEVATION_REFUSED'
             WHEN v_final THEN 'GSAP_ELEVATION_APPROVED'
             ELSE 'GSAP_ELEVATION_APPROVAL_RECORDED' END,
        p_context, jsonb_build_object('context_id', p_context, 'elevation', p_elevation,
                                      'approver_key_id', p_key, 'approver_did', p_did,
                                      'ac_cid', coalesce(p_ac_cid, a.ac_cid)));
    RETURN QUERY SELECT 'ok'::text, x.ac, x.status, x.elevation FROM acs x
        WHERE x.tenant_id = p_tenant AND x.context_id = p_context;
END $$;
