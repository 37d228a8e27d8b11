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
    -- gross / orders rounded down to 4 places: rounded to cents, it then shows the cents of
    -- the exact quotient (as the dashboard's exact division does), which rounding half up
    -- twice does not (1.004966 -> 1.0050 -> 1.01). In whole ten-thousandths: BIGINT
    -- division truncates on Athena; on DuckDB it is a DOUBLE, exact below 2^53 (gross
    -- under 900 billion). DECIMAL / BIGINT would be a DOUBLE on DuckDB too.
    CAST(
        CAST(floor(CAST(gross_revenue * 10000 AS BIGINT) / NULLIF(orders, 0)) AS DECIMAL(38, 0))
            * 0.0001
        AS DECIMAL(38, 4)
    ) AS average_order_value,
    customers
FROM per_day
