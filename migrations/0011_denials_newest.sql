-- 0011_denials_newest: auditors page through a tenant's denial receipts newest first
-- (GET /governance/denials/, handlers/hnd_denials.c), keyset on (created_at, denial_id);
-- this index makes each page one range scan however many denials the tenant has.

CREATE INDEX denials_newest ON denials (tenant_id, created_at DESC, denial_id DESC);
