"""daily_refresh_schedule: daily, in UTC, refreshing catalog → analytics → dashboard."""

import datetime as dt

import dagster as dg

from finbi_pipeline.definitions import defs
from finbi_pipeline.schedules import daily_refresh_schedule


def test_runs_once_a_day_in_utc():
    assert daily_refresh_schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
    )
    (request,) = list(daily_refresh_schedule.evaluate_tick(context).run_requests)
    assert request.job_name in (None, "refresh_job")
    ticks = daily_refresh_schedule.cron_schedule
    assert ticks == "0 3 * * *"


def test_refresh_job_covers_everything_but_the_raw_uploads():
    job = defs().resolve_job_def("refresh_job")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert "raw_uploads" not in keys
    assert {"catalog_interactions", "catalog_sales", "kpi_summary", "dashboard_dataset"} <= keys


def test_refresh_rebuilds_analytics_and_dashboard(land, instance, finbi_home):
    from finbi_pipeline.runner import run_pipeline
    from finbi_pipeline_tests.conftest import SAMPLE
    from finbi_pipeline_tests.test_definitions import kpi_row

    land("interactions", SAMPLE / "interactions.csv")
    assert run_pipeline(instance).success
    before = kpi_row(finbi_home)["refreshed_at"]
    extract = finbi_home / "dashboard" / "serving.duckdb"
    extract_before = extract.stat().st_mtime_ns

    result = defs().resolve_job_def("refresh_job").execute_in_process(instance=instance)

    assert result.success
    assert kpi_row(finbi_home)["refreshed_at"] > before
    assert extract.stat().st_mtime_ns > extract_before
