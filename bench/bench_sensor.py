"""Sensor tick cost: `new_upload_sensor` with K keys already processed in the landing zone
and 10 new ones. Target: < 2 s at K = 10,000, and no growth with K.

For each K: a scratch LocalLake with K tiny CSVs under raw/interactions/ whose mtimes are a
minute apart, the newest a day old (already ingested: their partitions are on the instance,
the cursor's high-water mark is the newest of them), plus 10 new files. The tick is
`build_new_upload_sensor(...)(build_sensor_context(cursor=..., instance=DagsterInstance.ephemeral(), resources=...))`,
timed warm (one untimed tick first) as min/median/max over --repeat ticks. A second case
puts the K old keys inside the sensor's 300 s look-back (a burst that landed in the last
minute), which the sensor re-checks one by one against the instance.

On S3 (moto, in process) K old keys + 10 new are ticked twice: listing the landing zone
(no upload events), and reading the bucket's S3 notifications from SQS (`UploadEvents`),
where a tick reads only what landed since the last one. moto's timings are not AWS's; what
matters is the growth with K (ListObjectsV2 returns 1,000 keys a page, each page a round
trip on AWS).

    python bench/bench_sensor.py [--keys 1000 10000 30000] [--repeat 5]
    python bench/bench_sensor.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
from common import Recorder, fmt_stats

from finbi_pipeline.resources import lake as lake_module
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.resources.upload_events import UploadEvents
from finbi_pipeline.sensors import build_new_upload_sensor
from finbi_pipeline.uploads import Upload, uploads_partitions

ROW = b"user_id,item_id,event_type,timestamp\nu1,i1,VIEW,1744260000\n"


def tick_times(keys: int, repeat: int, age_seconds: float) -> tuple[list[float], int]:
    # The keys are written now, so their ctime is now; let them say they landed when their
    # mtime says, as they would have had they been uploaded then.
    lake_module._changed_ns = lambda stat: stat.st_mtime_ns
    with tempfile.TemporaryDirectory(dir="/tmp") as home:
        lake = LocalLake(home=home)
        folder = Path(home, "lake", "raw", "interactions")
        folder.mkdir(parents=True)
        now = time.time()
        old_time = now - age_seconds
        for i in range(keys):
            path = folder / f"old-{i:06d}.csv"
            path.write_bytes(ROW)
            # Spread over the past: one key a minute up to `age_seconds` ago, or a burst
            # within the last `age_seconds` when that is shorter than the look-back.
            mtime = now - age_seconds * (i + 1) / keys if age_seconds < 300 else old_time - 60.0 * i
            os.utime(path, (mtime, mtime))
        instance = dg.DagsterInstance.ephemeral()
        old = [Upload.from_object(o).partition_key for o in lake.list_objects("raw/interactions/")]
        instance.add_dynamic_partitions(uploads_partitions.name, old)
        # The cursor a previous tick left: the newest modification time it saw.
        cursor = json.dumps({"high_water": max(o.last_modified for o in lake.list_objects("raw/"))})
        for i in range(10):
            (folder / f"new-{i:02d}.csv").write_bytes(ROW)
        sensor = build_new_upload_sensor(dg.DefaultSensorStatus.STOPPED)
        resources = {"lake": lake, "sources": SourcesResource(), "upload_events": UploadEvents()}
        times, found = [], 0
        for i in range(repeat + 1):
            context = dg.build_sensor_context(cursor=cursor, instance=instance, resources=resources)
            t = time.perf_counter()
            result = sensor(context)
            elapsed = time.perf_counter() - t
            found = sum(len(r.partition_keys) for r in result.dynamic_partitions_requests)
            if i:
                times.append(elapsed)
        return times, found


def s3_tick_times(keys: int, repeat: int, events: bool) -> tuple[list[float], int]:
    """Ticks on a moto S3 lake with `keys` processed uploads, 10 new before each tick."""
    import boto3
    from dagster_aws.s3 import S3Resource
    from moto import mock_aws

    from finbi_pipeline.resources.s3_lake import S3Lake

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    with mock_aws():
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.create_bucket(Bucket="bench")
        # The old keys' notifications were consumed long ago: notify only from now on
        # (which also spares moto's SQS, slow with thousands of queued messages).
        for i in range(keys):
            s3.put_object(Bucket="bench", Key=f"raw/interactions/old-{i:06d}.csv", Body=ROW)
        queue = sqs.create_queue(QueueName="uploads")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        s3.put_bucket_notification_configuration(
            Bucket="bench",
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )
        lake = S3Lake(bucket="bench", s3=S3Resource(region_name="us-east-1"))
        upload_events = UploadEvents(queue_url=queue) if events else UploadEvents()
        upload_events.acknowledge(upload_events.receive(10)[1])  # S3's test event
        instance = dg.DagsterInstance.ephemeral()
        old = [Upload.from_object(o).partition_key for o in lake.list_objects("raw/interactions/")]
        instance.add_dynamic_partitions(uploads_partitions.name, old)
        cursor = json.dumps({"high_water": time.time(), "listed_at": time.time()})
        sensor = build_new_upload_sensor(dg.DefaultSensorStatus.STOPPED)
        resources = {"lake": lake, "sources": SourcesResource(), "upload_events": upload_events}
        times, found = [], 0
        for i in range(repeat + 1):
            for j in range(10):
                s3.put_object(Bucket="bench", Key=f"raw/interactions/new-{i}-{j}.csv", Body=ROW)
            with dg.build_sensor_context(
                cursor=cursor, instance=instance, resources=resources
            ) as context:
                t = time.perf_counter()
                result = sensor(context)
                elapsed = time.perf_counter() - t
            found = sum(len(r.partition_keys) for r in result.dynamic_partitions_requests)
            for request in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
            cursor = result.cursor or cursor
            if i:
                times.append(elapsed)
        return times, found


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--keys", type=int, nargs="+", default=[1000, 10000, 30000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="keys 1000 and 10000, 3 ticks")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.keys, args.repeat = [1000, 10000], 3
    rec = Recorder(args.json)
    cmd = "python bench/bench_sensor.py --keys " + " ".join(map(str, args.keys))
    for label, age in (
        ("landed 1/min, newest a day ago", 86400.0),
        ("burst: all within the last 60 s", 60.0),
    ):
        medians = ticks_and_growth(
            rec, cmd, label, args.keys, lambda keys, age=age: tick_times(keys, args.repeat, age)
        )
        if 10000 in args.keys:
            t = medians[10000]
            rec.add(
                f"sensor tick, 10,000 keys {label} + 10 new (median)",
                t,
                "s",
                target="< 2 s",
                ok=t < 2,
                command=cmd,
            )
    s3_keys = [k for k in args.keys if k <= 10000]  # moto's puts get slow beyond
    for label, events in (("S3, listing", False), ("S3, SQS upload events", True)):
        ticks_and_growth(
            rec,
            cmd,
            f"{label}, moto",
            s3_keys,
            lambda keys, events=events: s3_tick_times(keys, args.repeat, events),
        )


def ticks_and_growth(rec: Recorder, cmd: str, label: str, key_counts: list[int], tick) -> dict:
    """Median tick per key count (printed), and the growth from fewest to most keys
    (recorded); `tick(keys)` returns (times, uploads found)."""
    medians = {}
    for keys in key_counts:
        times, found = tick(keys)
        assert found == 10, f"expected 10 new uploads, the sensor found {found}"
        print(f"{keys:>6} old keys ({label}) + 10 new: tick {fmt_stats(times, 's', digits=3)}")
        medians[keys] = statistics.median(times)
    small, big = min(key_counts), max(key_counts)
    growth = medians[big] / medians[small]
    rec.add(
        f"sensor tick growth {small:,} -> {big:,} keys ({label})",
        growth,
        "x",
        target="~1x (flat)",
        ok=growth < 1.5,
        command=cmd,
        detail=f"{medians[small] * 1000:.0f} ms -> {medians[big] * 1000:.0f} ms",
    )
    return medians


if __name__ == "__main__":
    main()
