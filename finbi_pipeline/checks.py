"""Blocking check on the KPI table: non-empty (while the current uploads hold rows) and
internally consistent before the dashboard is refreshed. (Reconciliation and
schema-contract checks are emitted by the curated and catalog assets themselves.)"""

import dagster as dg

from finbi_pipeline.assets.retries import interruptions_stop_the_run
from finbi_pipeline.resources.engine import QueryEngine
from finbi_pipeline.sql_templates import kpi_consistency_sql


# After every table it compares kpi_summary with, and the ingest log's table, which says
# whether the tables should hold anything.
@dg.asset_check(
    asset="kpi_summary",
    blocking=True,
    additional_deps=["catalog_ingest_log", "event_counts_by_type", "daily_sales"],
)
def kpi_summary_consistent(engine: QueryEngine) -> dg.AssetCheckResult:
    """One row, activity unless no current upload holds a row, and every derived KPI equal
    to its definition."""
    with interruptions_stop_the_run():
        problems = engine.fetch(kpi_consistency_sql()).column("problem")
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": "; ".join(problems) or "none"}
    )
