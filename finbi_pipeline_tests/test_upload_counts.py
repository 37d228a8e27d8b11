"""Rows per upload, from the curated files' Parquet footers where the local catalog keeps
them, else by counting: either way the exact counts. And the rows of some uploads, or of
every other, by file where the footers allow it, else row by row: either way the same rows."""

from __future__ import annotations

import pytest

from finbi_pipeline.assets.catalog import TABLES
from finbi_pipeline.resources.catalog import DuckDBCatalog
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.upload_counts import rows_of_other_uploads, rows_of_uploads, upload_row_counts
from finbi_pipeline_tests._catalog_tables import create_catalog_tables

UPLOAD_A, UPLOAD_B = "raw/interactions/a.csv@v1", "raw/interactions/b.csv@v2"
UPLOAD_C = "raw/interactions/c.csv@v3"


@pytest.fixture
def catalog(finbi_home) -> DuckDBCatalog:
    engine = DuckDBEngine(home=str(finbi_home))
    return DuckDBCatalog(lake=LocalLake(home=str(finbi_home)), engine=engine)


def write_curated(catalog: DuckDBCatalog, day: str, name: str, uploads: dict[str, int]) -> None:
    """A curated interactions file holding `rows` rows of each upload, as the merge writes."""
    folder = catalog.lake.root / "curated" / "interactions" / f"event_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = " UNION ALL ".join(
        f"SELECT 'u' || i AS user_id, 'i' AS item_id, 'VIEW' AS event_type, "
        f"TIMESTAMP '{day} 12:00' AS event_time, 'web' AS source, '{upload}' AS upload_id "
        f"FROM range({n}) AS t(i)"
        for upload, n in uploads.items()
    )
    with catalog.engine.connect() as con:
        con.execute(f"COPY ({rows}) TO '{folder / name}' (FORMAT parquet)")


def counts(catalog: DuckDBCatalog) -> dict:
    catalog.register_table(TABLES["interactions"])
    with catalog.engine.connect() as con:
        return upload_row_counts(con, ["interactions"])


def test_counts_per_upload_across_day_folders(catalog):
    write_curated(catalog, "2025-04-10", "a.parquet", {UPLOAD_A: 3})
    write_curated(catalog, "2025-04-11", "a.parquet", {UPLOAD_A: 2})
    write_curated(catalog, "2025-04-11", "b.parquet", {UPLOAD_B: 4})
    assert counts(catalog) == {("interactions", UPLOAD_A): 5, ("interactions", UPLOAD_B): 4}


def test_a_file_with_two_uploads_is_counted_row_by_row(catalog):
    write_curated(catalog, "2025-04-10", "ab.parquet", {UPLOAD_A: 3, UPLOAD_B: 1})
    assert counts(catalog) == {("interactions", UPLOAD_A): 3, ("interactions", UPLOAD_B): 1}


def test_no_curated_files_means_no_uploads(catalog):
    write_curated(catalog, "2025-04-10", "a.parquet", {UPLOAD_A: 3})
    assert counts(catalog)
    day = catalog.lake.root / "curated" / "interactions" / "event_date=2025-04-10"
    (day / "a.parquet").unlink()
    assert counts(catalog) == {}


def other_uploads(catalog: DuckDBCatalog, upload_ids: list[str]) -> tuple[str, list]:
    catalog.register_table(TABLES["interactions"])
    with catalog.engine.connect() as con:
        sql = rows_of_other_uploads(con, "interactions", upload_ids, "event_date >= '2025-04-11'")
        rows = con.execute(f"SELECT upload_id, user_id FROM ({sql}) ORDER BY ALL").fetchall()
    return sql, rows


def test_other_uploads_rows_leave_the_uploads_files_out(catalog):
    write_curated(catalog, "2025-04-10", "a.parquet", {UPLOAD_A: 1})
    write_curated(catalog, "2025-04-11", "a.parquet", {UPLOAD_A: 2})
    write_curated(catalog, "2025-04-11", "b.parquet", {UPLOAD_B: 3})
    sql, rows = other_uploads(catalog, [UPLOAD_B])
    assert rows == [(UPLOAD_A, "u0"), (UPLOAD_A, "u1")]
    assert "upload_id NOT IN" not in sql  # by file name, not by testing every row
    _, rows = other_uploads(catalog, [UPLOAD_A, UPLOAD_B])
    assert rows == []


def test_other_uploads_rows_are_tested_one_by_one_when_a_file_holds_two_uploads(catalog):
    write_curated(catalog, "2025-04-11", "ab.parquet", {UPLOAD_A: 1, UPLOAD_B: 2})
    write_curated(catalog, "2025-04-11", "b.parquet", {UPLOAD_B: 1})
    sql, rows = other_uploads(catalog, [UPLOAD_B])
    assert rows == [(UPLOAD_A, "u0")]
    assert "upload_id NOT IN" in sql


def of_uploads(catalog: DuckDBCatalog, upload_ids: list[str]) -> tuple[str, list]:
    catalog.register_table(TABLES["interactions"])
    with catalog.engine.connect() as con:
        sql = rows_of_uploads(con, "interactions", upload_ids)
        rows = con.execute(f"SELECT upload_id, count(*) FROM ({sql}) GROUP BY 1 ORDER BY 1")
        return sql, rows.fetchall()


def test_rows_of_several_uploads_are_read_from_their_files(catalog):
    write_curated(catalog, "2025-04-10", "a.parquet", {UPLOAD_A: 1})
    write_curated(catalog, "2025-04-11", "a.parquet", {UPLOAD_A: 2})
    write_curated(catalog, "2025-04-11", "b.parquet", {UPLOAD_B: 3})
    write_curated(catalog, "2025-04-11", "c.parquet", {UPLOAD_C: 4})
    sql, rows = of_uploads(catalog, [UPLOAD_A, UPLOAD_B])
    assert rows == [(UPLOAD_A, 3), (UPLOAD_B, 3)]
    assert "file_name IN" in sql  # several uploads: by file, not by every stored upload_id
    sql, rows = of_uploads(catalog, [UPLOAD_C])
    assert rows == [(UPLOAD_C, 4)]
    assert of_uploads(catalog, ["raw/interactions/gone.csv@v9", "raw/x.csv@v1"])[1] == []


def test_rows_of_several_uploads_are_read_row_by_row_when_a_file_holds_two(catalog):
    write_curated(catalog, "2025-04-11", "ab.parquet", {UPLOAD_A: 1, UPLOAD_B: 2})
    write_curated(catalog, "2025-04-11", "c.parquet", {UPLOAD_C: 4})
    sql, rows = of_uploads(catalog, [UPLOAD_B, UPLOAD_C])
    assert rows == [(UPLOAD_B, 2), (UPLOAD_C, 4)]
    assert "upload_id IN" in sql


def test_without_the_catalogs_views_rows_are_told_apart_by_upload_id(finbi_home):
    engine = DuckDBEngine(home=str(finbi_home))
    with engine.connect() as con:
        create_catalog_tables(con)
        for user, upload in (("u1", UPLOAD_A), ("u2", UPLOAD_B)):
            con.execute(
                "INSERT INTO interactions VALUES (?, 'i1', 'VIEW', TIMESTAMP '2025-04-11 12:00',"
                " DATE '2025-04-11', 'web', ?)",
                [user, upload],
            )

        def users(sql: str) -> list[str]:
            return [u for (u,) in con.execute(f"SELECT user_id FROM ({sql}) ORDER BY 1").fetchall()]

        assert users(rows_of_uploads(con, "interactions", [])) == []
        assert users(rows_of_uploads(con, "interactions", [UPLOAD_A, UPLOAD_B])) == ["u1", "u2"]
        assert users(rows_of_other_uploads(con, "interactions", [], "TRUE")) == ["u1", "u2"]
        assert users(rows_of_other_uploads(con, "interactions", [UPLOAD_A], "TRUE")) == ["u2"]


def test_a_catalog_from_before_the_rows_view_is_read_row_by_row(catalog):
    write_curated(catalog, "2025-04-11", "a.parquet", {UPLOAD_A: 1})
    write_curated(catalog, "2025-04-11", "b.parquet", {UPLOAD_B: 2})
    catalog.register_table(TABLES["interactions"])
    with catalog.engine.connect() as con:
        con.execute("DROP VIEW finbi_state.interactions_rows")
        several = rows_of_uploads(con, "interactions", [UPLOAD_A, UPLOAD_B])
        others = rows_of_other_uploads(con, "interactions", [UPLOAD_A], "TRUE")
        assert "upload_id IN" in several and "upload_id NOT IN" in others
        assert con.execute(f"SELECT count(*) FROM ({several})").fetchone() == (3,)
        assert con.execute(f"SELECT count(*) FROM ({others})").fetchone() == (2,)
