-- bill_add_line: adds a rated CR's line to its account's open invoice of the CR's month
-- (see 0004_billing.sql for late lines and replays). A line that does not fit the target invoice's total cap
-- (8 * 10^18 minor units: billing/bill_rate.h, BILL_INVOICE_TOTAL_MAX) freezes that
-- invoice and goes on a continuation of the same period. Every line is at most
-- BILL_LINE_MAX (10^18), so an empty invoice always takes it and total + line never passes
-- 9 * 10^18 < 2^63. The month-close job finalizes the frozen invoice once it is
-- BILL_STALE_FINALIZING old (finance may finalize it at once). The lines marked "0008"
-- inside the body are what 0008 changed from 0004.
CREATE OR REPLACE FUNCTION bill_add_line(p_tenant text, p_account text, p_currency text,
                              p_exponent smallint, p_cr_id text, p_context text,
                              p_lineage gsap_cid, p_chronicle gsap_cid, p_merkle gsap_cid,
                              p_outcome text, p_flags text[], p_quantity bigint,
                              p_unit bigint, p_total bigint, p_rating jsonb,
                              p_occurred timestamptz)
RETURNS TABLE (invoice_id text, line_no bigint, late boolean, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    inv invoices%ROWTYPE;
    v_found boolean;
    v_late boolean;
    v_period date := date_trunc('month', p_occurred AT TIME ZONE 'UTC')::date;
    v_target date;
    v_line bigint;
    v_total_max constant bigint := 8000000000000000000; -- 0008: BILL_INVOICE_TOTAL_MAX
BEGIN
    RETURN QUERY SELECT l.invoice_id, l.line_no, l.late, false FROM invoice_lines l
        WHERE l.tenant_id = p_tenant AND l.cr_id = p_cr_id;
    IF FOUND THEN
        RETURN;
    END IF;
    FOR attempt IN 1..5 LOOP
        SELECT * INTO inv FROM invoices i
            WHERE i.tenant_id = p_tenant AND i.account_id = p_account AND i.period = v_period
              AND i.status = 'open' FOR UPDATE;
        v_found := FOUND;
        v_late := EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = p_tenant
                          AND i.account_id = p_account AND i.period = v_period
                          AND i.status <> 'open' AND NOT i.rolled_over); -- 0008
        v_target := v_period;
        IF NOT v_found AND v_late THEN
            SELECT * INTO inv FROM invoices i
                WHERE i.tenant_id = p_tenant AND i.account_id = p_account
                  AND i.period > v_period AND i.status = 'open'
                ORDER BY i.period LIMIT 1 FOR UPDATE;
            v_found := FOUND;
            v_target := greatest(v_period, date_trunc('month', now() AT TIME ZONE 'UTC')::date);
        END IF;
        -- 0008: a full invoice takes no more lines; its period continues on a new invoice.
        IF v_found AND p_total > 0 AND inv.total_minor > v_total_max - p_total THEN
            UPDATE invoices i SET status = 'finalizing', finalizing_at = now(),
                                  rolled_over = true
                WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
            v_target := inv.period;
            v_found := false;
        END IF;
        EXIT WHEN v_found;
        -- No open invoice yet: create it (or find the one a concurrent run created) and look
        -- again, so the row we write under is always one we hold locked.
        INSERT INTO invoices (tenant_id, invoice_id, account_id, period, currency, exponent)
            VALUES (p_tenant, 'inv_' || replace(gen_random_uuid()::text, '-', ''), p_account,
                    v_target, p_currency, p_exponent)
            ON CONFLICT (tenant_id, account_id, period) WHERE status = 'open' DO NOTHING;
    END LOOP;
    IF NOT v_found THEN
        RAISE EXCEPTION 'no open invoice for account % of tenant % after 5 attempts',
            p_account, p_tenant;
    END IF;
    IF inv.currency <> p_currency THEN
        IF inv.line_count > 0 THEN
            RAISE EXCEPTION 'invoice % is in %, but the line was rated in %', inv.invoice_id,
                inv.currency, p_currency;
        END IF;
        UPDATE invoices i SET currency = p_currency, exponent = p_exponent
            WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
    END IF;
    v_line := inv.line_count + 1;
    INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, cr_id, context_id, lineage_cid,
                               chronicle_cid, merkle_root, outcome, flags, quantity,
                               unit_minor, total_minor, rating, occurred_at, late)
        VALUES (p_tenant, inv.invoice_id, v_line, p_cr_id, p_context, p_lineage, p_chronicle,
                p_merkle, p_outcome, p_flags, p_quantity, p_unit, p_total, p_rating,
                p_occurred, v_late);
    UPDATE invoices i SET total_minor = i.total_minor + p_total, line_count = v_line
        WHERE i.tenant_id = p_tenant AND i.invoice_id = inv.invoice_id;
    RETURN QUERY SELECT inv.invoice_id, v_line, v_late, true;
END $$;
