"""The BI publisher: refreshes the dashboard's datasets from the analytics tables.

`BIPublisher` is the interface; `LocalDashboardPublisher` builds the serving extract the
Streamlit dashboard reads and swaps it in atomically. The QuickSight implementation
(SPICE ingestions) lives in `quicksight.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

from finbi_pipeline.metadata import markdown_table
from finbi_pipeline.resources.engine import DuckDBEngine


class BIPublisher(dg.ConfigurableResource, ABC):
    """Refreshes the dashboard's datasets and waits (bounded) for the refresh to finish."""

    @abstractmethod
    def refresh(self, context: dg.AssetExecutionContext) -> dict:
        """Refresh every dashboard dataset; return metadata (location, refresh time, …)."""


class LocalDashboardPublisher(BIPublisher):
    """Writes `<home>/dashboard/serving.duckdb` for the Streamlit dashboard."""

    home: str
    engine: DuckDBEngine

    def refresh(self, context: dg.AssetExecutionContext) -> dict:
        from finbi_pipeline.dashboard.extract import build_serving_extract

        with self.engine.connect() as con:
            built = build_serving_extract(con, Path(self.home).resolve() / "dashboard")
        counts = built.pop("row_counts")
        return {
            **built,
            "location": dg.MetadataValue.path(built.pop("path")),
            "dagster/row_count": sum(counts.values()),
            "row_counts": dg.MetadataValue.json(counts),
            "preview": markdown_table(("serving table", "rows"), list(counts.items())),
        }
