-- bill_put_account: creates or replaces an account. code: 'created', 'updated', or
-- 'currency_locked' (the currency differs and the account already has lines or finalized
-- invoices). The row lock makes the check exact: the billing function holds a share lock on
-- the account while it rates and writes a line.
CREATE OR REPLACE FUNCTION bill_put_account(p_tenant text, p_account text, p_currency text,
                                 p_exponent smallint, p_card jsonb)
RETURNS TABLE (code text, created_at timestamptz, updated_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    a billing_accounts%ROWTYPE;
BEGIN
    SELECT * INTO a FROM billing_accounts b
        WHERE b.tenant_id = p_tenant AND b.account_id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO billing_accounts (tenant_id, account_id, currency, exponent, rate_card)
            VALUES (p_tenant, p_account, p_currency, p_exponent, p_card)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN -- created concurrently: treat as an update of that row
            RETURN QUERY SELECT * FROM bill_put_account(p_tenant, p_account, p_currency,
                                                        p_exponent, p_card);
            RETURN;
        END IF;
        RETURN QUERY SELECT 'created'::text, now(), now();
        RETURN;
    END IF;
    IF a.currency <> p_currency THEN
        IF EXISTS (SELECT 1 FROM invoices i WHERE i.tenant_id = p_tenant
                   AND i.account_id = p_account AND (i.line_count > 0 OR i.status <> 'open')) THEN
            RETURN QUERY SELECT 'currency_locked'::text, a.created_at, a.updated_at;
            RETURN;
        END IF;
        -- empty open invoices follow the account's new currency
        UPDATE invoices i SET currency = p_currency, exponent = p_exponent
            WHERE i.tenant_id = p_tenant AND i.account_id = p_account AND i.status = 'open'
              AND i.line_count = 0;
    END IF;
    UPDATE billing_accounts b SET currency = p_currency, exponent = p_exponent,
                                  rate_card = p_card, updated_at = now()
        WHERE b.tenant_id = p_tenant AND b.account_id = p_account;
    RETURN QUERY SELECT 'updated'::text, a.created_at, now();
END $$;
