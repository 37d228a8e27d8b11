"""The dashboard dataset: what the BI tool shows, refreshed from the analytics tables
(a serving extract for the local Streamlit dashboard; SPICE datasets on QuickSight)."""

import dagster as dg

from finbi_pipeline.assets.analytics import ANALYTICS_INPUTS
from finbi_pipeline.assets.retries import IDEMPOTENT_STEP_RETRY, permanent_errors_not_retried
from finbi_pipeline.resources.publisher import BIPublisher


@dg.asset(
    deps=[*ANALYTICS_INPUTS, "catalog_ingest_log", "catalog_quarantine"],
    group_name="dashboard",
    kinds={"dashboard"},
    retry_policy=IDEMPOTENT_STEP_RETRY,
)
def dashboard_dataset(
    context: dg.AssetExecutionContext, publisher: BIPublisher
) -> dg.MaterializeResult:
    """Refreshes the dashboard's datasets; blocking checks upstream keep bad data out."""
    with permanent_errors_not_retried():
        return dg.MaterializeResult(metadata=publisher.refresh(context))
