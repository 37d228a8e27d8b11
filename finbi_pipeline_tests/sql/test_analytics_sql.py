"""The analytics SQL files, run on DuckDB over tiny tables with hand-computed answers."""

import datetime as dt
from decimal import Decimal

import duckdb
import pytest
import sqlglot

from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.sql_templates import (
    ANALYTICS_TABLES,
    SQL_DIR,
    kpi_consistency_sql,
    sql_file,
    to_duckdb,
)
from finbi_pipeline_tests._catalog_tables import create_catalog_tables

T = dt.datetime(2025, 4, 10, 12, 0)
DAY1, DAY2 = dt.date(2025, 4, 10), dt.date(2025, 4, 11)

EVENTS = [
    # user, item, type, time
    ("u1", "i1", "VIEW", T),
    ("u1", "i1", "VIEW", T + dt.timedelta(minutes=1)),
    ("u1", "i1", "ADD_TO_CART", T + dt.timedelta(minutes=2)),
    ("u1", "i1", "PURCHASE", T + dt.timedelta(minutes=3)),
    ("u2", "i2", "VIEW", T + dt.timedelta(days=1)),
    ("u3", "i2", "ADD_TO_CART", T + dt.timedelta(days=1)),  # u3 never viewed
    ("u3", "i1", "FAVORITE", T + dt.timedelta(days=1)),
]
LINES = [
    # order, user, item, quantity, unit price, time
    ("O1", "u1", "i1", 2, "10.00", T),
    ("O1", "u1", "i2", 1, "5.50", T),
    ("O2", None, "i2", 3, "5.50", T + dt.timedelta(days=1)),  # guest checkout
    ("CO1", "u1", "i1", -1, "10.00", T + dt.timedelta(days=1)),  # a return
]


@pytest.fixture
def warehouse(finbi_home):
    engine = DuckDBEngine(home=str(finbi_home))
    with engine.connect() as con:
        create_catalog_tables(con)
        con.executemany(
            "INSERT INTO interactions VALUES (?, ?, ?, ?, CAST(? AS DATE), 's', 'u')",
            [(*e, e[3]) for e in EVENTS],
        )
        con.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(18,4)),"
            " ? * CAST(? AS DECIMAL(18,4)), ?, CAST(? AS DATE), 'UK', 's', 'u')",
            [(o, u, i, q, p, q, p, t, t) for o, u, i, q, p, t in LINES],
        )
    return engine


def rows(engine: DuckDBEngine, table: str) -> list[tuple]:
    with engine.connect() as con:
        return con.execute(to_duckdb(sql_file(table)) + " ORDER BY 1, 2").fetchall()


def test_event_counts_by_type(warehouse):
    assert rows(warehouse, "event_counts_by_type") == [
        ("ADD_TO_CART", 2),
        ("FAVORITE", 1),
        ("PURCHASE", 1),
        ("VIEW", 3),
    ]


def test_daily_events_counts_events_and_distinct_users(warehouse):
    assert rows(warehouse, "daily_events") == [
        (DAY1, "ADD_TO_CART", 1, 1),
        (DAY1, "PURCHASE", 1, 1),
        (DAY1, "VIEW", 2, 1),
        (DAY2, "ADD_TO_CART", 1, 1),
        (DAY2, "FAVORITE", 1, 1),
        (DAY2, "VIEW", 1, 1),
    ]


def test_user_activity_conversion_is_null_without_views(warehouse):
    by_user = {r[0]: r for r in rows(warehouse, "user_activity")}
    assert by_user["u1"][1:5] == (2, 1, 1, 0.5)
    assert by_user["u2"][1:5] == (1, 0, 0, 0.0)
    assert by_user["u3"][1:5] == (0, 1, 0, None)
    assert by_user["u1"][5:] == (T, T + dt.timedelta(minutes=3))


def test_daily_sales_separates_gross_returns_and_guest_orders(warehouse):
    assert rows(warehouse, "daily_sales") == [
        # day, orders, units, gross, returns, net, AOV, customers
        (DAY1, 1, 3, Decimal("25.5000"), Decimal("0"), Decimal("25.5000"), Decimal("25.5000"), 1),
        # O2 is a guest order: counted as an order, not as a customer; CO1 is a return.
        (DAY2, 1, 3, Decimal("16.5000"), Decimal("10"), Decimal("6.5000"), Decimal("16.5000"), 0),
    ]


def test_top_items_joins_events_and_net_revenue(warehouse):
    assert rows(warehouse, "top_items") == [
        # item, views, purchases, units sold, net revenue (returns subtracted)
        ("i1", 2, 1, 2, Decimal("10.0000")),
        ("i2", 1, 0, 4, Decimal("22.0000")),
    ]


def test_kpi_summary_follows_the_design_definitions(warehouse):
    warehouse.create_table("user_activity", sql_file("user_activity"))  # kpi_summary reads it
    (row,) = rows(warehouse, "kpi_summary")
    assert row[:11] == (
        3,  # views
        2,  # add to carts
        1,  # purchases
        pytest.approx(1 / 3),
        3,  # users
        2,  # orders: O1, O2 (CO1 has only a negative line)
        6,  # units
        Decimal("42.0000"),  # gross: 20 + 5.5 + 16.5
        Decimal("10.0000"),  # returns
        Decimal("32.0000"),  # net
        Decimal("21.0000"),  # AOV: 42 / 2
    )


def test_an_average_order_past_decimal_18_4_is_exact(warehouse):
    # Two lines that each fit DECIMAL(18, 4) make one order worth 1.2 * 10^14.
    big = "60000000000000.00"
    with warehouse.connect() as con:
        con.execute("DELETE FROM sales")
        con.executemany(
            "INSERT INTO sales VALUES ('B1', 'u1', ?, 1, CAST(? AS DECIMAL(18,4)),"
            " CAST(? AS DECIMAL(18,4)), ?, CAST(? AS DATE), 'ID', 's', 'u')",
            [(item, big, big, T, T) for item in ("i1", "i2")],
        )
    warehouse.create_table("user_activity", sql_file("user_activity"))
    (kpis,) = rows(warehouse, "kpi_summary")
    (day,) = rows(warehouse, "daily_sales")
    assert kpis[10] == day[6] == Decimal("120000000000000")


def test_kpi_summary_on_empty_tables_has_zero_counts(finbi_home):
    engine = DuckDBEngine(home=str(finbi_home))
    with engine.connect() as con:
        con.execute(
            "CREATE TABLE interactions (user_id VARCHAR, item_id VARCHAR,"
            " event_type VARCHAR, event_time TIMESTAMP)"
        )
        con.execute(
            "CREATE TABLE sales (order_id VARCHAR, user_id VARCHAR, item_id VARCHAR,"
            " quantity BIGINT, amount DECIMAL(18,4))"
        )
    engine.create_table("user_activity", sql_file("user_activity"))
    (row,) = rows(engine, "kpi_summary")
    assert row[:11] == (0, 0, 0, None, 0, 0, 0, Decimal(0), Decimal(0), Decimal(0), None)


def _ingest_log(con, *uploads: tuple[str, int]) -> None:
    """The catalog's ingest log, one (object key, rows accepted) upload each."""
    con.execute(
        "CREATE OR REPLACE TABLE ingest_log (upload_id VARCHAR, object_key VARCHAR,"
        " rows_accepted BIGINT, ingested_at TIMESTAMP)"
    )
    if not uploads:
        return
    con.executemany(
        "INSERT INTO ingest_log VALUES (?, ?, ?, ?)",
        [
            (f"{key}@{n}", key, rows, T + dt.timedelta(minutes=n))
            for n, (key, rows) in enumerate(uploads)
        ],
    )


def test_kpi_consistency_sql_finds_a_tampered_kpi(warehouse):
    for table in ("event_counts_by_type", "user_activity", "daily_sales", "kpi_summary"):
        warehouse.create_table(table, sql_file(table))
    check = to_duckdb(kpi_consistency_sql())
    with warehouse.connect() as con:
        _ingest_log(con, ("raw/i/a.csv", 7), ("raw/s/b.csv", 4))
        assert con.execute(check).fetchall() == []
        con.execute("UPDATE kpi_summary SET net_revenue = net_revenue + 1")
        assert con.execute(check).fetchall() == [
            ("net_revenue is not gross_revenue - returns_value",)
        ]


def test_empty_kpis_fail_the_check_only_while_the_current_uploads_hold_rows(warehouse):
    with warehouse.connect() as con:
        con.execute("DELETE FROM interactions")
        con.execute("DELETE FROM sales")
    for table in ("event_counts_by_type", "user_activity", "daily_sales", "kpi_summary"):
        warehouse.create_table(table, sql_file(table))
    check = to_duckdb(kpi_consistency_sql())
    with warehouse.connect() as con:
        _ingest_log(con, ("raw/i/a.csv", 7))  # rows the tables lost: a broken refresh
        assert con.execute(check).fetchall() == [
            ("no users, no orders and no returns, but the current uploads hold 7 accepted rows",)
        ]
        # The key retracted with a header-only file: nothing to show is the truth.
        _ingest_log(con, ("raw/i/a.csv", 7), ("raw/i/a.csv", 0))
        assert con.execute(check).fetchall() == []
        _ingest_log(con)  # nothing landed yet
        assert con.execute(check).fetchall() == []


def test_kpis_of_favorites_only_or_returns_only_pass_the_check(warehouse):
    # Neither counts in views, carts, purchases or orders, yet both are data to show.
    with warehouse.connect() as con:
        con.execute("DELETE FROM interactions WHERE event_type <> 'FAVORITE'")
        con.execute("DELETE FROM sales WHERE quantity > 0")
        _ingest_log(con, ("raw/i/a.csv", 1), ("raw/s/b.csv", 1))
    for table in ("event_counts_by_type", "user_activity", "daily_sales", "kpi_summary"):
        warehouse.create_table(table, sql_file(table))
    with warehouse.connect() as con:
        assert con.execute(to_duckdb(kpi_consistency_sql())).fetchall() == []


@pytest.mark.parametrize("name", [*ANALYTICS_TABLES, "kpi_summary_consistency"])
def test_analytics_sql_parses_as_athena(name):
    assert (SQL_DIR / f"{name}.sql").exists()
    text = kpi_consistency_sql() if name == "kpi_summary_consistency" else sql_file(name)
    parsed = sqlglot.parse_one(text, read="athena")
    assert parsed.find(sqlglot.exp.Select) is not None


def test_duckdb_timezone_is_utc(finbi_home):
    with DuckDBEngine(home=str(finbi_home)).connect() as con:
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    assert duckdb.__version__.startswith("1.")
