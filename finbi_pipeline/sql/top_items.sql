-- Per item: views and purchases from interactions, units sold and net revenue from sales.
WITH events AS (
    SELECT
        item_id,
        COUNT(CASE WHEN event_type = 'VIEW' THEN 1 END) AS views,
        COUNT(CASE WHEN event_type = 'PURCHASE' THEN 1 END) AS purchases
    FROM interactions
    GROUP BY item_id
),
lines AS (
    SELECT
        item_id,
        CAST(SUM(CASE WHEN quantity > 0 THEN quantity ELSE 0 END) AS BIGINT) AS units_sold,
        SUM(amount) AS net_revenue
    FROM sales
    GROUP BY item_id
)
SELECT
    COALESCE(events.item_id, lines.item_id) AS item_id,
    COALESCE(events.views, 0) AS views,
    COALESCE(events.purchases, 0) AS purchases,
    COALESCE(lines.units_sold, 0) AS units_sold,
    COALESCE(lines.net_revenue, CAST(0 AS DECIMAL(18, 4))) AS net_revenue
FROM events
FULL OUTER JOIN lines ON events.item_id = lines.item_id
