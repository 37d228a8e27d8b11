"""User drill-down: the serving extract's per-user copy of every event against the same
query over the curated Parquet files (what serving it without the copy would read).

Both answer "this user's events in time order" for the same random users, warm, in one
process; the extract is looked up by user key (`queries.py`), the curated files by user id.

    python bench/bench_drilldown.py --home /tmp/finbi-bench/home-10M   # a built FINBI_HOME
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import duckdb
from common import fmt_stats

from finbi_pipeline.dashboard.extract import USER_KEY, serving_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", required=True, help="a FINBI_HOME after `finbi run`")
    ap.add_argument("--users", type=int, default=30)
    args = ap.parse_args()

    curated = f"{args.home}/lake/curated/interactions/event_date=*/*.parquet"
    lake = duckdb.connect()
    sample = lake.execute(
        f"SELECT DISTINCT user_id FROM read_parquet('{curated}') USING SAMPLE 1000 ROWS"
    ).fetchall()
    random.seed(1)
    users = random.sample([user for (user,) in sample], args.users)
    extract = duckdb.connect()
    extract.execute(f"ATTACH '{serving_path(Path(args.home))}' AS serving (READ_ONLY)")
    key = USER_KEY.format("$1::VARCHAR")
    cases = (
        (
            "extract: user_events by user key",
            extract,
            "SELECT event_time, event_type, item_id FROM serving.user_events "
            f"WHERE user_key = {key} ORDER BY event_time",
        ),
        (
            "curated Parquet by user_id",
            lake,
            f"SELECT event_time, event_type, item_id FROM read_parquet('{curated}') "
            "WHERE user_id = $1 ORDER BY event_time",
        ),
    )
    for name, con, sql in cases:
        con.execute(sql, [users[0]]).fetchall()  # warm-up
        times = []
        for user in users:
            started = time.perf_counter()
            con.execute(sql, [user]).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        p95 = sorted(times)[round(0.95 * (len(times) - 1))]
        print(f"{name:34s} {fmt_stats(times, unit='ms', digits=1)}, p95 {p95:.1f} ms")


if __name__ == "__main__":
    main()
