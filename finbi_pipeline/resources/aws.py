"""The AWS stack (S3 → Glue → Athena → QuickSight) behind the pipeline's interfaces.

`build_aws_resources()` is what `build_resources("aws")` returns: the same resource keys as
the local target (`lake`, `catalog`, `engine`, `publisher`), so no asset knows which stack
it runs on. Shared plumbing lives here too:

* `boto_client` builds every boto3 client the project creates itself, with botocore's
  adaptive retry mode, so throttling (`ThrottlingException`, `TooManyRequestsException`)
  is retried with backoff on every call. S3 goes through `dagster_aws.s3.S3Resource`,
  which configures botocore's standard retry mode with its own `max_attempts`.
* `wait_until` is the one bounded wait: it polls, and on time-out says what it waited for.

Credentials come only from boto3's default chain (environment, shared config, container
or instance role): nothing here accepts, logs or returns them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import boto3
import dagster as dg
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, ParamValidationError
from dagster_aws.s3 import S3Resource

T = TypeVar("T")

# Attempts per call, the first included; adaptive mode also rate-limits the client side.
DEFAULT_MAX_ATTEMPTS = 8


def retry_config(max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Config:
    """botocore retries for throttling and transient errors, with exponential backoff.

    `total_max_attempts` counts the first attempt (botocore's `max_attempts` would not).
    """
    return Config(retries={"mode": "adaptive", "total_max_attempts": max_attempts})


def boto_client(service: str, region: str | None, max_attempts: int = DEFAULT_MAX_ATTEMPTS):
    """A boto3 client from the default credential chain, with retries configured."""
    return boto3.session.Session().client(
        service, region_name=region or None, config=retry_config(max_attempts)
    )


# Error codes that a retry meets again: credentials, permissions, missing resources, invalid
# requests. Throttling and server errors are retried (by botocore, then by the step).
PERMANENT_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "EntityNotFoundException",
        "ResourceNotFoundException",
        "NoSuchBucket",
        "InvalidInputException",
        "InvalidParameterValueException",
        "InvalidParameterException",
        "InvalidRequestException",
        "ValidationException",
    }
)


def is_permanent_client_error(error: BaseException) -> bool:
    """Whether an AWS call's error would come back on a retry of the step."""
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in PERMANENT_ERROR_CODES
    return isinstance(error, (NoCredentialsError, NoRegionError, ParamValidationError))


class WaitTimeout(TimeoutError):
    """A bounded wait ran out; the message names what was awaited and its last state."""


class WaitStopped(Exception):
    """Another thread set the wait's `stop` event (a staging worker's run was interrupted)."""


def wait_until(
    poll: Callable[[], T],
    done: Callable[[T], bool],
    what: str,
    timeout_s: float,
    interval_s: float = 1.0,
    describe: Callable[[T], str] = str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> T:
    """Call `poll` until `done(result)`; raise WaitTimeout after `timeout_s` seconds, or
    WaitStopped as soon as `stop` is set (then it waits on `stop` instead of `sleep`).

    The interval grows (×1.5, capped at 10 s) so long waits cost few API calls.
    """
    deadline = clock() + timeout_s
    delay = interval_s
    while True:
        result = poll()
        if done(result):
            return result
        if clock() >= deadline:
            raise WaitTimeout(
                f"gave up after {timeout_s:g} s waiting for {what}; last state: {describe(result)}"
            )
        pause = min(delay, max(deadline - clock(), 0.0))
        if stop is None:
            sleep(pause)
        elif stop.wait(pause):
            raise WaitStopped(f"stopped waiting for {what}")
        delay = min(delay * 1.5, 10.0)


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def build_aws_resources() -> dict:
    """Lake, catalog, engine, publisher and upload events on AWS, from FINBI_* variables.

    Values are `dg.EnvVar`s, read when a run starts (not at import), and shown in the UI
    by name only. Names with defaults are read here, so an unset optional variable does
    not fail the code location.
    """
    import os

    from finbi_pipeline.resources.athena_engine import AthenaEngine
    from finbi_pipeline.resources.glue_catalog import GlueCatalog
    from finbi_pipeline.resources.quicksight import QuickSightPublisher
    from finbi_pipeline.resources.s3_lake import S3Lake
    from finbi_pipeline.resources.upload_events import UploadEvents

    def env_or(name: str, default: str):
        return dg.EnvVar(name) if os.environ.get(name) else default

    # Empty: boto3's own chain (AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config) decides.
    region = env_or("FINBI_AWS_REGION", "")
    database = env_or("FINBI_GLUE_DATABASE", "finbi")
    lake = S3Lake(bucket=dg.EnvVar("FINBI_S3_BUCKET"), s3=S3Resource(region_name=region or None))
    engine = AthenaEngine(
        lake=lake,
        region=region,
        database=database,
        workgroup=env_or("FINBI_ATHENA_WORKGROUP", "primary"),
    )
    return {
        "lake": lake,
        "engine": engine,
        "catalog": GlueCatalog(
            lake=lake,
            region=region,
            database=database,
            mode=env_or("FINBI_GLUE_MODE", "api"),
            crawler_role_arn=env_or("FINBI_GLUE_CRAWLER_ROLE_ARN", ""),
        ),
        "publisher": QuickSightPublisher(
            engine=engine,
            account_id=dg.EnvVar("FINBI_QUICKSIGHT_ACCOUNT_ID"),
            region=env_or("FINBI_QUICKSIGHT_REGION", region),
            principal_arn=dg.EnvVar("FINBI_QUICKSIGHT_PRINCIPAL_ARN"),
            namespace=env_or("FINBI_QUICKSIGHT_NAMESPACE", "default"),
        ),
        # S3 notifications on SQS when a queue is configured; else the sensor lists.
        "upload_events": UploadEvents(
            queue_url=env_or("FINBI_UPLOAD_QUEUE_URL", ""), region=region
        ),
    }
