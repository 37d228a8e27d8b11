-- The ingest log, each upload marked `is_current` when it is its object key's latest: the one
-- whose rows the tables hold (a re-uploaded key replaces what its older versions gave).
-- Uploads of one run share ingested_at and merge in upload_id order.
SELECT
    *,
    row_number() OVER (
        PARTITION BY object_key ORDER BY ingested_at DESC, upload_id DESC
    ) = 1 AS is_current
FROM {{ingest_log}}
