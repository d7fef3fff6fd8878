-- gsap_cr_refusal: why a CR on AC a must be refused although it is neither unknown nor
-- consumed, or NULL when it may be accepted. 'revoked': the AC was revoked (an elevation
-- refusal). 'not_approved': the AC needed an elevation and it was never approved; the
-- elevation record, not the status, decides, so the answer is the same before and after the
-- expiry job moves a pending AC to expired. An AC issued authorized has no elevation record.
CREATE OR REPLACE FUNCTION gsap_cr_refusal(a acs) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN a.status = 'revoked' THEN 'revoked'
        WHEN a.status = 'pending'
             OR (a.elevation IS NOT NULL
                 AND a.elevation->>'status' IS DISTINCT FROM 'approved') THEN 'not_approved'
    END
$$;
