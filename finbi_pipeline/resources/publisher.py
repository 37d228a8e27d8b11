"""The BI publisher: refreshes the dashboard's datasets from the analytics tables.

`BIPublisher` is the interface; `LocalDashboardPublisher` builds the serving extract the
Streamlit dashboard reads and swaps it in atomically. The QuickSight implementation
(SPICE ingestions) lives in `quicksight.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

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
            return build_serving_extract(con, Path(self.home).resolve() / "dashboard")
