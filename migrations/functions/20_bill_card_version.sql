-- bill_card_version: every INSERT or UPDATE of a billing account whose currency or card
-- differs from its latest stored version stores the next version (rate_card_versions,
-- migrations/0018_invoice_bundle.sql). The account row is locked by the statement that fired
-- the trigger, so versions of one account are numbered without gap or race.
CREATE OR REPLACE FUNCTION bill_card_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v rate_card_versions%ROWTYPE;
    v_jcs text := bill_jcs(NEW.rate_card);
BEGIN
    SELECT * INTO v FROM rate_card_versions r
        WHERE r.tenant_id = NEW.tenant_id AND r.account_id = NEW.account_id
        ORDER BY r.version DESC LIMIT 1;
    IF FOUND AND v.card_jcs = v_jcs AND v.currency = NEW.currency
       AND v.exponent = NEW.exponent THEN
        RETURN NULL;
    END IF;
    INSERT INTO rate_card_versions (tenant_id, account_id, version, currency, exponent, card,
                                    card_jcs, card_cid)
        VALUES (NEW.tenant_id, NEW.account_id, coalesce(v.version, 0) + 1, NEW.currency,
                NEW.exponent, NEW.rate_card, v_jcs,
                ('sha256:' || encode(sha256(convert_to(v_jcs, 'UTF8')), 'hex'))::gsap_cid);
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER billing_accounts_card_version
    AFTER INSERT OR UPDATE ON billing_accounts
    FOR EACH ROW EXECUTE FUNCTION bill_card_version();

-- bill_line_card_version: a new line records the latest card version of its invoice's
-- account. That is the card the line was rated with: the billing function reads the card
-- with the account row locked FOR SHARE (functions/fn_billing.c, q_account) until its
-- transaction, which writes the line, commits, and a PUT updates that row, so no version can
-- be added between rating and writing. The verifier recomputes every amount from this
-- version, so a line recorded with the wrong one cannot pass unnoticed.
-- A writer that knows the version it rated with (a batch that read the card's version with the
-- card) may set the column itself; only a line without one gets the latest.
CREATE OR REPLACE FUNCTION bill_line_card_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.rate_card_version IS NULL THEN
        SELECT max(r.version) INTO NEW.rate_card_version
            FROM invoices i JOIN rate_card_versions r
                ON r.tenant_id = i.tenant_id AND r.account_id = i.account_id
            WHERE i.tenant_id = NEW.tenant_id AND i.invoice_id = NEW.invoice_id;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER invoice_lines_card_version BEFORE INSERT ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION bill_line_card_version();

-- bill_card_guard: versions are immutable, whoever asks.
CREATE OR REPLACE FUNCTION bill_card_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: rate-card versions are append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE OR REPLACE TRIGGER rate_card_versions_append_only
    BEFORE UPDATE OR DELETE ON rate_card_versions
    FOR EACH ROW EXECUTE FUNCTION bill_card_guard();
CREATE OR REPLACE TRIGGER rate_card_versions_no_truncate BEFORE TRUNCATE ON rate_card_versions
    FOR EACH STATEMENT EXECUTE FUNCTION bill_card_guard();

-- Accounts without a version (those that existed before 0018): their card of now is version
-- 1, marked backfilled (it priced the lines written from now on). Idempotent.
INSERT INTO rate_card_versions (tenant_id, account_id, version, currency, exponent, card,
                                card_jcs, card_cid, backfilled)
    SELECT a.tenant_id, a.account_id, 1, a.currency, a.exponent, a.rate_card,
           bill_jcs(a.rate_card),
           ('sha256:' || encode(sha256(convert_to(bill_jcs(a.rate_card), 'UTF8')), 'hex'))::gsap_cid,
           true
    FROM billing_accounts a
    WHERE NOT EXISTS (SELECT 1 FROM rate_card_versions r
                      WHERE r.tenant_id = a.tenant_id AND r.account_id = a.account_id);
