-- What new interactions add to daily_events, merged into it by (event_date, event_type):
-- their events, and the users with no stored event on that day and type. Distinct users
-- then add up without counting the stored days again (the local incremental refresh).
-- {{new_rows}}: the new uploads' interactions; {{stored_rows}}: the other interactions of
-- the days they fall on.
WITH new_users AS (
    SELECT event_date, event_type, user_id, COUNT(*) AS events
    FROM ({{new_rows}}) AS new_rows
    GROUP BY event_date, event_type, user_id
),
seen AS (
    SELECT event_date, event_type, user_id
    FROM new_users AS n
    WHERE EXISTS (
        SELECT 1
        FROM ({{stored_rows}}) AS s
        WHERE s.event_date = n.event_date
            AND s.event_type = n.event_type
            AND s.user_id = n.user_id
    )
)
SELECT
    n.event_date,
    n.event_type,
    CAST(SUM(n.events) AS BIGINT) AS event_count,
    COUNT(CASE WHEN seen.user_id IS NULL THEN n.user_id END) AS unique_users
FROM new_users AS n
LEFT JOIN seen
    ON seen.event_date = n.event_date
    AND seen.event_type = n.event_type
    AND seen.user_id = n.user_id
GROUP BY n.event_date, n.event_type
