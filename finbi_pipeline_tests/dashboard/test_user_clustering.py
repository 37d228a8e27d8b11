"""The per-user tables' layout: sorted by a user key, with ENUM event types/sources.

The build sorts `user_events`, `sales_orders`, `sales_lines` and `users` by `user_key` (a
64-bit hash of `user_id`) instead of by user, stores `user_events` without `user_id`
unless two users share a key, and stores `user_events.event_type`/`source` as ENUMs. These
tests pin what the queries rely on: the reader computes the same key as the writer, a
shared key never mixes two users' rows, the key predicate lets DuckDB skip row groups, and
the ENUMs never leak out.
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd
import pytest

from finbi_pipeline.dashboard import extract, queries
from finbi_pipeline.dashboard.extract import USER_KEY, serving_path
from finbi_pipeline.dashboard.queries import Filters

from ._warehouse import EVENTS, FIRST_DAY, LAST_DAY, add_events, create_warehouse, refresh

PER_USER_TABLES = ("user_events", "sales_orders", "sales_lines", "users")
READER_KEY = USER_KEY.format("$user_id::VARCHAR")


def test_reader_and_writer_agree_on_every_users_key(con):
    for table in ("sales_orders", "sales_lines", "users"):
        for user_id, stored in con.execute(
            f"SELECT DISTINCT user_id, user_key FROM {table} WHERE user_id IS NOT NULL"
        ).fetchall():
            assert con.execute(f"SELECT {READER_KEY}", {"user_id": user_id}).fetchone()[0] == stored
    # user_events holds keys only: each user's events are found under the reader's key.
    for user_id, events in con.execute("SELECT user_id, events FROM users").fetchall():
        assert (
            con.execute(
                f"SELECT count(*) FROM user_events WHERE user_key = {READER_KEY}",
                {"user_id": user_id},
            ).fetchone()[0]
            == events
        ), user_id
    assert con.execute("SELECT count(*) FROM user_events WHERE user_id IS NOT NULL").fetchone() == (
        0,
    )
    # Guests have no key: they cannot be chosen.
    assert con.execute(
        "SELECT count(*) FROM sales_orders WHERE user_id IS NULL AND user_key IS NOT NULL"
    ).fetchone() == (0,)


def _weak_user_key(monkeypatch, keys: int = 2) -> str:
    """Make the extract and the queries use a key with `keys` values, so users share keys."""
    weak = f"CASE WHEN {{0}} IS NOT NULL THEN hash({{0}}) % {keys} END"
    monkeypatch.setattr(extract, "USER_KEY", weak)
    reader = weak.format("$user_id::VARCHAR")
    for name in ("USER_MATCH", "USER_EVENTS"):
        monkeypatch.setattr(queries, name, getattr(queries, name).replace(READER_KEY, reader))
    return weak


def _views(con, user_id: str) -> int:
    return queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, user_id=user_id)).views


def _expected_views(events, user_id: str) -> int:
    return sum(1 for u, _, t, _, _ in events if u == user_id and t == "VIEW")


def test_users_sharing_a_key_keep_their_own_events(finbi_home, monkeypatch):
    _weak_user_key(monkeypatch)  # four users with events, two keys
    refresh(create_warehouse(), finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert con.execute("SELECT count(*) FROM user_events WHERE user_id IS NULL").fetchone() == (0,)
    for user_id in ("u1", "u2", "u3", "o'brien"):
        assert _views(con, user_id) == _expected_views(EVENTS, user_id)
        timeline = queries.user_timeline(con, Filters(FIRST_DAY, LAST_DAY, user_id=user_id))
        assert len(timeline) == sum(1 for e in EVENTS if e[0] == user_id)


def test_a_new_user_sharing_a_key_rebuilds_the_extract_with_user_ids(finbi_home, monkeypatch):
    weak = _weak_user_key(monkeypatch, keys=1_000_003)
    warehouse = create_warehouse()
    refresh(warehouse, finbi_home)
    # A user id whose key is u1's (found by trying): stored events cannot tell them apart.
    candidate_key, u1_key = weak.format("'twin' || i"), weak.format("'u1'")
    (twin,) = warehouse.execute(
        f"SELECT 'twin' || i FROM range(10000000) AS r(i) WHERE {candidate_key} = {u1_key} LIMIT 1"
    ).fetchone()
    twin_events = [(twin, "i9", "VIEW", "2024-03-04 10:00", "web")]
    add_events(warehouse, twin_events)
    result = refresh(warehouse, finbi_home)
    assert result["build_mode"] == "full"
    assert "shares a user key" in result["build_reason"]
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert _views(con, twin) == 1
    assert _views(con, "u1") == _expected_views(EVENTS, "u1")


def test_two_new_users_sharing_a_key_rebuild_the_extract_with_user_ids(finbi_home, monkeypatch):
    weak = _weak_user_key(monkeypatch, keys=1_000_003)
    warehouse = create_warehouse()
    refresh(warehouse, finbi_home)
    # Two new ids with one key, which no stored user has (found by trying).
    key = weak.format("id")
    first, second = warehouse.execute(
        f"WITH ids AS (SELECT 'pair' || i AS id, {key} AS k FROM range(20000) AS r(i)) "
        "SELECT a.id, b.id FROM ids AS a JOIN ids AS b ON a.k = b.k AND a.id < b.id "
        f"WHERE a.k NOT IN (SELECT {weak.format('user_id')} FROM finbi.interactions) LIMIT 1"
    ).fetchone()
    add_events(
        warehouse,
        [(user, "i9", "VIEW", "2024-03-04 10:00", "web") for user in (first, second)],
    )
    result = refresh(warehouse, finbi_home)
    assert result["build_mode"] == "full"
    assert "shares a user key" in result["build_reason"]
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert (_views(con, first), _views(con, second)) == (1, 1)


def test_an_id_without_events_sharing_a_key_matches_no_event(finbi_home, monkeypatch):
    # Keys are unique among users with events, not among every id a viewer may type.
    _weak_user_key(monkeypatch, keys=1)  # every id shares the one key
    warehouse = create_warehouse()
    warehouse.execute("DELETE FROM finbi.interactions WHERE user_id <> 'u1'")
    refresh(warehouse, finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert con.execute("SELECT count(*) FROM user_events WHERE user_id IS NOT NULL").fetchone() == (
        0,
    )
    assert _views(con, "u1") == _expected_views(EVENTS, "u1")
    # u2 has orders but no events left: it shares u1's key all the same.
    assert queries.user_profile(con, "u2")["orders"] == 1
    assert _views(con, "u2") == 0
    assert queries.user_timeline(con, Filters(FIRST_DAY, LAST_DAY, user_id="u2")).empty
    nobody = Filters(FIRST_DAY, LAST_DAY, user_id="nobody")
    assert _views(con, "nobody") == 0
    assert queries.user_timeline(con, nobody).empty
    assert queries.top_items_by_purchases(con, nobody).empty
    assert queries.user_profile(con, "nobody") is None


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


def test_per_user_tables_are_sorted_and_lookups_filter_on_the_key(finbi_home):
    """A user's rows are contiguous (so zone maps can skip the others), and the key
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
            WHERE user_key IS NOT NULL GROUP BY user_key ORDER BY min(rowid)
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
    assert re.search(r"user_key=\d+", re.sub(r"[\s│]", "", plan))


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
