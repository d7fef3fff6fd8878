-- gsap_time_check: the verdict on a CR's claimed times and the span billing uses.
--   implausible: started before issued - skew, completed after received + skew, or completed
--                before started;
--   billed span: start clamped into [issued, received], end clamped to <= received and
--                >= the billed start. For a CR whose claims lie inside what the broker saw
--                it is the claimed span.
-- STABLE, not IMMUTABLE: timestamptz +/- interval is.
CREATE OR REPLACE FUNCTION gsap_time_check(p_issued timestamptz, p_received timestamptz,
                                p_started timestamptz, p_completed timestamptz, p_skew_s integer)
RETURNS TABLE (implausible boolean, billed_started timestamptz, billed_completed timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT p_started < p_issued - make_interval(secs => p_skew_s)
               OR p_completed > p_received + make_interval(secs => p_skew_s)
               OR p_completed < p_started,
           s.b,
           greatest(s.b, least(p_completed, p_received))
    FROM (SELECT least(greatest(p_started, p_issued), p_received) AS b) s
$$;
