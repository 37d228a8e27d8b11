-- The rows staged uploads add to the curated interactions table: accepted, distinct within
-- each upload, and not already contributed by another object key (rows identical in every
-- canonical column count once, within and across uploads). The existing relation is the
-- curated table restricted to the dates the uploads touch; source, upload_id and the key
-- prefix are expressions over the staged record (one statement may merge several uploads).
SELECT DISTINCT
    s.user_id,
    s.item_id,
    s.event_type,
    s.event_time,
    s.event_date,
    {{source}} AS source,
    {{upload_id}} AS upload_id
FROM {{staged}} AS s
WHERE s.reject_reason IS NULL
    AND NOT EXISTS (
        SELECT 1
        FROM {{existing}} AS c
        WHERE c.user_id = s.user_id
            AND c.item_id = s.item_id
            AND c.event_type = s.event_type
            AND c.event_time = s.event_time
            AND NOT starts_with(c.upload_id, {{key_prefix}})
    )
