"""Analytics tables: each is one SQL file in `sql/`, created from the catalog tables by the
query engine (DuckDB tables locally, Athena CTAS to Parquet under analytics/ on AWS).

Locally a refresh after new uploads reads only their rows where the table allows it
(`ANALYTICS_UPDATES`, see `table_refresh`)."""

import dagster as dg

from finbi_pipeline.assets.retries import retried_on_passing_faults
from finbi_pipeline.metadata import table_metadata
from finbi_pipeline.resources.engine import QueryEngine
from finbi_pipeline.sql_templates import sql_file
from finbi_pipeline.table_refresh import Merge, MergeAgainstStored, RecomputeDays

# Which tables each analytics table reads.
ANALYTICS_INPUTS = {
    "event_counts_by_type": ["catalog_interactions"],
    "daily_events": ["catalog_interactions"],
    "user_activity": ["catalog_interactions"],
    "daily_sales": ["catalog_sales"],
    "top_items": ["catalog_interactions", "catalog_sales"],
    "kpi_summary": ["user_activity", "catalog_sales"],
}

# How each table takes in new uploads without reading every row (None: it cannot).
ANALYTICS_UPDATES = {
    "event_counts_by_type": Merge(keys=("event_type",)),
    # Distinct users per day add up only once the stored events of those days are consulted.
    "daily_events": MergeAgainstStored(
        keys=("event_date", "event_type"),
        kind="interactions",
        column="event_date",
        increment="daily_events_increment",
    ),
    "user_activity": Merge(
        keys=("user_id",),
        combine={
            "conversion_rate": "CAST(SUM(purchases) AS DOUBLE) / NULLIF(SUM(views), 0)",
            "first_event_time": "MIN(first_event_time)",
            "last_event_time": "MAX(last_event_time)",
        },
    ),
    # Distinct orders and customers per day: the days with new lines are recomputed (sales
    # lines are a tenth of the events).
    "daily_sales": RecomputeDays("sales", "sale_date"),
    "top_items": Merge(keys=("item_id",)),
    # Distinct orders over all time: rebuilt (from user_activity and the sales lines).
    "kpi_summary": None,
}


# Locally: what the same SQL would scan and cost on Athena, from the curated files' footers.
ATHENA_ESTIMATE = (
    "athena_estimated_bytes_scanned",
    "athena_estimated_cost_usd",
    "athena_estimate_leaves_out",
)


def build_analytics_asset(table: str) -> dg.AssetsDefinition:
    """An asset that (re)creates analytics table `table` from `sql/<table>.sql`."""

    @dg.asset(
        name=table,
        deps=ANALYTICS_INPUTS[table],
        group_name="analytics",
        kinds={"sql"},
        description=sql_file(table).split("\n", 1)[0].lstrip("- "),
    )
    def _analytics(context: dg.AssetExecutionContext, engine: QueryEngine) -> dg.MaterializeResult:
        with retried_on_passing_faults(context):
            stats = engine.refresh_table(table, sql_file(table), ANALYTICS_UPDATES[table])
            preview = engine.fetch(f"SELECT * FROM {table} LIMIT 10")
        schema = dict(zip(preview.columns, preview.types, strict=True))
        metadata = table_metadata(stats.rows or 0, schema, preview, engine.location(table))
        if stats.bytes_scanned is not None:
            metadata["bytes_scanned"] = dg.MetadataValue.int(stats.bytes_scanned)
            metadata["estimated_cost_usd"] = dg.MetadataValue.float(stats.cost_usd)
        if stats.query_id:
            metadata["query_id"] = stats.query_id
        for key in ("refresh_mode", "refresh_reason", "uploads_added", *ATHENA_ESTIMATE):
            if key in stats.extra:
                metadata[key] = stats.extra[key]
        if stats.engine_ms is not None:
            metadata["engine_ms"] = dg.MetadataValue.float(round(stats.engine_ms, 1))
        return dg.MaterializeResult(metadata=metadata)

    return _analytics


analytics_assets = [build_analytics_asset(table) for table in ANALYTICS_INPUTS]
