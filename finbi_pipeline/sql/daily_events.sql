-- Events and distinct users per UTC day and event type.
-- Distinct users are counted in two GROUP BY steps, not COUNT(DISTINCT): the per-user step
-- spills to disk under the engine's memory limit, a grouped COUNT(DISTINCT) does not (it ran
-- out of DuckDB's 1 GB at 100M interactions). COUNT(user_id) skips NULL like DISTINCT does.
WITH per_user AS (
    SELECT event_date, event_type, user_id, COUNT(*) AS events
    FROM interactions
    GROUP BY event_date, event_type, user_id
)
SELECT
    event_date,
    event_type,
    CAST(SUM(events) AS BIGINT) AS event_count,
    COUNT(user_id) AS unique_users
FROM per_user
GROUP BY event_date, event_type
