"""What the analytics SQL would scan on Athena, estimated from the curated files' footers:
the column chunks a query references, no more, checked against pyarrow's own reading of
the same footers."""

from __future__ import annotations

from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from finbi_pipeline.assets.catalog import TABLES
from finbi_pipeline.athena_scan import estimate_scan, referenced_columns
from finbi_pipeline.resources.catalog import DuckDBCatalog
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.sql_templates import sql_file


@pytest.fixture
def catalog(finbi_home) -> DuckDBCatalog:
    return DuckDBCatalog(
        lake=LocalLake(home=str(finbi_home)), engine=DuckDBEngine(home=str(finbi_home))
    )


def write_curated(catalog: DuckDBCatalog, day: str, rows: int) -> None:
    folder = catalog.lake.root / "curated" / "interactions" / f"event_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    select = (
        "SELECT 'user-' || (i % 97) AS user_id, 'item-' || i AS item_id, "
        "CASE WHEN i % 10 = 0 THEN 'PURCHASE' ELSE 'VIEW' END AS event_type, "
        f"TIMESTAMP '{day} 00:00' + INTERVAL (i) SECOND AS event_time, 'web' AS source, "
        f"'raw/interactions/{day}.csv@v1' AS upload_id FROM range({rows}) AS t(i)"
    )
    with catalog.engine.connect() as con:
        con.execute(f"COPY ({select}) TO '{folder}/{day}.parquet' (FORMAT parquet)")


def chunk_bytes(catalog: DuckDBCatalog) -> dict[str, int]:
    """{column: compressed bytes} over the curated files, read by pyarrow."""
    sizes: dict[str, int] = defaultdict(int)
    for path in (catalog.lake.root / "curated" / "interactions").rglob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        for group in range(meta.num_row_groups):
            for column in range(meta.num_columns):
                chunk = meta.row_group(group).column(column)
                sizes[chunk.path_in_schema] += chunk.total_compressed_size
    return sizes


def estimate(catalog: DuckDBCatalog, sql: str) -> tuple[int, list[str]]:
    with catalog.engine.connect() as con:
        con.execute("CREATE OR REPLACE TABLE finbi.user_activity AS SELECT 'u' AS user_id")
        return estimate_scan(con, sql)


def test_a_query_costs_the_column_chunks_it_references_in_every_file(catalog):
    write_curated(catalog, "2025-04-10", 5_000)
    write_curated(catalog, "2025-04-11", 3_000)
    catalog.register_table(TABLES["interactions"])
    sizes = chunk_bytes(catalog)

    by_type = "SELECT event_type, COUNT(*) AS n FROM interactions GROUP BY event_type"
    assert estimate(catalog, by_type) == (sizes["event_type"], [])
    per_user = sql_file("user_activity")  # the analytics SQL as Athena runs it
    read = {"user_id", "event_type", "event_time"}
    assert referenced_columns(per_user, "athena", {"interactions": list(sizes)}) == {
        "interactions": read
    }
    assert estimate(catalog, per_user) == (sum(sizes[c] for c in read), [])
    assert sum(sizes[c] for c in read) < sum(sizes.values())  # item_id, source, upload_id
    # Footers answer COUNT(*); the date partition column lives in the path.
    assert estimate(catalog, "SELECT COUNT(*) FROM interactions") == (0, [])
    assert estimate(catalog, "SELECT DISTINCT event_date FROM interactions") == (0, [])


def test_tables_without_footers_are_named_not_guessed(catalog):
    catalog.register_table(TABLES["interactions"])  # no files yet: nothing to scan

    assert estimate(catalog, "SELECT user_id FROM interactions") == (0, [])
    joined = "SELECT a.user_id FROM user_activity AS a JOIN interactions AS i USING (user_id)"
    assert estimate(catalog, joined) == (0, ["user_activity"])
