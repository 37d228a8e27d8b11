"""GlueCatalog against moto: tables, partitions, schema history, crawler mode."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import boto3
import pandas as pd
import pytest
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID
from moto.glue.models import glue_backends
from moto.moto_api import state_manager

from finbi_pipeline.assets.catalog import TABLES, contract_check
from finbi_pipeline.resources.catalog import TableSpec
from finbi_pipeline.resources.glue_catalog import GlueCatalog, csv_table_input
from finbi_pipeline.sources import load_sources
from finbi_pipeline_tests.aws.fixtures import REGION


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture
def catalog(lake) -> GlueCatalog:
    return GlueCatalog(lake=lake, region=REGION, database="finbi")


def _glue():
    return boto3.client("glue", region_name=REGION)


def test_registers_partitioned_parquet_table_with_contract_schema(lake, catalog):
    for day in ("2024-01-01", "2024-01-02"):
        lake.write_bytes(f"curated/interactions/event_date={day}/a.parquet", b"PAR1")
    lake.write_bytes("curated/interactions/.tmp-x/event_date=2024-01-03/part", b"")

    change = catalog.register_table(TABLES["interactions"])

    assert change.describe() == "first registration"
    assert contract_check(TABLES["interactions"], change).passed
    assert list(change.current) == list(TABLES["interactions"].columns)  # contract order
    table = _glue().get_table(DatabaseName="finbi", Name="interactions")["Table"]
    assert table["PartitionKeys"] == [{"Name": "event_date", "Type": "date"}]
    assert table["StorageDescriptor"]["Location"] == lake.uri("curated/interactions/")
    assert "Parquet" in table["StorageDescriptor"]["InputFormat"]
    partitions = _glue().get_partitions(DatabaseName="finbi", TableName="interactions")
    located = {p["Values"][0]: p["StorageDescriptor"]["Location"] for p in partitions["Partitions"]}
    # Merges in flight (.tmp-*) are not partitions.
    assert located == {
        "2024-01-01": lake.uri("curated/interactions/event_date=2024-01-01/"),
        "2024-01-02": lake.uri("curated/interactions/event_date=2024-01-02/"),
    }


def test_reregistering_is_unchanged_and_partitions_follow_the_lake(lake, catalog):
    lake.write_bytes("curated/sales/sale_date=2024-01-01/a.parquet", b"PAR1")
    catalog.register_table(TABLES["sales"])
    lake.delete(["curated/sales/sale_date=2024-01-01/a.parquet"])
    lake.write_bytes("curated/sales/sale_date=2024-02-01/a.parquet", b"PAR1")

    change = catalog.register_table(TABLES["sales"])

    assert change.describe() == "unchanged"
    assert len(catalog.schema_history("sales")) == 1  # no needless table version
    values = [
        p["Values"]
        for p in _glue().get_partitions(DatabaseName="finbi", TableName="sales")["Partitions"]
    ]
    assert values == [["2024-02-01"]]


def test_schema_change_is_detected_and_kept_in_table_versions(catalog):
    spec = TABLES["quarantine"]
    catalog.register_table(spec)
    wider = TableSpec(spec.name, spec.prefix, {**spec.columns, "severity": "VARCHAR"})
    retyped = TableSpec(spec.name, spec.prefix, {**wider.columns, "line_number": "VARCHAR"})

    added = catalog.register_table(wider)
    broken = catalog.register_table(retyped)

    assert added.added == ["severity"] and not added.breaking
    assert broken.retyped == ["line_number"] and broken.breaking
    assert not contract_check(retyped, broken).passed
    history = catalog.schema_history("quarantine")
    assert [h.get("severity") for h in history] == [None, "VARCHAR", "VARCHAR"]
    assert history[-1]["line_number"] == "VARCHAR" and history[0]["line_number"] == "BIGINT"


def test_a_table_glue_answers_without_its_empty_fields_is_unchanged(catalog, monkeypatch):
    catalog.register_table(TABLES["quarantine"])  # sent with PartitionKeys: []
    get_table = catalog.glue.get_table

    def without_empty_partition_keys(**kwargs):
        answer = get_table(**kwargs)
        if not answer["Table"].get("PartitionKeys"):
            answer["Table"].pop("PartitionKeys", None)
        return answer

    monkeypatch.setattr(catalog.glue, "get_table", without_empty_partition_keys)

    assert catalog.register_table(TABLES["quarantine"]).describe() == "unchanged"
    assert len(catalog.schema_history("quarantine")) == 1  # no needless table version


def test_ingest_log_is_a_json_table(catalog, lake):
    change = catalog.register_table(TABLES["ingest_log"])
    table = _glue().get_table(DatabaseName="finbi", Name="ingest_log")["Table"]
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("JsonSerDe")
    assert contract_check(TABLES["ingest_log"], change).passed


def test_raw_csv_table_input_follows_the_source_dialect(catalog):
    source = load_sources()["interactions"]
    catalog.ensure_database()
    _glue().create_table(
        DatabaseName="finbi",
        TableInput=csv_table_input("raw_interactions", "s3://b/raw/interactions/", 4, source.csv),
    )
    table = _glue().get_table(DatabaseName="finbi", Name="raw_interactions")["Table"]
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert serde["Parameters"] == {"separatorChar": ",", "quoteChar": '"'}
    assert table["Parameters"]["skip.header.line.count"] == "1"


def test_crawler_mode_names_tables_after_their_folder_and_waits_out_a_running_crawl(lake):
    catalog = GlueCatalog(
        lake=lake,
        region=REGION,
        database="finbi",
        mode="crawler",
        crawler_role_arn="arn:aws:iam::123456789012:role/finbi-crawler",
        crawler_poll_s=0.01,
        crawler_timeout_s=5,
    )
    # moto's crawls run for a tenth of a second, then complete.
    state_manager.set_transition("glue::crawl", {"progression": "time", "seconds": 0.1})
    spec = TABLES["interactions"]
    name = catalog.crawler_name(spec)
    catalog.ensure_database()
    _glue().create_crawler(**catalog.crawler_settings(spec))
    _glue().start_crawler(Name=name)  # the other run's crawl, perhaps from before our files
    # moto's crawler does not read S3: stand in for its output, what a crawl of
    # curated/interactions/ detects (Parquet types, the Hive partition as a string).
    detected = catalog.table_input(spec)
    detected["PartitionKeys"] = [{"Name": "event_date", "Type": "string"}]
    _glue().create_table(DatabaseName="finbi", TableInput=detected)

    # moto has no UpdateCrawler: answer it here (after botocore validated the request) as
    # Glue does: a running crawler cannot be updated.
    updates = []

    def update_crawler(params, **_):
        if _glue().get_crawler(Name=name)["Crawler"]["State"] != "READY":
            error = {"Error": {"Code": "CrawlerRunningException", "Message": "running"}}
            raise catalog.glue.exceptions.CrawlerRunningException(error, "UpdateCrawler")
        updates.append(json.loads(params["body"]))
        return SimpleNamespace(status_code=200), {}

    catalog.glue.meta.events.register("before-call.glue.UpdateCrawler", update_crawler)

    change = catalog.register_table(spec)

    assert updates and updates[0]["TablePrefix"] == ""
    crawler = _glue().get_crawler(Name="finbi-interactions")["Crawler"]
    # The other run's crawl was waited out, then this run crawled, and waited for its own.
    assert [c.status for c in glue_backends[ACCOUNT_ID][REGION].crawlers[name].crawls] == [
        "COMPLETED",
        "COMPLETED",
    ]
    assert crawler["TablePrefix"] == ""
    assert crawler["Targets"]["S3Targets"][0]["Path"] == lake.uri("curated/interactions/")
    grouping = json.loads(crawler["Configuration"])["Grouping"]
    assert grouping == {
        "TableGroupingPolicy": "CombineCompatibleSchemas",
        "TableLevelConfiguration": 3,
    }
    check = contract_check(spec, change)
    assert not check.passed  # the crawler typed event_date as a string: reported
    assert "event_date: VARCHAR" in check.metadata["type_mismatches"].value
