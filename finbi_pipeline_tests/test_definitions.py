"""The code location as a whole: its asset graph, and a full run over the bundled sample."""

import csv
from collections import Counter
from decimal import ROUND_FLOOR, Decimal

import dagster as dg
import duckdb
import pytest
import sqlglot

from finbi_pipeline.dashboard.extract import build_serving_extract
from finbi_pipeline.definitions import defs
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.runner import run_pipeline
from finbi_pipeline.sql_templates import (
    ANALYTICS_TABLES,
    kpi_consistency_sql,
    sql_file,
    to_duckdb,
)
from finbi_pipeline_tests.conftest import SAMPLE
from finbi_pipeline_tests.dashboard._warehouse import extract_tables

# The lineage contract: each asset and what it reads.
EXPECTED_GRAPH = {
    "raw_uploads": set(),
    "curated_interactions": {"raw_uploads"},
    "curated_sales": {"raw_uploads"},
    "catalog_interactions": {"curated_interactions"},
    "catalog_sales": {"curated_sales"},
    "catalog_ingest_log": {"curated_interactions", "curated_sales"},
    "catalog_quarantine": {"raw_uploads"},
    "event_counts_by_type": {"catalog_interactions"},
    "daily_events": {"catalog_interactions"},
    "user_activity": {"catalog_interactions"},
    "daily_sales": {"catalog_sales"},
    "top_items": {"catalog_interactions", "catalog_sales"},
    "kpi_summary": {"user_activity", "catalog_sales"},
    "dashboard_dataset": {
        "event_counts_by_type",
        "daily_events",
        "user_activity",
        "daily_sales",
        "top_items",
        "kpi_summary",
        "catalog_ingest_log",
        "catalog_quarantine",
    },
}
BLOCKING_CHECKS = {
    ("curated_interactions", "uploads_reconcile"),
    ("curated_sales", "uploads_reconcile"),
    ("catalog_interactions", "schema_contract"),
    ("catalog_sales", "schema_contract"),
    ("catalog_ingest_log", "schema_contract"),
    ("catalog_quarantine", "schema_contract"),
    ("kpi_summary", "kpi_summary_consistent"),
}


def test_asset_graph_is_the_documented_lineage():
    graph = defs().resolve_asset_graph()
    actual = {
        node.key.to_user_string(): {dep.to_user_string() for dep in node.parent_keys}
        for node in graph.asset_nodes
    }
    assert actual == EXPECTED_GRAPH
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in graph.asset_check_keys
        if graph.get_check_spec(key).blocking
    }
    assert checks == BLOCKING_CHECKS


def test_no_step_carries_a_retry_policy():
    # Under the in-process executor a RetryPolicy also retries a step that was interrupted
    # (dagster#15026): idempotent steps ask for their retries themselves (`retries.py`).
    assert [assets_def.op.name for assets_def in defs().assets if assets_def.op.retry_policy] == []


def test_the_kpi_check_runs_after_every_table_it_reads():
    tree = sqlglot.parse_one(kpi_consistency_sql(), read="athena")
    ctes = {cte.alias for cte in tree.find_all(sqlglot.exp.CTE)}
    read = {table.name for table in tree.find_all(sqlglot.exp.Table)} - ctes
    catalog_tables = {"interactions", "sales", "ingest_log", "quarantine"}
    read_assets = {f"catalog_{t}" if t in catalog_tables else t for t in read}

    graph = defs().resolve_asset_graph()
    (key,) = [k for k in graph.asset_check_keys if k.name == "kpi_summary_consistent"]
    spec = graph.get_check_spec(key)
    runs_after = {spec.asset_key.to_user_string()} | {
        dep.asset_key.to_user_string() for dep in spec.additional_deps
    }
    assert read_assets <= runs_after, read_assets - runs_after


def test_everything_is_reachable_from_definitions():
    definitions = defs()
    assert {j.name for j in definitions.jobs} >= {"ingest_job", "refresh_job"}
    assert [s.name for s in definitions.sensors] == ["new_upload_sensor"]
    assert [s.name for s in definitions.schedules] == ["daily_refresh_schedule"]
    assert set(definitions.resources) == {
        "lake",
        "engine",
        "catalog",
        "publisher",
        "sources",
        "upload_events",
    }


def expected_kpis_from_sample() -> dict:
    """KPIs computed straight from the sample CSVs with DESIGN.md's definitions."""
    with open(SAMPLE / "interactions.csv", newline="") as handle:
        events = {tuple(row.values()) for row in csv.DictReader(handle)}  # dedup exact rows
    types = Counter(row[2] for row in events)
    with open(SAMPLE / "sales.csv", newline="") as handle:
        lines = {tuple(row.values()) for row in csv.DictReader(handle)}
    sold = [(o, int(q), Decimal(p)) for o, _u, _i, q, p, _t, _c in lines]
    gross = sum((q * p for _o, q, p in sold if q > 0), Decimal(0))
    returns = sum((-q * p for _o, q, p in sold if q < 0), Decimal(0))
    orders = len({o for o, q, _p in sold if q > 0})
    return {
        "total_views": types["VIEW"],
        "total_add_to_carts": types["ADD_TO_CART"],
        "total_purchases": types["PURCHASE"],
        "total_users": len({row[0] for row in events}),
        "orders": orders,
        "units": sum(q for _o, q, _p in sold if q > 0),
        "gross_revenue": gross,
        "returns_value": returns,
        "net_revenue": gross - returns,
        "average_order_value": (gross / orders).quantize(Decimal("0.0001"), ROUND_FLOOR),
        "conversion_rate": types["PURCHASE"] / types["VIEW"],
    }


def kpi_row(finbi_home) -> dict:
    with duckdb.connect(str(finbi_home / "warehouse.duckdb"), read_only=True) as con:
        cursor = con.execute("SELECT * FROM finbi.kpi_summary")
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_whole_graph_on_the_sample_matches_an_independent_computation(land, finbi_home, instance):
    land("interactions", SAMPLE / "interactions.csv")
    land("sales", SAMPLE / "sales.csv")

    summary = run_pipeline(instance)

    assert summary.success, summary.failures
    assert summary.uploads == 2
    expected = expected_kpis_from_sample()
    actual = kpi_row(finbi_home)
    assert actual["conversion_rate"] == pytest.approx(expected.pop("conversion_rate"))
    assert {k: actual[k] for k in expected} == expected
    assert (finbi_home / "dashboard" / "serving.duckdb").exists()

    materialized = {
        key.to_user_string()
        for key in instance.get_asset_keys()
        if instance.get_latest_materialization_event(key) is not None
    }
    assert materialized == set(EXPECTED_GRAPH)
    for key in materialized:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        metadata = event.asset_materialization.metadata
        # A batch's partitions share its metadata: no row count, which would be the batch's.
        counted = {"rows_read"} if key == "raw_uploads" else {"dagster/row_count", "preview"}
        assert {"location", *counted} <= set(metadata), key
        # Raw files' columns are each source's own; the extract is a dozen tables.
        if key not in ("raw_uploads", "dashboard_dataset"):
            assert {"dagster/column_schema", "preview"} <= set(metadata), key
    curated = instance.get_latest_materialization_event(dg.AssetKey("curated_interactions"))
    metadata = curated.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == sum(
        expected[k] for k in ("total_views", "total_add_to_carts", "total_purchases")
    )
    assert "| user_id" in metadata["preview"].value
    assert [c.name for c in metadata["dagster/column_schema"].schema.columns][:3] == [
        "user_id",
        "item_id",
        "event_type",
    ]
    # Each analytics table says what its SQL would scan and cost on Athena ($5/TB, 10 MB
    # at least per query), and what the estimate leaves out.
    for table in ANALYTICS_TABLES:
        event = instance.get_latest_materialization_event(dg.AssetKey(table))
        metadata = event.asset_materialization.metadata
        scanned = metadata["athena_estimated_bytes_scanned"].value
        assert 0 < scanned < sum(p.stat().st_size for p in SAMPLE.glob("*.csv")), table
        assert metadata["athena_estimated_cost_usd"].value == pytest.approx(10 / 1024**2 * 5)
        expected_left_out = "user_activity" if table == "kpi_summary" else "nothing"
        assert metadata["athena_estimate_leaves_out"].value == expected_left_out, table


def test_second_run_without_new_uploads_refreshes_without_reingesting(land, instance):
    land("interactions", SAMPLE / "interactions.csv")
    assert run_pipeline(instance).uploads == 1

    again = run_pipeline(instance)

    assert again.success, again.failures
    assert again.uploads == 0
    assert (
        again.rows["read"]
        == again.rows["accepted"] + again.rows["duplicate"] + again.rows["quarantined"]
    )


def test_an_empty_lake_refreshes_to_an_empty_dashboard(finbi_home, instance):
    # What the daily schedule does before anything landed: nothing to show is no error (the
    # blocking check fails empty KPIs only while current uploads hold rows).
    summary = run_pipeline(instance)

    assert summary.success, summary.failures
    assert summary.kpis["total_views"] == summary.kpis["orders"] == 0
    assert (finbi_home / "dashboard" / "serving.duckdb").exists()


def test_reloading_a_file_replaces_it_without_double_counting(land, finbi_home, instance):
    land("interactions", SAMPLE / "interactions.csv")
    first = run_pipeline(instance)
    views = kpi_row(finbi_home)["total_views"]

    land("interactions", SAMPLE / "interactions.csv")  # a new version of the same key
    again = run_pipeline(instance)

    assert again.success, again.failures
    assert again.uploads == 1
    assert again.rows == first.rows  # the summary counts each key's current version
    assert kpi_row(finbi_home)["total_views"] == views


def split_csv(path, shares: list[float], out) -> list:
    """The file's records in consecutive files of these shares, each with the header."""
    header, *records = path.read_text().splitlines(keepends=True)
    files, start = [], 0
    for i, share in enumerate(shares):
        end = len(records) if i == len(shares) - 1 else start + round(share * len(records))
        files.append(out / f"{path.stem}-part{i + 1}.csv")
        files[-1].write_text(header + "".join(records[start:end]))
        start = end
    return files


def test_a_run_of_several_new_uploads_refreshes_in_place_what_a_rebuild_gives(
    land, finbi_home, instance, tmp_path
):
    # New rows within the extract's FULL_BUILD_AFTER share of it, so it too is updated.
    interactions = split_csv(SAMPLE / "interactions.csv", [0.84, 0.08, 0.08], tmp_path)
    sales = split_csv(SAMPLE / "sales.csv", [0.9, 0.1], tmp_path)
    land("interactions", interactions[0])
    land("sales", sales[0])
    assert run_pipeline(instance).success

    for path in interactions[1:]:
        land("interactions", path)
    land("sales", sales[1])
    again = run_pipeline(instance)

    assert again.success, again.failures
    assert again.uploads == 3
    for table in ("event_counts_by_type", "daily_events", "user_activity", "top_items"):
        event = instance.get_latest_materialization_event(dg.AssetKey(table))
        assert event.asset_materialization.metadata["refresh_mode"].value == "incremental"
    with DuckDBEngine(home=str(finbi_home)).connect() as con:
        for table in ANALYTICS_TABLES:
            columns = "* EXCLUDE (refreshed_at)" if table == "kpi_summary" else "*"
            stored = con.execute(f"SELECT {columns} FROM {table} ORDER BY ALL").fetchall()
            rebuilt = f"SELECT {columns} FROM ({to_duckdb(sql_file(table))}) ORDER BY ALL"
            assert stored == con.execute(rebuilt).fetchall(), table
        rebuilt_extract = build_serving_extract(con, tmp_path / "rebuilt")
    served = finbi_home / "dashboard" / "serving.duckdb"
    with duckdb.connect(str(served), read_only=True) as con:
        assert con.execute("SELECT build_mode FROM extract_info").fetchone() == ("incremental",)
    assert extract_tables(served) == extract_tables(rebuilt_extract["path"])
