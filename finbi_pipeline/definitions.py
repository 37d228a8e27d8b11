"""FinBI's code location: every asset, check, job, sensor, schedule and resource.

`FINBI_TARGET` (local | aws, default local) picks the resources once, when Dagster loads
the definitions; no asset branches on it.
"""

from __future__ import annotations

import os

import dagster as dg

from finbi_pipeline.assets.analytics import analytics_assets
from finbi_pipeline.assets.catalog import catalog_data_quality, catalog_interactions, catalog_sales
from finbi_pipeline.assets.curated import curated_interactions, curated_sales
from finbi_pipeline.assets.dashboard import dashboard_dataset
from finbi_pipeline.assets.raw import raw_uploads
from finbi_pipeline.checks import kpi_summary_consistent
from finbi_pipeline.jobs import ingest_job, refresh_job
from finbi_pipeline.resources import build_resources
from finbi_pipeline.schedules import daily_refresh_schedule
from finbi_pipeline.sensors import build_new_upload_sensor


@dg.definitions
def defs() -> dg.Definitions:
    target = os.environ.get("FINBI_TARGET", "local")
    # Locally the sensor runs from the start, so `dagster dev` reacts to uploads unclicked.
    sensor_status = (
        dg.DefaultSensorStatus.RUNNING if target == "local" else dg.DefaultSensorStatus.STOPPED
    )
    return dg.Definitions(
        assets=[
            raw_uploads,
            curated_interactions,
            curated_sales,
            catalog_interactions,
            catalog_sales,
            catalog_data_quality,
            *analytics_assets,
            dashboard_dataset,
        ],
        asset_checks=[kpi_summary_consistent],
        jobs=[ingest_job, refresh_job],
        sensors=[build_new_upload_sensor(sensor_status)],
        schedules=[daily_refresh_schedule],
        resources=build_resources(target),
        # Steps run one after another in the run's process: the local warehouse is a single
        # DuckDB file with one writer, and Athena does its own parallelism on AWS.
        executor=dg.in_process_executor,
    )
