-- Funnel counts per user; conversion_rate = purchases / views, NULL without views.
SELECT
    user_id,
    CAST(COUNT_IF(event_type = 'VIEW') AS BIGINT) AS views,
    CAST(COUNT_IF(event_type = 'ADD_TO_CART') AS BIGINT) AS add_to_carts,
    CAST(COUNT_IF(event_type = 'PURCHASE') AS BIGINT) AS purchases,
    CAST(CAST(COUNT_IF(event_type = 'PURCHASE') AS BIGINT) AS DOUBLE)
        / NULLIF(CAST(COUNT_IF(event_type = 'VIEW') AS BIGINT), 0) AS conversion_rate,
    MIN(event_time) AS first_event_time,
    MAX(event_time) AS last_event_time
FROM interactions
GROUP BY user_id
