-- tlog_append_many: the transparency-log sequencer's batch (functions/fn_tlog.c): appends
-- each CR of p_crs ([{"tenant","cr_id","lineage"}, ...]) with tlog_append_batch, one call per
-- tenant, which returns the existing index for a CR already logged (billing usually logged it
-- first). The log heads of the batch's tenants are locked first, in tenant_id order, like
-- bill_add_lines, so concurrent runtime workers take them in one order and never deadlock on
-- them; the CRs are then appended in the order given (event order) within each tenant. Returns one row per
-- element: ord (1-based position in p_crs) and the CR's index.
CREATE OR REPLACE FUNCTION tlog_append_many(p_crs jsonb)
RETURNS TABLE (ord int, idx bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    INSERT INTO tlog_heads (tenant_id)
        SELECT DISTINCT e->>'tenant' FROM jsonb_array_elements(p_crs) e ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM tlog_heads h
        WHERE h.tenant_id IN (SELECT e->>'tenant' FROM jsonb_array_elements(p_crs) e)
        ORDER BY h.tenant_id FOR UPDATE;
    FOR t IN SELECT e.c->>'tenant' AS tenant,
                    array_agg(e.n::int ORDER BY e.n) AS ords,
                    array_agg(e.c->>'cr_id' ORDER BY e.n) AS crs,
                    array_agg(e.c->>'lineage' ORDER BY e.n) AS lineages
             FROM jsonb_array_elements(p_crs) WITH ORDINALITY e(c, n)
             GROUP BY 1 ORDER BY 1 LOOP
        RETURN QUERY SELECT x.o, x.i
            FROM unnest(t.ords, tlog_append_batch(t.tenant, t.crs, t.lineages)) AS x(o, i);
    END LOOP;
END $$;
