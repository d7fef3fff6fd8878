-- gsap_lineage_cid: the CID of the canonical lineage object (see the header).
CREATE OR REPLACE FUNCTION gsap_lineage_cid(p_ac_cid text, p_chronicle_cid text, p_cr_cid text,
                                 p_prev text, p_sequence integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'sha256:' || encode(sha256(convert_to(format(
        '{"ac_cid":"%s","chronicle_cid":"%s","cr_cid":"%s","prev_lineage_cid":%s,"sequence":%s}',
        p_ac_cid, p_chronicle_cid, p_cr_cid,
        CASE WHEN p_prev IS NULL THEN 'null' ELSE '"' || p_prev || '"' END,
        p_sequence), 'UTF8')), 'hex')
$$;

ALTER FUNCTION gsap_lineage_cid(text, text, text, text, integer) STABLE;
