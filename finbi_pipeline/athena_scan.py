"""What a query would scan on Athena, estimated locally from the curated files' footers.

Athena bills the Parquet column chunks a query reads: only the columns it references, in
the files of the partitions it reads (every partition, for the analytics tables, which
Athena rebuilds by CTAS). Locally the curated tables are the very Parquet files Athena would
read, so their footers tell what the same SQL would cost there; the local catalog keeps a
view of bytes per column over them (`column_bytes_view`). `bench/bench_athena_bytes.py`
compares the estimate with what the same queries would scan over the raw CSVs.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from finbi_pipeline.sql_templates import literal
from finbi_pipeline.upload_counts import view_exists


def column_bytes_view(kind: str) -> str:
    """The view the local catalog keeps over the curated `kind` files' column chunks."""
    return f"finbi_state.{kind}_column_bytes"


def column_bytes_sql(glob: str) -> str:
    """Compressed bytes per column over the Parquet files under `glob`, from footers."""
    return (
        "SELECT path_in_schema AS column_name, sum(total_compressed_size)::BIGINT AS bytes "
        f"FROM parquet_metadata('{glob}') GROUP BY path_in_schema"
    )


def referenced_columns(
    sql: str, dialect: str, schemas: dict[str, list[str]]
) -> dict[str, set[str]]:
    """{table: columns} that `sql` reads, for the tables in `schemas` ({table: columns}).

    A table read without naming a column (`COUNT(*)`) maps to an empty set.
    """
    frozen = tuple(sorted((table, tuple(columns)) for table, columns in schemas.items()))
    return {table: set(columns) for table, columns in _referenced(sql, dialect, frozen).items()}


@cache
def _referenced(sql: str, dialect: str, schemas: tuple) -> dict[str, frozenset[str]]:
    tree = sqlglot.parse_one(sql, read=dialect)
    for table in tree.find_all(exp.Table):  # finbi.interactions -> interactions
        if table.db == "finbi":
            table.set("db", None)
    tree = qualify(
        tree,
        schema={table: {column: "VARCHAR" for column in columns} for table, columns in schemas},
        dialect=dialect,
        validate_qualify_columns=False,
    )
    names = {table for table, _ in schemas}
    used: dict[str, set[str]] = defaultdict(set)
    for scope in traverse_scope(tree):
        for column in scope.columns:
            source = scope.sources.get(column.table)
            if isinstance(source, exp.Table) and source.name in names:
                used[source.name].add(column.name)
        for source in scope.sources.values():  # COUNT(*) still reads the table
            if isinstance(source, exp.Table) and source.name in names:
                used[source.name]
    return {table: frozenset(columns) for table, columns in used.items()}


def estimate_scan(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, list[str]]:
    """The bytes Athena would scan to run `sql` (Athena text) over the curated tables, and
    the `finbi` tables it also reads whose size this cannot tell (analytics tables: DuckDB
    tables locally, Parquet written by CTAS on Athena)."""
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'finbi' ORDER BY table_name, ordinal_position"
    ).fetchall()
    schemas: dict[str, list[str]] = defaultdict(list)
    for table, column in rows:
        schemas[table].append(column)
    scanned, uncounted = 0, []
    for table, columns in sorted(referenced_columns(sql, "athena", schemas).items()):
        view = column_bytes_view(table)
        if not view_exists(con, view):
            uncounted.append(table)
            continue
        if columns:  # COUNT(*) alone: Athena answers from the footers (no column chunk)
            (bytes_,) = con.execute(
                f"SELECT coalesce(sum(bytes), 0) FROM {view} WHERE column_name IN "
                f"({', '.join(literal(column) for column in sorted(columns))})"
            ).fetchone()
            scanned += int(bytes_)
    return scanned, uncounted
