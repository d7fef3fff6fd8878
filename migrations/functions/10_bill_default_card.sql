-- Every tenant has the account "default" from its creation: USD, 0.10 per CR whatever its
-- outcome, 0.01 per started second, no multipliers, no surcharge. The C side validates the
-- same card (bill_ratecard_parse) when it rates with it.
CREATE OR REPLACE FUNCTION bill_default_card() RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"per_cr": {"completed": 10, "failed": 10, "violated": 10, "timed_out": 10,
                        "session_end": 10},
             "per_second": 1, "shell_class_multipliers": {}, "capability_multipliers": {},
             "flagged_surcharge": 0}'::jsonb
$$;
