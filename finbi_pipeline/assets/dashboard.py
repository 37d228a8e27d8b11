"""The dashboard dataset: what the BI tool shows, refreshed from the analytics tables
(a serving extract for the local Streamlit dashboard; SPICE datasets on QuickSight)."""

import dagster as dg

from finbi_pipeline.assets.analytics import ANALYTICS_INPUTS
from finbi_pipeline.assets.retries import retried_on_passing_faults
from finbi_pipeline.resources.publisher import BIPublisher


@dg.asset(
    deps=[*ANALYTICS_INPUTS, "catalog_ingest_log", "catalog_quarantine"],
    group_name="dashboard",
    kinds={"dashboard"},
)
def dashboard_dataset(
    context: dg.AssetExecutionContext, publisher: BIPublisher
) -> dg.MaterializeResult:
    """Refreshes the dashboard's datasets; blocking checks upstream keep bad data out."""
    with retried_on_passing_faults(context):
        return dg.MaterializeResult(metadata=publisher.refresh(context))
