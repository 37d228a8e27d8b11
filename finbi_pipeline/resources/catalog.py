"""The data catalog: registers tables over the lake and keeps each table's schema history.

`Catalog` is the interface; `DuckDBCatalog` registers views in the warehouse and records
schemas in `finbi.schema_history`. The Glue implementation lives in `glue_catalog.py`.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import dagster as dg

from finbi_pipeline.athena_scan import column_bytes_sql, column_bytes_view
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.sql_templates import literal
from finbi_pipeline.upload_counts import rows_by_file_view, upload_files_sql, upload_files_view


@dataclass(frozen=True)
class TableSpec:
    """A table over lake objects: Parquet (optionally date-partitioned) or JSON lines."""

    name: str
    prefix: str  # lake key prefix, e.g. "curated/interactions/"
    columns: dict[str, str]  # contract columns and types, partition column included
    partition_column: str | None = None
    file_format: str = "parquet"  # parquet | json


@dataclass
class SchemaChange:
    """How a table's detected schema differs from the one recorded before."""

    current: dict[str, str]
    previous: dict[str, str] | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retyped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    @property
    def breaking(self) -> bool:
        """Removing or retyping a column breaks readers; adding one does not."""
        return bool(self.removed or self.retyped)

    def describe(self) -> str:
        if self.previous is None:
            return "first registration"
        if not self.changed:
            return "unchanged"
        parts = [
            f"{label}: {', '.join(cols)}"
            for label, cols in (
                ("added", self.added),
                ("removed", self.removed),
                ("retyped", self.retyped),
            )
            if cols
        ]
        return "; ".join(parts)


def diff_schemas(previous: dict[str, str] | None, current: dict[str, str]) -> SchemaChange:
    """Compare two {column: type} schemas."""
    if previous is None:
        return SchemaChange(current=current, previous=None)
    return SchemaChange(
        current=current,
        previous=previous,
        added=[c for c in current if c not in previous],
        removed=[c for c in previous if c not in current],
        retyped=[c for c in current if c in previous and previous[c] != current[c]],
    )


class Catalog(dg.ConfigurableResource, ABC):
    """Registers tables so the query engine can read them, and detects schema changes."""

    @abstractmethod
    def register_table(self, table: TableSpec) -> SchemaChange:
        """Create or update `table` from what is in the lake; return its schema change."""

    @abstractmethod
    def location(self, table: TableSpec) -> str:
        """Where the table's data lives."""


class DuckDBCatalog(Catalog):
    """Views in the warehouse over the lake folder, and a schema history table."""

    lake: LocalLake
    engine: DuckDBEngine

    def register_table(self, table: TableSpec) -> SchemaChange:
        has_files = any(True for _ in self.lake.list_objects(table.prefix))
        with self.engine.connect() as con:
            select = self._select(table, has_files)
            con.execute(f"CREATE OR REPLACE VIEW finbi.{table.name} AS {select}")
            self._register_upload_files(con, table, has_files)
            described = con.execute(f"DESCRIBE finbi.{table.name}").fetchall()
            current = {row[0]: row[1] for row in described}
            con.execute(
                "CREATE TABLE IF NOT EXISTS finbi.schema_history "
                "(table_name VARCHAR, columns JSON, detected_at TIMESTAMP)"
            )
            row = con.execute(
                "SELECT columns FROM finbi.schema_history "
                f"WHERE table_name = {literal(table.name)} ORDER BY detected_at DESC LIMIT 1"
            ).fetchone()
            change = diff_schemas(json.loads(row[0]) if row else None, current)
            if change.previous is None or change.changed:
                values = (table.name, json.dumps(current), dt.datetime.now(dt.UTC))
                con.execute(
                    "INSERT INTO finbi.schema_history VALUES "
                    f"({', '.join(literal(value) for value in values)})"
                )
        return change

    def location(self, table: TableSpec) -> str:
        return self.lake.uri(table.prefix)

    def _register_upload_files(self, con, table: TableSpec, has_files: bool) -> None:
        """For a curated table, views over its files' footers: rows per upload without
        reading the rows (`upload_counts.upload_row_counts`), and bytes per column, what
        Athena would scan (`athena_scan.estimate_scan`); and over its rows with the file
        each is from, so that a refresh can leave an upload's files out by name
        (`upload_counts.rows_of_other_uploads`)."""
        if not table.partition_column:
            return
        con.execute("CREATE SCHEMA IF NOT EXISTS finbi_state")
        files_view, bytes_view = upload_files_view(table.name), column_bytes_view(table.name)
        rows_view = rows_by_file_view(table.name)
        if not has_files:
            con.execute(f"DROP VIEW IF EXISTS {files_view}")
            con.execute(f"DROP VIEW IF EXISTS {rows_view}")
            con.execute(
                f"CREATE OR REPLACE VIEW {bytes_view} AS SELECT CAST(NULL AS VARCHAR) "
                "AS column_name, CAST(NULL AS BIGINT) AS bytes WHERE FALSE"
            )
            return
        glob = self._curated_glob(table)
        con.execute(f"CREATE OR REPLACE VIEW {files_view} AS {upload_files_sql(glob)}")
        con.execute(f"CREATE OR REPLACE VIEW {bytes_view} AS {column_bytes_sql(glob)}")
        con.execute(
            f"CREATE OR REPLACE VIEW {rows_view} AS SELECT {_contract_columns(table)}, "
            f"filename AS file_name FROM {self._curated_reader(table, file_name=True)}"
        )

    def _select(self, table: TableSpec, has_files: bool) -> str:
        if not has_files:
            columns = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in table.columns.items())
            return f"SELECT {columns} WHERE FALSE"
        root = self.lake.uri(table.prefix).replace("'", "''")
        if table.file_format == "json":
            reader = f"read_json('{root}/*/*.json', format = 'auto', union_by_name = true)"
        elif table.partition_column:
            reader = self._curated_reader(table)
        else:
            reader = f"read_parquet('{root}/*/*.parquet', union_by_name = true)"
        return f"SELECT {_contract_columns(table)} FROM {reader}"

    def _curated_glob(self, table: TableSpec) -> str:
        """Every file of a date-partitioned curated table, as a glob inside a SQL string.

        The footer views and the rows view read the same glob, so that the file names they
        give are the same strings."""
        root = self.lake.uri(table.prefix).replace("'", "''")
        return f"{root}/{table.partition_column}=*/*.parquet"

    def _curated_reader(self, table: TableSpec, file_name: bool = False) -> str:
        return (
            f"read_parquet('{self._curated_glob(table)}', hive_partitioning = true, "
            f"hive_types = {{'{table.partition_column}': DATE}}, union_by_name = true"
            f"{', filename = true' if file_name else ''})"
        )


def _contract_columns(table: TableSpec) -> str:
    """The contract's columns in the contract's order; new columns in the files show up in
    the detected schema through the catalog's schema history instead."""
    return ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in table.columns.items())
