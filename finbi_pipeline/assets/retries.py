"""The retry policy for steps that are idempotent and cheap to repeat, and which errors it
does not retry.

Catalog registration, analytics tables and the dashboard refresh replace what they write,
so a step that failed on a passing fault (Athena or QuickSight trouble that outlived
botocore's own retries, or the local warehouse locked by a concurrent run) is run again.
An error that the same step would meet again (a missing table or column, SQL that does not
bind, a permission refused, a failed Athena query that Athena itself calls not retryable)
fails the step at once instead of after half a minute of retries: steps that can fail so
run their body inside `permanent_errors_not_retried()`.
Ingestion steps are not retried: a retry would rescan the whole batch.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

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


@contextmanager
def permanent_errors_not_retried() -> Iterator[None]:
    """Turn a permanent error raised inside into a Failure that the retry policy skips."""
    try:
        yield
    except Exception as error:
        if not is_permanent(error):
            raise
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise dg.Failure(
            description=f"{type(error).__name__}: {first_line} (not retried: a retry would "
            "fail the same way)",
            allow_retries=False,
        ) from error
