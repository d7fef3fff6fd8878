-- bill_jcs: the RFC 8785 canonical JSON text of a jsonb value as the rate cards use it
-- (objects, arrays, strings, integers): members sorted by key, no whitespace, strings escaped
-- as JSON requires (PostgreSQL's escaping is JCS's: \b \t \n \f \r, \" \\, other controls as
-- lowercase \u00xx, everything else literal). Keys are ordered by their UTF-8 bytes, which is
-- JCS's UTF-16 order for every key below U+E000; a rate card's keys are ASCII. Numbers are
-- written as jsonb stores them: exact for integers, which are all a card holds.
CREATE OR REPLACE FUNCTION bill_jcs(j jsonb) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(j)
        WHEN 'object' THEN '{' || coalesce((SELECT string_agg(to_json(e.k)::text || ':' ||
                                                               bill_jcs(e.v), ','
                                                               ORDER BY e.k COLLATE "C")
                                             FROM jsonb_each(j) AS e(k, v)), '') || '}'
        WHEN 'array' THEN '[' || coalesce((SELECT string_agg(bill_jcs(a.v), ',' ORDER BY a.o)
                                            FROM jsonb_array_elements(j)
                                                 WITH ORDINALITY AS a(v, o)), '') || ']'
        ELSE j::text END
$$;
