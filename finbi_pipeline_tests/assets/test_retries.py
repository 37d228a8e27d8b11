"""A passing fault in an idempotent step is retried, and the run still succeeds; an error
that a retry would meet again fails the step at once; an interruption stops the run."""

import os
import signal
import threading
import time
from pathlib import Path

import botocore.exceptions
import dagster as dg
import duckdb
import pytest

import finbi_pipeline.resources.aws  # noqa: F401 - as on the AWS target, where it is loaded
from finbi_pipeline.assets import curated, retries
from finbi_pipeline.assets.analytics import analytics_assets
from finbi_pipeline.assets.dashboard import dashboard_dataset
from finbi_pipeline.assets.retries import is_permanent
from finbi_pipeline.resources import engine as engine_module
from finbi_pipeline.resources.athena_engine import AthenaQueryError, AthenaWorkgroupError
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.publisher import BIPublisher
from finbi_pipeline.runner import run_pipeline
from finbi_pipeline_tests.conftest import SAMPLE


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch):
    """The same retries, without the 10 s waits between them."""
    monkeypatch.setattr(retries, "IDEMPOTENT_STEP_RETRY", dg.RetryPolicy(max_retries=2))


def _client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Call")


def _count_attempt(marker: str) -> int:
    """One more "x" in the marker file; how many attempts it now records."""
    attempts = Path(marker)
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    return len(attempts.read_text())


class FailsOncePublisher(BIPublisher):
    """Fails its first refresh, as a throttled or briefly unavailable BI service would."""

    marker: str

    def refresh(self, context) -> dict:
        attempt = _count_attempt(self.marker)
        if attempt == 1:
            raise ConnectionError("BI service briefly unavailable")
        return {"attempts": attempt}


def test_dashboard_refresh_is_retried_after_a_passing_fault(tmp_path, instance):
    marker = tmp_path / "attempts"

    result = dg.materialize(
        [dashboard_dataset],
        resources={"publisher": FailsOncePublisher(marker=str(marker))},
        instance=instance,
    )

    assert result.success
    assert marker.read_text() == "xx"
    (materialization,) = result.asset_materializations_for_node("dashboard_dataset")
    assert materialization.metadata["attempts"].value == 2


class DeniedPublisher(BIPublisher):
    """A BI service that refuses the credentials: every attempt would be refused."""

    marker: str

    def refresh(self, context) -> dict:
        _count_attempt(self.marker)
        raise _client_error("AccessDeniedException")


def _retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(event.event_type_value == "STEP_UP_FOR_RETRY" for event in result.all_events)


def test_a_refused_permission_fails_the_step_at_once(tmp_path, instance):
    marker = tmp_path / "attempts"
    result = dg.materialize(
        [dashboard_dataset],
        resources={"publisher": DeniedPublisher(marker=str(marker))},
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success
    assert marker.read_text() == "x" and _retries(result) == 0
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "AccessDeniedException" in failure.event_specific_data.error.message
    assert "not retried" in failure.event_specific_data.error.message


def test_a_missing_table_fails_an_analytics_step_at_once(finbi_home, instance):
    # Nothing was ever ingested: the catalog has no `interactions` table to aggregate.
    (event_counts,) = [a for a in analytics_assets if a.key.path == ["event_counts_by_type"]]
    result = dg.materialize(
        [event_counts],
        resources={"engine": DuckDBEngine(home=str(finbi_home))},
        instance=instance,
        raise_on_error=False,
    )

    assert not result.success and _retries(result) == 0
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "CatalogException" in failure.event_specific_data.error.message


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (duckdb.CatalogException("Table with name interactions does not exist!"), True),
        (duckdb.BinderException('Referenced column "nope" not found'), True),
        (duckdb.ConversionException("Could not convert string 'x' to INT64"), True),
        (duckdb.IOException('Could not set lock on file "warehouse.duckdb"'), False),
        (duckdb.OutOfMemoryException("could not allocate block of size 256 KiB"), False),
        (duckdb.TransactionException("Catalog write-write conflict"), False),
        (ConnectionError("reset by peer"), False),
        (AthenaQueryError("q1", "FAILED", "TABLE_NOT_FOUND", "SELECT 1", retryable=False), True),
        (AthenaQueryError("q1", "FAILED", "internal error", "SELECT 1", retryable=True), False),
        (AthenaQueryError("q1", "CANCELLED", "no reason given", "SELECT 1"), False),
        (AthenaWorkgroupError("workgroup overrides client-side settings"), True),
        (_client_error("AccessDeniedException"), True),
        (_client_error("EntityNotFoundException"), True),
        (_client_error("ThrottlingException"), False),
        (_client_error("ConcurrentModificationException"), False),
        (_client_error("InternalServerException"), False),
        (botocore.exceptions.NoCredentialsError(), True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_which_errors_a_retry_would_meet_again(error, permanent):
    assert is_permanent(error) is permanent


def _events(instance: dg.DagsterInstance, event_type: str) -> list:
    (run,) = instance.get_runs()
    return [
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == event_type
    ]


def test_a_passing_fault_in_any_idempotent_step_is_retried(land, instance, monkeypatch):
    """Catalog and analytics steps each fail once (the warehouse briefly locked while they
    read their table's preview), are run again, and the run succeeds."""
    land("interactions", SAMPLE / "interactions.csv")
    land("sales", SAMPLE / "sales.csv")
    fetch, failed = DuckDBEngine.fetch, set()

    def locked_once(self, sql):
        if sql.endswith("LIMIT 10") and sql not in failed:
            failed.add(sql)
            raise duckdb.IOException('Could not set lock on file "warehouse.duckdb"')
        return fetch(self, sql)

    monkeypatch.setattr(DuckDBEngine, "fetch", locked_once)

    assert run_pipeline(instance=instance).success
    retried = {e.step_key for e in _events(instance, "STEP_UP_FOR_RETRY")}
    assert retried == {
        "catalog_interactions",
        "catalog_sales",
        "catalog_data_quality",
        *(a.op.name for a in analytics_assets),
    }


def _sigterm_soon() -> None:
    """SIGTERM for this process in 0.2 s, as `kill` (or Ctrl-C, which Dagster handles
    alike) would send it."""
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()


def _interrupted_wait(*args, **kwargs):
    """A wait of up to 30 s (a long statement), interrupted 0.2 s into it."""
    _sigterm_soon()
    time.sleep(30)


def _assert_stopped_at_one_step(instance, summary, steps) -> str:
    """The run failed at one of `steps`, as interrupted, retried nothing and started no step
    after it."""
    assert not summary.success
    (failure,) = summary.failures
    step, reason = failure.split(": ", 1)
    assert step in steps and reason.startswith("interrupted (Ctrl-C or SIGTERM)")
    assert _events(instance, "STEP_UP_FOR_RETRY") == []
    assert _events(instance, "STEP_START")[-1].step_key == step
    return step


def test_an_interrupted_analytics_step_is_not_retried_and_stops_the_run(
    land, instance, monkeypatch
):
    land("interactions", SAMPLE / "interactions.csv")
    land("sales", SAMPLE / "sales.csv")
    monkeypatch.setattr(engine_module, "refresh_table", _interrupted_wait)

    summary = run_pipeline(instance=instance)

    # The analytics steps do not depend on each other: a failed one would leave the others
    # to run; an interrupted one stops them all.
    _assert_stopped_at_one_step(instance, summary, {a.op.name for a in analytics_assets})


def test_an_interrupted_ingestion_step_stops_the_run_and_the_next_run_does_the_rest(
    land, instance, monkeypatch
):
    land("interactions", SAMPLE / "interactions.csv")
    land("sales", SAMPLE / "sales.csv")
    merge_staged = curated.merge_staged
    monkeypatch.setattr(curated, "merge_staged", _interrupted_wait)

    summary = run_pipeline(instance=instance)

    _assert_stopped_at_one_step(instance, summary, {"curated_interactions", "curated_sales"})
    monkeypatch.setattr(curated, "merge_staged", merge_staged)
    again = run_pipeline(instance=instance)
    assert again.success and again.uploads == 2
    assert again.rows["read"] == again.rows["accepted"] + again.rows["duplicate"] > 0


def test_an_interrupt_that_duckdb_reports_as_an_error_is_raised_as_the_interrupt():
    # What DuckDB raises when a signal stops its statement (seen with duckdb 1.5): the
    # interrupt is only the cause of a RuntimeError, which a step would take for a fault.
    with pytest.raises(dg.DagsterExecutionInterruptedError), retries.interruptions_stop_the_run():
        try:
            raise dg.DagsterExecutionInterruptedError()
        except dg.DagsterExecutionInterruptedError as interrupt:
            raise RuntimeError("Query interrupted") from interrupt
    with pytest.raises(RuntimeError, match="no interrupt"), retries.interruptions_stop_the_run():
        raise RuntimeError("no interrupt here")
