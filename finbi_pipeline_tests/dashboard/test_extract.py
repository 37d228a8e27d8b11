"""Building the serving extract, and swapping it in without disturbing readers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from finbi_pipeline.dashboard import extract as extract_module
from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import SERVING_TABLES, build_serving_extract, serving_path

from ._warehouse import (
    FIRST_DAY,
    LAST_DAY,
    add_events,
    add_sales,
    create_empty_warehouse,
    extract_tables,
    refresh,
)

ALL = queries.Filters(FIRST_DAY, LAST_DAY)
MORE_VIEWS = [("u9", "i1", "VIEW", "2024-03-05 20:00", "web")] * 5


def test_serving_path_reads_finbi_home_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("FINBI_HOME", str(tmp_path / "a"))
    assert serving_path() == tmp_path / "a" / "dashboard" / "serving.duckdb"
    monkeypatch.setenv("FINBI_HOME", str(tmp_path / "b"))
    assert serving_path() == tmp_path / "b" / "dashboard" / "serving.duckdb"
    monkeypatch.delenv("FINBI_HOME")
    monkeypatch.chdir(tmp_path)
    assert serving_path() == tmp_path / ".finbi" / "dashboard" / "serving.duckdb"


def test_metadata(warehouse, finbi_home):
    meta = refresh(warehouse, finbi_home)
    path = finbi_home / "dashboard" / "serving.duckdb"
    assert meta["path"] == str(path)
    assert meta["bytes"] == path.stat().st_size
    assert datetime.fromisoformat(meta["refreshed_at"].removesuffix("Z"))
    assert set(meta["row_counts"]) == {table.name for table in SERVING_TABLES}
    assert meta["row_counts"]["user_events"] == 14
    assert meta["row_counts"]["events_daily"] == 12
    assert meta["row_counts"]["extract_info"] == 1
    # Only the extract remains: no temporary file, no write-ahead log.
    assert sorted(p.name for p in path.parent.iterdir()) == ["serving.duckdb"]


def test_the_warehouse_connection_stays_usable(warehouse, finbi_home):
    refresh(warehouse, finbi_home)
    assert warehouse.execute("SELECT count(*) FROM finbi.interactions").fetchone() == (14,)
    databases = {
        r[0] for r in warehouse.sql("SELECT database_name FROM duckdb_databases()").fetchall()
    }
    assert not any("serving" in name for name in databases)


def test_swap_keeps_old_readers_and_shows_new_data_to_new_readers(warehouse, finbi_home):
    refresh(warehouse, finbi_home)
    path = serving_path(finbi_home)
    old = queries.reader(queries.open_extract(path))
    old_signature = queries.extract_signature(path)
    assert queries.kpis(old, ALL).views == 9

    add_events(warehouse, MORE_VIEWS)
    refresh(warehouse, finbi_home)

    assert queries.extract_signature(path) != old_signature
    assert queries.kpis(old, ALL).views == 9  # still reads the file it opened
    new = queries.reader(queries.open_extract(path))
    assert queries.kpis(new, ALL).views == 14
    assert queries.kpis(old, ALL).views == 9


def test_a_failed_build_leaves_the_last_good_extract(warehouse, finbi_home):
    refresh(warehouse, finbi_home)
    path = serving_path(finbi_home)
    before = queries.extract_signature(path)

    warehouse.execute("DROP TABLE finbi.quarantine")  # a contract table gone: the build fails
    with pytest.raises(duckdb.CatalogException):
        refresh(warehouse, finbi_home)

    assert queries.extract_signature(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["serving.duckdb"]
    assert queries.kpis(queries.reader(queries.open_extract(path)), ALL).views == 9
    # and the warehouse connection can build again once the table is back
    warehouse.execute(
        "CREATE TABLE finbi.quarantine (upload_id VARCHAR, source VARCHAR, object_key VARCHAR, "
        "line_number BIGINT, column_name VARCHAR, reason VARCHAR, raw_record VARCHAR)"
    )
    refresh(warehouse, finbi_home)


class _RunsOutOfMemoryOnce:
    """The warehouse connection, except that the first staging statement on more than one
    thread runs out of memory, as DuckDB's parallel aggregate sometimes does at 100M."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con, self.failed = con, False

    def execute(self, sql: str):
        threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]
        if sql.startswith("CREATE TABLE finbi_serving_scratch.user_event_totals") and threads > 1:
            self.failed = True
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
        return self.con.execute(sql)


def test_a_staging_statement_out_of_memory_runs_again_on_one_thread(warehouse, finbi_home, caplog):
    warehouse.execute("SET threads = 2")
    flaky = _RunsOutOfMemoryOnce(warehouse)

    build_serving_extract(flaky, finbi_home / "dashboard")

    assert flaky.failed
    assert "running the statement again on one thread" in caplog.text
    assert warehouse.execute("SELECT current_setting('threads')").fetchone()[0] == 2
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert queries.user_options(con) == ["u1", "u2", "u3", "o'brien"]


def test_an_upload_merged_during_the_build_keeps_the_last_extract(
    warehouse, finbi_home, monkeypatch
):
    refresh(warehouse, finbi_home)
    path = serving_path(finbi_home)
    before = queries.extract_signature(path)
    build = extract_module._build

    def build_while_a_merge_lands(con, table, params):
        if table.name == "ingest_log":  # halfway through: a run merges another upload
            add_events(con, MORE_VIEWS)
        build(con, table, params)

    monkeypatch.setattr(extract_module, "_build", build_while_a_merge_lands)
    with pytest.raises(extract_module.WarehouseChanged, match="1 upload"):
        refresh(warehouse, finbi_home)
    assert queries.extract_signature(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["serving.duckdb"]
    monkeypatch.undo()
    assert refresh(warehouse, finbi_home)["uploads_added"] == 1


def test_empty_warehouse_gives_an_empty_extract(finbi_home):
    warehouse = create_empty_warehouse()
    meta = refresh(warehouse, finbi_home)
    assert meta["row_counts"]["user_events"] == 0
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    dims = queries.dimensions(con)
    assert dims.is_empty
    assert (dims.first_date, dims.last_date) == (None, None)


# --- incremental refreshes -------------------------------------------------------------------

NEW_EVENTS = [
    ("u1", "i2", "PURCHASE", "2024-03-05 19:00", "web"),  # a known user, a known day
    ("u8", "i4", "VIEW", "2024-03-06 09:00", "app"),  # a new user on a new day
    ("o'brien", "i1", "VIEW", "2024-03-01 08:00", "web"),  # one stored event; an earlier one
]
NEW_SALES = [
    ("o1", "u1", "i3", 1, "7.25", "2024-03-02 08:00", "UK", "shop"),  # a new line, old order
    ("o5", "u8", "i4", 2, "3.10", "2024-03-06 09:30", "FR", "pos"),
    ("o6", None, "i4", 1, "3.10", "2024-03-06 10:00", "FR", "pos"),  # a guest
]


def assert_same_as_a_full_build(warehouse, finbi_home, tmp_path):
    full = build_serving_extract(warehouse, tmp_path / f"full-build-{uuid.uuid4().hex}")
    assert full["build_mode"] == "full"
    assert extract_tables(serving_path(finbi_home)) == extract_tables(full["path"])


def test_new_uploads_are_added_in_place_with_what_a_full_build_gives(
    warehouse, finbi_home, tmp_path
):
    first = refresh(warehouse, finbi_home)
    assert (first["build_mode"], first["build_reason"]) == ("full", "no extract yet")
    add_events(warehouse, NEW_EVENTS)
    add_sales(warehouse, NEW_SALES)
    meta = refresh(warehouse, finbi_home)
    assert (meta["build_mode"], meta["uploads_added"]) == ("incremental", 2)
    assert_same_as_a_full_build(warehouse, finbi_home, tmp_path)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert queries.kpis(con, queries.Filters(FIRST_DAY, date(2024, 3, 6))).views == 11
    # Nothing new: still incremental, and nothing changes.
    again = refresh(warehouse, finbi_home)
    assert (again["build_mode"], again["uploads_added"]) == ("incremental", 0)
    assert_same_as_a_full_build(warehouse, finbi_home, tmp_path)


def test_only_new_sales_leave_the_interaction_tables_alone(warehouse, finbi_home, tmp_path):
    refresh(warehouse, finbi_home)
    add_sales(warehouse, NEW_SALES)
    assert refresh(warehouse, finbi_home)["build_mode"] == "incremental"
    assert_same_as_a_full_build(warehouse, finbi_home, tmp_path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            "DELETE FROM finbi.interactions WHERE user_id = 'u3'",
            "1 upload(s) replaced or removed since the last refresh",
        ),
        ("new event type", "new event types or sources"),
        ("new source", "new event types or sources"),
        ("many rows", "rows added since the last full build, over 25% of the extract"),
    ],
)
def test_what_cannot_be_added_in_place_rebuilds_in_full(
    warehouse, finbi_home, tmp_path, change, reason
):
    refresh(warehouse, finbi_home)
    if change == "new event type":
        add_events(warehouse, [("u1", "i1", "WISHLIST", "2024-03-05 19:00", "web")])
    elif change == "new source":
        add_events(warehouse, [("u1", "i1", "VIEW", "2024-03-05 19:00", "kiosk")])
    elif change == "many rows":
        add_events(warehouse, NEW_EVENTS * 3)  # 9 rows on top of 20: 31% > 25%
    else:
        warehouse.execute(change)
    meta = refresh(warehouse, finbi_home)
    assert meta["build_mode"] == "full"
    assert reason in meta["build_reason"]
    assert_same_as_a_full_build(warehouse, finbi_home, tmp_path)


def test_an_extract_of_another_version_is_rebuilt(warehouse, finbi_home, monkeypatch):
    refresh(warehouse, finbi_home)
    monkeypatch.setattr(extract_module, "EXTRACT_VERSION", extract_module.EXTRACT_VERSION + 1)
    meta = refresh(warehouse, finbi_home)
    assert meta["build_reason"] == "the extract was written by another version of FinBI"
    assert queries.extract_info(duckdb.connect(meta["path"], read_only=True))[
        "extract_version"
    ] == (extract_module.EXTRACT_VERSION)


def test_an_extract_written_with_another_duckdb_is_rebuilt(warehouse, finbi_home, monkeypatch):
    # User keys are DuckDB hashes: another DuckDB may hash the same id differently.
    refresh(warehouse, finbi_home)
    add_events(warehouse, NEW_EVENTS)
    monkeypatch.setattr(extract_module.duckdb, "__version__", "0.0.0-other")
    meta = refresh(warehouse, finbi_home)
    assert meta["build_mode"] == "full"
    assert meta["build_reason"].startswith("the extract was written with DuckDB ")


def test_money_sums_past_decimal_18_4_are_exact(warehouse, finbi_home, tmp_path):
    # Each line fits the contract's DECIMAL(18, 4); their sums per order, item and day do
    # not (a shop in rupiah): the build failed on the cast.
    refresh(warehouse, finbi_home)
    big = "60000000000000.00"  # 6 * 10^13
    add_sales(
        warehouse,
        [
            ("b1", "u1", "i1", 1, big, "2024-03-05 11:00", "ID", "shop"),
            ("b1", "u1", "i1", 1, big, "2024-03-05 11:00", "ID", "shop"),
            ("b2", "u2", "i1", 1, big, "2024-03-05 12:00", "ID", "shop"),
        ],
    )
    meta = refresh(warehouse, finbi_home)
    assert meta["build_mode"] == "full"
    assert meta["build_reason"] == "the sales' money sums need DECIMAL(38, 4)"
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    kpis = queries.kpis(con, ALL)
    assert kpis.gross_revenue == Decimal("180000000000164.50")  # 3 * 6e13 + 164.50
    assert kpis.orders == 6
    assert_same_as_a_full_build(warehouse, finbi_home, tmp_path)
