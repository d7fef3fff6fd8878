-- 0007_receipt_evidence: time claims are checked, unknown members are kept, and gsh's
-- self-authorized receipts are accepted (docs/protocol.md, POST /governance/complete/).
--
-- 1. Time is evidence. A CR's started_at/completed_at are the executor's claims. gsap_complete
--    checks them against the AC's stored issued_at and the database's clock (the received
--    time, now()), with a skew allowance the broker passes in (GSAP_TIME_SKEW_S): a CR that
--    starts before issued_at - skew, completes after received + skew, or completes before it
--    starts is stored as claimed, flagged time_implausible, and its effective outcome is
--    violated. Whatever the verdict, billing uses the span clamped to what the broker saw
--    (gsap_time_check): crs.billed_started_at/billed_completed_at and the same two members
--    of the GSAP_CR_RECEIVED payload. The claimed times stay in crs.started_at/completed_at
--    and in the stored CR (covered by cr_cid).
-- 2. exit_code is optional for outcomes without one (violated, timed_out, session_end): it is
--    stored as NULL then, never as a made-up 0. The handler refuses completed/failed without it.
-- 3. Self-authorized receipts: gsh runs a command without a broker when the broker cannot be
--    reached, under a client-made context id "self-<...>", and posts the receipt later. The
--    first such CR creates the context server-side (acs.self_authorized, no signature),
--    in the same transaction as the CR. Self-authorized context ids are unique across
--    tenants, so one tenant can never create (or learn more than "not found" about) another's.
-- 4. acs.unrecognized keeps the members of an authorize request the broker does not know.
--
-- The functions are in migrations/functions/ (10_gsap_time_check.sql, 20_gsap_complete.sql,
-- whose body marks this release's changes "0007"); gsap_complete gains parameters there, so
-- that file drops the 18-argument version.

ALTER TABLE crs ADD COLUMN billed_started_at timestamptz;
ALTER TABLE crs ADD COLUMN billed_completed_at timestamptz;
ALTER TABLE crs ALTER COLUMN exit_code DROP NOT NULL;

ALTER TABLE acs ADD COLUMN self_authorized boolean NOT NULL DEFAULT false;
ALTER TABLE acs ADD COLUMN unrecognized jsonb;
-- Broker-issued ids are "ctx_" + 32 hex; self-authorized ones "self-" + 1..59 characters.
ALTER TABLE acs DROP CONSTRAINT acs_context_id_check;
ALTER TABLE acs ADD CONSTRAINT acs_context_id_check
    CHECK (context_id ~ '^ctx_[0-9a-f]{32}$'
           OR (self_authorized AND context_id ~ '^self-[A-Za-z0-9][A-Za-z0-9._-]{0,58}$'));
CREATE UNIQUE INDEX acs_self_context ON acs (context_id) WHERE self_authorized;
