"""`new_upload_sensor`: turns new objects in the landing zone into upload partitions and
one run per batch.

Without upload events (locally, and on AWS without a queue) it pages through each declared
source's prefix (never the whole lake). The cursor is a high-water mark of the times objects
were stored (a local file's is its latest mtime or ctime, so one moved in with an old mtime
counts as new), never past now; objects stored within `LOOKBACK_SECONDS` of it are looked at
again, so two uploads in the same second, or a slow listing, are never missed.

With upload events (S3 notifications on SQS, `resources/upload_events.py`) a tick reads
only the messages that arrived since the last one, so its cost does not grow with the
uploads already in the landing zone; every `FULL_LISTING_SECONDS` it lists every key
anyway, in case a notification was lost.

Whether an upload (key @ version) is new is decided by the instance's partitions, and the
run key is the batch itself, so one version never runs twice. Each tick also fails the runs
a killed `finbi run` left started (`abandoned_runs.py`), which would hold the run queue.
"""

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from finbi_pipeline.abandoned_runs import fail_abandoned_runs
from finbi_pipeline.jobs import ingest_job
from finbi_pipeline.resources.lake import Lake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.resources.upload_events import UploadEvents
from finbi_pipeline.uploads import (
    Upload,
    is_upload,
    landing_prefix,
    outside_sources,
    uploads_partitions,
)

LOOKBACK_SECONDS = 300.0
FULL_LISTING_SECONDS = 3600.0
MAX_EVENTS_PER_TICK = 1000
# Parallel HEAD requests of a queue tick (botocore's connection pool holds 10).
HEAD_WORKERS = 8
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def batch_run_request(partition_keys: list[str]) -> dg.RunRequest:
    """One run over a contiguous range of upload partitions."""
    digest = hashlib.sha1("\n".join(partition_keys).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=f"uploads-{digest}",
        job_name=ingest_job.name,
        tags={
            RANGE_START_TAG: partition_keys[0],
            RANGE_END_TAG: partition_keys[-1],
            "finbi/uploads": str(len(partition_keys)),
        },
    )


def _known(instance: dg.DagsterInstance, candidates: list[str]) -> set[str]:
    """Which candidate uploads are partitions already: one query, whichever is cheaper."""
    name = uploads_partitions.name
    if len(candidates) > 100:
        return set(instance.get_dynamic_partitions(name))
    return {key for key in candidates if instance.has_dynamic_partition(name, key)}


def build_new_upload_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name="new_upload_sensor",
        job=ingest_job,
        minimum_interval_seconds=15,
        default_status=default_status,
        description=__doc__,
    )
    def new_upload_sensor(
        context: dg.SensorEvaluationContext,
        lake: Lake,
        sources: SourcesResource,
        upload_events: UploadEvents,
    ) -> dg.SensorResult:
        for run_id in fail_abandoned_runs(context.instance):
            context.log.warning(f"run {run_id} was left started by a killed `finbi run`: failed")
        state = json.loads(context.cursor) if context.cursor else {}
        high_water = float(state.get("high_water", 0.0))
        listed_at = float(state.get("listed_at", 0.0))
        declared = sorted(sources.load())
        prefixes = [landing_prefix(source) for source in declared]
        receipts: list[str] = []
        from_queue = upload_events.enabled and time.time() - listed_at < FULL_LISTING_SECONDS
        if from_queue:
            created, receipts = upload_events.receive(MAX_EVENTS_PER_TICK)
            landed = [key for key in dict.fromkeys(created) if key.startswith(tuple(prefixes))]
            # Each key at its current version, the one a run reads (None: deleted since);
            # asked HEAD_WORKERS at a time, so that a burst of uploads costs a second or two.
            with ThreadPoolExecutor(HEAD_WORKERS) as pool:
                recent = [obj for obj in pool.map(lake.head, landed) if obj is not None]
        elif upload_events.enabled:  # the safety net: every key, whatever its time
            recent = [obj for prefix in prefixes for obj in lake.list_objects(prefix)]
            listed_at = time.time()
        else:
            # Objects modified well before the high-water mark were seen by an earlier tick.
            recent = [
                obj
                for prefix in prefixes
                for obj in lake.list_objects(prefix)
                if obj.last_modified >= high_water - LOOKBACK_SECONDS
            ]
        # Never past now: one file dated in the future would hide every later upload.
        newest = min(max([high_water, *(obj.last_modified for obj in recent)]), time.time())
        candidates = list(
            dict.fromkeys(Upload.from_object(o).partition_key for o in recent if is_upload(o.key))
        )
        known = _known(context.instance, candidates)
        new = [key for key in candidates if key not in known]
        cursor = json.dumps({"high_water": newest, "listed_at": listed_at})
        # Acknowledged before the result is stored: a message lost to a failed tick is
        # caught by the next full listing.
        upload_events.acknowledge(receipts)
        if not new:
            # Said in the tick's history in the UI: a file dropped into a misspelt folder
            # would otherwise wait there without a word. Only on ticks that list the landing
            # zone anyway: a tick that reads the queue costs no S3 request more.
            outside = [] if from_queue else outside_sources(lake, declared)
            reason = "no new uploads"
            if outside:
                reason += (
                    f"; never ingested, not in a declared source's folder: {', '.join(outside)}"
                )
            return dg.SensorResult(cursor=cursor, skip_reason=reason)
        context.log.info(f"{len(new)} new upload(s): {', '.join(new[:5])}")
        return dg.SensorResult(
            run_requests=[batch_run_request(new)],
            dynamic_partitions_requests=[uploads_partitions.build_add_request(new)],
            cursor=cursor,
        )

    return new_upload_sensor
