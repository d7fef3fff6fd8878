-- tlog_append_many: the transparency-log sequencer's batch (functions/fn_tlog.c): appends
-- each CR of p_crs ([{"tenant","cr_id","lineage"}, ...]) with tlog_append, which returns the
-- existing index for a CR already logged (billing usually logged it first). The log heads
-- of the batch's tenants are locked first, in tenant_id order, like bill_add_lines, so
-- concurrent runtime workers take them in one order and never deadlock on them; the CRs are
-- then appended in the order given (event order) within each tenant. Returns one row per
-- element: ord (1-based position in p_crs) and the CR's index.
CREATE OR REPLACE FUNCTION tlog_append_many(p_crs jsonb)
RETURNS TABLE (ord int, idx bigint)
LANGUAGE plpgsql AS $$
DECLARE
    x record;
BEGIN
    INSERT INTO tlog_heads (tenant_id)
        SELECT DISTINCT e->>'tenant' FROM jsonb_array_elements(p_crs) e ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM tlog_heads h
        WHERE h.tenant_id IN (SELECT e->>'tenant' FROM jsonb_array_elements(p_crs) e)
        ORDER BY h.tenant_id FOR UPDATE;
    FOR x IN SELECT e.n::int AS n, e.c FROM jsonb_array_elements(p_crs) WITH ORDINALITY e(c, n)
             ORDER BY e.c->>'tenant', e.n LOOP
        ord := x.n;
        idx := tlog_append(x.c->>'tenant', x.c->>'cr_id', x.c->>'lineage');
        RETURN NEXT;
    END LOOP;
END $$;
