"""QuickSightPublisher with botocore's Stubber: every request (the dashboard Definition
included) is validated against QuickSight's API model."""

from __future__ import annotations

import copy

import dagster as dg
import pytest
from botocore.stub import Stubber
from dagster_aws.s3 import S3Resource

from finbi_pipeline.quicksight_dashboard import DASHBOARD_DATASETS, dashboard_definition
from finbi_pipeline.resources.athena_engine import AthenaEngine
from finbi_pipeline.resources.aws import boto_client
from finbi_pipeline.resources.quicksight import DataSourceError, QuickSightPublisher
from finbi_pipeline.resources.s3_lake import S3Lake
from finbi_pipeline_tests.aws.fakes import ACCOUNT, stub_quicksight_refresh, validate


@pytest.fixture
def publisher():
    engine = AthenaEngine(
        lake=S3Lake(bucket="b", s3=S3Resource(region_name="us-east-1")), workgroup="finbi"
    )
    publisher = QuickSightPublisher(
        engine=engine, account_id=ACCOUNT, principal_arn="finbi-admin", poll_interval_s=0.001
    )
    publisher._client = boto_client("quicksight", "us-east-1")
    return publisher


@pytest.fixture
def stubber(publisher):
    with Stubber(publisher.client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_first_refresh_creates_everything_ingests_and_deploys(publisher, stubber):
    stub_quicksight_refresh(stubber, first_deploy=True)

    metadata = publisher.refresh(dg.build_asset_context())

    assert metadata["rows_ingested"].value == {"interactions": 7, "kpi_summary": 7}
    assert metadata["refresh_quota_use"].value == {"interactions": "1/32", "kpi_summary": "1/32"}
    assert metadata["dashboard_version"] == 1
    assert metadata["location"].value.endswith("/sn/dashboards/finbi-dashboard")


def test_later_refresh_updates_in_place(publisher, stubber):
    stub_quicksight_refresh(stubber, first_deploy=False, used_today={"interactions": 3})
    metadata = publisher.refresh(dg.build_asset_context())
    # the ingestion from two days ago is outside the 24 h window
    assert metadata["refresh_quota_use"].value["interactions"] == "4/32"
    assert metadata["dashboard_version"] == 2


def test_a_dashboard_published_from_the_same_definition_gets_no_new_version(publisher, stubber):
    arns = {
        table: f"arn:aws:quicksight:us-east-1:{ACCOUNT}:dataset/finbi-{table}"
        for table in DASHBOARD_DATASETS
    }
    published = copy.deepcopy(dashboard_definition(arns))
    published["Options"] = {"WeekStart": "SUNDAY"}  # defaults QuickSight answers with
    for sheet in published["Sheets"]:
        sheet["ContentType"] = "INTERACTIVE"
    stub_quicksight_refresh(stubber, first_deploy=False, published_definition=published)

    metadata = publisher.refresh(dg.build_asset_context())

    # No update_dashboard queued: the stubber fails the test if one is made.
    assert metadata["dashboard_version"] == 1


def test_a_used_up_quota_skips_the_dataset_and_says_so(publisher, stubber):
    stub_quicksight_refresh(stubber, first_deploy=False, used_today={"kpi_summary": 32})
    metadata = publisher.refresh(dg.build_asset_context())
    assert metadata["skipped_over_quota"] == "kpi_summary"
    assert metadata["refresh_quota_use"].value["kpi_summary"] == "32/32"


def test_a_failed_ingestion_fails_and_keeps_the_last_good_data(publisher, stubber):
    stub_quicksight_refresh(stubber, first_deploy=False, failing="kpi_summary")

    with pytest.raises(dg.Failure) as failed:
        publisher.refresh(dg.build_asset_context())

    message = failed.value.description
    assert "finbi-kpi_summary ended FAILED" in message
    assert "DATA_SOURCE_NOT_FOUND: Table finbi.kpi_summary not found" in message
    assert "last good data" in message
    # No further call (no dataset deletion, no dashboard update): Stubber would have
    # raised on any call it was not told to expect.


def test_an_ingestion_that_dropped_rows_fails_naming_how_many(publisher, stubber):
    stub_quicksight_refresh(stubber, first_deploy=False, dropping="interactions")
    with dg.build_asset_context() as context, pytest.raises(dg.Failure) as failed:
        publisher.refresh(context)
    assert "finbi-interactions completed but dropped 3 of 10 rows" in failed.value.description
    assert failed.value.metadata["rows_dropped"].value == 3
    assert not failed.value.allow_retries  # another ingestion would drop the same rows


def test_the_dashboard_definition_matches_the_api_model():
    definition = dashboard_definition(
        {"interactions": "arn:aws:quicksight:::dataset/a", "kpi_summary": "arn:b"}
    )
    validate(
        "quicksight",
        "CreateDashboard",
        {"AwsAccountId": ACCOUNT, "DashboardId": "d", "Name": "n", "Definition": definition},
    )
    visuals = definition["Sheets"][0]["Visuals"]
    kinds = [next(iter(v)) for v in visuals]
    assert kinds.count("KPIVisual") == 4 and "PieChartVisual" in kinds and "BarChartVisual" in kinds
    filtered = [
        g["Filters"][0]["CategoryFilter"]["Column"]["ColumnName"]
        for g in definition["FilterGroups"]
    ]
    assert filtered == ["user_id", "event_type"]


SOURCE = {"AwsAccountId": ACCOUNT, "DataSourceId": "finbi-athena"}
SOURCE_ARN = f"arn:aws:quicksight:us-east-1:{ACCOUNT}:datasource/finbi-athena"
ATHENA_PARAMETERS = {"AthenaParameters": {"WorkGroup": "finbi"}}


def _described(stubber, status: str, error: dict | None = None) -> None:
    source = {"Arn": SOURCE_ARN, "DataSourceParameters": ATHENA_PARAMETERS, "Status": status}
    if error:
        source["ErrorInfo"] = error
    stubber.add_response("describe_data_source", {"DataSource": source}, SOURCE)


def test_a_data_source_that_quicksight_fails_to_create_is_named_with_its_error(publisher, stubber):
    stubber.add_client_error(
        "describe_data_source", "ResourceNotFoundException", http_status_code=404
    )
    stubber.add_response("create_data_source", {"Arn": SOURCE_ARN, "Status": 202})
    _described(stubber, "CREATION_IN_PROGRESS")
    _described(
        stubber,
        "CREATION_FAILED",
        {"Type": "ACCESS_DENIED", "Message": "QuickSight may not use workgroup finbi"},
    )

    with pytest.raises(DataSourceError) as raised:
        publisher.ensure_data_source()

    assert str(raised.value) == (
        "QuickSight data source finbi-athena is CREATION_FAILED: ACCESS_DENIED: "
        "QuickSight may not use workgroup finbi"
    )
    assert raised.value.permanent  # the step is not retried for it


def test_a_data_source_whose_last_update_failed_is_updated_again(publisher, stubber):
    _described(stubber, "UPDATE_FAILED", {"Type": "TIMEOUT", "Message": "timed out"})
    stubber.add_response(
        "update_data_source",
        {"Arn": SOURCE_ARN, "UpdateStatus": "UPDATE_IN_PROGRESS"},
        {**SOURCE, "Name": "FinBI Athena", "DataSourceParameters": ATHENA_PARAMETERS},
    )
    _described(stubber, "UPDATE_SUCCESSFUL")

    assert publisher.ensure_data_source() == SOURCE_ARN


def test_money_is_exact_in_spice_and_a_ratio_is_not_rounded(publisher):
    columns = DASHBOARD_DATASETS["kpi_summary"]
    definition = publisher.data_set_definition("kpi_summary", columns, SOURCE_ARN)
    (table,) = definition["PhysicalTableMap"].values()
    sub_types = {
        c["Name"]: c["SubType"] for c in table["RelationalTable"]["InputColumns"] if "SubType" in c
    }
    assert sub_types == {
        "conversion_rate": "FLOAT",
        "gross_revenue": "FIXED",
        "returns_value": "FIXED",
        "net_revenue": "FIXED",
        "average_order_value": "FIXED",
    }


def test_a_dataset_quicksight_answers_with_fields_of_its_own_is_not_updated(publisher, stubber):
    columns = DASHBOARD_DATASETS["kpi_summary"]
    sent = publisher.data_set_definition("kpi_summary", columns, SOURCE_ARN)
    answered = copy.deepcopy(sent["PhysicalTableMap"])
    for n, column in enumerate(answered["kpi_summary"]["RelationalTable"]["InputColumns"]):
        column["Id"] = f"col-{n}"  # QuickSight's own column ids
    key = {"AwsAccountId": ACCOUNT, "DataSetId": "finbi-kpi_summary"}
    dataset_arn = f"arn:aws:quicksight:us-east-1:{ACCOUNT}:dataset/finbi-kpi_summary"
    stubber.add_response(
        "describe_data_set", {"DataSet": {"Arn": dataset_arn, "PhysicalTableMap": answered}}, key
    )

    # No update_data_set queued: the stubber fails the test if one is made.
    assert publisher.ensure_data_set("kpi_summary", columns, SOURCE_ARN) == dataset_arn
