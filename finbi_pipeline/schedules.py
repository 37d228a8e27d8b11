"""The daily refresh, in UTC."""

from __future__ import annotations

import dagster as dg

from finbi_pipeline.jobs import refresh_job

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=refresh_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 03:00 UTC: catalog → analytics → dashboard.",
)
