-- Problems with kpi_summary, one row each (none when consistent). Decimal comparisons are
-- exact; the check that runs this blocks the dashboard refresh.
WITH k AS (SELECT * FROM kpi_summary),
-- The rows the current uploads gave the tables. Without any (nothing landed yet, or every
-- key retracted with a header-only file), KPIs of zero are the truth, and are shown.
accepted AS (
    SELECT COALESCE(SUM(rows_accepted), 0) AS n FROM ({{ingest_log_current}}) AS log
    WHERE is_current
),
views AS (
    SELECT COALESCE(SUM(event_count), 0) AS n FROM event_counts_by_type WHERE event_type = 'VIEW'
),
gross AS (SELECT COALESCE(SUM(gross_revenue), 0) AS amount FROM daily_sales),
problems AS (
    SELECT 'kpi_summary has ' || CAST((SELECT COUNT(*) FROM k) AS VARCHAR) || ' rows' AS problem
    WHERE (SELECT COUNT(*) FROM k) <> 1
    UNION ALL
    -- Every accepted event has a user and every accepted sales line an order or a return:
    -- KPIs without any, while the current uploads hold rows, come from a broken refresh.
    SELECT 'no users, no orders and no returns, but the current uploads hold '
        || CAST(accepted.n AS VARCHAR) || ' accepted rows' FROM k, accepted
    WHERE total_users = 0 AND orders = 0 AND returns_value = 0 AND accepted.n > 0
    UNION ALL
    SELECT 'conversion_rate is not total_purchases / total_views' FROM k
    WHERE (total_views = 0 AND conversion_rate IS NOT NULL)
        OR (total_views > 0
            AND abs(conversion_rate - CAST(total_purchases AS DOUBLE) / total_views) > 1e-12)
    UNION ALL
    SELECT 'net_revenue is not gross_revenue - returns_value' FROM k
    WHERE net_revenue <> gross_revenue - returns_value
    UNION ALL
    SELECT 'average_order_value is not gross_revenue / orders' FROM k
    WHERE (orders = 0 AND average_order_value IS NOT NULL)
        OR (orders > 0 AND abs(average_order_value - gross_revenue / orders) > 0.0001)
    UNION ALL
    SELECT 'total_views differs from event_counts_by_type' FROM k, views
    WHERE k.total_views <> views.n
    UNION ALL
    SELECT 'gross_revenue differs from the sum of daily_sales' FROM k, gross
    WHERE k.gross_revenue <> gross.amount
)
SELECT problem FROM problems
