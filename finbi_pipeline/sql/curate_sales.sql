-- The lines staged uploads add to the curated sales table: accepted, distinct within each
-- upload, and not already contributed by another object key (see curate_interactions.sql).
-- user_id may be NULL (guest checkout), so it is compared NULL-safely.
SELECT DISTINCT
    s.order_id,
    s.user_id,
    s.item_id,
    s.quantity,
    s.unit_price,
    s.amount,
    s.sale_time,
    s.sale_date,
    s.country,
    {{source}} AS source,
    {{upload_id}} AS upload_id
FROM {{staged}} AS s
WHERE s.reject_reason IS NULL
    AND NOT EXISTS (
        SELECT 1
        FROM {{existing}} AS c
        WHERE c.order_id = s.order_id
            AND c.user_id IS NOT DISTINCT FROM s.user_id
            AND c.item_id = s.item_id
            AND c.quantity = s.quantity
            AND c.unit_price = s.unit_price
            AND c.sale_time = s.sale_time
            AND c.country IS NOT DISTINCT FROM s.country
            AND NOT starts_with(c.upload_id, {{key_prefix}})
    )
