"""`finbi run`'s summary (finbi_pipeline/runner.py)."""

import dagster as dg

from finbi_pipeline.runner import _error_text


def test_a_step_that_ran_out_of_retries_is_reported_with_its_cause():
    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
    def locked():
        raise RuntimeError("Could not set lock on file warehouse.duckdb: Conflicting lock")

    result = dg.materialize([locked], raise_on_error=False)

    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert _error_text(failure.event_specific_data.error) == (
        "Exceeded max_retries of 1 "
        "(RuntimeError: Could not set lock on file warehouse.duckdb: Conflicting lock)"
    )
