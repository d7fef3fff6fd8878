-- 0008_approvals: an AC that was never approved is never usable; separation of duties and
-- N-of-M approvals for elevations; invoices that can never overflow.
--
-- 1. gsap_complete refuses a CR on an AC whose elevation was never approved (pending, or
--    pending until the expiry job moved it to expired) or that was revoked, whatever its
--    status is now, and records the attempt as a GSAP_CR_REFUSED event in the same
--    transaction. It returns a code instead of raising, so the event commits while no CR
--    row, no lineage link and no GSAP_CR_RECEIVED (hence no invoice line) is written.
-- 2. ac_approvals records every approver's decision; gsap_approve (replacing gsap_elevate)
--    refuses self-approval and duplicate decisions under the AC's row lock and authorizes
--    the AC only when approvals_required distinct approvers approved. One refusal refuses.
-- 3. bill_add_line rolls an invoice whose total would pass BILL_INVOICE_TOTAL_MAX over to
--    a continuation invoice of the same period, so an invoice total cannot overflow bigint
--    and billing never fails on arithmetic (billing/bill_rate.h bounds every line).

-- The functions are in migrations/functions/ (10_gsap_cr_refusal.sql, 20_gsap_complete.sql,
-- 20_gsap_approve.sql, 20_bill_add_line.sql; the lines this release changed are marked
-- "0008" there).

-- ---- 2. approvals ----

-- One row per approver decision on an elevation. The key is what the broker authenticated;
-- approver_did is that key's principal. Both are unique per context: nobody decides twice.
CREATE TABLE ac_approvals (
    tenant_id text NOT NULL,
    context_id text NOT NULL,
    approver_key_id text NOT NULL,
    approver_did text NOT NULL CHECK (length(approver_did) <= 256),
    decision text NOT NULL CHECK (decision IN ('approve', 'refuse')),
    reason text CHECK (length(reason) <= 256),
    decided_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, context_id, approver_key_id),
    UNIQUE (tenant_id, context_id, approver_did),
    FOREIGN KEY (tenant_id, context_id) REFERENCES acs
);

DROP FUNCTION gsap_elevate(text, text, boolean, jsonb, jsonb, gsap_cid, timestamptz, timestamptz);

-- ---- 3. invoices that cannot overflow ----

-- A full invoice (its total would pass BILL_INVOICE_TOTAL_MAX) is frozen for finalizing
-- and marked rolled_over; its period continues on a new open invoice. rolled_over keeps
-- lines of that period from being marked late: the period was not closed, only split.
ALTER TABLE invoices ADD COLUMN rolled_over boolean NOT NULL DEFAULT false;

-- The session page lists the refused CR attempts of its context (handlers/hnd_session.c).
CREATE INDEX events_cr_refused ON events (tenant_id, context_id, event_id)
    WHERE type = 'GSAP_CR_REFUSED';
