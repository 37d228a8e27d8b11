"""Catalog tables: the curated data and the data-quality logs registered in the catalog
(DuckDB views locally, Glue tables on AWS), schema detected from the data and recorded with
its history. A schema change is reported; a breaking one fails the blocking contract check.
"""

import dagster as dg

from finbi_pipeline.assets.retries import retried_on_passing_faults
from finbi_pipeline.ingest import CURATED_COLUMNS, DATE_COLUMN, QUARANTINE_COLUMNS
from finbi_pipeline.metadata import table_metadata
from finbi_pipeline.resources.catalog import Catalog, SchemaChange, TableSpec
from finbi_pipeline.resources.engine import QueryEngine

INGEST_LOG_COLUMNS = {
    "upload_id": "VARCHAR",
    "source": "VARCHAR",
    "kind": "VARCHAR",
    "object_key": "VARCHAR",
    "object_version": "VARCHAR",
    "rows_read": "BIGINT",
    "rows_accepted": "BIGINT",
    "rows_duplicate": "BIGINT",
    "rows_quarantined": "BIGINT",
    "status": "VARCHAR",
    "message": "VARCHAR",
    "ingested_at": "TIMESTAMP",
}


def _curated_table(kind: str) -> TableSpec:
    date_column = DATE_COLUMN[kind]
    columns = dict(CURATED_COLUMNS[kind])
    columns.pop("source")
    columns.pop("upload_id")
    # Contract order: the date column after the time column, lineage columns last.
    columns = {**columns, date_column: "DATE", "source": "VARCHAR", "upload_id": "VARCHAR"}
    return TableSpec(kind, f"curated/{kind}/", columns, partition_column=date_column)


TABLES = {
    "interactions": _curated_table("interactions"),
    "sales": _curated_table("sales"),
    "ingest_log": TableSpec("ingest_log", "ingest_log/", INGEST_LOG_COLUMNS, file_format="json"),
    "quarantine": TableSpec("quarantine", "quarantine/", QUARANTINE_COLUMNS),
}


def contract_check(table: TableSpec, change: SchemaChange) -> dg.AssetCheckResult:
    """Passes when the detected schema has the contract's columns and types, unbroken."""
    detected = {c: t.replace(" ", "") for c, t in change.current.items()}
    missing = [c for c in table.columns if c not in detected]
    mismatched = [
        f"{c}: {detected[c]} (contract {t})"
        for c, t in table.columns.items()
        if c in detected and detected[c] != t.replace(" ", "")
    ]
    return dg.AssetCheckResult(
        check_name="schema_contract",
        asset_key=dg.AssetKey(f"catalog_{table.name}"),
        passed=not (missing or mismatched or change.breaking),
        metadata={
            "missing_columns": ", ".join(missing) or "none",
            "type_mismatches": "; ".join(mismatched) or "none",
            "schema_change": change.describe(),
        },
    )


def _register(
    context: dg.AssetExecutionContext, table: TableSpec, catalog: Catalog, engine: QueryEngine
) -> dg.MaterializeResult:
    with retried_on_passing_faults(context):
        change = catalog.register_table(table)
        rows = engine.fetch(f"SELECT COUNT(*) FROM {table.name}").scalar()
        preview = engine.fetch(f"SELECT * FROM {table.name} LIMIT 10")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(rows, change.current, preview, catalog.location(table)),
            "schema_change": change.describe(),
        },
        check_results=[contract_check(table, change)],
    )


def _spec(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "schema_contract",
            asset=f"catalog_{name}",
            blocking=True,
            description="The detected schema matches the contract in DESIGN.md.",
        )
    ]


@dg.asset(
    deps=["curated_interactions"],
    group_name="catalog",
    check_specs=_spec("interactions"),
)
def catalog_interactions(
    context: dg.AssetExecutionContext, catalog: Catalog, engine: QueryEngine
) -> dg.MaterializeResult:
    """Table `finbi.interactions` over curated/interactions/, partitioned by event_date."""
    return _register(context, TABLES["interactions"], catalog, engine)


@dg.asset(
    deps=["curated_sales"],
    group_name="catalog",
    check_specs=_spec("sales"),
)
def catalog_sales(
    context: dg.AssetExecutionContext, catalog: Catalog, engine: QueryEngine
) -> dg.MaterializeResult:
    """Table `finbi.sales` over curated/sales/, partitioned by sale_date."""
    return _register(context, TABLES["sales"], catalog, engine)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "catalog_ingest_log",
            deps=["curated_interactions", "curated_sales"],
            group_name="catalog",
            description="Table `finbi.ingest_log`: the reconciled counts of every upload.",
        ),
        dg.AssetSpec(
            "catalog_quarantine",
            deps=["raw_uploads"],
            group_name="catalog",
            description="Table `finbi.quarantine`: every rejected record, line and reason.",
        ),
    ],
    check_specs=_spec("ingest_log") + _spec("quarantine"),
)
def catalog_data_quality(context: dg.AssetExecutionContext, catalog: Catalog, engine: QueryEngine):
    """The data-quality tables the dashboard's data panel reads."""
    for name in ("ingest_log", "quarantine"):
        result = _register(context, TABLES[name], catalog, engine)
        yield dg.MaterializeResult(
            asset_key=f"catalog_{name}",
            metadata=result.metadata,
            check_results=result.check_results,
        )
