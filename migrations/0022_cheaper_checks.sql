-- 0022_cheaper_checks: the formats every receipt writes, checked without bounded repetition.
--
-- PostgreSQL's regular expressions expand a bounded repetition such as [0-9a-f]{64} into
-- that many states: one CID check took ~7 us, and a receipt checks about fifteen CIDs and ids
-- (gsap_complete's parameters, the crs and acs rows, the invoice line, the log entry), about
-- a tenth of the database's CPU per receipt under load (perf, bench/latency.sh). The same
-- format as a length and an unbounded class checks in ~1 us. Each constraint accepts exactly
-- the values the one it replaces accepted (tests/it_migrate.c compares them on edge cases);
-- the names stay, and a refusal is still check_violation (23514).
ALTER DOMAIN gsap_cid DROP CONSTRAINT gsap_cid_check;
ALTER DOMAIN gsap_cid ADD CONSTRAINT gsap_cid_check
    CHECK (length(VALUE) = 71 AND VALUE ~ '^sha256:[0-9a-f]*$');

ALTER TABLE crs DROP CONSTRAINT crs_cr_id_check,
    ADD CONSTRAINT crs_cr_id_check CHECK (length(cr_id) = 35 AND cr_id ~ '^cr_[0-9a-f]*$');

-- "self-" and 1 to 59 more characters, the first alphanumeric (0007)
ALTER TABLE acs DROP CONSTRAINT acs_context_id_check,
    ADD CONSTRAINT acs_context_id_check
    CHECK ((length(context_id) = 36 AND context_id ~ '^ctx_[0-9a-f]*$')
           OR (self_authorized AND length(context_id) BETWEEN 6 AND 64
               AND context_id ~ '^self-[A-Za-z0-9][A-Za-z0-9._-]*$'));
