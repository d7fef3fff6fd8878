-- bill_add_lines: bills a batch of rated CRs in one statement (functions/fn_billing.c). Each
-- element of p_lines is one line, with bill_add_line's parameters by name:
--   {"tenant","account","currency","exponent","cr_id","context","lineage","chronicle",
--    "merkle","outcome","flags":[...],"quantity","unit","total","rating":{...},"occurred"}
-- (bigints as strings). Every line goes through bill_add_line, the one place a line's
-- columns are set, then gets its transparency-log index (tlog_append) while
-- bill_add_line's lock on its open invoice still holds, so every line has its log_index
-- before its invoice can begin finalizing. A line already billed (a replay) is returned with
-- inserted = false and its stored index.
--
-- Lock order, so that several runtime workers (or brokers) billing disjoint batches never
-- deadlock: first the log heads of every tenant in the batch, in tenant_id order, then the
-- lines grouped by (tenant, account) in that order, each group in the order given (event
-- order, so line numbers follow the events). A tenant's invoices are only locked by billing
-- while it holds the tenant's log head, and finalizing an invoice never waits for a head.
-- Returns one row per element: ord is its 1-based position in p_lines.
CREATE OR REPLACE FUNCTION bill_add_lines(p_lines jsonb)
RETURNS TABLE (ord int, cr_id text, invoice_id text, line_no bigint, late boolean,
               inserted boolean, log_index bigint)
LANGUAGE plpgsql AS $$
DECLARE
    x record;
    r record;
    v_idx bigint;
BEGIN
    INSERT INTO tlog_heads (tenant_id)
        SELECT DISTINCT e->>'tenant' FROM jsonb_array_elements(p_lines) e ORDER BY 1
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM tlog_heads h
        WHERE h.tenant_id IN (SELECT e->>'tenant' FROM jsonb_array_elements(p_lines) e)
        ORDER BY h.tenant_id FOR UPDATE;
    FOR x IN SELECT e.n::int AS n, e.l FROM jsonb_array_elements(p_lines) WITH ORDINALITY e(l, n)
             ORDER BY e.l->>'tenant', e.l->>'account', e.n LOOP
        SELECT * INTO r FROM bill_add_line(
            x.l->>'tenant', x.l->>'account', x.l->>'currency', (x.l->>'exponent')::smallint,
            x.l->>'cr_id', x.l->>'context', (x.l->>'lineage')::gsap_cid,
            (x.l->>'chronicle')::gsap_cid, (x.l->>'merkle')::gsap_cid, x.l->>'outcome',
            ARRAY(SELECT jsonb_array_elements_text(coalesce(x.l->'flags', '[]'))),
            (x.l->>'quantity')::bigint, (x.l->>'unit')::bigint, (x.l->>'total')::bigint,
            x.l->'rating', (x.l->>'occurred')::timestamptz);
        -- As fn_billing's single-line path did: a line already indexed is left alone, and a
        -- replayed line on an invoice no longer open keeps what it has.
        UPDATE invoice_lines l SET log_index = tlog_append(l.tenant_id, l.cr_id, x.l->>'lineage')
            FROM invoices i
            WHERE l.tenant_id = x.l->>'tenant' AND l.cr_id = x.l->>'cr_id'
              AND l.log_index IS NULL AND i.tenant_id = l.tenant_id
              AND i.invoice_id = l.invoice_id AND i.status = 'open'
            RETURNING l.log_index INTO v_idx;
        IF NOT FOUND THEN
            SELECT l.log_index INTO v_idx FROM invoice_lines l
                WHERE l.tenant_id = x.l->>'tenant' AND l.cr_id = x.l->>'cr_id';
        END IF;
        ord := x.n;
        cr_id := x.l->>'cr_id';
        invoice_id := r.invoice_id;
        line_no := r.line_no;
        late := r.late;
        inserted := r.inserted;
        log_index := v_idx;
        RETURN NEXT;
    END LOOP;
END $$;

ALTER FUNCTION bill_add_lines(jsonb) SET plan_cache_mode = force_custom_plan;
