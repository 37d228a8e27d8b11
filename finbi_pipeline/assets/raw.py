"""Raw uploads: one dynamic partition per CSV object (key @ version) in `raw/<source>/`.

Materializing partitions validates each file: typed records are staged for curation,
rejected records go to `quarantine/<source>/` with their line and reason. A batch of
uploads is one run (single-run backfill policy), so per-upload overhead stays small.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from finbi_pipeline.ingest import stage_upload
from finbi_pipeline.metadata import markdown_preview
from finbi_pipeline.resources.engine import QueryEngine
from finbi_pipeline.resources.lake import Lake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.uploads import Upload, uploads_partitions


@dg.asset(
    partitions_def=uploads_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="raw",
    kinds={"csv"},
    description=__doc__,
)
def raw_uploads(
    context: dg.AssetExecutionContext, lake: Lake, engine: QueryEngine, sources: SourcesResource
) -> dg.MaterializeResult:
    declared = sources.load()
    now = dt.datetime.now(dt.UTC)
    reports, failures = [], []
    with engine.session() as session:
        for partition_key in context.partition_keys:
            upload = Upload.from_partition_key(partition_key)
            source = declared.get(upload.source)
            if source is None:
                failures.append(f"{upload.key}: source '{upload.source}' is not declared")
                continue
            if lake.head(upload.key) is None:
                context.log.warning(
                    f"{upload.key} was deleted before it could be ingested; skipped"
                )
                continue
            report = stage_upload(upload, source, lake, session, now)
            if report.status == "rejected":
                context.log.error(report.message)
            reports.append(report)
    if failures:
        raise dg.Failure("Uploads from undeclared sources:\n" + "\n".join(failures))
    table = pd.DataFrame(
        [
            {
                "object_key": r.object_key,
                "status": r.status,
                "rows_read": r.rows_read,
                "rows_quarantined": r.rows_quarantined,
                "message": r.message,
            }
            for r in reports
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(r.rows_read for r in reports),
            "location": lake.uri("raw/"),
            "uploads": len(reports),
            "rows_read": sum(r.rows_read for r in reports),
            "rows_quarantined": sum(r.rows_quarantined for r in reports),
            "files_rejected": sum(r.status == "rejected" for r in reports),
            "staged": markdown_preview(table),
        }
    )
