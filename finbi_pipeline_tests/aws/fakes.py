"""Stand-ins for Athena and QuickSight that validate every request against the real API
model (botocore's service JSON), so a misspelled parameter fails a test as it would AWS.

`FakeAthena` records each statement and answers with canned statistics; it executes no
SQL (moto's Athena cannot either: it returns canned results). For a CTAS it registers the
created table in the (moto) Glue catalog, as Athena does, with text columns named after
the query's output; a SELECT returns no rows, except one row of zeros for an aggregate
without GROUP BY (e.g. `SELECT COUNT(*) AS n ...`).
"""

from __future__ import annotations

import itertools
import re

import boto3
import botocore.session
import sqlglot
from botocore.validate import validate_parameters
from sqlglot import exp

_MODELS = botocore.session.get_session()
_CTAS = re.compile(
    r'^CREATE TABLE "(?P<db>[^"]+)"\."(?P<table>[^"]+)"\s*'
    r"WITH \((?P<props>.*?)\)\s*AS\s*(?P<query>.*)$",
    re.S,
)


def validate(service: str, operation: str, params: dict) -> None:
    model = _MODELS.get_service_model(service).operation_model(operation)
    validate_parameters(params, model.input_shape)


class FakeAthena:
    """Records SQL, returns SUCCEEDED with fixed statistics, mirrors CTAS into Glue."""

    BYTES_SCANNED = 123_456_789

    def __init__(self, region: str):
        self.glue = boto3.client("glue", region_name=region)
        self.statements: list[str] = []
        self.stopped: list[str] = []
        self._results: dict[str, dict] = {}
        self._ids = itertools.count(1)

    def start_query_execution(self, **params) -> dict:
        validate("athena", "StartQueryExecution", params)
        sql = params["QueryString"]
        query_id = f"q-{next(self._ids)}"
        self.statements.append(sql)
        ctas = _CTAS.match(sql.strip())
        if ctas:
            location = re.search(r"external_location = '([^']+)'", ctas["props"]).group(1)
            columns = sqlglot.parse_one(ctas["query"], read="athena").named_selects
            self.glue.create_table(
                DatabaseName=ctas["db"],
                TableInput={
                    "Name": ctas["table"],
                    "StorageDescriptor": {
                        "Columns": [{"Name": c, "Type": "string"} for c in columns],
                        "Location": location,
                    },
                },
            )
            self._results[query_id] = {"UpdateCount": 0, "kind": "DDL", "columns": []}
        else:
            self._results[query_id] = {"kind": "DML", **_select_result(sql)}
        return {"QueryExecutionId": query_id}

    def get_work_group(self, **params) -> dict:
        """A workgroup like the stack's: results in the lake, client-side settings honoured."""
        validate("athena", "GetWorkGroup", params)
        configuration = {
            "EnforceWorkGroupConfiguration": False,
            "ResultConfiguration": {"OutputLocation": "s3://athena-results/"},
        }
        return {"WorkGroup": {"Name": params["WorkGroup"], "Configuration": configuration}}

    def get_query_execution(self, **params) -> dict:
        validate("athena", "GetQueryExecution", params)
        query_id = params["QueryExecutionId"]
        return {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "StatementType": self._results[query_id]["kind"],
                "Status": {"State": "SUCCEEDED"},
                "Statistics": {
                    "DataScannedInBytes": self.BYTES_SCANNED,
                    "EngineExecutionTimeInMillis": 1500,
                    "TotalExecutionTimeInMillis": 1700,
                },
            }
        }

    def get_query_results(self, **params) -> dict:
        validate("athena", "GetQueryResults", params)
        result = self._results[params["QueryExecutionId"]]
        columns = result.get("columns", [])
        header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
        rows = [{"Data": [{"VarCharValue": v} for v in row]} for row in result.get("rows", [])]
        return {
            "UpdateCount": result.get("UpdateCount", 0),
            "ResultSet": {
                "Rows": ([header] if columns else []) + rows,
                "ResultSetMetadata": {"ColumnInfo": [{"Name": n, "Type": t} for n, t in columns]},
            },
        }

    def get_paginator(self, name: str):
        assert name == "get_query_results"
        fake = self

        class _Paginator:
            def paginate(self, **params):
                yield fake.get_query_results(**params)

        return _Paginator()

    def stop_query_execution(self, **params) -> dict:
        validate("athena", "StopQueryExecution", params)
        self.stopped.append(params["QueryExecutionId"])
        return {}


def _select_result(sql: str) -> dict:
    select = sqlglot.parse_one(sql, read="athena")
    names = select.named_selects
    aggregate = (
        isinstance(select, exp.Select)
        and not select.args.get("group")
        and all(e.find(exp.AggFunc) for e in select.expressions)
    )
    columns = [(n, "bigint" if aggregate else "varchar") for n in names]
    return {"columns": columns, "rows": [["0"] * len(names)] if aggregate else []}


# --- QuickSight through botocore's Stubber --------------------------------------------------

ACCOUNT = "123456789012"
PRINCIPAL = f"arn:aws:quicksight:us-east-1:{ACCOUNT}:user/default/finbi-admin"
QS_TABLES = ("interactions", "kpi_summary")


def _arn(kind: str, name: str) -> str:
    return f"arn:aws:quicksight:us-east-1:{ACCOUNT}:{kind}/{name}"


def _not_found(stubber, operation: str, params: dict) -> None:
    stubber.add_client_error(
        operation, "ResourceNotFoundException", http_status_code=404, expected_params=params
    )


def stub_quicksight_refresh(
    stubber,
    *,
    first_deploy: bool = True,
    used_today: dict[str, int] | None = None,
    failing: str | None = None,
    dropping: str | None = None,
    quota: int = 32,
    published_definition: dict | None = None,
) -> None:
    """Queue the calls of one `QuickSightPublisher.refresh`, in order, with their params.

    A later deploy finds version 1 published from `published_definition` (by default an
    older, empty one, which the refresh updates to version 2)."""
    import datetime as dt

    from botocore.stub import ANY

    used_today = used_today or {}
    account = {"AwsAccountId": ACCOUNT}
    source = {**account, "DataSourceId": "finbi-athena"}
    if first_deploy:
        _not_found(stubber, "describe_data_source", source)
        stubber.add_response(
            "create_data_source",
            {"Arn": _arn("datasource", "finbi-athena"), "Status": 201},
            {
                **source,
                "Name": "FinBI Athena",
                "Type": "ATHENA",
                "DataSourceParameters": {"AthenaParameters": {"WorkGroup": "finbi"}},
                "Permissions": [{"Principal": PRINCIPAL, "Actions": ANY}],
            },
        )
        stubber.add_response(  # QuickSight creates it asynchronously: awaited
            "describe_data_source",
            {
                "DataSource": {
                    "Arn": _arn("datasource", "finbi-athena"),
                    "Status": "CREATION_SUCCESSFUL",
                }
            },
            source,
        )
    else:
        stubber.add_response(
            "describe_data_source",
            {
                "DataSource": {
                    "Arn": _arn("datasource", "finbi-athena"),
                    "DataSourceParameters": {"AthenaParameters": {"WorkGroup": "finbi"}},
                }
            },
            source,
        )
    for table in QS_TABLES:
        key = {**account, "DataSetId": f"finbi-{table}"}
        if first_deploy:
            _not_found(stubber, "describe_data_set", key)
            stubber.add_response(
                "create_data_set",
                {"Arn": _arn("dataset", f"finbi-{table}")},
                {
                    **key,
                    "Name": f"FinBI {table}",
                    "ImportMode": "SPICE",
                    "PhysicalTableMap": ANY,
                    "Permissions": ANY,
                },
            )
        else:
            stubber.add_response(
                "describe_data_set",
                {"DataSet": {"Arn": _arn("dataset", f"finbi-{table}")}},
                key,
            )
            stubber.add_response(  # its PhysicalTableMap was not in the answer: re-put
                "update_data_set",
                {"Arn": _arn("dataset", f"finbi-{table}")},
                {**key, "Name": ANY, "ImportMode": "SPICE", "PhysicalTableMap": ANY},
            )
    now = dt.datetime.now(dt.UTC)
    started = []
    for table in QS_TABLES:
        key = {**account, "DataSetId": f"finbi-{table}"}
        used = used_today.get(table, 0)
        earlier = [
            {"Arn": _arn("ingestion", f"i{n}"), "IngestionStatus": "COMPLETED", "CreatedTime": now}
            for n in range(used)
        ]
        yesterday = {
            "Arn": _arn("ingestion", "old"),
            "IngestionStatus": "COMPLETED",
            "CreatedTime": now - dt.timedelta(days=2),
        }
        stubber.add_response("list_ingestions", {"Ingestions": [*earlier, yesterday]}, key)
        if used >= quota:
            continue
        stubber.add_response(
            "create_ingestion",
            {"IngestionId": f"ing-{table}", "IngestionStatus": "INITIALIZED"},
            {**key, "IngestionId": ANY, "IngestionType": "FULL_REFRESH"},
        )
        started.append(table)
    for table in started:
        key = {**account, "DataSetId": f"finbi-{table}", "IngestionId": ANY}
        if table == failing:
            stubber.add_response(
                "describe_ingestion",
                {
                    "Ingestion": {
                        "Arn": _arn("ingestion", table),
                        "IngestionStatus": "FAILED",
                        "CreatedTime": now,
                        "ErrorInfo": {
                            "Type": "DATA_SOURCE_NOT_FOUND",
                            "Message": "Table finbi.kpi_summary not found",
                        },
                    }
                },
                key,
            )
            return  # the refresh stops here: nothing else is called
        stubber.add_response(
            "describe_ingestion",
            {
                "Ingestion": {
                    "Arn": _arn("ingestion", table),
                    "IngestionStatus": "COMPLETED",
                    "CreatedTime": now,
                    "RowInfo": {"RowsIngested": 7, "RowsDropped": 3 if table == dropping else 0},
                }
            },
            key,
        )
        if table == dropping:
            return  # the refresh stops here: nothing else is called
    dashboard = {**account, "DashboardId": "finbi-dashboard"}
    if first_deploy:
        _not_found(stubber, "describe_dashboard", dashboard)
        stubber.add_response(
            "create_dashboard",
            {"VersionArn": _arn("dashboard", "finbi-dashboard/version/1"), "Status": 202},
            {**dashboard, "Name": "FinBI", "Definition": ANY, "Permissions": ANY},
        )
        version = 1
    else:
        stubber.add_response(
            "describe_dashboard",
            {"Dashboard": {"Version": {"Status": "CREATION_SUCCESSFUL", "VersionNumber": 1}}},
            dashboard,
        )
        stubber.add_response(
            "describe_dashboard_definition",
            {
                "DashboardId": "finbi-dashboard",
                "Name": "FinBI",
                "ResourceStatus": "CREATION_SUCCESSFUL",
                "Definition": published_definition or {"DataSetIdentifierDeclarations": []},
            },
            dashboard,
        )
        if published_definition is not None:
            return  # the same Definition: no new version
        stubber.add_response(
            "update_dashboard",
            {"VersionArn": _arn("dashboard", "finbi-dashboard/version/2")},
            {**dashboard, "Name": "FinBI", "Definition": ANY},
        )
        version = 2
    stubber.add_response(
        "describe_dashboard",
        {"Dashboard": {"Version": {"Status": "CREATION_SUCCESSFUL", "VersionNumber": version}}},
        {**dashboard, "VersionNumber": version},
    )
    stubber.add_response(
        "update_dashboard_published_version",
        {"DashboardId": "finbi-dashboard"},
        {**dashboard, "VersionNumber": version},
    )
