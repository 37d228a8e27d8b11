"""AthenaEngine with botocore's Stubber (requests validated against Athena's API model):
statistics, FAILED/CANCELLED, throttling retried, bounded wait, cancel on interrupt; and the
ingestion session's Glue scratch tables against moto."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
from decimal import Decimal

import boto3
import pandas as pd
import pytest
import sqlglot
from botocore.awsrequest import AWSResponse
from botocore.stub import ANY, Stubber
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster_aws.s3 import S3Resource

from finbi_pipeline.resources import athena_engine
from finbi_pipeline.resources.athena_engine import (
    AthenaEngine,
    AthenaQueryError,
    AthenaSession,
    AthenaWorkgroupError,
)
from finbi_pipeline.resources.aws import WaitStopped, WaitTimeout, boto_client, wait_until
from finbi_pipeline.resources.s3_lake import S3Lake
from finbi_pipeline.sources import load_sources
from finbi_pipeline.sql_templates import staged_records_sql
from finbi_pipeline_tests.aws.fixtures import BUCKET, REGION

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def engine(lake) -> AthenaEngine:
    return AthenaEngine(lake=lake, region=REGION, workgroup="finbi", poll_interval_s=0.001)


@pytest.fixture
def stub(engine):
    client = boto_client("athena", REGION)
    engine._athena = client
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _start(stub, query_id: str, sql=ANY) -> None:
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": query_id},
        {
            "QueryString": sql,
            "ClientRequestToken": ANY,
            "QueryExecutionContext": {"Catalog": "AwsDataCatalog", "Database": "finbi"},
            "WorkGroup": "finbi",
            "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/athena-results/"},
        },
    )


def _workgroup(stub, enforced: bool = False) -> None:
    configuration = {
        "EnforceWorkGroupConfiguration": enforced,
        "ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/athena-results/"},
    }
    stub.add_response(
        "get_work_group",
        {"WorkGroup": {"Name": "finbi", "Configuration": configuration}},
        {"WorkGroup": "finbi"},
    )


def _state(
    stub,
    query_id: str,
    state: str,
    reason: str | None = None,
    athena_error: dict | None = None,
    **statistics,
) -> None:
    status = {"State": state}
    if reason:
        status["StateChangeReason"] = reason
    if athena_error:
        status["AthenaError"] = athena_error
    stub.add_response(
        "get_query_execution",
        {
            "QueryExecution": {
                "QueryExecutionId": query_id,
                "StatementType": "DDL",
                "Status": status,
                "Statistics": statistics,
            }
        },
        {"QueryExecutionId": query_id},
    )


def test_ctas_reports_id_state_bytes_time_and_cost(engine, stub, lake):
    lake.write_bytes("analytics/daily_events/old-file", b"stale")
    _workgroup(stub)
    _start(stub, "q1")
    _state(stub, "q1", "RUNNING")
    _state(
        stub,
        "q1",
        "SUCCEEDED",
        DataScannedInBytes=2 * 1024**4,
        EngineExecutionTimeInMillis=4200,
        TotalExecutionTimeInMillis=4500,
    )
    stub.add_response(
        "get_query_results",
        {"UpdateCount": 42, "ResultSet": {"Rows": []}},
        {"QueryExecutionId": "q1", "MaxResults": 1},
    )

    stats = engine.create_table("daily_events", "SELECT 1 AS x")

    assert (stats.query_id, stats.rows, stats.engine_ms) == ("q1", 42, 4200)
    assert stats.bytes_scanned == 2 * 1024**4 and stats.cost_usd == pytest.approx(10.0)
    assert stats.extra["state"] == "SUCCEEDED"
    # CTAS refuses a non-empty location: the old files went first.
    assert list(lake.list_objects("analytics/daily_events/")) == []
    assert engine.location("daily_events") == f"s3://{BUCKET}/analytics/daily_events/"


def test_ctas_text_writes_parquet_under_analytics(engine, stub):
    expected = (
        'CREATE TABLE "finbi"."top_items"\n'
        "WITH (format = 'PARQUET', write_compression = 'SNAPPY', "
        f"external_location = 's3://{BUCKET}/analytics/top_items/')\nAS\nSELECT 1 AS x"
    )
    _workgroup(stub)
    _start(stub, "q1", sql=expected)
    _state(stub, "q1", "SUCCEEDED", DataScannedInBytes=0)
    stub.add_response(
        "get_query_results", {"UpdateCount": 1}, {"QueryExecutionId": ANY, "MaxResults": 1}
    )
    assert engine.create_table("top_items", "SELECT 1 AS x").cost_usd > 0  # 10 MB minimum


def test_a_workgroup_that_overrides_client_settings_is_refused_before_anything_is_dropped(
    engine, stub, lake
):
    # Athena would fail the CTAS (it names an external_location) after the old files went.
    lake.write_bytes("analytics/daily_events/old-file", b"kept")
    _workgroup(stub, enforced=True)
    with pytest.raises(AthenaWorkgroupError, match="'finbi' overrides client-side settings"):
        engine.create_table("daily_events", "SELECT 1 AS x")
    assert [o.key for o in lake.list_objects("analytics/daily_events/")] == [
        "analytics/daily_events/old-file"
    ]


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_failed_or_cancelled_raises_with_reason_and_id(engine, stub, state):
    _start(stub, "q9")
    _state(stub, "q9", state, reason="SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved")

    with pytest.raises(AthenaQueryError) as raised:
        engine.fetch("SELECT nope FROM interactions")

    assert raised.value.query_id == "q9" and raised.value.state == state
    assert "q9" in str(raised.value) and "Column 'nope' cannot be resolved" in str(raised.value)
    assert not raised.value.permanent  # Athena did not say: the step may retry it


@pytest.mark.parametrize("retryable", [False, True])
def test_athena_says_whether_a_failed_query_is_worth_resubmitting(engine, stub, retryable):
    _start(stub, "q8")
    _state(
        stub,
        "q8",
        "FAILED",
        reason="TABLE_NOT_FOUND: line 1:15: Table 'finbi.nope' does not exist",
        athena_error={"ErrorCategory": 2, "ErrorType": 1006, "Retryable": retryable},
    )

    with pytest.raises(AthenaQueryError) as raised:
        engine.fetch("SELECT * FROM nope")

    assert raised.value.permanent is not retryable


def test_the_wait_is_bounded_says_what_it_waited_for_and_cancels(engine, stub):
    slow = engine.model_copy(update={"query_timeout_s": 0.0})
    slow._athena = engine._athena
    _start(stub, "q5")
    _state(stub, "q5", "RUNNING")
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q5"})

    with pytest.raises(WaitTimeout, match="Athena query q5 in workgroup finbi to finish"):
        slow.fetch("SELECT 1")


@pytest.mark.parametrize(
    "interrupt", [KeyboardInterrupt, DagsterExecutionInterruptedError], ids=["ctrl-c", "dagster"]
)
def test_an_interrupted_run_stops_its_query(engine, stub, monkeypatch, interrupt):
    def interrupted_sleep(_seconds):
        raise interrupt()

    monkeypatch.setattr(
        athena_engine, "wait_until", functools.partial(wait_until, sleep=interrupted_sleep)
    )
    _start(stub, "q7")
    _state(stub, "q7", "RUNNING")
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q7"})

    with pytest.raises(interrupt):
        engine.fetch("SELECT 1")


def test_a_cancelled_session_stops_its_running_query(engine, stub):
    """What a staging worker's session does when the run is interrupted (`cancel`, from the
    main thread): the query it waits for is stopped, not left running and billed."""
    _start(stub, "q8")
    _state(stub, "q8", "RUNNING")
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q8"})
    session = AthenaSession(engine)
    session.cancel()

    with pytest.raises(WaitStopped, match="Athena query q8"):
        session.fetch("SELECT 1")


def test_fetch_pages_results_and_types_values(engine, stub):
    _start(stub, "q2")
    _state(stub, "q2", "SUCCEEDED", DataScannedInBytes=10)
    info = [
        {"Name": "day", "Type": "date"},
        {"Name": "n", "Type": "bigint"},
        {"Name": "amount", "Type": "decimal", "Precision": 18, "Scale": 4},
        {"Name": "at", "Type": "timestamp"},
        {"Name": "at_utc", "Type": "timestamp with time zone"},
    ]

    def page(rows, token=None):
        response = {
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": v} if v else {} for v in r]} for r in rows],
                "ResultSetMetadata": {"ColumnInfo": info},
            }
        }
        if token:
            response["NextToken"] = token
        return response

    header = ["day", "n", "amount", "at", "at_utc"]
    first = ["2024-01-01", "3", "1.50", "2024-01-01 10:00:00.000", "2024-01-01 10:00:00.000 UTC"]
    second = ["2024-01-02", "4", None, "2024-01-02 00:00:00.250", "2024-01-02 00:00:00.250 UTC"]
    stub.add_response(
        "get_query_results", page([header, first], token="t"), {"QueryExecutionId": "q2"}
    )
    stub.add_response(
        "get_query_results", page([second]), {"QueryExecutionId": "q2", "NextToken": "t"}
    )

    result = engine.fetch("SELECT day, n, amount, at, at_utc FROM t")

    assert result.columns == tuple(header)
    # Named as DuckDB names them, so that metadata reads the same on both targets.
    assert result.types == (
        "DATE",
        "BIGINT",
        "DECIMAL(18,4)",
        "TIMESTAMP",
        "TIMESTAMP WITH TIME ZONE",
    )
    utc = dt.UTC
    assert result.rows == [
        (
            dt.date(2024, 1, 1),
            3,
            Decimal("1.50"),
            dt.datetime(2024, 1, 1, 10),
            dt.datetime(2024, 1, 1, 10, tzinfo=utc),
        ),
        (
            dt.date(2024, 1, 2),
            4,
            None,
            dt.datetime(2024, 1, 2, 0, 0, 0, 250000),
            dt.datetime(2024, 1, 2, 0, 0, 0, 250000, tzinfo=utc),
        ),
    ]


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def test_throttling_is_retried_with_backoff():
    """Real retry handling: the HTTP layer answers 400 ThrottlingException, then success.

    No moto here: this test answers every HTTP request itself."""
    lake = S3Lake(bucket=BUCKET, s3=S3Resource(region_name=REGION))
    engine = AthenaEngine(lake=lake, region=REGION, workgroup="finbi", poll_interval_s=0.001)
    client = boto_client("athena", REGION, max_attempts=3)
    engine._athena = client
    calls = []

    def answer(request, **_):
        target = request.headers["X-Amz-Target"].decode().split(".")[-1]
        calls.append(target)
        if target == "StartQueryExecution" and calls.count(target) == 1:
            body = {"__type": "ThrottlingException", "message": "Rate exceeded"}
            return AWSResponse(request.url, 400, {}, _Raw(json.dumps(body).encode()))
        bodies = {
            "StartQueryExecution": {"QueryExecutionId": "q3"},
            "GetQueryExecution": {
                "QueryExecution": {
                    "QueryExecutionId": "q3",
                    "Status": {"State": "SUCCEEDED"},
                    "Statistics": {"DataScannedInBytes": 5},
                }
            },
            "GetQueryResults": {"ResultSet": {"Rows": [], "ResultSetMetadata": {"ColumnInfo": []}}},
        }
        return AWSResponse(request.url, 200, {}, _Raw(json.dumps(bodies[target]).encode()))

    client.meta.events.register("before-send.athena", answer)

    engine.fetch("SELECT 1")

    assert calls[:2] == ["StartQueryExecution", "StartQueryExecution"]
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}


# --- the ingestion session: Glue scratch tables, SQL rewriting (moto, no Athena) -----------


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_register_csv_reads_one_object_through_a_path_filter(engine, lake):
    source = load_sources()["interactions"]
    lake.write_bytes(
        "raw/interactions/a.csv", b"timestamp,event_type,item_id,user_id\n1,VIEW,i,u\n"
    )
    with engine.session() as session:
        session.register_csv("raw_records", source, lake.uri("raw/interactions/a.csv"), None)
        sql = session.resolve("SELECT * FROM raw_records WHERE x = 'raw_records_x'")
        [table] = session.scratch_tables
        glue = boto3.client("glue", region_name=REGION)
        definition = glue.get_table(DatabaseName="finbi_scratch", Name=table)["Table"]
    assert definition["StorageDescriptor"]["Location"] == lake.uri("raw/interactions/")
    assert [c["Name"] for c in definition["StorageDescriptor"]["Columns"]] == [
        "c0",
        "c1",
        "c2",
        "c3",
    ]
    # Canonical names mapped from the header's positions; only this object is read.
    assert '"c3" AS "user_id"' in sql and '"c0" AS "timestamp"' in sql
    assert f"\"$path\" = 's3://{BUCKET}/raw/interactions/a.csv'" in sql
    assert "'raw_records_x'" in sql  # only the relation name was replaced
    # The scratch table is gone with the session.
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName="finbi_scratch", Name=table)


def test_an_optional_column_the_file_lacks_reads_as_null(engine, lake):
    source = load_sources()["sales"]
    key = "raw/sales/guests.csv"
    lake.write_bytes(key, b"order_id,item_id,quantity,unit_price,timestamp\no,i,1,2,x\n")
    header = ["order_id", "item_id", "quantity", "unit_price", "timestamp"]
    with engine.session() as session:
        session.register_csv("raw_records", source, lake.uri(key), None, header=header)
        sql = session.resolve("SELECT * FROM raw_records")
    assert '"c0" AS "order_id"' in sql and '"c3" AS "unit_price"' in sql
    assert 'CAST(NULL AS VARCHAR) AS "user_id"' in sql
    assert 'CAST(NULL AS VARCHAR) AS "country"' in sql


def test_a_batch_of_csvs_is_one_table_read_through_one_path_filter(engine, lake):
    source = load_sources()["interactions"]
    keys = [f"raw/interactions/day-{day}.csv" for day in (1, 2, 3)]
    for key in keys:
        lake.write_bytes(key, b"user_id,item_id,event_type,timestamp\nu,i,VIEW,1\n")
    uris = [lake.uri(key) for key in keys]
    header = ["user_id", "item_id", "event_type", "timestamp"]
    with engine.session() as session:
        session.register_csv_batch("raw_records", source, uris, None, header)
        staged = staged_records_sql(source, "raw_records", NOW, by_file=True)
        sql = session.resolve(staged)
        [table] = session.scratch_tables
        glue = boto3.client("glue", region_name=REGION)
        definition = glue.get_table(DatabaseName="finbi_scratch", Name=table)["Table"]
        assert session.files_with_parser_rejects() == set()
    assert definition["StorageDescriptor"]["Location"] == lake.uri("raw/interactions/")
    files = ", ".join(f"'{uri}'" for uri in uris)
    assert f'"$path" IN ({files})' in sql
    # A record's file is its "$path"'s position among the batch's (0-based).
    assert f'CAST(array_position(ARRAY[{files}], "$path") - 1 AS BIGINT) AS file_index' in sql
    # Athena's text: the staged columns, file_index last to partition by.
    parsed = sqlglot.parse_one(sql, read="athena")
    assert parsed.named_selects[-1] == "file_index"
    assert (
        "file_index"
        not in sqlglot.parse_one(
            staged_records_sql(source, "raw_records", NOW), read="athena"
        ).named_selects
    )


def test_read_parquet_becomes_a_typed_table_with_hive_columns(engine, lake):
    frame = pd.DataFrame({"user_id": ["u"], "n": [1]})
    lake.write_bytes("curated/interactions/event_date=2024-01-01/a.parquet", _parquet(frame))
    lake.write_bytes("curated/interactions/event_date=2024-01-01/c.parquet", _parquet(frame))
    lake.write_bytes("curated/interactions/event_date=2024-01-02/b.parquet", _parquet(frame))
    one = lake.uri("curated/interactions/event_date=2024-01-01/a.parquet")
    with engine.session() as session:
        sql = session.resolve(f"SELECT COUNT(*) FROM read_parquet('{one}')")
        whole = session.parquet_relation(
            [lake.uri(o.key) for o in lake.list_objects("curated/interactions/")], {}
        )
        glue = boto3.client("glue", region_name=REGION)
        first = glue.get_table(DatabaseName="finbi_scratch", Name=session.scratch_tables[0])[
            "Table"
        ]
    columns = {c["Name"]: c["Type"] for c in first["StorageDescriptor"]["Columns"]}
    assert columns == {"user_id": "string", "n": "bigint"}
    assert f"\"$path\" IN ('{one}')" in sql
    assert "CAST(regexp_extract(\"$path\", '/event_date=([^/]+)/', 1) AS DATE)" in sql
    assert '$path" IN' not in whole  # every file of the folder: no filter needed
    assert "read_parquet" not in sql


def test_empty_relation_is_typed():
    from finbi_pipeline.resources.athena_engine import AthenaSession

    relation = AthenaSession.parquet_relation(None, [], {"a": "VARCHAR", "b": "DECIMAL(18,4)"})  # type: ignore[arg-type]
    assert (
        relation
        == "(SELECT CAST(NULL AS VARCHAR) AS a, CAST(NULL AS DECIMAL(18,4)) AS b WHERE FALSE)"
    )
