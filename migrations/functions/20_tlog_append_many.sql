-- tlog_append_many: the transparency-log sequencer's batch (functions/fn_tlog.c), which runs
-- for the CRs whose billing failed (billing logs the others itself): appends each CR of p_crs
-- ([{"tenant","cr_id","lineage"}, ...]) with tlog_append_batch, one call per tenant, which
-- returns the existing index for a CR already logged (a billing run that succeeded after
-- all). The log heads of the batch's tenants are locked first (tlog_lock_heads), as
-- bill_add_lines does; the CRs are then appended in the order given (event order) within
-- each tenant. Returns one row per element: ord (1-based position in p_crs) and its index.
CREATE OR REPLACE FUNCTION tlog_append_many(p_crs jsonb)
RETURNS TABLE (ord int, idx bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    PERFORM tlog_lock_heads(p_crs);
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
