-- The rows one staged upload adds to the curated interactions table: accepted, distinct
-- within the upload, and not already contributed by another object key (rows identical in
-- every canonical column count once, within and across uploads). {{existing}} is the
-- curated table restricted to the dates the upload touches.
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
