"""Asset metadata in the shapes the Dagster UI renders: row counts, schemas, previews."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import dagster as dg
from tabulate import tabulate

if TYPE_CHECKING:  # resources import this module
    from finbi_pipeline.resources.engine import QueryResult


def column_schema(columns: dict[str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(kind)) for name, kind in columns.items()]
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence]) -> dg.MarkdownMetadataValue:
    """A Markdown table of a few rows (the UI's "first rows" view).

    Values are written as stored: a DECIMAL(18,4) revenue reads 12441865.8100, not
    tabulate's 1.24419e+07 (money is exact until it is displayed as money). Numeric columns
    are right-aligned.
    """
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    cells = [["" if value is None else str(value) for value in row] for row in rows]
    align = [
        "right" if all(_is_number(row[i]) for row in rows if row[i] is not None) else "left"
        for i in range(len(columns))
    ]
    return dg.MetadataValue.md(
        tabulate(
            cells, headers=list(columns), tablefmt="pipe", disable_numparse=True, colalign=align
        )
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


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
