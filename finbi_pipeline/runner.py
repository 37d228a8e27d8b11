"""`finbi run`: ingest every pending upload and refresh everything, through Dagster.

It does in one process what the sensor and a run do under `dagster dev`: it adds the
landing zone's new uploads as partitions, then launches one run over the pending ones (or a
refresh run when nothing is pending) on the persistent Dagster instance, so the UI shows it.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from finbi_pipeline.abandoned_runs import fail_abandoned_runs, process_tags
from finbi_pipeline.ingest import ingest_log_key
from finbi_pipeline.money import format_money
from finbi_pipeline.resources import finbi_home, resolved_resources
from finbi_pipeline.sensors import RANGE_END_TAG, RANGE_START_TAG
from finbi_pipeline.sql_templates import render
from finbi_pipeline.uploads import list_uploads, outside_sources, uploads_partitions

DAGSTER_YAML = """\
# Written by FinBI. Runs are queued one at a time: they share the warehouse file.
run_queue:
  max_concurrent_runs: 1
telemetry:
  enabled: false
"""


@dataclass
class RunSummary:
    """What `finbi run` did: uploads, row counts, headline KPIs and failures."""

    success: bool
    uploads: int
    rows: dict[str, int] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to `$FINBI_HOME/dagster` (created with a dagster.yaml)."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path(finbi_home()) / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_pipeline(instance: dg.DagsterInstance | None = None, log_level: str = "INFO") -> RunSummary:
    """Ingest all pending uploads (one run) and refresh downstream; summarize the result."""
    from finbi_pipeline.definitions import defs as load_definitions

    if instance is None:
        dagster_home()
        instance = dg.DagsterInstance.get()
    defs = load_definitions()
    with resolved_resources(defs, "lake", "sources") as resources:
        lake = resources.lake
        declared = sorted(resources.sources.load())
        landed = list_uploads(lake, declared)
        pending = {u.partition_key for u in landed if lake.head(ingest_log_key(u)) is None}
        warnings = [
            f"{key}: not in a declared source's folder (raw/<source>/ for "
            f"{', '.join(declared)}): its files are not ingested (rows ingested from them "
            "while a source declared the folder stay in the tables)"
            for key in outside_sources(lake, declared)
        ]
    warnings += [
        f"run {run_id} was left started by a `finbi run` that was killed; marked failed"
        for run_id in fail_abandoned_runs(instance)
    ]
    known = set(instance.get_dynamic_partitions(uploads_partitions.name))
    instance.add_dynamic_partitions(
        uploads_partitions.name, [u.partition_key for u in landed if u.partition_key not in known]
    )
    # Pending partitions may not be contiguous: the range spans them, and re-staging an
    # already-ingested upload in between is idempotent.
    ordered = [k for k in instance.get_dynamic_partitions(uploads_partitions.name) if k in pending]
    if ordered:
        job = defs.resolve_job_def("ingest_job")
        tags = {RANGE_START_TAG: ordered[0], RANGE_END_TAG: ordered[-1]}
    else:
        job, tags = defs.resolve_job_def("refresh_job"), {}
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    run_id = str(uuid.uuid4())  # Dagster's own form of run id
    result = job.execute_in_process(
        run_config=run_config,
        instance=instance,
        run_id=run_id,
        tags={**tags, **process_tags(run_id)},
        raise_on_error=False,
    )
    summary = _summarize(result, len(ordered), defs)
    summary.warnings = warnings
    return summary


def _summarize(result, uploads: int, defs: dg.Definitions) -> RunSummary:
    failures = [
        f"{event.step_key}: {_error_text(event.event_specific_data.error)}"
        for event in result.all_events
        if event.is_step_failure
        # A blocking check's own failure is reported below, with what it found.
        and event.event_specific_data.error.cls_name != "DagsterAssetCheckFailedError"
    ]
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            check = event.asset_check_evaluation_data
            if not check.passed:
                found = "; ".join(f"{k}: {v.value}" for k, v in check.metadata.items())
                failures.append(
                    f"check {check.check_name} on {check.asset_key.to_user_string()} failed"
                    + (f": {found}" if found else "")
                )
    rows, kpis = {}, {}
    try:
        with resolved_resources(defs, "engine") as resources:
            log = resources.engine.fetch(
                "SELECT COALESCE(SUM(rows_read), 0) AS read,"
                " COALESCE(SUM(rows_accepted), 0) AS accepted,"
                " COALESCE(SUM(rows_duplicate), 0) AS duplicate,"
                " COALESCE(SUM(rows_quarantined), 0) AS quarantined"
                f" FROM ({render('ingest_log_current', ingest_log='ingest_log')}) AS log"
                " WHERE is_current"
            )
            kpi_rows = resources.engine.fetch("SELECT * FROM kpi_summary").records()
        rows = {k: int(v) for k, v in log.records()[0].items()}
        kpis = kpi_rows[0] if kpi_rows else {}
    except Exception as exc:  # noqa: BLE001 - a summary must not hide the run's own failure
        # After a failed run the tables may not exist yet (a first run that failed before
        # making them): the run's own failure, reported above, is what the user needs.
        if result.success:
            failures.append(f"summary unavailable: {exc}")
    success = result.success and not failures
    return RunSummary(success=success, uploads=uploads, rows=rows, kpis=kpis, failures=failures)


# How Dagster records a step stopped by Ctrl-C, SIGTERM or Terminate in the UI.
_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _error_text(error) -> str:
    """A step's error, with the first line of its root cause: a retried step's own error
    only says that it ran out of retries (`Exceeded max_retries of 2`)."""
    if error.cls_name in _INTERRUPTS:
        return (
            "interrupted (Ctrl-C or SIGTERM): the run stopped there; what it "
            "finished is kept, and the next `finbi run` does the rest"
        )
    text = error.message.strip()
    cause = error
    while cause.cause is not None:
        cause = cause.cause
    root = cause.message.strip().splitlines()[0] if cause is not error else ""
    return f"{text} ({root})" if root and root not in text else text


def format_summary(summary: RunSummary) -> str:
    """The text `finbi run` prints."""
    lines = [f"uploads ingested: {summary.uploads}"]
    if summary.rows:
        r = summary.rows
        lines.append(
            f"rows (current uploads): read {r['read']:,} = accepted {r['accepted']:,} + "
            f"duplicate {r['duplicate']:,} + quarantined {r['quarantined']:,}"
        )
    k = summary.kpis
    if k:
        rate = k.get("conversion_rate")
        rate_text = "n/a" if rate is None else f"{rate:.2%}"
        aov = k.get("average_order_value")
        lines += [
            f"views {k['total_views']:,} · add-to-carts {k['total_add_to_carts']:,} · "
            f"purchases {k['total_purchases']:,} · conversion {rate_text}",
            f"orders {k['orders']:,} · units {k['units']:,} · "
            f"gross {format_money(k['gross_revenue'])} · "
            f"returns {format_money(k['returns_value'])} · net {format_money(k['net_revenue'])} · "
            f"AOV {'n/a' if aov is None else format_money(aov)}",
        ]
    lines += [f"WARNING: {w}" for w in summary.warnings]
    lines += [f"FAILED: {f}" for f in summary.failures]
    lines.append("status: " + ("ok" if summary.success else "failed"))
    return "\n".join(lines)
