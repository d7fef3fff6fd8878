-- 0021_fn_fallback: a subscription that gets pairs only when another function's run fails.
--
-- Billing appends every CR it bills to the tenant's transparency log in its own run (each
-- line records the CR's index), so the log sequencer's own pair per CR (a fan-out row, a
-- claim, a lease, a lock and a done mark, about 0.1 ms of PostgreSQL time per CR, an eighth
-- of what a CR costs at peak) only ever found the CR logged already. With fallback_for set,
-- the fan-out skips the subscription; a pair is created instead, by gsap_fn_fallback
-- (functions/20_gsap_fn_fanout.sql), for an event whose run of the named function records an
-- error or dead-letters, in the transaction that records it. The functions say which of
-- their subscriptions are fallbacks (fn.h, fallback_for); gsap_fn_subscribe writes it.
ALTER TABLE fn_subscriptions ADD COLUMN fallback_for text
    CHECK (fallback_for IS DISTINCT FROM function);
-- replaced by gsap_fn_subscribe(text, text[], text) in functions/20_gsap_fn_subscribe.sql
DROP FUNCTION IF EXISTS gsap_fn_subscribe(text, text[]);
