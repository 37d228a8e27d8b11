-- Revenue per UTC day. gross sums amount over lines with quantity > 0; returns sums -amount
-- over lines with quantity < 0; orders count distinct order_id having a quantity > 0 line.
WITH per_day AS (
    SELECT
        sale_date,
        COUNT(DISTINCT CASE WHEN quantity > 0 THEN order_id END) AS orders,
        CAST(COALESCE(SUM(CASE WHEN quantity > 0 THEN quantity END), 0) AS BIGINT) AS units,
        COALESCE(SUM(CASE WHEN quantity > 0 THEN amount END), CAST(0 AS DECIMAL(18, 4)))
            AS gross_revenue,
        COALESCE(SUM(CASE WHEN quantity < 0 THEN -amount END), CAST(0 AS DECIMAL(18, 4)))
            AS returns_value,
        COUNT(DISTINCT CASE WHEN quantity > 0 THEN user_id END) AS customers
    FROM sales
    GROUP BY sale_date
)
SELECT
    sale_date,
    orders,
    units,
    gross_revenue,
    returns_value,
    gross_revenue - returns_value AS net_revenue,
    CAST(gross_revenue / NULLIF(orders, 0) AS DECIMAL(38, 4)) AS average_order_value,
    customers
FROM per_day
