-- 0004_billing: billing accounts, invoices, invoice lines and credit notes (docs/billing.md).
--
-- Money is bigint minor units of the invoice's currency; the exponent travels with it.
-- Invariants the database itself keeps, whoever connects:
--   * one open invoice per (tenant, account, period); lines are added to it under its row
--     lock, so total_minor and line_count always equal the sum and count of its lines;
--   * one line per CR (unique cr_id per tenant, and a foreign key to the CR);
--   * a finalized invoice is never updated or deleted, and no line of a finalizing or
--     finalized invoice is inserted, updated or deleted; credit notes are insert-only and
--     only reference lines of finalized invoices (triggers below, with clear messages).
-- Lines are written by the billing function (functions/fn_billing.c) through bill_add_line,
-- invoices are finalized through bill_finalize_begin / bill_finalize_commit
-- (billing/bill_invoice.h), from the finance route or the month-close job alike.

CREATE TABLE billing_accounts (
    tenant_id text NOT NULL REFERENCES tenants,
    account_id text NOT NULL CHECK (account_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    rate_card jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id)
);

-- Every tenant has the account "default" from its creation: USD, 0.10 per CR whatever its
-- outcome, 0.01 per started second, no multipliers, no surcharge. The C side validates the
-- same card (bill_ratecard_parse) when it rates with it.
CREATE FUNCTION bill_default_card() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"per_cr": {"completed": 10, "failed": 10, "violated": 10, "timed_out": 10,
                        "session_end": 10},
             "per_second": 1, "shell_class_multipliers": {}, "capability_multipliers": {},
             "flagged_surcharge": 0}'::jsonb
$$;
CREATE FUNCTION bill_default_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_accounts (tenant_id, account_id, currency, exponent, rate_card)
        VALUES (NEW.tenant_id, 'default', 'USD', 2, bill_default_card())
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER tenants_default_account AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION bill_default_account();
INSERT INTO billing_accounts (tenant_id, account_id, currency, exponent, rate_card)
    SELECT tenant_id, 'default', 'USD', 2, bill_default_card() FROM tenants
    ON CONFLICT DO NOTHING;

CREATE TABLE invoices (
    tenant_id text NOT NULL,
    invoice_id text NOT NULL CHECK (invoice_id ~ '^inv_[0-9a-f]{32}$'),
    account_id text NOT NULL,
    period date NOT NULL CHECK (extract(day FROM period) = 1), -- first day of the UTC month
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'finalizing', 'finalized')),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    total_minor bigint NOT NULL DEFAULT 0,
    line_count bigint NOT NULL DEFAULT 0 CHECK (line_count >= 0),
    lines_root gsap_cid,
    invoice_cid gsap_cid,
    signature text,
    key_id text,
    document jsonb,               -- the signed invoice document
    created_at timestamptz NOT NULL DEFAULT now(),
    finalizing_at timestamptz,
    finalized_at timestamptz,
    PRIMARY KEY (tenant_id, invoice_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES billing_accounts,
    CHECK (status <> 'finalized' OR (lines_root IS NOT NULL AND invoice_cid IS NOT NULL AND
                                     signature IS NOT NULL AND key_id IS NOT NULL AND
                                     document IS NOT NULL AND finalized_at IS NOT NULL))
);
CREATE UNIQUE INDEX invoices_one_open ON invoices (tenant_id, account_id, period)
    WHERE status = 'open';
CREATE INDEX invoices_by_account ON invoices (tenant_id, account_id, period);
CREATE INDEX invoices_unfinished ON invoices (period) WHERE status <> 'finalized';

CREATE TABLE invoice_lines (
    tenant_id text NOT NULL,
    invoice_id text NOT NULL,
    line_no bigint NOT NULL CHECK (line_no > 0),
    cr_id text NOT NULL,
    context_id text NOT NULL,
    lineage_cid gsap_cid NOT NULL,
    chronicle_cid gsap_cid NOT NULL,
    merkle_root gsap_cid,         -- the Chronicle Merkle root (null when the CR had none)
    outcome text NOT NULL CHECK (outcome IN ('completed', 'failed', 'violated', 'timed_out',
                                             'session_end')),  -- the effective outcome
    flags text[] NOT NULL DEFAULT '{}',
    quantity bigint NOT NULL CHECK (quantity >= 0),   -- started seconds of run time
    unit_minor bigint NOT NULL,                       -- price per started second
    total_minor bigint NOT NULL,
    rating jsonb NOT NULL,        -- the breakdown that reproduces total_minor (bill_rate.h)
    occurred_at timestamptz NOT NULL,                 -- when the broker accepted the CR
    late boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, invoice_id, line_no),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices,
    FOREIGN KEY (tenant_id, cr_id) REFERENCES crs (tenant_id, cr_id)
);
CREATE UNIQUE INDEX invoice_lines_one_per_cr ON invoice_lines (tenant_id, cr_id);

CREATE TABLE credit_notes (
    tenant_id text NOT NULL,
    credit_id text NOT NULL CHECK (credit_id ~ '^crn_[0-9a-f]{32}$'),
    invoice_id text NOT NULL,
    line_no bigint NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 256),
    document jsonb NOT NULL,      -- the signed credit note
    credit_cid gsap_cid NOT NULL,
    signature text NOT NULL,
    key_id text NOT NULL,
    created_at timestamptz NOT NULL,            -- as signed (seconds)
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(), -- orders notes of one second
    PRIMARY KEY (tenant_id, credit_id),
    FOREIGN KEY (tenant_id, invoice_id, line_no) REFERENCES invoice_lines
);
CREATE INDEX credit_notes_by_line ON credit_notes (tenant_id, invoice_id, line_no);

-- ---- immutability ----

CREATE FUNCTION bill_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'finalized' THEN
        RAISE EXCEPTION 'invoice % is finalized and cannot be %', OLD.invoice_id,
            CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'corrections to a finalized invoice are credit notes';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    -- Status only moves forward, and a finalizing invoice's lines are frozen, so its total
    -- and count are too.
    IF OLD.status = 'finalizing' AND (NEW.status = 'open' OR NEW.total_minor <> OLD.total_minor
                                      OR NEW.line_count <> OLD.line_count) THEN
        RAISE EXCEPTION 'invoice % is being finalized: its status, total and line count are frozen',
            OLD.invoice_id USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION bill_invoice_guard();

CREATE FUNCTION bill_line_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    -- FOR SHARE: a concurrent finalize (which updates the row) waits for us, or we for it.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT status INTO v_status FROM invoices
            WHERE tenant_id = OLD.tenant_id AND invoice_id = OLD.invoice_id FOR SHARE;
        IF v_status <> 'open' THEN
            RAISE EXCEPTION 'invoice % is %: its lines cannot be %', OLD.invoice_id, v_status,
                CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        SELECT status INTO v_status FROM invoices
            WHERE tenant_id = NEW.tenant_id AND invoice_id = NEW.invoice_id FOR SHARE;
        IF v_status <> 'open' THEN
            RAISE EXCEPTION 'invoice % is %: no line can be added to it', NEW.invoice_id,
                v_status USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER invoice_lines_frozen BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION bill_line_guard();

CREATE FUNCTION bill_credit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'credit note % cannot be %: credit notes are never changed',
            OLD.credit_id, CASE TG_OP WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT status INTO v_status FROM invoices
        WHERE tenant_id = NEW.tenant_id AND invoice_id = NEW.invoice_id;
    IF v_status IS DISTINCT FROM 'finalized' THEN
        RAISE EXCEPTION 'invoice % is %: credit notes apply to finalized invoices only',
            NEW.invoice_id, coalesce(v_status, 'missing')
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER credit_notes_insert_only BEFORE INSERT OR UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION bill_credit_guard();

-- TRUNCATE fires no row triggers: refuse it outright on all three tables.
CREATE FUNCTION bill_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% cannot be truncated: billing records are never removed', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION bill_no_truncate();
CREATE TRIGGER invoice_lines_no_truncate BEFORE TRUNCATE ON invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION bill_no_truncate();
CREATE TRIGGER credit_notes_no_truncate BEFORE TRUNCATE ON credit_notes
    FOR EACH STATEMENT EXECUTE FUNCTION bill_no_truncate();

-- ---- accounts ----

-- bill_put_account: creates or replaces an account. code: 'created', 'updated', or
-- 'currency_locked' (the currency differs and the account already has lines or finalized
-- invoices). The row lock makes the check exact: the billing function holds a share lock on
-- the account while it rates and writes a line.
CREATE FUNCTION bill_put_account(p_tenant text, p_account text, p_currency text,
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

-- ---- lines ----

-- bill_add_line: writes the line of one CR, once, under the target invoice's row lock.
-- The target: the open invoice of (tenant, account, the UTC month the CR was accepted in).
-- When an invoice of that month is already finalizing or finalized, the line is late: it
-- goes on the earliest open invoice of the account from that month on, or on a new one for
-- the current month (which may be that same month again, when it was finalized early).
-- Returns the invoice, the line number, whether it is late, and inserted = false when the
-- CR already had its line (a replay changes nothing).
CREATE FUNCTION bill_add_line(p_tenant text, p_account text, p_currency text,
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
                          AND i.status <> 'open');
        v_target := v_period;
        IF NOT v_found AND v_late THEN
            SELECT * INTO inv FROM invoices i
                WHERE i.tenant_id = p_tenant AND i.account_id = p_account
                  AND i.period > v_period AND i.status = 'open'
                ORDER BY i.period LIMIT 1 FOR UPDATE;
            v_found := FOUND;
            v_target := greatest(v_period, date_trunc('month', now() AT TIME ZONE 'UTC')::date);
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

-- ---- finalizing (billing/bill_invoice.h) ----

-- Step 1: open -> finalizing (a finalizing invoice is resumed as it is).
CREATE FUNCTION bill_finalize_begin(p_tenant text, p_invoice text)
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

-- Step 3: stores the signed document; only a finalizing invoice whose count and total are
-- still the ones the document states becomes finalized.
CREATE FUNCTION bill_finalize_commit(p_tenant text, p_invoice text, p_doc jsonb)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    UPDATE invoices i SET status = 'finalized', lines_root = p_doc->>'lines_root',
                          invoice_cid = p_doc->>'invoice_cid', signature = p_doc->>'signature',
                          key_id = p_doc->>'key_id', document = p_doc,
                          finalized_at = (p_doc->>'finalized_at')::timestamptz
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice AND i.status = 'finalizing'
          AND i.total_minor = (p_doc->>'total_minor')::bigint
          AND i.line_count = (p_doc->>'line_count')::bigint;
    IF FOUND THEN
        RETURN 'ok';
    END IF;
    SELECT status INTO v_status FROM invoices i
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice;
    RETURN CASE WHEN v_status = 'finalized' THEN 'finalized'
                WHEN v_status = 'finalizing' THEN 'mismatch'
                ELSE 'not_finalizing' END;
END $$;

-- ---- credit notes ----

-- bill_credit: stores a signed credit note after re-checking, under the invoice's row lock,
-- what the route checked before signing it. code: 'ok', 'not_found', 'not_finalized',
-- 'line_not_found', 'exceeds' (with the amount still creditable on the line).
CREATE FUNCTION bill_credit(p_tenant text, p_invoice text, p_line bigint, p_amount bigint,
                            p_reason text, p_credit text, p_doc jsonb)
RETURNS TABLE (code text, creditable bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_total bigint;
    v_credited bigint;
BEGIN
    SELECT status INTO v_status FROM invoices i
        WHERE i.tenant_id = p_tenant AND i.invoice_id = p_invoice FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint;
        RETURN;
    END IF;
    IF v_status <> 'finalized' THEN
        RETURN QUERY SELECT 'not_finalized'::text, NULL::bigint;
        RETURN;
    END IF;
    SELECT l.total_minor INTO v_total FROM invoice_lines l
        WHERE l.tenant_id = p_tenant AND l.invoice_id = p_invoice AND l.line_no = p_line;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'line_not_found'::text, NULL::bigint;
        RETURN;
    END IF;
    SELECT coalesce(sum(c.amount_minor), 0) INTO v_credited FROM credit_notes c
        WHERE c.tenant_id = p_tenant AND c.invoice_id = p_invoice AND c.line_no = p_line;
    IF p_amount > v_total - v_credited THEN
        RETURN QUERY SELECT 'exceeds'::text, v_total - v_credited;
        RETURN;
    END IF;
    INSERT INTO credit_notes (tenant_id, credit_id, invoice_id, line_no, amount_minor, reason,
                              document, credit_cid, signature, key_id, created_at)
        VALUES (p_tenant, p_credit, p_invoice, p_line, p_amount, p_reason, p_doc,
                p_doc->>'credit_cid', p_doc->>'signature', p_doc->>'key_id',
                (p_doc->>'created_at')::timestamptz);
    RETURN QUERY SELECT 'ok'::text, v_total - v_credited - p_amount;
END $$;
