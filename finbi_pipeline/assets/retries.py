"""The retry policy for steps that are idempotent and cheap to repeat.

Catalog registration, analytics tables and the dashboard refresh replace what they write,
so a step that failed on a passing fault (Athena or QuickSight trouble that outlived
botocore's own retries, or the local warehouse locked by a concurrent run) is run again.
Ingestion steps are not retried: a retry would rescan the whole batch.
"""

import dagster as dg

IDEMPOTENT_STEP_RETRY = dg.RetryPolicy(
    max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
