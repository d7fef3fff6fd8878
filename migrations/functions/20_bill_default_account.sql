CREATE OR REPLACE FUNCTION bill_default_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_accounts (tenant_id, account_id, currency, exponent, rate_card)
        VALUES (NEW.tenant_id, 'default', 'USD', 2, bill_default_card())
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tenants_default_account AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION bill_default_account();
