"""Refreshing analytics tables from new uploads only: the result must equal a rebuild."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from finbi_pipeline import table_refresh
from finbi_pipeline.assets.analytics import ANALYTICS_UPDATES
from finbi_pipeline.assets.catalog import TABLES
from finbi_pipeline.resources.catalog import DuckDBCatalog
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.sql_templates import ANALYTICS_TABLES, sql_file, to_duckdb
from finbi_pipeline.table_refresh import FULL, INCREMENTAL, UNCHANGED
from finbi_pipeline.upload_counts import rows_by_file_view, view_exists
from finbi_pipeline_tests._catalog_tables import create_catalog_tables

DAY1, DAY2, DAY3 = dt.date(2025, 4, 10), dt.date(2025, 4, 11), dt.date(2025, 4, 12)
_uploads = itertools.count(1)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


FIRST_EVENTS = [
    ("u1", "i1", "VIEW", at(DAY1, 9)),
    ("u1", "i1", "PURCHASE", at(DAY1, 10)),
    ("u2", "i2", "VIEW", at(DAY1, 11)),
    (None, "i2", "VIEW", at(DAY2, 9)),  # a guest
    ("u3", "i1", "ADD_TO_CART", at(DAY2, 12)),
]
# Old and new users, an old and a new day, a guest, a new item.
MORE_EVENTS = [
    ("u1", "i1", "VIEW", at(DAY2, 8)),
    ("u1", "i3", "VIEW", at(DAY3, 8)),
    ("u2", "i2", "VIEW", at(DAY1, 12)),
    ("u4", "i2", "PURCHASE", at(DAY3, 9)),
    (None, "i1", "VIEW", at(DAY3, 10)),
]
FIRST_LINES = [
    ("O1", "u1", "i1", 2, "10.00", at(DAY1, 10)),
    ("O2", None, "i2", 1, "5.50", at(DAY2, 9)),
    ("C1", "u1", "i1", -1, "10.00", at(DAY2, 10)),
]
MORE_LINES = [
    ("O3", "u2", "i2", 3, "5.50", at(DAY2, 15)),
    ("O4", "u4", "i3", 1, "99.99", at(DAY3, 9)),
]


def add_events(engine: DuckDBEngine, events) -> str:
    upload_id = f"raw/interactions/{next(_uploads)}.csv@v1"
    with engine.connect() as con:
        con.executemany(
            "INSERT INTO interactions VALUES (?, ?, ?, ?, CAST(? AS DATE), 'web', ?)",
            [(*event, event[3], upload_id) for event in events],
        )
    return upload_id


def add_lines(engine: DuckDBEngine, lines) -> str:
    upload_id = f"raw/sales/{next(_uploads)}.csv@v1"
    with engine.connect() as con:
        con.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, CAST(? AS DECIMAL(18,4)),"
            " ? * CAST(? AS DECIMAL(18,4)), ?, CAST(? AS DATE), 'UK', 'shop', ?)",
            [(o, u, i, q, p, q, p, t, t, upload_id) for o, u, i, q, p, t in lines],
        )
    return upload_id


@pytest.fixture
def warehouse(finbi_home) -> DuckDBEngine:
    """Catalog tables with one upload of each kind, every analytics table built."""
    engine = DuckDBEngine(home=str(finbi_home))
    with engine.connect() as con:
        create_catalog_tables(con)
    add_events(engine, FIRST_EVENTS)
    add_lines(engine, FIRST_LINES)
    for table in ANALYTICS_TABLES:
        assert refresh(engine, table)["refresh_mode"] == FULL
    return engine


def refresh(engine: DuckDBEngine, table: str, sql: str | None = None) -> dict:
    """What the analytics asset does; returns how the table was refreshed."""
    extra = engine.refresh_table(table, sql or sql_file(table), ANALYTICS_UPDATES[table]).extra
    return {key: extra[key] for key in ("refresh_mode", "refresh_reason", "uploads_added")}


def refresh_all(engine: DuckDBEngine) -> dict[str, str]:
    """Every table in ANALYTICS_TABLES order (dependencies first); {table: mode}."""
    return {table: refresh(engine, table)["refresh_mode"] for table in ANALYTICS_TABLES}


def assert_equals_a_rebuild(engine: DuckDBEngine, table: str) -> None:
    rebuilt = to_duckdb(sql_file(table))
    columns = "* EXCLUDE (refreshed_at)" if table == "kpi_summary" else "*"
    with engine.connect() as con:
        stored = con.execute(f"SELECT {columns} FROM {table} ORDER BY ALL").fetchall()
        expected = con.execute(f"SELECT {columns} FROM ({rebuilt}) ORDER BY ALL").fetchall()
        stored_types = con.execute(f"DESCRIBE {table}").fetchall()
        expected_types = con.execute(f"DESCRIBE {rebuilt}").fetchall()
    assert stored == expected, table
    assert [c[:2] for c in stored_types] == [c[:2] for c in expected_types], table


def test_new_uploads_are_merged_into_what_a_rebuild_gives(warehouse):
    add_events(warehouse, MORE_EVENTS)
    add_lines(warehouse, MORE_LINES)
    modes = refresh_all(warehouse)
    assert modes == {
        table: FULL if ANALYTICS_UPDATES[table] is None else INCREMENTAL
        for table in ANALYTICS_TABLES
    }
    for table in ANALYTICS_TABLES:
        assert_equals_a_rebuild(warehouse, table)


def test_a_refresh_reads_only_what_is_new(warehouse):
    # Tamper with stored figures that the new rows do not touch: a refresh that keeps them
    # has not recomputed them from every row.
    with warehouse.connect() as con:
        con.execute(f"UPDATE daily_events SET event_count = 99 WHERE event_date = '{DAY1}'")
        con.execute("UPDATE user_activity SET views = 99 WHERE user_id = 'u2'")
    add_events(warehouse, [("u1", "i1", "VIEW", at(DAY3, 8))])
    assert refresh(warehouse, "daily_events")["refresh_mode"] == INCREMENTAL
    assert refresh(warehouse, "user_activity")["refresh_mode"] == INCREMENTAL
    with warehouse.connect() as con:
        assert con.execute(
            "SELECT event_date, event_type, event_count FROM daily_events "
            f"WHERE event_date IN ('{DAY1}', '{DAY3}') ORDER BY ALL"
        ).fetchall() == [(DAY1, "PURCHASE", 99), (DAY1, "VIEW", 99), (DAY3, "VIEW", 1)]
        assert con.execute(
            "SELECT user_id, views FROM user_activity WHERE user_id IN ('u1', 'u2') ORDER BY 1"
        ).fetchall() == [("u1", 2), ("u2", 99)]


def test_tables_without_new_rows_of_what_they_read_are_left_unchanged(warehouse):
    add_events(warehouse, MORE_EVENTS)
    modes = refresh_all(warehouse)
    assert modes["daily_sales"] == UNCHANGED
    assert modes["user_activity"] == INCREMENTAL
    assert refresh(warehouse, "user_activity") == {
        "refresh_mode": UNCHANGED,
        "refresh_reason": "no new uploads since the last refresh",
        "uploads_added": 0,
    }


def test_a_replaced_upload_rebuilds_from_every_row(warehouse):
    with warehouse.connect() as con:  # what a re-upload of the key does to the catalog
        con.execute("DELETE FROM interactions")
    add_events(warehouse, FIRST_EVENTS[:2])
    how = refresh(warehouse, "user_activity")
    assert how["refresh_mode"] == FULL
    assert how["refresh_reason"] == "1 upload(s) replaced or removed since the last refresh"
    assert_equals_a_rebuild(warehouse, "user_activity")


def test_a_changed_definition_rebuilds(warehouse):
    add_events(warehouse, MORE_EVENTS)
    how = refresh(warehouse, "event_counts_by_type", sql_file("event_counts_by_type") + "\n")
    assert (how["refresh_mode"], how["refresh_reason"]) == (FULL, "the table's definition changed")


def test_a_catalog_changing_during_a_refresh_makes_the_next_one_full(warehouse, monkeypatch):
    add_events(warehouse, MORE_EVENTS)
    real = table_refresh.upload_row_counts
    calls = itertools.count()

    def current_uploads(con, kinds):
        uploads = real(con, kinds)
        if next(calls) == 1:  # read again after the build: another upload has landed
            uploads[("interactions", "raw/interactions/late.csv@v1")] = 1
        return uploads

    monkeypatch.setattr(table_refresh, "upload_row_counts", current_uploads)
    assert refresh(warehouse, "top_items")["refresh_mode"] == INCREMENTAL
    monkeypatch.undo()
    how = refresh(warehouse, "top_items")
    assert (how["refresh_mode"], how["refresh_reason"]) == (FULL, "no record of a previous build")
    assert_equals_a_rebuild(warehouse, "top_items")


def test_daily_events_over_the_lakes_files_counts_a_new_uploads_users_once(finbi_home):
    # Through the local catalog's views, where the probe for users already seen on a day
    # leaves the new upload's files out by name: were they left in, every new user would
    # count as seen.
    engine = DuckDBEngine(home=str(finbi_home))
    catalog = DuckDBCatalog(lake=LocalLake(home=str(finbi_home)), engine=engine)

    def land(name: str, events) -> None:
        """The curated files of one upload, one per day, as the merge writes them."""
        with engine.connect() as con:
            for day in {event[3].date() for event in events}:
                folder = catalog.lake.root / "curated" / "interactions" / f"event_date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                on_day = [e for e in events if e[3].date() == day]
                con.execute(
                    "COPY (SELECT user_id::VARCHAR AS user_id, item_id, event_type, "
                    f"event_time, 'web' AS source, 'raw/interactions/{name}.csv@v1' AS upload_id "
                    f"FROM (VALUES {', '.join(['(?, ?, ?, ?::TIMESTAMP)'] * len(on_day))}) "
                    f"AS t(user_id, item_id, event_type, event_time)) "
                    f"TO '{folder / name}.parquet' (FORMAT parquet)",
                    [value for event in on_day for value in event],
                )
        for table in ("interactions", "sales"):
            catalog.register_table(TABLES[table])

    land("first", FIRST_EVENTS)
    with engine.connect() as con:
        assert view_exists(con, rows_by_file_view("interactions"))
    assert refresh(engine, "daily_events")["refresh_mode"] == FULL
    land("more", MORE_EVENTS)
    assert refresh(engine, "daily_events")["refresh_mode"] == INCREMENTAL
    assert_equals_a_rebuild(engine, "daily_events")
