"""Fixtures for the AWS tests: fake credentials, moto for S3 and Glue, an S3 lake.

No test reaches AWS: moto intercepts S3 and Glue in process, and Athena and QuickSight
clients are stubbed (botocore Stubber) or faked per test.
"""

from __future__ import annotations

import boto3
import pytest
from dagster_aws.s3 import S3Resource
from moto import mock_aws

from finbi_pipeline.resources.s3_lake import S3Lake

BUCKET = "finbi-test-lake"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    """Fake credentials and a region, so boto3's default chain never finds real ones."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def moto_aws(aws_env):
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture
def lake(moto_aws) -> S3Lake:
    return S3Lake(bucket=BUCKET, s3=S3Resource(region_name=REGION))
