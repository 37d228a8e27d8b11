"""Blocking check on the KPI table: non-empty and internally consistent before the
dashboard is refreshed. (Reconciliation and schema-contract checks are emitted by the
curated and catalog assets themselves.)"""

import dagster as dg

from finbi_pipeline.resources.engine import QueryEngine
from finbi_pipeline.sql_templates import sql_file


@dg.asset_check(asset="kpi_summary", blocking=True)
def kpi_summary_consistent(engine: QueryEngine) -> dg.AssetCheckResult:
    """One row, some activity, and every derived KPI equal to its definition."""
    problems = engine.fetch(sql_file("kpi_summary_consistency")).column("problem")
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": "; ".join(problems) or "none"}
    )
