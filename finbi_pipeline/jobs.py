"""Jobs: ingest a batch of uploads and refresh everything; or refresh without new uploads."""

from __future__ import annotations

import dagster as dg

# One run per batch of uploads: the raw partitions in the run's range, then every
# downstream table and the dashboard once.
ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.all(),
    description="Ingest a batch of uploads (a range of raw_uploads partitions) and refresh "
    "curated → catalog → analytics → dashboard once.",
)

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("raw_uploads"),
    description="Refresh curated → catalog → analytics → dashboard from what is staged.",
)
