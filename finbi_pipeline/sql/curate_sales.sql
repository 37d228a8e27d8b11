-- The lines staged uploads add to the curated sales table: accepted, distinct within each
-- upload, and not already contributed by another object key (see curate_interactions.sql).
-- user_id may be NULL (guest checkout), so it is compared NULL-safely.
WITH accepted AS (
    SELECT DISTINCT
        s.order_id,
        s.user_id,
        s.item_id,
        s.quantity,
        s.unit_price,
        s.amount,
        s.sale_time,
        s.sale_date,
        s.country
    FROM {{staged}} AS s
    WHERE s.reject_reason IS NULL
)
SELECT
    a.order_id,
    a.user_id,
    a.item_id,
    a.quantity,
    a.unit_price,
    a.amount,
    a.sale_time,
    a.sale_date,
    a.country,
    m.source,
    m.upload_id
FROM accepted AS a
JOIN {{members}} AS m ON a.sale_date = m.sale_date
WHERE NOT EXISTS (
    SELECT 1
    FROM {{existing}} AS c
    WHERE c.order_id = a.order_id
        AND c.user_id IS NOT DISTINCT FROM a.user_id
        AND c.item_id = a.item_id
        AND c.quantity = a.quantity
        AND c.unit_price = a.unit_price
        AND c.sale_time = a.sale_time
        AND c.country IS NOT DISTINCT FROM a.country
)
