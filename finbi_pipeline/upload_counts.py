"""Rows per upload in the catalog tables: how refreshes tell what is new, and read it.

An upload's curated rows never change once merged (a new version of a key is a new
`upload_id`), so comparing these counts with what a table was built from tells which
uploads were added, replaced or removed since. Each curated file holds one upload, so the
local catalog's views over the files (their footers, and their rows by file name) give the
counts, and the new (or the other) uploads' rows, without testing every stored row.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from finbi_pipeline.sql_templates import literal

KINDS = ("interactions", "sales")


def rows_of_uploads(con: duckdb.DuckDBPyConnection, kind: str, upload_ids: list[str]) -> str:
    """A query (DuckDB) for the rows of `finbi.<kind>` these uploads added.

    For one upload DuckDB skips the other files by their upload_id statistics; for several
    it reads every stored upload_id (1.2 s instead of 37 ms for two uploads among 100M
    rows), so their files are then read by name where the footers allow (`_files_of`).
    """
    if not upload_ids:
        return f"SELECT * FROM finbi.{kind} WHERE FALSE"
    files = _files_of(con, kind, upload_ids) if len(upload_ids) > 1 else None
    if files is None:
        return f"SELECT * FROM finbi.{kind} WHERE upload_id IN ({quoted(upload_ids)})"
    if not files:
        return f"SELECT * FROM finbi.{kind} WHERE FALSE"
    return (
        f"SELECT * EXCLUDE (file_name) FROM {rows_by_file_view(kind)} "
        f"WHERE file_name IN ({quoted(files)})"
    )


def rows_of_other_uploads(
    con: duckdb.DuckDBPyConnection, kind: str, upload_ids: list[str], where: str
) -> str:
    """A query (DuckDB) for the rows of `finbi.<kind>` matching `where` that these uploads
    did not add.

    The uploads' files are left out by name where the footers allow (`_files_of`): DuckDB
    then skips them whole. Testing every stored row's upload_id cost a third of
    `daily_events`' probe at 100M rows.
    """
    if not upload_ids:
        return f"SELECT * FROM finbi.{kind} WHERE ({where})"
    files = _files_of(con, kind, upload_ids)
    if files is None:
        return (
            f"SELECT * FROM finbi.{kind} WHERE ({where}) "
            f"AND upload_id NOT IN ({quoted(upload_ids)})"
        )
    skip = f" AND file_name NOT IN ({quoted(files)})" if files else ""
    return f"SELECT * EXCLUDE (file_name) FROM {rows_by_file_view(kind)} WHERE ({where}){skip}"


def _files_of(con: duckdb.DuckDBPyConnection, kind: str, upload_ids: list[str]) -> list[str] | None:
    """The curated files holding these uploads' rows, by the names `rows_by_file_view` gives
    them; None where the catalog keeps no such views, or a file's footer does not name
    exactly one upload (then only the rows can tell)."""
    footers = _single_upload_footers(con, kind)
    if footers is None or not view_exists(con, rows_by_file_view(kind)):
        return None
    wanted = set(upload_ids)
    return [name for name, upload_id, _ in footers if upload_id in wanted]


def _single_upload_footers(
    con: duckdb.DuckDBPyConnection, kind: str
) -> list[tuple[str, str, int]] | None:
    """(file name, upload_id, rows) of every curated `kind` file, from the footers the local
    catalog keeps; None without them, or if a file's upload_id statistics are missing or
    span two values (long ids' statistics are truncated, for one)."""
    if not view_exists(con, upload_files_view(kind)):
        return None
    footers = con.execute(
        f"SELECT file_name, first_upload_id, last_upload_id, rows FROM {upload_files_view(kind)} "
        "ORDER BY file_name"
    ).fetchall()
    if any(first is None or first != last for _, first, last, _ in footers):
        return None
    return [(name, upload_id, int(rows)) for name, upload_id, _, rows in footers]


def quoted(values: Iterable[str]) -> str:
    """String literals, comma-separated."""
    return ", ".join(literal(value) for value in values)


def upload_files_view(kind: str) -> str:
    """The view the local catalog keeps over the curated `kind` files' Parquet footers."""
    return f"finbi_state.{kind}_files"


def rows_by_file_view(kind: str) -> str:
    """The view the local catalog keeps over the curated `kind` rows with the name of the
    file each is from (`file_name`, as in `upload_files_view`)."""
    return f"finbi_state.{kind}_rows"


def upload_files_sql(glob: str) -> str:
    """Per curated file under `glob`: its upload_id statistics (min, max) and row count,
    from the Parquet footers alone."""
    return (
        "SELECT file_name, min(stats_min_value) AS first_upload_id, "
        "max(stats_max_value) AS last_upload_id, sum(row_group_num_rows) AS rows "
        f"FROM parquet_metadata('{glob}') WHERE path_in_schema = 'upload_id' GROUP BY file_name"
    )


def upload_row_counts(con: duckdb.DuckDBPyConnection, kinds) -> dict[tuple[str, str], int]:
    """{(kind, upload_id): rows} over the catalog tables `kinds`.

    Each curated file holds the rows of one upload, so where the catalog keeps the files'
    footers (`upload_files_view`) the counts come from them: the cost grows with files, not
    rows (8 ms instead of 25 ms at 10M rows). Otherwise, or if a file's upload_id statistics
    are missing or span two values, the rows are counted.
    """
    current: dict[tuple[str, str], int] = {}
    for kind in kinds:
        footers = _single_upload_footers(con, kind)
        if footers is None:
            counts = con.execute(
                f"SELECT upload_id, count(*) FROM finbi.{kind} GROUP BY upload_id"
            ).fetchall()
            current.update({(kind, upload_id): int(rows) for upload_id, rows in counts})
            continue
        for _, upload_id, rows in footers:
            current[(kind, upload_id)] = current.get((kind, upload_id), 0) + rows
    return current


def view_exists(con: duckdb.DuckDBPyConnection, qualified_name: str) -> bool:
    """Whether the view `schema.name` exists."""
    schema, name = qualified_name.split(".")
    (found,) = con.execute(
        "SELECT count(*) FROM duckdb_views() "
        f"WHERE schema_name = {literal(schema)} AND view_name = {literal(name)}"
    ).fetchone()
    return bool(found)


def uploads_values(uploads: dict[tuple[str, str], int]) -> str:
    """`upload_row_counts` as a query of (kind, upload_id, rows): one statement however many
    uploads (`executemany` costs about 1 ms a row)."""

    kinds, upload_ids = zip(*uploads, strict=True) if uploads else ((), ())
    return (
        f"SELECT unnest([{quoted(kinds)}]::VARCHAR[]) AS kind, "
        f"unnest([{quoted(upload_ids)}]::VARCHAR[]) AS upload_id, "
        f"unnest([{', '.join(map(str, uploads.values()))}]::BIGINT[]) AS rows"
    )
