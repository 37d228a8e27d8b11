-- Funnel counts per user; conversion_rate = purchases / views, NULL without views.
SELECT
    user_id,
    COUNT(CASE WHEN event_type = 'VIEW' THEN 1 END) AS views,
    COUNT(CASE WHEN event_type = 'ADD_TO_CART' THEN 1 END) AS add_to_carts,
    COUNT(CASE WHEN event_type = 'PURCHASE' THEN 1 END) AS purchases,
    CAST(COUNT(CASE WHEN event_type = 'PURCHASE' THEN 1 END) AS DOUBLE)
        / NULLIF(COUNT(CASE WHEN event_type = 'VIEW' THEN 1 END), 0) AS conversion_rate,
    MIN(event_time) AS first_event_time,
    MAX(event_time) AS last_event_time
FROM interactions
GROUP BY user_id
