"""A passing fault in an idempotent step is retried, and the run still succeeds; an error
that a retry would meet again fails the step at once."""

from pathlib import Path

import botocore.exceptions
import dagster as dg
import duckdb
import pytest

import finbi_pipeline.resources.aws  # noqa: F401 - as on the AWS target, where it is loaded
from finbi_pipeline.assets.analytics import analytics_assets
from finbi_pipeline.assets.dashboard import dashboard_dataset
from finbi_pipeline.assets.retries import is_permanent
from finbi_pipeline.resources.athena_engine import AthenaQueryError, AthenaWorkgroupError
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.publisher import BIPublisher


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
