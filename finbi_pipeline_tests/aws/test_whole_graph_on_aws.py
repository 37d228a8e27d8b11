"""The whole asset graph with FINBI_TARGET=aws: S3 and Glue are moto, Athena is a fake that
records SQL (moto's Athena cannot run SQL either), QuickSight is botocore's Stubber.

What this proves: the definitions load with the AWS resources; every asset and check runs
on them unchanged (no asset branches on the target); uploads are read from S3, staged,
merged, logged and quarantined through S3 keys; Glue gets the contract's tables; every
analytics table is a CTAS to Parquet under analytics/ run in the configured workgroup and
database, with bytes scanned and cost in its metadata; the dashboard refresh makes the
QuickSight calls in order with requests valid for the API. What it cannot prove: that
Athena computes the right numbers (the fake returns no rows, so the counts are zero); the
SQL itself is checked on DuckDB by the local tests and parse-checked for Athena here.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import dagster as dg
from botocore.stub import Stubber
from dagster_aws.s3 import S3Resource

from finbi_pipeline.definitions import defs
from finbi_pipeline.resources.athena_engine import AthenaEngine
from finbi_pipeline.resources.aws import boto_client
from finbi_pipeline.resources.quicksight import QuickSightPublisher
from finbi_pipeline.resources.s3_lake import S3Lake
from finbi_pipeline.sensors import RANGE_END_TAG, RANGE_START_TAG
from finbi_pipeline.sql_templates import ANALYTICS_TABLES, sql_file
from finbi_pipeline.uploads import list_uploads, uploads_partitions
from finbi_pipeline_tests.aws.fakes import ACCOUNT, PRINCIPAL, FakeAthena, stub_quicksight_refresh
from finbi_pipeline_tests.aws.fixtures import BUCKET, REGION

SAMPLE = Path(__file__).resolve().parents[2] / "data"


def test_whole_graph_materializes_on_the_aws_resources(moto_aws, monkeypatch):
    monkeypatch.setenv("FINBI_TARGET", "aws")
    monkeypatch.setenv("FINBI_S3_BUCKET", BUCKET)
    monkeypatch.setenv("FINBI_ATHENA_WORKGROUP", "finbi")
    monkeypatch.setenv("FINBI_QUICKSIGHT_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setenv("FINBI_QUICKSIGHT_PRINCIPAL_ARN", PRINCIPAL)
    athena = FakeAthena(REGION)
    quicksight = boto_client("quicksight", REGION)
    monkeypatch.setattr(AthenaEngine, "athena", property(lambda self: athena))
    monkeypatch.setattr(QuickSightPublisher, "client", property(lambda self: quicksight))
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(SAMPLE / "interactions.csv"), BUCKET, "raw/interactions/interactions.csv")
    s3.upload_file(str(SAMPLE / "sales.csv"), BUCKET, "raw/sales/sales.csv")

    with dg.instance_for_test() as instance, Stubber(quicksight) as stubber:
        stub_quicksight_refresh(stubber, first_deploy=True)
        # What `finbi run` does (runner.run_pipeline), through Dagster's own resource
        # resolution: the runner reads `defs.resources` outside a run, where an EnvVar
        # field is still the variable's name (reported to the lead).
        lake = S3Lake(bucket=BUCKET, s3=S3Resource(region_name=REGION))
        uploads = [u.partition_key for u in list_uploads(lake, ["interactions", "sales"])]
        instance.add_dynamic_partitions(uploads_partitions.name, uploads)
        result = (
            defs()
            .resolve_job_def("ingest_job")
            .execute_in_process(
                instance=instance,
                tags={RANGE_START_TAG: uploads[0], RANGE_END_TAG: uploads[-1]},
                raise_on_error=False,
            )
        )
        failures = [
            e.event_specific_data.error.message for e in result.all_events if e.is_step_failure
        ]
        assert result.success, failures
        stubber.assert_no_pending_responses()
        checks = [
            e.asset_check_evaluation_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert checks and all(c.passed for c in checks), [
            c.check_name for c in checks if not c.passed
        ]
        materialized = {
            key.to_user_string()
            for key in instance.get_asset_keys()
            if instance.get_latest_materialization_event(key) is not None
        }
        assert {"raw_uploads", "catalog_interactions", "dashboard_dataset"} <= materialized
        assert set(ANALYTICS_TABLES) <= materialized
        kpis = instance.get_latest_materialization_event(dg.AssetKey("kpi_summary"))
        metadata = kpis.asset_materialization.metadata
        assert metadata["bytes_scanned"].value == FakeAthena.BYTES_SCANNED
        assert metadata["estimated_cost_usd"].value > 0
        assert metadata["location"].value == f"s3://{BUCKET}/analytics/kpi_summary/"

    # Uploads were logged (reconciled) and staging was cleaned up, in S3.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert sum(k.startswith("ingest_log/") for k in keys) == 2
    assert not [k for k in keys if k.startswith("staging/")]
    # Glue holds the contract's tables; scratch tables were dropped with their sessions.
    glue = boto3.client("glue", region_name=REGION)
    tables = {t["Name"] for t in glue.get_tables(DatabaseName="finbi")["TableList"]}
    assert {"interactions", "sales", "ingest_log", "quarantine", *ANALYTICS_TABLES} <= tables
    assert glue.get_tables(DatabaseName="finbi_scratch")["TableList"] == []
    # Athena got the SQL files as written (Athena dialect), CTAS to Parquet under analytics/.
    ctas = [s for s in athena.statements if s.startswith('CREATE TABLE "finbi".')]
    assert len(ctas) == len(ANALYTICS_TABLES)
    assert all("format = 'PARQUET'" in s and "/analytics/" in s for s in ctas)
    for table in ANALYTICS_TABLES:
        assert any(s.endswith(sql_file(table)) for s in ctas), table
    # Ingestion read each upload through a CSV scratch table filtered on its own object.
    assert any(f"\"$path\" = 's3://{BUCKET}/raw/sales/sales.csv'" in s for s in athena.statements)
