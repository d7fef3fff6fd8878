-- Step 1: open -> finalizing (a finalizing invoice is resumed as it is).
CREATE OR REPLACE FUNCTION bill_finalize_begin(p_tenant text, p_invoice text)
RETURNS TABLE (code text, account_id text, period text, currency text, exponent smallint,
               line_count bigint, total_minor bigint)
LANGUAGE plpgsql AS $$
DECLARE
    inv invoices%ROWTYPE;
    r record;
BEGIN
    SELECT * INTO inv FROM invoices i
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::text, NULL::text,
            NULL::smallint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF inv.status = 'finalized' THEN
        RETURN QUERY SELECT 'finalized'::text, inv.account_id, to_char(inv.period, 'YYYY-MM'),
            inv.currency, inv.exponent, inv.line_count, inv.total_minor;
        RETURN;
    END IF;
    IF inv.status = 'open' THEN
        -- Every line must carry its transparency-log index before the lines freeze: lines
        -- written before the log existed (migrations/0010) are appended now, in line order
        -- (tlog_append keeps the index of a CR already logged).
        FOR r IN SELECT l.line_no, l.cr_id, l.lineage_cid FROM invoice_lines l
                 WHERE l.tenant_id = p_tenant AND l.invoice_id = p_invoice
                   AND l.log_index IS NULL ORDER BY l.line_no LOOP
            UPDATE invoice_lines l SET log_index = tlog_append(p_tenant, r.cr_id, r.lineage_cid)
                WHERE l.tenant_id = p_tenant AND l.invoice_id = p_invoice
                  AND l.line_no = r.line_no;
        END LOOP;
        UPDATE invoices i SET status = 'finalizing', finalizing_at = now()
            WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice;
    END IF;
    RETURN QUERY SELECT 'ok'::text, inv.account_id, to_char(inv.period, 'YYYY-MM'),
        inv.currency, inv.exponent, inv.line_count, inv.total_minor;
END $$;
