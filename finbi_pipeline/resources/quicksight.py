"""The BI publisher on AWS: QuickSight SPICE datasets over Athena, and the dashboard.

`refresh` does, in order, each step idempotent:

1. the Athena data source (id `finbi-athena`, the workgroup of the engine): described,
   created when missing, updated only when its workgroup differs or its last creation or
   update failed, then awaited until QuickSight reports it ready (a failure names its
   ErrorInfo);
2. one SPICE dataset per table in `quicksight_dashboard.DASHBOARD_DATASETS`: created when
   missing, updated only when its definition differs (an update of a SPICE dataset may
   start an ingestion, which costs quota);
3. a `create_ingestion` per dataset, unless the dataset used its daily refresh quota
   (`daily_ingestion_quota`, 32 per 24 h on Enterprise edition, counted with
   `list_ingestions`); then a bounded wait on `describe_ingestion` for each. A failed
   ingestion fails the asset with QuickSight's error. SPICE keeps serving the last good
   data of a dataset whose ingestion failed, and the dashboard is not redeployed;
4. the dashboard from its `Definition` (create_dashboard / update_dashboard, then publish
   the new version), waiting (bounded) until QuickSight reports it built.
"""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
from pydantic import PrivateAttr

from finbi_pipeline.quicksight_dashboard import (
    DASHBOARD_DATASETS,
    FLOAT_DECIMALS,
    dashboard_definition,
)
from finbi_pipeline.resources.athena_engine import AthenaEngine
from finbi_pipeline.resources.aws import boto_client, wait_until
from finbi_pipeline.resources.publisher import BIPublisher

DATA_SOURCE_ACTIONS = [
    "quicksight:DescribeDataSource",
    "quicksight:DescribeDataSourcePermissions",
    "quicksight:PassDataSource",
    "quicksight:UpdateDataSource",
    "quicksight:DeleteDataSource",
    "quicksight:UpdateDataSourcePermissions",
]
DATA_SET_ACTIONS = [
    "quicksight:DescribeDataSet",
    "quicksight:DescribeDataSetPermissions",
    "quicksight:PassDataSet",
    "quicksight:DescribeIngestion",
    "quicksight:ListIngestions",
    "quicksight:UpdateDataSet",
    "quicksight:DeleteDataSet",
    "quicksight:CreateIngestion",
    "quicksight:CancelIngestion",
    "quicksight:UpdateDataSetPermissions",
]
DASHBOARD_ACTIONS = [
    "quicksight:DescribeDashboard",
    "quicksight:ListDashboardVersions",
    "quicksight:UpdateDashboardPermissions",
    "quicksight:QueryDashboard",
    "quicksight:UpdateDashboard",
    "quicksight:DeleteDashboard",
    "quicksight:DescribeDashboardPermissions",
    "quicksight:UpdateDashboardPublishedVersion",
]
INGESTION_DONE = ("COMPLETED", "FAILED", "CANCELLED")
DASHBOARD_DONE = ("CREATION_SUCCESSFUL", "CREATION_FAILED", "UPDATE_SUCCESSFUL", "UPDATE_FAILED")


class DataSourceError(RuntimeError):
    """The data source's creation or update failed; `permanent` unless QuickSight's error
    type is one that may pass (a time-out, a conflict, an unknown error)."""

    def __init__(self, data_source_id: str, status: str, error: dict | None):
        error = error or {}
        kind = error.get("Type", "UNKNOWN")
        self.permanent = kind not in ("TIMEOUT", "CONFLICT", "UNKNOWN")
        super().__init__(
            f"QuickSight data source {data_source_id} is {status}: {kind}: "
            f"{error.get('Message', 'no message given')}"
        )


class QuickSightPublisher(BIPublisher):
    """SPICE datasets and the FinBI dashboard in QuickSight account `account_id`."""

    engine: AthenaEngine
    account_id: str
    region: str = ""
    principal_arn: str
    namespace: str = "default"
    data_source_id: str = "finbi-athena"
    dataset_prefix: str = "finbi-"
    dashboard_id: str = "finbi-dashboard"
    # Per dataset per rolling 24 hours: 32 on Enterprise edition, 8 on Standard.
    daily_ingestion_quota: int = 32
    ingestion_timeout_s: float = 1800.0
    dashboard_timeout_s: float = 600.0
    poll_interval_s: float = 5.0
    max_attempts: int = 8
    _client = PrivateAttr(default=None)

    @property
    def client(self):
        if self._client is None:
            self._client = boto_client("quicksight", self.region, self.max_attempts)
        return self._client

    def refresh(self, context: dg.AssetExecutionContext) -> dict:
        data_source_arn = self.ensure_data_source()
        dataset_arns = {
            table: self.ensure_data_set(table, columns, data_source_arn)
            for table, columns in DASHBOARD_DATASETS.items()
        }
        started, quota_use, skipped = {}, {}, []
        for table in DASHBOARD_DATASETS:
            used = self.ingestions_last_24h(self.dataset_id(table))
            if used >= self.daily_ingestion_quota:
                # Over quota QuickSight would refuse; SPICE keeps serving the current data.
                context.log.warning(
                    f"dataset {self.dataset_id(table)} used its {self.daily_ingestion_quota} "
                    "refreshes of the last 24 h; not refreshed this time"
                )
                skipped.append(table)
                quota_use[table] = f"{used}/{self.daily_ingestion_quota}"
                continue
            started[table] = self.start_ingestion(table)
            quota_use[table] = f"{used + 1}/{self.daily_ingestion_quota}"
        rows = {table: self.wait_for_ingestion(table, iid) for table, iid in started.items()}
        dashboard_version = self.deploy_dashboard(dataset_arns)
        return {
            "location": dg.MetadataValue.url(self.dashboard_url),
            "datasets": ", ".join(self.dataset_id(t) for t in DASHBOARD_DATASETS),
            "ingestions": ", ".join(f"{t}: {iid}" for t, iid in started.items()) or "none",
            "dagster/row_count": sum(rows.values()),
            "rows_ingested": dg.MetadataValue.json(rows),
            "refresh_quota_use": dg.MetadataValue.json(quota_use),
            "skipped_over_quota": ", ".join(skipped) or "none",
            "dashboard_version": dashboard_version,
            "refreshed_at": dt.datetime.now(dt.UTC).isoformat(),
        }

    # --- data source and datasets ----------------------------------------------------------

    @property
    def dashboard_url(self) -> str:
        region = self.region or self.client.meta.region_name
        return f"https://{region}.quicksight.aws.amazon.com/sn/dashboards/{self.dashboard_id}"

    def dataset_id(self, table: str) -> str:
        return f"{self.dataset_prefix}{table}"

    @property
    def principal(self) -> str:
        """The principal ARN; a bare user name is made a user of `namespace`."""
        if self.principal_arn.startswith("arn:"):
            return self.principal_arn
        region = self.region or self.client.meta.region_name
        return (
            f"arn:aws:quicksight:{region}:{self.account_id}:user/"
            f"{self.namespace}/{self.principal_arn}"
        )

    def _permissions(self, actions: list[str]) -> list[dict]:
        return [{"Principal": self.principal, "Actions": actions}]

    def ensure_data_source(self) -> str:
        """The Athena data source's ARN, once it is ready: created when missing, updated
        when its workgroup differs or its last creation or update failed. QuickSight does
        both asynchronously; a failure raises DataSourceError with QuickSight's ErrorInfo."""
        parameters = {"AthenaParameters": {"WorkGroup": self.engine.workgroup}}
        key = {"AwsAccountId": self.account_id, "DataSourceId": self.data_source_id}
        try:
            current = self.client.describe_data_source(**key)["DataSource"]
        except self.client.exceptions.ResourceNotFoundException:
            self.client.create_data_source(
                **key,
                Name="FinBI Athena",
                Type="ATHENA",
                DataSourceParameters=parameters,
                Permissions=self._permissions(DATA_SOURCE_ACTIONS),
            )
        else:
            status = current.get("Status", "")
            if current.get("DataSourceParameters") != parameters or status.endswith("_FAILED"):
                self.client.update_data_source(
                    **key, Name="FinBI Athena", DataSourceParameters=parameters
                )
            elif not status.endswith("_IN_PROGRESS"):
                return current["Arn"]
        source = wait_until(
            lambda: self.client.describe_data_source(**key)["DataSource"],
            lambda source: not source.get("Status", "").endswith("_IN_PROGRESS"),
            what=f"QuickSight data source {self.data_source_id} to be created or updated",
            timeout_s=self.dashboard_timeout_s,
            interval_s=self.poll_interval_s,
            describe=lambda source: source.get("Status", "no status"),
        )
        if source.get("Status", "").endswith("_FAILED"):
            raise DataSourceError(self.data_source_id, source["Status"], source.get("ErrorInfo"))
        return source["Arn"]

    def data_set_definition(self, table: str, columns: dict[str, str], source_arn: str) -> dict:
        return {
            "Name": f"FinBI {table}",
            "ImportMode": "SPICE",
            "PhysicalTableMap": {
                table: {
                    "RelationalTable": {
                        "DataSourceArn": source_arn,
                        "Catalog": "AwsDataCatalog",
                        "Schema": self.engine.database,
                        "Name": table,
                        "InputColumns": [_input_column(c, t) for c, t in columns.items()],
                    }
                }
            },
        }

    def ensure_data_set(self, table: str, columns: dict[str, str], source_arn: str) -> str:
        definition = self.data_set_definition(table, columns, source_arn)
        key = {"AwsAccountId": self.account_id, "DataSetId": self.dataset_id(table)}
        try:
            current = self.client.describe_data_set(**key)["DataSet"]
        except self.client.exceptions.ResourceNotFoundException:
            return self.client.create_data_set(
                **key, **definition, Permissions=self._permissions(DATA_SET_ACTIONS)
            )["Arn"]
        if not _holds(current.get("PhysicalTableMap"), definition["PhysicalTableMap"]):
            self.client.update_data_set(**key, **definition)
        return current["Arn"]

    # --- ingestions ------------------------------------------------------------------------

    def ingestions_last_24h(self, dataset_id: str) -> int:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=24)
        count = 0
        paginator = self.client.get_paginator("list_ingestions")
        for page in paginator.paginate(AwsAccountId=self.account_id, DataSetId=dataset_id):
            count += sum(1 for i in page.get("Ingestions", []) if i["CreatedTime"] >= since)
        return count

    def start_ingestion(self, table: str) -> str:
        ingestion_id = f"finbi-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.client.create_ingestion(
            AwsAccountId=self.account_id,
            DataSetId=self.dataset_id(table),
            IngestionId=ingestion_id,
            IngestionType="FULL_REFRESH",
        )
        return ingestion_id

    def wait_for_ingestion(self, table: str, ingestion_id: str) -> int:
        """Wait (bounded) for an ingestion; its rows ingested, or dg.Failure if it failed or
        dropped rows."""
        dataset_id = self.dataset_id(table)
        ingestion = wait_until(
            lambda: self.client.describe_ingestion(
                AwsAccountId=self.account_id, DataSetId=dataset_id, IngestionId=ingestion_id
            )["Ingestion"],
            lambda i: i["IngestionStatus"] in INGESTION_DONE,
            what=f"QuickSight ingestion {ingestion_id} of dataset {dataset_id}",
            timeout_s=self.ingestion_timeout_s,
            interval_s=self.poll_interval_s,
            describe=lambda i: i["IngestionStatus"],
        )
        status = ingestion["IngestionStatus"]
        if status != "COMPLETED":
            error = ingestion.get("ErrorInfo", {})
            raise dg.Failure(
                description=(
                    f"QuickSight ingestion {ingestion_id} of dataset {dataset_id} ended {status}: "
                    f"{error.get('Type', 'UNKNOWN')}: {error.get('Message', 'no message')}. "
                    "SPICE keeps serving the dataset's last good data."
                ),
                metadata={"dataset": dataset_id, "ingestion_id": ingestion_id, "status": status},
            )
        rows = ingestion.get("RowInfo", {})
        dropped = int(rows.get("RowsDropped", 0))
        if dropped:
            # COMPLETED within QuickSight's tolerance: the dataset now lacks those rows, and
            # every total on the dashboard with them.
            raise dg.Failure(
                description=(
                    f"QuickSight ingestion {ingestion_id} of dataset {dataset_id} completed but "
                    f"dropped {dropped:,} of {dropped + int(rows.get('RowsIngested', 0)):,} rows "
                    "(values SPICE could not read: see the ingestion's error rows in "
                    "QuickSight): the dashboard's totals miss them"
                ),
                metadata={
                    "dataset": dataset_id,
                    "ingestion_id": ingestion_id,
                    "rows_dropped": dropped,
                },
                # A retry would ingest the same rows again, spending the daily quota.
                allow_retries=False,
            )
        return int(rows.get("RowsIngested", 0))

    # --- dashboard -------------------------------------------------------------------------

    def deploy_dashboard(self, dataset_arns: dict[str, str]) -> int:
        """Create or update the dashboard from its Definition and publish it; its published
        version. A published version built from the same Definition is kept as it is: each
        update would add a version to the dashboard's history."""
        key = {"AwsAccountId": self.account_id, "DashboardId": self.dashboard_id}
        common = {**key, "Name": "FinBI", "Definition": dashboard_definition(dataset_arns)}
        try:
            published = self.client.describe_dashboard(**key)["Dashboard"]
            current = self.client.describe_dashboard_definition(**key)
            if (
                current.get("ResourceStatus", "").endswith("_SUCCESSFUL")
                and current.get("Name") == common["Name"]
                and _holds(current.get("Definition"), common["Definition"])
            ):
                return int(published["Version"]["VersionNumber"])
            response = self.client.update_dashboard(**common)
        except self.client.exceptions.ResourceNotFoundException:
            response = self.client.create_dashboard(
                **common, Permissions=self._permissions(DASHBOARD_ACTIONS)
            )
        version = int(response["VersionArn"].rsplit("/", 1)[1])
        described = {**key, "VersionNumber": version}
        built = wait_until(
            lambda: self.client.describe_dashboard(**described)["Dashboard"]["Version"],
            lambda v: v["Status"] in DASHBOARD_DONE,
            what=f"QuickSight dashboard {self.dashboard_id} version {version} to build",
            timeout_s=self.dashboard_timeout_s,
            interval_s=self.poll_interval_s,
            describe=lambda v: v["Status"],
        )
        if built["Status"].endswith("FAILED"):
            errors = "; ".join(
                f"{e.get('Type')}: {e.get('Message')}" for e in built.get("Errors", [])
            )
            raise dg.Failure(
                f"QuickSight dashboard {self.dashboard_id} version {version} "
                f"{built['Status']}: {errors or 'no details'}; the published version is unchanged"
            )
        self.client.update_dashboard_published_version(**described)
        return version


def _input_column(name: str, input_type: str) -> dict:
    column = {"Name": name, "Type": input_type}
    if input_type == "DECIMAL":
        # Sent, not left to QuickSight's default: money stays exact in SPICE.
        column["SubType"] = "FLOAT" if name in FLOAT_DECIMALS else "FIXED"
    return column


def _holds(current, sent) -> bool:
    """Whether QuickSight's answer `current` holds everything `sent`: it may add fields of
    its own (a column `Id`), which are no reason to update the dataset again."""
    if isinstance(sent, dict):
        return isinstance(current, dict) and all(
            _holds(current.get(key), value) for key, value in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(current, list)
            and len(current) == len(sent)
            and all(_holds(c, s) for c, s in zip(current, sent, strict=True))
        )
    return current == sent
