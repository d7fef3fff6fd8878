-- bill_add_lines: bills a batch of rated CRs (functions/fn_billing.c). Each element of
-- p_lines is one line, with bill_add_line's parameters by name:
--   {"tenant","account","currency","exponent","cr_id","context","lineage","chronicle",
--    "merkle","outcome","flags":[...],"quantity","unit","total","rating":{...},"occurred"}
-- (bigints as strings). Returns one row per element: ord is its 1-based position in p_lines.
--
-- Set-based, so a batch costs a fixed number of statements per (tenant, account, month) it
-- touches, not several per line:
--   1. the log heads of every tenant in the batch are locked, in tenant_id order;
--   2. the CRs not billed yet ("new"; a CR named twice counts once) get their
--      transparency-log indexes, one tlog_append_batch per tenant, in (account, event) order;
--   3. per (tenant, account, month) of the new lines, in that order: the first line goes
--      through bill_add_line, the one place that picks the invoice (the open one of the CR's
--      UTC month, or the next open one with the line marked late, creating it if need be, or a
--      continuation when the cap is reached) and locks it; the others follow it onto that
--      invoice in one INSERT, numbered in event order, and the invoice's total and count move
--      in one UPDATE. When they would not all fit under the invoice's cap (8 * 10^18 minor
--      units, BILL_INVOICE_TOTAL_MAX) or name another currency, each goes through
--      bill_add_line alone, as every line did before;
--   4. a line already billed (a replay, or the second naming of a CR) is returned with
--      inserted = false and what it has; one on a still open invoice that has no index yet (a
--      line older than the log) gets one now.
-- Every new line has its index before its invoice's lock is released, so before the invoice
-- can begin finalizing.
--
-- Lock order, so that several runtime workers (or brokers) billing disjoint batches never
-- deadlock: first the log heads, in tenant_id order, then the invoices, by (tenant, account,
-- month). A tenant's invoices are only locked by billing while it holds the tenant's log head,
-- and finalizing an invoice never waits for a head.
CREATE OR REPLACE FUNCTION bill_add_lines(p_lines jsonb)
RETURNS TABLE (ord int, cr_id text, invoice_id text, line_no bigint, late boolean,
               inserted boolean, log_index bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_len int := jsonb_array_length(p_lines);
    v_new boolean[]; -- by position: billed by this call
    v_log bigint[];  -- by position: the new line's log index
    v_rest int[];
    v_ver integer;
    v_sum numeric;
    v_total_max constant numeric := 8000000000000000000; -- BILL_INVOICE_TOTAL_MAX
    inv invoices%ROWTYPE;
    t record;
    g record;
    r record;
    x record;
    v_k int;
BEGIN
    PERFORM tlog_lock_heads(p_lines); -- 1.

    -- 2. The new CRs, the first naming of each, and their log indexes.
    v_new := array_fill(false, ARRAY[v_len]);
    v_log := array_fill(NULL::bigint, ARRAY[v_len]);
    FOR t IN SELECT tenant, array_agg(n ORDER BY account, n) AS ns,
                    array_agg(cr ORDER BY account, n) AS crs,
                    array_agg(lineage ORDER BY account, n) AS lineages
             FROM (SELECT DISTINCT ON (e.l->>'tenant', e.l->>'cr_id')
                          e.n::int AS n, e.l->>'tenant' AS tenant, e.l->>'account' AS account,
                          e.l->>'cr_id' AS cr, e.l->>'lineage' AS lineage
                   FROM jsonb_array_elements(p_lines) WITH ORDINALITY e(l, n)
                   WHERE NOT EXISTS (SELECT 1 FROM invoice_lines il
                                     WHERE il.tenant_id = e.l->>'tenant'
                                       AND il.cr_id = e.l->>'cr_id')
                   ORDER BY e.l->>'tenant', e.l->>'cr_id', e.n) y
             GROUP BY tenant ORDER BY tenant LOOP
        FOR x IN SELECT * FROM unnest(t.ns, tlog_append_batch(t.tenant, t.crs, t.lineages))
                 AS u(n, idx) LOOP
            v_new[x.n] := true;
            v_log[x.n] := x.idx;
        END LOOP;
    END LOOP;

    -- 3. The new lines, a group per (tenant, account, month).
    FOR g IN SELECT e.l->>'tenant' AS tenant, e.l->>'account' AS account,
                    date_trunc('month', (e.l->>'occurred')::timestamptz AT TIME ZONE 'UTC') AS m,
                    array_agg(e.n::int ORDER BY e.n) AS ns
             FROM jsonb_array_elements(p_lines) WITH ORDINALITY e(l, n)
             WHERE v_new[e.n]
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 LOOP
        -- The first line picks (and locks) the invoice.
        SELECT * INTO r FROM bill_add_line_at(p_lines -> (g.ns[1] - 1), v_log[g.ns[1]]);
        ord := g.ns[1]; cr_id := p_lines -> (g.ns[1] - 1) ->> 'cr_id';
        invoice_id := r.invoice_id; line_no := r.line_no; late := r.late; inserted := true;
        log_index := v_log[g.ns[1]];
        RETURN NEXT;
        v_rest := g.ns[2:];
        CONTINUE WHEN cardinality(v_rest) = 0;
        SELECT * INTO inv FROM invoices i
            WHERE i.tenant_id = g.tenant AND i.invoice_id = r.invoice_id FOR UPDATE;
        SELECT sum((p_lines -> (q.k - 1) ->> 'total')::numeric) INTO v_sum FROM unnest(v_rest) q(k);
        IF inv.status = 'open' AND inv.total_minor + v_sum <= v_total_max
           AND NOT EXISTS (SELECT 1 FROM unnest(v_rest) q(k)
                           WHERE p_lines -> (q.k - 1) ->> 'currency' <> inv.currency) THEN
            SELECT max(v.version) INTO v_ver FROM rate_card_versions v
                WHERE v.tenant_id = inv.tenant_id AND v.account_id = inv.account_id;
            INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, cr_id, context_id,
                                       lineage_cid, chronicle_cid, merkle_root, outcome, flags,
                                       quantity, unit_minor, total_minor, rating, occurred_at,
                                       late, log_index, rate_card_version)
                SELECT inv.tenant_id, inv.invoice_id, inv.line_count + u.pos, l->>'cr_id',
                       l->>'context', (l->>'lineage')::gsap_cid, (l->>'chronicle')::gsap_cid,
                       (l->>'merkle')::gsap_cid, l->>'outcome',
                       ARRAY(SELECT jsonb_array_elements_text(coalesce(l->'flags', '[]'))),
                       (l->>'quantity')::bigint, (l->>'unit')::bigint, (l->>'total')::bigint,
                       l->'rating', (l->>'occurred')::timestamptz, r.late, v_log[u.k], v_ver
                FROM unnest(v_rest) WITH ORDINALITY u(k, pos),
                     LATERAL (SELECT p_lines -> (u.k - 1) AS l) z
                ORDER BY u.pos;
            UPDATE invoices i SET total_minor = i.total_minor + v_sum::bigint,
                                  line_count = i.line_count + cardinality(v_rest)
                WHERE i.tenant_id = inv.tenant_id AND i.invoice_id = inv.invoice_id;
            RETURN QUERY SELECT u.k, p_lines -> (u.k - 1) ->> 'cr_id', inv.invoice_id,
                                inv.line_count + u.pos, r.late, true, v_log[u.k]
                FROM unnest(v_rest) WITH ORDINALITY u(k, pos);
        ELSE
            FOREACH v_k IN ARRAY v_rest LOOP
                SELECT * INTO r FROM bill_add_line_at(p_lines -> (v_k - 1), v_log[v_k]);
                ord := v_k; cr_id := p_lines -> (v_k - 1) ->> 'cr_id';
                invoice_id := r.invoice_id; line_no := r.line_no; late := r.late;
                inserted := true; log_index := v_log[v_k];
                RETURN NEXT;
            END LOOP;
        END IF;
    END LOOP;

    -- 4. Lines billed before (replays, second namings).
    FOR x IN SELECT e.n::int AS n, e.l->>'tenant' AS tenant, e.l->>'cr_id' AS cr,
                    e.l->>'lineage' AS lineage
             FROM jsonb_array_elements(p_lines) WITH ORDINALITY e(l, n)
             WHERE NOT v_new[e.n] ORDER BY e.n LOOP
        UPDATE invoice_lines l SET log_index = tlog_append(l.tenant_id, l.cr_id, x.lineage)
            FROM invoices i
            WHERE l.tenant_id = x.tenant AND l.cr_id = x.cr AND l.log_index IS NULL
              AND i.tenant_id = l.tenant_id AND i.invoice_id = l.invoice_id
              AND i.status = 'open';
        RETURN QUERY SELECT x.n, x.cr, l.invoice_id, l.line_no, l.late, false, l.log_index
            FROM invoice_lines l WHERE l.tenant_id = x.tenant AND l.cr_id = x.cr;
    END LOOP;
END $$;

-- bill_add_line_at: bill_add_line for one element of bill_add_lines' p_lines, its log index
-- set in the same step.
CREATE OR REPLACE FUNCTION bill_add_line_at(l jsonb, p_log_index bigint)
RETURNS TABLE (invoice_id text, line_no bigint, late boolean, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM bill_add_line(
        l->>'tenant', l->>'account', l->>'currency', (l->>'exponent')::smallint,
        l->>'cr_id', l->>'context', (l->>'lineage')::gsap_cid, (l->>'chronicle')::gsap_cid,
        (l->>'merkle')::gsap_cid, l->>'outcome',
        ARRAY(SELECT jsonb_array_elements_text(coalesce(l->'flags', '[]'))),
        (l->>'quantity')::bigint, (l->>'unit')::bigint, (l->>'total')::bigint, l->'rating',
        (l->>'occurred')::timestamptz);
    IF r.inserted THEN
        UPDATE invoice_lines il SET log_index = p_log_index
            WHERE il.tenant_id = l->>'tenant' AND il.cr_id = l->>'cr_id';
    END IF;
    RETURN QUERY SELECT r.invoice_id, r.line_no, r.late, r.inserted;
END $$;
