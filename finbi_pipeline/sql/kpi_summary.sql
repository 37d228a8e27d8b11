-- The dashboard's headline figures, one row (definitions in DESIGN.md).
-- Counts use COUNT(CASE WHEN ...) rather than count_if: DuckDB returns NULL for count_if
-- over no rows, Athena 0.
WITH funnel AS (
    -- From user_activity (one row per user; guests' events in its NULL user row) rather
    -- than every event: the same sums, and distinct users are its rows.
    SELECT
        CAST(COALESCE(SUM(views), 0) AS BIGINT) AS total_views,
        CAST(COALESCE(SUM(add_to_carts), 0) AS BIGINT) AS total_add_to_carts,
        CAST(COALESCE(SUM(purchases), 0) AS BIGINT) AS total_purchases,
        COUNT(user_id) AS total_users
    FROM user_activity
),
revenue AS (
    SELECT
        COUNT(DISTINCT CASE WHEN quantity > 0 THEN order_id END) AS orders,
        CAST(COALESCE(SUM(CASE WHEN quantity > 0 THEN quantity END), 0) AS BIGINT) AS units,
        COALESCE(SUM(CASE WHEN quantity > 0 THEN amount END), CAST(0 AS DECIMAL(18, 4)))
            AS gross_revenue,
        COALESCE(SUM(CASE WHEN quantity < 0 THEN -amount END), CAST(0 AS DECIMAL(18, 4)))
            AS returns_value
    FROM sales
)
SELECT
    funnel.total_views,
    funnel.total_add_to_carts,
    funnel.total_purchases,
    CAST(funnel.total_purchases AS DOUBLE) / NULLIF(funnel.total_views, 0) AS conversion_rate,
    funnel.total_users,
    revenue.orders,
    revenue.units,
    revenue.gross_revenue,
    revenue.returns_value,
    revenue.gross_revenue - revenue.returns_value AS net_revenue,
    -- gross / orders rounded down to 4 places, exactly (see daily_sales.sql).
    CAST(
        CAST(floor(CAST(revenue.gross_revenue * 10000 AS BIGINT) / NULLIF(revenue.orders, 0))
            AS DECIMAL(38, 0)) * 0.0001
        AS DECIMAL(38, 4)
    ) AS average_order_value,
    CAST(current_timestamp AS TIMESTAMP) AS refreshed_at
FROM funnel
CROSS JOIN revenue
