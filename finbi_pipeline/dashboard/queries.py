"""Every query the dashboard runs, against the serving extract (see `extract.py`).

Filter values are always bound parameters (`$name`); the only SQL text chosen in Python is
from fixed fragments in this module (which table to read, which predicates apply).

Two paths answer each question, with identical results:
* no user chosen: the pre-aggregated tables (`events_daily`, `sales_orders`, ...);
* a user chosen: that user's rows from the tables sorted by `user_key` (see
  `USER_MATCH`).

KPI definitions follow the project's DESIGN.md: conversion_rate = purchases / views (None without
views); gross revenue sums `amount` over lines with quantity > 0; returns sum `-amount` over
lines with quantity < 0; net = gross - returns; orders = distinct order_id with a positive
line; units sum positive quantities; AOV = gross / orders. Money stays `Decimal`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd

from finbi_pipeline.dashboard.extract import USER_KEY

KPI_EVENT_TYPES = ("VIEW", "ADD_TO_CART", "PURCHASE")
# Orders among the selected `sales_orders` rows: distinct order_id with a positive line.
# Same result as count(DISTINCT order_id) FILTER (WHERE positive_lines > 0), but an order
# that has a single row in the table (nearly all) cannot be counted twice, so plain count(*)
# does for those; on 170k orders this is several times faster.
ORDERS = """(
    count(*) FILTER (WHERE positive_lines > 0 AND order_rows = 1)
    + count(DISTINCT order_id) FILTER (WHERE positive_lines > 0 AND order_rows > 1)
)"""
GRAINS = ("day", "week", "month")
# The alias the extract is attached under in a reader connection.
SERVING_ALIAS = "serving"
# The chosen user's rows in a per-user table (`user_events`, `sales_orders`, `sales_lines`).
# The key predicate is what makes it fast: it folds to a constant, and DuckDB's zone maps on
# the sorted `user_key` column skip every row group of other users. `user_events.user_id` is
# NULL unless two users share a key (extract.py), so it is compared only where stored.
USER_MATCH = (
    f"user_key = {USER_KEY.format('$user_id::VARCHAR')} AND coalesce(user_id = $user_id, true)"
)
# `user_events` with event_type and source back as VARCHAR (the extract stores them as
# ENUMs): comparisons with any string, and plain strings in the DataFrames. Only for a
# user with events: keys are unique among them, but a user with orders only, or an id typed
# in, could share one.
USER_EVENTS = f"""(
    SELECT user_key, user_id, event_time, event_date, event_type::VARCHAR AS event_type,
           item_id, source::VARCHAR AS source
    FROM user_events
    WHERE EXISTS (SELECT 1 FROM users WHERE {USER_MATCH} AND events > 0))"""


# --------------------------------------------------------------------------- connections


def extract_signature(path: Path) -> tuple[int, int, int] | None:
    """Identity of the extract file now on disk (inode, mtime_ns, size), or None if absent.

    A refresh swaps in a new file, so the inode changes: comparing signatures is how the
    app notices a new extract without reading it.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def open_extract(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the extract read-only.

    `duckdb.connect(path)` would not do: DuckDB caches database instances by path within a
    process, so after a swap it would hand back the instance of the *old* file while anyone
    still holds it. An in-memory database with the file ATTACHed always opens what the
    path names now.
    """
    connection = duckdb.connect(":memory:")
    quoted_path = str(path).replace("'", "''")  # ATTACH takes no bound parameter
    connection.execute(f"ATTACH '{quoted_path}' AS {SERVING_ALIAS} (READ_ONLY)")
    connection.execute(f"USE {SERVING_ALIAS}")
    return connection


def reader(connection: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor for one thread (one Streamlit run): DuckDB connections are not thread-safe."""
    cursor = connection.cursor()
    cursor.execute(f"USE {SERVING_ALIAS}")
    return cursor


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What the viewer selected. `None` means "no filter" (all values)."""

    start: date
    end: date  # inclusive
    event_types: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    user_id: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous_period(self) -> Filters:
        """The same number of days immediately before `start`."""
        return replace(
            self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1)
        )


class _Where:
    """Builds a WHERE clause from fixed fragments and collects their bound parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: dict[str, object] = {}

    def add(self, clause: str, **params: object) -> _Where:
        self.clauses.append(clause)
        self.params.update(params)
        return self

    @property
    def sql(self) -> str:
        return "WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def _event_relation(f: Filters, where: _Where) -> str:
    """FROM target with columns (event_date, event_type, source, item_id?, event_count)."""
    if f.user_id is None:
        return "events_daily"
    where.add(USER_MATCH, user_id=f.user_id)
    return f"(SELECT *, 1::BIGINT AS event_count FROM {USER_EVENTS})"


def _event_where(f: Filters) -> _Where:
    where = _Where().add("event_date BETWEEN $start AND $end", start=f.start, end=f.end)
    if f.event_types is not None:
        where.add("list_contains($event_types, event_type)", event_types=list(f.event_types))
    if f.sources is not None:
        where.add("list_contains($sources, source)", sources=list(f.sources))
    return where


def _sales_where(f: Filters) -> _Where:
    """Sales follow date, source and user; event types do not apply to sales lines."""
    where = _Where().add("sale_date BETWEEN $start AND $end", start=f.start, end=f.end)
    if f.sources is not None:
        where.add("list_contains($sources, source)", sources=list(f.sources))
    if f.user_id is not None:
        where.add(USER_MATCH, user_id=f.user_id)
    return where


def _one_row(cursor: duckdb.DuckDBPyConnection) -> dict | None:
    """The cursor's first row as {column: value}, or None if it has none."""
    row = cursor.fetchone()
    return None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))


def _period(column: str) -> str:
    return f"date_trunc($grain, {column})::DATE"


def _check_grain(grain: str) -> str:
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, got {grain!r}")
    return grain


# --------------------------------------------------------------------------- KPIs


@dataclass(frozen=True)
class Kpis:
    views: int
    add_to_carts: int
    purchases: int
    conversion_rate: float | None
    orders: int
    units: int
    gross_revenue: Decimal
    returns_value: Decimal
    net_revenue: Decimal
    average_order_value: Decimal | None


def kpis(con: duckdb.DuckDBPyConnection, f: Filters) -> Kpis:
    where = _event_where(f)
    relation = _event_relation(f, where)
    views, add_to_carts, purchases = con.execute(
        f"""
        SELECT
            coalesce(sum(event_count) FILTER (WHERE event_type = 'VIEW'), 0),
            coalesce(sum(event_count) FILTER (WHERE event_type = 'ADD_TO_CART'), 0),
            coalesce(sum(event_count) FILTER (WHERE event_type = 'PURCHASE'), 0)
        FROM {relation} {where.sql}
        """,
        where.params,
    ).fetchone()

    where = _sales_where(f)
    orders, units, gross, returns = con.execute(
        f"""
        SELECT
            {ORDERS},
            coalesce(sum(units), 0),
            coalesce(sum(gross_revenue), 0)::DECIMAL(38, 4),
            coalesce(sum(returns_value), 0)::DECIMAL(38, 4)
        FROM sales_orders {where.sql}
        """,
        where.params,
    ).fetchone()

    return Kpis(
        views=int(views),
        add_to_carts=int(add_to_carts),
        purchases=int(purchases),
        conversion_rate=purchases / views if views else None,
        orders=int(orders),
        units=int(units),
        gross_revenue=gross,
        returns_value=returns,
        net_revenue=gross - returns,
        average_order_value=gross / orders if orders else None,
    )


def kpi_deltas(current: Kpis, previous: Kpis) -> dict[str, int | float | Decimal | None]:
    """current - previous for every KPI; None where either side is undefined."""
    deltas: dict[str, int | float | Decimal | None] = {}
    for field in fields(Kpis):
        now, before = getattr(current, field.name), getattr(previous, field.name)
        deltas[field.name] = None if now is None or before is None else now - before
    return deltas


def funnel(k: Kpis, event_types: tuple[str, ...] | None = None) -> pd.DataFrame:
    """VIEW -> ADD_TO_CART -> PURCHASE from the KPIs; stages filtered out are left out."""
    counts = {"VIEW": k.views, "ADD_TO_CART": k.add_to_carts, "PURCHASE": k.purchases}
    stages = [s for s in KPI_EVENT_TYPES if event_types is None or s in event_types]
    return pd.DataFrame({"stage": stages, "event_count": [counts[s] for s in stages]})


# --------------------------------------------------------------------------- charts


def events_by_type(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    where = _event_where(f)
    relation = _event_relation(f, where)
    return con.execute(
        f"""
        SELECT event_type, sum(event_count)::BIGINT AS event_count
        FROM {relation} {where.sql}
        GROUP BY event_type
        ORDER BY event_count DESC, event_type
        """,
        where.params,
    ).df()


def events_over_time(con: duckdb.DuckDBPyConnection, f: Filters, grain: str) -> pd.DataFrame:
    where = _event_where(f)
    relation = _event_relation(f, where)
    return con.execute(
        f"""
        SELECT {_period("event_date")} AS period, event_type,
               sum(event_count)::BIGINT AS event_count
        FROM {relation} {where.sql}
        GROUP BY period, event_type
        ORDER BY period, event_type
        """,
        {**where.params, "grain": _check_grain(grain)},
    ).df()


def revenue_over_time(con: duckdb.DuckDBPyConnection, f: Filters, grain: str) -> pd.DataFrame:
    where = _sales_where(f)
    return con.execute(
        f"""
        SELECT {_period("sale_date")} AS period,
               sum(gross_revenue) AS gross_revenue,
               sum(returns_value) AS returns_value,
               sum(gross_revenue) - sum(returns_value) AS net_revenue
        FROM sales_orders {where.sql}
        GROUP BY period
        ORDER BY period
        """,
        {**where.params, "grain": _check_grain(grain)},
    ).df()


def top_items_by_revenue(
    con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 10
) -> pd.DataFrame:
    """Items by net revenue (gross - returns) in the filtered sales."""
    where = _sales_where(f)
    if f.user_id is None:
        relation = "item_sales_daily"
    else:
        relation = """(
            SELECT user_key, user_id, sale_date, source, item_id,
                   CASE WHEN quantity > 0 THEN quantity ELSE 0 END AS units,
                   CASE WHEN quantity > 0 THEN amount ELSE 0 END AS gross_revenue,
                   CASE WHEN quantity < 0 THEN -amount ELSE 0 END AS returns_value
            FROM sales_lines)"""
    return con.execute(
        f"""
        SELECT item_id,
               sum(units)::BIGINT AS units,
               sum(gross_revenue) - sum(returns_value) AS net_revenue
        FROM {relation} {where.sql}
        GROUP BY item_id
        ORDER BY net_revenue DESC, item_id
        LIMIT $limit
        """,
        {**where.params, "limit": limit},
    ).df()


def top_items_by_purchases(
    con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 10
) -> pd.DataFrame:
    """Items by PURCHASE events; empty when the event-type filter leaves PURCHASE out."""
    if f.event_types is not None and "PURCHASE" not in f.event_types:
        return pd.DataFrame({"item_id": [], "purchases": []})
    where = _event_where(replace(f, event_types=None))
    if f.user_id is None:
        relation = "item_purchases_daily"
    else:
        where.add(USER_MATCH, user_id=f.user_id)
        relation = f"""(
            SELECT user_key, user_id, event_date, source, item_id, 1 AS purchases
            FROM {USER_EVENTS} WHERE event_type = 'PURCHASE')"""
    return con.execute(
        f"""
        SELECT item_id, sum(purchases)::BIGINT AS purchases
        FROM {relation} {where.sql}
        GROUP BY item_id
        ORDER BY purchases DESC, item_id
        LIMIT $limit
        """,
        {**where.params, "limit": limit},
    ).df()


def daily_table(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """One row per day with the filtered event counts and sales (money as floats, for the
    table shown; `daily_csv` is the exact download)."""
    return con.execute(*_daily_query(f)).df()


def daily_csv(con: duckdb.DuckDBPyConnection, f: Filters) -> str:
    """`daily_table` as CSV text with money exact to the cent and beyond (DESIGN.md: money
    is exact decimal arithmetic), which a DataFrame's floats are not past about 10^11."""
    cursor = con.execute(*_daily_query(f))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(column[0] for column in cursor.description)
    writer.writerows(cursor.fetchall())  # Decimal and date write as their exact text
    return out.getvalue()


def _daily_query(f: Filters) -> tuple[str, dict]:
    """The SQL and parameters of one row per day with the filtered events and sales."""
    events_where = _event_where(f)
    relation = _event_relation(f, events_where)
    sales_where = _sales_where(f)
    # Both halves bind the same values under the same names, so one dict serves both.
    params = {**events_where.params, **sales_where.params}
    return (
        f"""
        WITH events AS (
            SELECT event_date AS day,
                   sum(event_count) FILTER (WHERE event_type = 'VIEW')::BIGINT AS views,
                   sum(event_count) FILTER (WHERE event_type = 'ADD_TO_CART')::BIGINT
                       AS add_to_carts,
                   sum(event_count) FILTER (WHERE event_type = 'PURCHASE')::BIGINT AS purchases,
                   sum(event_count) FILTER (
                       WHERE event_type NOT IN ('VIEW', 'ADD_TO_CART', 'PURCHASE')
                   )::BIGINT AS other_events
            FROM {relation} {events_where.sql}
            GROUP BY day
        ),
        sales AS (
            SELECT sale_date AS day,
                   {ORDERS}::BIGINT AS orders,
                   sum(units)::BIGINT AS units,
                   sum(gross_revenue) AS gross_revenue,
                   sum(returns_value) AS returns_value,
                   sum(gross_revenue) - sum(returns_value) AS net_revenue
            FROM sales_orders {sales_where.sql}
            GROUP BY day
        )
        SELECT day,
               coalesce(views, 0) AS views,
               coalesce(add_to_carts, 0) AS add_to_carts,
               coalesce(purchases, 0) AS purchases,
               coalesce(other_events, 0) AS other_events,
               coalesce(orders, 0) AS orders,
               coalesce(units, 0) AS units,
               coalesce(gross_revenue, 0) AS gross_revenue,
               coalesce(returns_value, 0) AS returns_value,
               coalesce(net_revenue, 0) AS net_revenue
        FROM events FULL OUTER JOIN sales USING (day)
        ORDER BY day
        """,
        params,
    )


# --------------------------------------------------------------------------- user drill-down


def user_profile(con: duckdb.DuckDBPyConnection, user_id: str) -> dict | None:
    """All-time totals of one user, or None if the extract does not know them."""
    return _one_row(
        con.execute(
            f"SELECT * EXCLUDE (user_key) FROM users WHERE {USER_MATCH}", {"user_id": user_id}
        )
    )


def user_timeline(con: duckdb.DuckDBPyConnection, f: Filters, limit: int = 500) -> pd.DataFrame:
    """The chosen user's filtered events, newest first."""
    if f.user_id is None:
        raise ValueError("user_timeline needs a user_id in the filters")
    where = _event_where(f).add(USER_MATCH, user_id=f.user_id)
    return con.execute(
        f"""
        SELECT event_time, event_type, item_id, source
        FROM {USER_EVENTS} {where.sql}
        ORDER BY event_time DESC, event_type, item_id
        LIMIT $limit
        """,
        {**where.params, "limit": limit},
    ).df()


def user_orders(con: duckdb.DuckDBPyConnection, f: Filters) -> pd.DataFrame:
    """The chosen user's filtered orders (returns included), newest first."""
    if f.user_id is None:
        raise ValueError("user_orders needs a user_id in the filters")
    where = _sales_where(f)
    return con.execute(
        f"""
        SELECT order_id,
               min(first_sale_time) AS sale_time,
               any_value(country) AS country,
               sum(lines)::BIGINT AS lines,
               sum(units)::BIGINT AS units,
               sum(gross_revenue) AS gross_revenue,
               sum(returns_value) AS returns_value,
               sum(gross_revenue) - sum(returns_value) AS net_revenue
        FROM sales_orders {where.sql}
        GROUP BY order_id
        ORDER BY sale_time DESC, order_id
        """,
        where.params,
    ).df()


# --------------------------------------------------------------------------- filter options


@dataclass(frozen=True)
class Dimensions:
    """What the filters offer, and what the extract holds."""

    extract_version: int
    first_date: date | None
    last_date: date | None
    event_types: list[str]
    sources: list[str]
    events: int
    sales_lines: int

    @property
    def is_empty(self) -> bool:
        return self.events == 0 and self.sales_lines == 0


def dimensions(con: duckdb.DuckDBPyConnection) -> Dimensions:
    version, first_date, last_date, events, sales_lines = con.execute(
        "SELECT extract_version, first_date, last_date, events, sales_lines FROM extract_info"
    ).fetchone()
    # KPI types first, in funnel order, then any others alphabetically.
    event_types = [
        r[0]
        for r in con.execute(
            """
            SELECT DISTINCT event_type,
                   coalesce(list_position(['VIEW', 'ADD_TO_CART', 'PURCHASE'], event_type), 99)
                       AS rank
            FROM events_daily ORDER BY rank, event_type
            """
        ).fetchall()
    ]
    sources = [
        r[0]
        for r in con.execute(
            """
            SELECT source FROM events_daily
            UNION SELECT source FROM sales_orders
            ORDER BY source
            """
        ).fetchall()
    ]
    return Dimensions(version, first_date, last_date, event_types, sources, events, sales_lines)


def user_options(con: duckdb.DuckDBPyConnection, limit: int = 5_000) -> list[str]:
    """The most active users, for the user picker (it also accepts any typed id)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT user_id FROM users ORDER BY events DESC, orders DESC, user_id LIMIT $limit",
            {"limit": limit},
        ).fetchall()
    ]


# --------------------------------------------------------------------------- data panel


def extract_info(con: duckdb.DuckDBPyConnection) -> dict:
    return _one_row(con.execute("SELECT * FROM extract_info"))


def ingest_summary(con: duckdb.DuckDBPyConnection) -> dict:
    """How much came in and where it went: the uploads processed, and the rows of each key's
    current upload (a re-uploaded key's older versions no longer count)."""
    sql = """
        SELECT count(*)::BIGINT AS uploads,
               histogram(status) AS uploads_by_status,
               coalesce(sum(rows_read) FILTER (WHERE is_current), 0)::BIGINT AS rows_read,
               coalesce(sum(rows_accepted) FILTER (WHERE is_current), 0)::BIGINT
                   AS rows_accepted,
               coalesce(sum(rows_duplicate) FILTER (WHERE is_current), 0)::BIGINT
                   AS rows_duplicate,
               coalesce(sum(rows_quarantined) FILTER (WHERE is_current), 0)::BIGINT
                   AS rows_quarantined,
               max(ingested_at) AS last_ingested_at
        FROM ingest_log
    """
    return _one_row(con.execute(sql))


def ingest_log(con: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    return con.execute(
        """
        SELECT ingested_at, source, kind, object_key, status, is_current, rows_read,
               rows_accepted, rows_duplicate, rows_quarantined, message
        FROM ingest_log ORDER BY ingested_at DESC, upload_id LIMIT $limit
        """,
        {"limit": limit},
    ).df()


def quarantine_reasons(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        """
        SELECT source, column_name, reason, rows, uploads,
               example_object_key, example_line_number, example_raw_record
        FROM quarantine_reasons ORDER BY rows DESC, source, reason
        """
    ).df()
