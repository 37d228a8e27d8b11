-- The rows staged uploads add to the curated interactions table: accepted, distinct within
-- each upload, and not already contributed by another object key (rows identical in every
-- canonical column count once, within and across uploads). The existing relation is the
-- curated files on the dates the uploads touch, less those of the uploads' own keys (what an
-- older version of a key contributed is replaced, not duplicated). One statement may merge
-- several uploads, on days no two of them share: the members relation says which upload
-- each day belongs to (its source and upload_id), and a record's day says its upload.
WITH accepted AS (
    -- Distinct over the record's values only (a duplicate shares its day, so its upload):
    -- with the long upload_id in the key this DISTINCT took 2.4x as long, and with an
    -- upload number it ran out of memory at 100M records.
    SELECT DISTINCT
        s.user_id,
        s.item_id,
        s.event_type,
        s.event_time,
        s.event_date
    FROM {{staged}} AS s
    WHERE s.reject_reason IS NULL
)
SELECT
    a.user_id,
    a.item_id,
    a.event_type,
    a.event_time,
    a.event_date,
    m.source,
    m.upload_id
FROM accepted AS a
JOIN {{members}} AS m ON a.event_date = m.event_date
WHERE NOT EXISTS (
    SELECT 1
    FROM {{existing}} AS c
    WHERE c.user_id = a.user_id
        AND c.item_id = a.item_id
        AND c.event_type = a.event_type
        AND c.event_time = a.event_time
)
