"""A tiny hand-made warehouse in the contract's shape (DESIGN.md), for the dashboard tests.

It does not use the pipeline: the dashboard's input is the contract, not the code that
fills it. The expected figures below are worked out by hand from the rows.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from finbi_pipeline.dashboard.extract import SERVING_TABLES, build_serving_extract

DDL = """
SET TimeZone = 'UTC';
CREATE SCHEMA IF NOT EXISTS finbi;
CREATE TABLE finbi.interactions (
    user_id VARCHAR, item_id VARCHAR, event_type VARCHAR, event_time TIMESTAMP,
    event_date DATE, source VARCHAR, upload_id VARCHAR);
CREATE TABLE finbi.sales (
    order_id VARCHAR, user_id VARCHAR, item_id VARCHAR, quantity BIGINT,
    unit_price DECIMAL(18, 4), amount DECIMAL(18, 4), sale_time TIMESTAMP, sale_date DATE,
    country VARCHAR, source VARCHAR, upload_id VARCHAR);
CREATE TABLE finbi.ingest_log (
    upload_id VARCHAR, source VARCHAR, kind VARCHAR, object_key VARCHAR,
    object_version VARCHAR, rows_read BIGINT, rows_accepted BIGINT, rows_duplicate BIGINT,
    rows_quarantined BIGINT, status VARCHAR, message VARCHAR, ingested_at TIMESTAMP);
CREATE TABLE finbi.quarantine (
    upload_id VARCHAR, source VARCHAR, object_key VARCHAR, line_number BIGINT,
    column_name VARCHAR, reason VARCHAR, raw_record VARCHAR);
"""

# (user_id, item_id, event_type, "YYYY-MM-DD HH:MM", source)
EVENTS = [
    ("u1", "i1", "VIEW", "2024-03-01 09:00", "web"),
    ("u1", "i2", "VIEW", "2024-03-01 09:05", "web"),
    ("u2", "i1", "VIEW", "2024-03-01 10:00", "app"),
    ("u1", "i1", "ADD_TO_CART", "2024-03-01 09:10", "web"),
    ("u1", "i1", "PURCHASE", "2024-03-02 08:00", "web"),
    ("u2", "i3", "VIEW", "2024-03-02 11:00", "app"),
    ("u3", "i1", "VIEW", "2024-03-02 12:00", "web"),
    ("u3", "i1", "FAVORITE", "2024-03-02 12:01", "web"),
    ("u2", "i3", "ADD_TO_CART", "2024-03-03 07:00", "app"),
    ("u2", "i3", "PURCHASE", "2024-03-03 07:05", "app"),
    ("o'brien", "i2", "VIEW", "2024-03-03 15:00", "web"),
    ("u3", "i2", "VIEW", "2024-03-04 16:00", "web"),
    ("u3", "i2", "VIEW", "2024-03-04 16:30", "web"),
    ("u1", "i3", "VIEW", "2024-03-05 18:00", "app"),
]

# (order_id, user_id, item_id, quantity, unit_price, "YYYY-MM-DD HH:MM", country, source)
SALES = [
    ("o1", "u1", "i1", 2, "10.00", "2024-03-02 08:00", "UK", "shop"),
    ("o1", "u1", "i2", 1, "5.50", "2024-03-02 08:00", "UK", "shop"),
    ("o2", "u2", "i3", 1, "100.00", "2024-03-03 07:05", "FR", "shop"),
    ("o3", None, "i1", 3, "10.00", "2024-03-04 12:00", "UK", "shop"),  # guest checkout
    ("c1", "u1", "i1", -1, "10.00", "2024-03-05 09:00", "UK", "shop"),  # a return
    ("o4", "u3", "i2", 4, "2.25", "2024-03-05 10:00", "DE", "pos"),
]

INGEST_LOG = [
    ("up-1", "interactions", "interactions", "raw/interactions/a.csv", "v1",
     16, 14, 1, 1, "ok", "", "2024-03-06 00:00"),
    ("up-2", "sales", "sales", "raw/sales/b.csv", "v1", 7, 6, 0, 1, "ok", "", "2024-03-06 00:01"),
]  # fmt: skip

QUARANTINE = [
    ("up-1", "interactions", "raw/interactions/a.csv", 9, "event_type",
     "event type not allowed", "u9,i9,CLICK,1709251200"),
    ("up-2", "sales", "raw/sales/b.csv", 4, "quantity",
     "quantity must be a non-zero integer", "o9,u9,i9,0,1.00,2024-03-02 08:00,UK"),
]  # fmt: skip

FIRST_DAY, LAST_DAY = date(2024, 3, 1), date(2024, 3, 5)

# Hand-computed over all rows (see EVENTS and SALES).
EXPECTED_KPIS = {
    "views": 9,
    "add_to_carts": 2,
    "purchases": 2,
    "conversion_rate": 2 / 9,
    "orders": 4,  # o1, o2, o3, o4; c1 has no positive line
    "units": 11,  # 2 + 1 + 1 + 3 + 4
    "gross_revenue": Decimal("164.50"),  # 20 + 5.50 + 100 + 30 + 9
    "returns_value": Decimal("10.00"),
    "net_revenue": Decimal("154.50"),
    "average_order_value": Decimal("41.125"),  # 164.50 / 4
}


# The DESIGN.md definitions, written straight over the contract tables, the way the
# pipeline's kpi_summary computes them.
KPI_SUMMARY_SQL = """
WITH e AS (
    SELECT count(*) FILTER (WHERE event_type = 'VIEW') AS total_views,
           count(*) FILTER (WHERE event_type = 'ADD_TO_CART') AS total_add_to_carts,
           count(*) FILTER (WHERE event_type = 'PURCHASE') AS total_purchases
    FROM finbi.interactions),
s AS (
    SELECT count(DISTINCT order_id) FILTER (WHERE quantity > 0) AS orders,
           sum(quantity) FILTER (WHERE quantity > 0) AS units,
           coalesce(sum(amount) FILTER (WHERE quantity > 0), 0) AS gross_revenue,
           coalesce(sum(-amount) FILTER (WHERE quantity < 0), 0) AS returns_value
    FROM finbi.sales)
SELECT total_views, total_add_to_carts, total_purchases,
       total_purchases / nullif(total_views, 0) AS conversion_rate,
       orders, units, gross_revenue, returns_value,
       gross_revenue - returns_value AS net_revenue,
       gross_revenue / nullif(orders, 0) AS average_order_value
FROM e, s
"""


def create_warehouse() -> duckdb.DuckDBPyConnection:
    """The fixture warehouse, open read-write as the pipeline holds it.

    In memory: the extract builder only needs a connection with schema `finbi`, and tests
    run faster without writing a warehouse file.
    """
    con = create_empty_warehouse()
    add_events(con, EVENTS)
    add_sales(con, SALES)
    con.executemany("INSERT INTO finbi.ingest_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", INGEST_LOG)
    con.executemany("INSERT INTO finbi.quarantine VALUES (?,?,?,?,?,?,?)", QUARANTINE)
    return con


def add_events(con: duckdb.DuckDBPyConnection, events) -> str:
    """Add `events` as a new upload, as the pipeline would; return its upload_id."""
    upload_id = f"raw/interactions/{uuid.uuid4().hex}.csv@v1"
    con.executemany(
        "INSERT INTO finbi.interactions VALUES (?, ?, ?, ?::TIMESTAMP, ?::DATE, ?, ?)",
        [(u, i, t, when, when[:10], s, upload_id) for u, i, t, when, s in events],
    )
    return upload_id


def add_sales(con: duckdb.DuckDBPyConnection, lines) -> str:
    """Add sales `lines` (shaped like SALES) as a new upload; return its upload_id."""
    upload_id = f"raw/sales/{uuid.uuid4().hex}.csv@v1"
    con.executemany(
        "INSERT INTO finbi.sales VALUES "
        "(?, ?, ?, ?, ?::DECIMAL(18, 4), ?::DECIMAL(18, 4) * ?, ?::TIMESTAMP, ?::DATE, ?, ?, ?)",
        [
            (o, u, i, q, price, price, q, when, when[:10], country, source, upload_id)
            for o, u, i, q, price, when, country, source in lines
        ],
    )
    return upload_id


def refresh(con: duckdb.DuckDBPyConnection, home: Path) -> dict:
    """What the pipeline's dashboard-refresh asset does."""
    return build_serving_extract(con, home / "dashboard")


def create_empty_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(DDL)
    return con


def extract_tables(path) -> dict[str, list]:
    """Every serving table's rows, sorted; extract_info without its build bookkeeping."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {}
        for table in SERVING_TABLES:
            columns = "* EXCLUDE (refreshed_at, build_mode, full_build_at, rows_since_full_build)"
            select = columns if table.name == "extract_info" else "*"
            tables[table.name] = con.execute(
                f"SELECT {select} FROM {table.name} ORDER BY ALL"
            ).fetchall()
        return tables
    finally:
        con.close()
