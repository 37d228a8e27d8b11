"""How steps meet errors: which are retried, which fail the step at once, and how an
interruption stops the run.

Catalog registration, analytics tables and the dashboard refresh replace what they write,
so a step that failed on a passing fault (Athena or QuickSight trouble that outlived
botocore's own retries, or the local warehouse locked by a concurrent run) is run again:
their bodies run inside `retried_on_passing_faults`, which asks Dagster for the retry
(`RetryRequested`, shown in the UI as the step going up for retry). An error that the same
step would meet again (a missing table or column, SQL that does not bind, a permission
refused, a failed Athena query that Athena itself calls not retryable) fails the step at
once instead of after half a minute of retries.
Ingestion steps are not retried: a retry would rescan the whole batch.

None of them carries a Dagster `RetryPolicy`: under the in-process executor a policy also
retries a step that was interrupted (Ctrl-C, SIGTERM, Terminate in the UI; dagster#15026),
so a stopped run went on. Every step runs inside `interruptions_stop_the_run` instead.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

# Not given to any asset (see the module's docstring): it says how many retries and how long
# each waits, through `calculate_delay`.
IDEMPOTENT_STEP_RETRY = dg.RetryPolicy(
    max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# DuckDB's errors about the statement or the data, not the moment: ProgrammingError covers
# catalog, binder, parser and type errors, DataError conversions. Its OperationalError (a
# locked file, out of memory, a transaction conflict) is worth a retry.
_PERMANENT_DUCKDB = (
    duckdb.ProgrammingError,
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.NotSupportedError,
    duckdb.PermissionException,
)


def is_permanent(error: BaseException) -> bool:
    """Whether running the same step again would meet `error` again: FinBI's own errors
    say so in a `permanent` attribute; DuckDB's and AWS's are told by their class."""
    if getattr(error, "permanent", False) or isinstance(error, _PERMANENT_DUCKDB):
        return True
    # Loaded with the AWS resources only: importing it here would put boto3 into every
    # local run.
    aws = sys.modules.get("finbi_pipeline.resources.aws")
    return aws is not None and aws.is_permanent_client_error(error)


def interruption(error: BaseException) -> BaseException | None:
    """The interrupt (KeyboardInterrupt, Dagster's DagsterExecutionInterruptedError) among
    `error` and its causes, if any: DuckDB reports a statement stopped by Ctrl-C or SIGTERM
    as `RuntimeError: Query interrupted` caused by the interrupt."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (KeyboardInterrupt, dg.DagsterExecutionInterruptedError)):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def interruptions_stop_the_run() -> Iterator[None]:
    """Re-raise an interruption that surfaced as another error (`interruption`) as the
    interrupt itself: Dagster then stops the run instead of failing only this step and
    going on with the steps that do not depend on it."""
    try:
        yield
    except Exception as error:
        interrupt = interruption(error)
        if interrupt is None:
            raise
        raise type(interrupt)() from error


@contextmanager
def retried_on_passing_faults(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Run an idempotent step's body: a passing fault asks Dagster to run the step again (up
    to `IDEMPOTENT_STEP_RETRY`'s retries and delays), an error a retry would meet again fails
    it at once (a `Failure`), and an interruption stops the run."""
    with interruptions_stop_the_run():
        try:
            yield
        except Exception as error:
            if interruption(error) is not None:
                raise
            if is_permanent(error):
                first_line = (str(error).strip().splitlines() or [""])[0]
                raise dg.Failure(
                    description=f"{type(error).__name__}: {first_line} (not retried: a retry "
                    "would fail the same way)",
                    allow_retries=False,
                ) from error
            raise dg.RetryRequested(
                max_retries=IDEMPOTENT_STEP_RETRY.max_retries,
                seconds_to_wait=IDEMPOTENT_STEP_RETRY.calculate_delay(context.retry_number + 1),
            ) from error
