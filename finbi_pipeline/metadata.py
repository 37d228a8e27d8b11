"""Asset metadata in the shapes the Dagster UI renders: row counts, schemas, previews."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from tabulate import tabulate

from finbi_pipeline.resources.engine import QueryResult


def column_schema(columns: dict[str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(kind)) for name, kind in columns.items()]
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> dg.MarkdownMetadataValue:
    """A Markdown table of a few rows (the UI's "first rows" view)."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(tabulate(rows, headers=list(columns), tablefmt="pipe"))


def markdown_preview(result: QueryResult) -> dg.MarkdownMetadataValue:
    return markdown_table(result.columns, result.rows)


def table_metadata(
    row_count: int, columns: dict[str, str], preview: QueryResult, location: str
) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(int(row_count)),
        "dagster/column_schema": column_schema(columns),
        "preview": markdown_preview(preview),
        "location": dg.MetadataValue.text(location),
    }
