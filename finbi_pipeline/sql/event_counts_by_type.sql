-- Events per type over all curated interactions.
SELECT event_type, COUNT(*) AS event_count
FROM interactions
GROUP BY event_type
