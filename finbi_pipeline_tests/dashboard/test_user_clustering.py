"""The per-user tables' layout: clustered by a user bucket, with ENUM event types/sources.

The build clusters `user_events`, `sales_orders` and `sales_lines` by `user_bucket` (a hash
of `user_id`) instead of sorting them by user, and stores `user_events.event_type`/`source`
as ENUMs. These tests pin what the queries rely on: the reader computes the same bucket as
the writer, the bucket predicate lets DuckDB skip row groups, and the ENUMs never leak out.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import USER_BUCKET, serving_path
from finbi_pipeline.dashboard.queries import Filters

from ._warehouse import FIRST_DAY, LAST_DAY, add_events, create_warehouse, refresh

PER_USER_TABLES = ("user_events", "sales_orders", "sales_lines")


def test_reader_and_writer_agree_on_every_users_bucket(con):
    bucket = USER_BUCKET.format("$user_id::VARCHAR")
    for table in PER_USER_TABLES:
        for user_id, stored in con.execute(
            f"SELECT DISTINCT user_id, user_bucket FROM {table} WHERE user_id IS NOT NULL"
        ).fetchall():
            assert con.execute(f"SELECT {bucket}", {"user_id": user_id}).fetchone()[0] == stored
    # Guests have no bucket: they cannot be chosen.
    assert con.execute(
        "SELECT count(*) FROM sales_orders WHERE user_id IS NULL AND user_bucket IS NOT NULL"
    ).fetchone() == (0,)


def test_user_events_stores_enums_but_queries_return_strings(con):
    types = dict(
        con.execute("SELECT column_name, column_type FROM (DESCRIBE user_events)").fetchall()
    )
    assert types["event_type"].startswith("ENUM(")
    assert types["source"].startswith("ENUM(")
    timeline = queries.user_timeline(con, Filters(FIRST_DAY, LAST_DAY, user_id="u1"))
    assert not isinstance(timeline.event_type.dtype, pd.CategoricalDtype)
    assert not isinstance(timeline.source.dtype, pd.CategoricalDtype)
    by_type = queries.events_by_type(con, Filters(FIRST_DAY, LAST_DAY, user_id="u1"))
    assert not isinstance(by_type.event_type.dtype, pd.CategoricalDtype)


def test_filter_values_missing_from_the_enums_match_nothing(con):
    # 'CLICK' and 'kiosk' are in no ENUM: a comparison must not fail, just match no row.
    f = Filters(FIRST_DAY, LAST_DAY, event_types=("CLICK",), sources=("kiosk",), user_id="u1")
    assert queries.kpis(con, f).views == 0
    assert queries.user_timeline(con, f).empty
    assert queries.events_over_time(con, f, "day").empty


def test_values_with_quotes_make_valid_enums(finbi_home):
    warehouse = create_warehouse()
    add_events(warehouse, [("u7", "i1", "VIEW'S", "2024-03-02 10:00", "o'app")])
    refresh(warehouse, finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    f = Filters(FIRST_DAY, LAST_DAY, user_id="u7")
    timeline = queries.user_timeline(con, f)
    assert timeline[["event_type", "source"]].values.tolist() == [["VIEW'S", "o'app"]]
    assert queries.events_by_type(con, f).event_type.tolist() == ["VIEW'S"]


def test_per_user_tables_are_clustered_and_lookups_filter_on_the_bucket(finbi_home):
    """Rows of a bucket are contiguous (so zone maps can skip the others), and the bucket
    predicate reaches the scan as a constant."""
    warehouse = create_warehouse()
    warehouse.execute(
        """
        INSERT INTO finbi.interactions
        SELECT 'user' || (range % 20000), 'i1', 'VIEW',
               TIMESTAMP '2024-03-01' + INTERVAL (range % 3600) SECOND,
               DATE '2024-03-01', 'web', 'up-1'
        FROM range(400000)
        """
    )
    warehouse.execute(
        """
        INSERT INTO finbi.sales
        SELECT 'o' || range, 'user' || (range % 20000), 'i1', 1, 1, 1,
               TIMESTAMP '2024-03-01', DATE '2024-03-01', 'UK', 'shop', 'up-2'
        FROM range(300000)
        """
    )
    refresh(warehouse, finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    for table in PER_USER_TABLES:
        ranges = con.execute(
            f"""
            SELECT min(rowid), max(rowid) FROM {table}
            GROUP BY user_bucket ORDER BY min(rowid)
            """
        ).fetchall()
        assert len(ranges) > 1000
        assert all(
            hi < next_lo for (_, hi), (next_lo, _) in zip(ranges, ranges[1:], strict=False)
        ), table

    f = Filters(FIRST_DAY, LAST_DAY, user_id="user42")
    assert queries.kpis(con, f).views == 20
    assert queries.kpis(con, f).orders == 15
    plan = con.execute(
        f"EXPLAIN SELECT count(*) FROM user_events WHERE {queries.USER_MATCH}",
        {"user_id": "user42"},
    ).fetchall()[0][1]
    assert "user_bucket=" in plan.replace(" ", "")


def test_the_build_restores_preserve_insertion_order(finbi_home):
    warehouse = create_warehouse()
    for setting in (True, False):
        warehouse.execute(f"SET preserve_insertion_order = {setting}")
        refresh(warehouse, finbi_home)
        assert warehouse.execute(
            "SELECT current_setting('preserve_insertion_order')"
        ).fetchone() == (setting,)


def test_the_build_restores_preserve_insertion_order_after_a_failure(finbi_home):
    warehouse = create_warehouse()
    warehouse.execute("DROP TABLE finbi.quarantine")
    with pytest.raises(duckdb.CatalogException):
        refresh(warehouse, finbi_home)
    assert warehouse.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (
        True,
    )
