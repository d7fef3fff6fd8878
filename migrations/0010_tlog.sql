-- 0010: the per-tenant transparency log (docs/protocol.md "Transparency log").
--
-- tlog_entries is the log: entry idx of a tenant is the lineage CID of one accepted CR,
-- idx gap-free from 0 in the order the entries were appended. Each row also keeps its
-- RFC 6962 leaf hash, SHA-256(0x00 || the 71 ASCII bytes of the lineage CID), and the root
-- of the tree of size idx + 1, so a checkpoint of any size is one row and a proof only
-- reads leaf hashes. Rows are never updated nor deleted (tlog_guard, in
-- migrations/functions/20_tlog_guard.sql).
--
-- tlog_heads holds one row per tenant: the size and the frontier (the roots of the
-- perfect subtrees of the tree so far, left to right: one per set bit of size). tlog_append
-- locks it FOR UPDATE, which serialises appends per tenant across brokers.
CREATE TABLE tlog_heads (
    tenant_id text PRIMARY KEY,
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    frontier bytea[] NOT NULL DEFAULT '{}'
);

CREATE TABLE tlog_entries (
    tenant_id text NOT NULL,
    idx bigint NOT NULL CHECK (idx >= 0),
    lineage_cid gsap_cid NOT NULL,
    cr_id text NOT NULL,
    leaf_hash bytea NOT NULL CHECK (length(leaf_hash) = 32),
    root_hash bytea NOT NULL CHECK (length(root_hash) = 32), -- MTH of entries 0..idx
    appended_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idx),
    FOREIGN KEY (tenant_id, cr_id) REFERENCES crs (tenant_id, cr_id)
);
CREATE UNIQUE INDEX tlog_entries_one_per_cr ON tlog_entries (tenant_id, cr_id);
CREATE INDEX tlog_entries_by_cid ON tlog_entries (tenant_id, lineage_cid);

-- Signed checkpoints (C2SP tlog-checkpoint notes), at most one per tree size.
CREATE TABLE tlog_checkpoints (
    tenant_id text NOT NULL,
    size bigint NOT NULL CHECK (size > 0),
    root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
    note text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, size)
);

-- Each invoice line records the index of its CR's entry in the tenant's log (fn_billing sets
-- it when it writes the line, bill_finalize_begin for lines written before this migration).
-- NULL only for such older lines until their invoice is finalized.
ALTER TABLE invoice_lines ADD COLUMN log_index bigint CHECK (log_index >= 0);
