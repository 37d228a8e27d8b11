-- Events and distinct users per UTC day and event type.
SELECT
    event_date,
    event_type,
    COUNT(*) AS event_count,
    COUNT(DISTINCT user_id) AS unique_users
FROM interactions
GROUP BY event_date, event_type
