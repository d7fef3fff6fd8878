-- 0019_retry_by_cr_cid: the identical-retry lookup of gsap_complete by (tenant, cr_cid).
--
-- 0016 indexed (tenant_id, context_id, cr_cid, sequence) for the lookup
--     WHERE tenant_id = $1 AND context_id = $2 AND cr_cid = $3
-- but PL/pgSQL plans it once, generically, and a generic plan estimates one row per context
-- (most contexts hold one receipt): the primary key (tenant_id, context_id, sequence) looks
-- just as cheap, wins, and filters every receipt of a long session row by row, so a session's
-- receipts still cost more the longer it grew (bench/session_rate.sh: 582 CR/s for the first
-- 1,000, 96 for the 10th). A CR's cr_cid covers its context_id, so (tenant_id, cr_cid) finds
-- it without naming the context, and no other index can serve that predicate: the plan is an
-- index probe whatever the statistics say. gsap_complete checks the context of what it finds.
CREATE INDEX crs_tenant_cr_cid ON crs (tenant_id, cr_cid);
DROP INDEX crs_by_cr_cid;
