-- Step 1: open -> finalizing (a finalizing invoice is resumed as it is).
CREATE OR REPLACE FUNCTION bill_finalize_begin(p_tenant text, p_invoice text)
RETURNS TABLE (code text, account_id text, period text, currency text, exponent smallint,
               line_count bigint, total_minor bigint)
LANGUAGE plpgsql AS $$
DECLARE
    inv invoices%ROWTYPE;
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
        UPDATE invoices i SET status = 'finalizing', finalizing_at = now()
            WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice;
    END IF;
    RETURN QUERY SELECT 'ok'::text, inv.account_id, to_char(inv.period, 'YYYY-MM'),
        inv.currency, inv.exponent, inv.line_count, inv.total_minor;
END $$;
