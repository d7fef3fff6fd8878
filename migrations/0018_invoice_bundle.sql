-- 0018: what an invoice audit bundle needs (docs/protocol.md "GET /billing/invoices/{id}/bundle").
--
-- rate_card_versions: the rate-card history. Every PUT of an account that changes its currency
-- or card stores the next version (trigger bill_card_version, migrations/functions/
-- 20_bill_card_version.sql): the card as stored, its RFC 8785 canonical JSON and the CID of
-- that text, so a line priced with an older card stays verifiable after the card changed.
-- Rows are never updated nor deleted (bill_card_guard). Each account's card at the time this
-- migration runs becomes its version 1 with backfilled = true: it priced the lines written
-- from now on, not necessarily the older ones.
-- No foreign key to billing_accounts: the history outlives an account.
CREATE TABLE rate_card_versions (
    tenant_id text NOT NULL,
    account_id text NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    exponent smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    card jsonb NOT NULL,
    card_jcs text NOT NULL,
    card_cid gsap_cid NOT NULL,
    backfilled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, account_id, version)
);

-- The version that priced the line (set by bill_line_card_version when the line is written).
-- NULL for lines written before this migration: their card was never stored.
ALTER TABLE invoice_lines ADD COLUMN rate_card_version bigint CHECK (rate_card_version > 0);

-- tlog_nodes: the interior nodes of each tenant's log, so an inclusion proof reads O(log^2 n)
-- rows (tlog_inclusion_path) instead of every leaf hash. Node (level, idx) is the root of the
-- perfect subtree over entries [idx * 2^level, (idx + 1) * 2^level); level 0 is the leaf hash
-- in tlog_entries and is not repeated here. tlog_append stores each node when its subtree is
-- complete. Append-only like the rest of the log (tlog_guard).
CREATE TABLE tlog_nodes (
    tenant_id text NOT NULL,
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx bigint NOT NULL CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
);

-- The nodes of the entries appended before this migration, level by level.
INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
    SELECT l.tenant_id, 1, l.idx / 2, sha256('\x01'::bytea || l.leaf_hash || r.leaf_hash)
    FROM tlog_entries l JOIN tlog_entries r ON r.tenant_id = l.tenant_id AND r.idx = l.idx + 1
    WHERE l.idx % 2 = 0;
DO $$
DECLARE
    v_level int := 1;
    v_n bigint;
BEGIN
    LOOP
        INSERT INTO tlog_nodes (tenant_id, level, idx, hash)
            SELECT l.tenant_id, v_level + 1, l.idx / 2, sha256('\x01'::bytea || l.hash || r.hash)
            FROM tlog_nodes l JOIN tlog_nodes r
                ON r.tenant_id = l.tenant_id AND r.level = l.level AND r.idx = l.idx + 1
            WHERE l.level = v_level AND l.idx % 2 = 0;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        EXIT WHEN v_n = 0;
        v_level := v_level + 1;
    END LOOP;
END $$;
