"""Asset metadata in the shapes the Dagster UI renders: row counts, schemas, previews."""

from __future__ import annotations

import dagster as dg
import pandas as pd


def column_schema(columns: dict[str, str]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(kind)) for name, kind in columns.items()]
    )


def markdown_preview(frame: pd.DataFrame) -> dg.MarkdownMetadataValue:
    """A Markdown table of a small result (the UI's "first rows" view)."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(frame.to_markdown(index=False))


def table_metadata(
    row_count: int, columns: dict[str, str], preview: pd.DataFrame, location: str
) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(int(row_count)),
        "dagster/column_schema": column_schema(columns),
        "preview": markdown_preview(preview),
        "location": dg.MetadataValue.text(location),
    }
