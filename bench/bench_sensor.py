"""Sensor tick cost: `new_upload_sensor` with K keys already processed in the landing zone
and 10 new ones. Target: < 2 s at K = 10,000, and no growth with K.

For each K: a scratch LocalLake with K tiny CSVs under raw/interactions/ whose mtimes are a
minute apart, the newest a day old (already ingested: their partitions are on the instance,
the cursor's high-water mark is the newest of them), plus 10 new files. The tick is
`build_new_upload_sensor(...)(build_sensor_context(cursor=..., instance=DagsterInstance.ephemeral(), resources=...))`,
timed warm (one untimed tick first) as min/median/max over --repeat ticks. A second case
puts the K old keys inside the sensor's 300 s look-back (a burst that landed in the last
minute), which the sensor re-checks one by one against the instance.

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

from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.sensors import build_new_upload_sensor
from finbi_pipeline.uploads import Upload, uploads_partitions

ROW = b"user_id,item_id,event_type,timestamp\nu1,i1,VIEW,1744260000\n"


def tick_times(keys: int, repeat: int, age_seconds: float) -> tuple[list[float], int]:
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
        resources = {"lake": lake, "sources": SourcesResource()}
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
    medians = {}
    for label, age in (
        ("landed 1/min, newest a day ago", 86400.0),
        ("burst: all within the last 60 s", 60.0),
    ):
        for keys in args.keys:
            times, found = tick_times(keys, args.repeat, age)
            assert found == 10, f"expected 10 new uploads, the sensor found {found}"
            print(f"{keys:>6} old keys ({label}) + 10 new: tick {fmt_stats(times, 's', digits=3)}")
            medians[(label, keys)] = statistics.median(times)
        big, small = max(args.keys), min(args.keys)
        growth = medians[(label, big)] / medians[(label, small)]
        if 10000 in args.keys:
            t = medians[(label, 10000)]
            rec.add(
                f"sensor tick, 10,000 keys {label} + 10 new (median)",
                t,
                "s",
                target="< 2 s",
                ok=t < 2,
                command=cmd,
            )
        rec.add(
            f"sensor tick growth {small:,} -> {big:,} keys ({label})",
            growth,
            "x",
            target="~1x (flat)",
            ok=growth < 1.5,
            command=cmd,
            detail=f"{medians[(label, small)] * 1000:.0f} ms -> {medians[(label, big)] * 1000:.0f} ms",
        )


if __name__ == "__main__":
    main()
