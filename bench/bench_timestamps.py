"""What each timestamp format costs the validation SQL (the staging step's main work).

Runs `validate_interactions.sql`, as the pipeline renders and transpiles it, over N records
held in memory (no CSV read, no Parquet write: the difference between formats), once per
format, and prints the median of several runs beside the baseline, epoch seconds, measured in
the same process:

    python bench/bench_timestamps.py            # 10M records, 5 runs
    python bench/bench_timestamps.py --quick    # 1M records, 3 runs
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import time

import duckdb

from finbi_pipeline.resources.engine import TRINO_COMPAT_MACROS
from finbi_pipeline.sources import load_sources
from finbi_pipeline.sql_templates import to_duckdb, validation_sql

# (format, zone, how the generated timestamp column is written from `t`, a TIMESTAMP)
FORMATS = [
    ("epoch_seconds", "UTC", "CAST(epoch(t) AS BIGINT)::VARCHAR"),
    ("%Y-%m-%d %H:%M:%S", "UTC", "strftime(t, '%Y-%m-%d %H:%M:%S')"),
    ("%Y-%m-%d %H:%M:%S", "Europe/London", "strftime(t, '%Y-%m-%d %H:%M:%S')"),
    (
        "iso8601",
        "UTC",
        "strftime(t, '%Y-%m-%dT%H:%M:%S') || (CASE WHEN i % 2 = 0 THEN 'Z' ELSE '+02:00' END)",
    ),
    ("iso8601", "Europe/London", "strftime(t, '%Y-%m-%dT%H:%M:%S')"),
]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="1M records, 3 runs")
    args = ap.parse_args()
    rows, runs = (1_000_000, 3) if args.quick else (args.rows, args.runs)

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for macro in TRINO_COMPAT_MACROS:
        con.execute(macro)
    base = load_sources()["interactions"]
    now = dt.datetime.now(dt.UTC)
    baseline = None
    print(f"{rows:,} records, median of {runs} runs (after a warm-up)")
    for fmt, zone, written in FORMATS:
        con.execute(
            "CREATE OR REPLACE TABLE records AS SELECT i AS record_no, "
            "CAST(NULL AS BIGINT) AS file_index, 'u' || (i % 100000) AS user_id, "
            f"'i' || (i % 5000) AS item_id, 'view' AS event_type, {written} AS \"timestamp\" "
            "FROM (SELECT i, TIMESTAMP '2024-01-01' + to_seconds(i % 31536000) AS t "
            f"FROM range({rows}) AS r(i))"
        )
        source = dataclasses.replace(base, timestamp_format=fmt, timezone=zone)
        sql = to_duckdb(validation_sql(source, "records", now))
        query = f"SELECT count(reject_reason), max(event_time) FROM ({sql})"
        con.execute(query).fetchone()  # warm-up
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            (rejected, _) = con.execute(query).fetchone()
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        baseline = baseline or median
        print(
            f"{fmt + ' (' + zone + ')':<36} median {median:6.3f} s "
            f"(min {min(seconds):.3f} / max {max(seconds):.3f})  "
            f"{median / baseline:5.2f}x epoch seconds  rejected {rejected}"
        )


if __name__ == "__main__":
    main()
