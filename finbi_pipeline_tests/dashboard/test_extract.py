"""Building the serving extract, and swapping it in without disturbing readers."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pytest

from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import SERVING_TABLES, serving_path

from ._warehouse import FIRST_DAY, LAST_DAY, add_events, create_empty_warehouse, refresh

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
    assert set(meta["row_counts"]) == {table for table, _ in SERVING_TABLES}
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


def test_empty_warehouse_gives_an_empty_extract(finbi_home):
    warehouse = create_empty_warehouse()
    meta = refresh(warehouse, finbi_home)
    assert meta["row_counts"]["user_events"] == 0
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    dims = queries.dimensions(con)
    assert dims.is_empty
    assert (dims.first_date, dims.last_date) == (None, None)
