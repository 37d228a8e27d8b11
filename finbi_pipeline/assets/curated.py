"""Curated tables: typed, deduplicated Parquet under `curated/<kind>/`, partitioned by day.

Each asset merges every staged upload of its kind, once per batch: rows identical in every
canonical column count once, within and across uploads, and a re-uploaded key replaces
what it contributed before. Every upload must reconcile (read = accepted + duplicate +
quarantined); the blocking check stops the refresh otherwise.
"""

import datetime as dt

import dagster as dg

from finbi_pipeline.assets.retries import interruptions_stop_the_run
from finbi_pipeline.ingest import CURATED_COLUMNS, DATE_COLUMN, UploadReport, merge_staged
from finbi_pipeline.metadata import markdown_table, table_metadata
from finbi_pipeline.resources.engine import QueryEngine
from finbi_pipeline.resources.lake import Lake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.uploads import Upload

LOG_COLUMNS = ("object_key", "rows_read", "rows_accepted", "rows_duplicate", "rows_quarantined")


def _curate(kind: str, context, lake: Lake, engine: QueryEngine, sources: SourcesResource):
    merged = merge_staged(kind, sources.of_kind(kind), lake, engine, dt.datetime.now(dt.UTC))
    keys = [o.key for o in lake.list_objects(f"curated/{kind}/")]
    # Reconciling reads only the merged uploads' files (a key's files end in its slug), so
    # the check costs what is new; the total row count comes from Parquet footers.
    merged_files = {f"/{Upload.from_partition_key(r.upload_id).slug}.parquet" for r in merged}
    columns = {**CURATED_COLUMNS[kind], DATE_COLUMN[kind]: "DATE"}
    with engine.session() as session:
        relation = session.parquet_relation([lake.uri(k) for k in keys], CURATED_COLUMNS[kind])
        row_count = session.fetch(f"SELECT COUNT(*) FROM {relation}").scalar()
        preview = session.fetch(f"SELECT * FROM {relation} LIMIT 10")
        new_rows = session.parquet_relation(
            [lake.uri(k) for k in keys if k[k.rfind("/") :] in merged_files],
            CURATED_COLUMNS[kind],
        )
        stored = session.fetch(
            f"SELECT upload_id, COUNT(*) AS n FROM {new_rows} GROUP BY upload_id"
        )
    # Reconcile against what the curated files hold, not just the merge's own arithmetic.
    stored_rows = dict(stored.rows)
    unreconciled = [
        r.upload_id
        for r in merged
        if not r.reconciles or stored_rows.get(r.upload_id, 0) != r.rows_accepted
    ]
    check = dg.AssetCheckResult(
        check_name="uploads_reconcile",
        passed=not unreconciled,
        metadata={"uploads_checked": len(merged), "unreconciled": ", ".join(unreconciled)},
    )
    if merged:  # one event for the batch: Dagster stores each log message as an event
        context.log.info("\n".join(_report_line(report) for report in merged))
    return dg.MaterializeResult(
        metadata={
            **table_metadata(row_count, columns, preview, lake.uri(f"curated/{kind}/")),
            "uploads_merged": len(merged),
            "rows_accepted": sum(r.rows_accepted for r in merged),
            "rows_duplicate": sum(r.rows_duplicate for r in merged),
            "rows_quarantined": sum(r.rows_quarantined for r in merged),
            "ingest_log": markdown_table(
                LOG_COLUMNS, [[getattr(r, c) for c in LOG_COLUMNS] for r in merged]
            ),
        },
        check_results=[check],
    )


def _report_line(r: UploadReport) -> str:
    return (
        f"{r.object_key}: read {r.rows_read} = accepted {r.rows_accepted} + duplicate "
        f"{r.rows_duplicate} + quarantined {r.rows_quarantined} ({r.status})"
    )


def _curated_asset(name: str):
    """The decorator both curated assets share: lineage, group and the blocking check."""
    return dg.asset(
        name=name,
        deps=["raw_uploads"],
        group_name="curated",
        kinds={"parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                "uploads_reconcile",
                asset=name,
                blocking=True,
                description="Every merged upload reconciles: rows_read = accepted + duplicate"
                " + quarantined, and its accepted rows are in the curated files.",
            )
        ],
    )


@_curated_asset("curated_interactions")
def curated_interactions(
    context: dg.AssetExecutionContext, lake: Lake, engine: QueryEngine, sources: SourcesResource
) -> dg.MaterializeResult:
    """Curated interactions(user_id, item_id, event_type, event_time, event_date, source,
    upload_id): validated, deduplicated, partitioned by event_date."""
    with interruptions_stop_the_run():
        return _curate("interactions", context, lake, engine, sources)


@_curated_asset("curated_sales")
def curated_sales(
    context: dg.AssetExecutionContext, lake: Lake, engine: QueryEngine, sources: SourcesResource
) -> dg.MaterializeResult:
    """Curated sales(order_id, user_id, item_id, quantity, unit_price, amount, sale_time,
    sale_date, country, source, upload_id): partitioned by sale_date."""
    with interruptions_stop_the_run():
        return _curate("sales", context, lake, engine, sources)
