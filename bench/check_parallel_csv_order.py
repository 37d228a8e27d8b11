"""Does DuckDB's parallel CSV reader keep `row_number() OVER ()` in file order?

DuckDBSession.register_csv numbers records with `row_number() OVER ()` over read_csv and
needs record_no to be the record's position in the file (quarantine line numbers). This
writes a CSV whose first column is its own record number (plus noise columns so it spans
many parallel scan chunks), reads it exactly as register_csv does with parallel=false and
parallel=true, and counts rows where record_no != the stored number. It also times both.

    python bench/check_parallel_csv_order.py --rows 20000000 [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

THREADS_SQL = "SELECT current_setting('threads')"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: default)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2M rows, 1 repeat")
    ap.add_argument("--memory-limit", default="1GB")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.repeat = 2_000_000, 1
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = Path(tmp, "ordered.csv")
        con = duckdb.connect(
            config={
                "memory_limit": args.memory_limit,
                **({"threads": args.threads} if args.threads else {}),
            }
        )
        con.execute(
            f"COPY (SELECT range + 1 AS n, 'User_' || (hash(range) % 400000) AS user_id, "
            f"'Item_' || (hash(range * 7) % 50000) AS item_id, 'VIEW' AS event_type, "
            f"1744260000 + range AS ts FROM range({args.rows})) TO '{path}' (HEADER)"
        )
        print(
            f"{args.rows:,} rows, {path.stat().st_size / 1e6:.0f} MB, threads "
            f"{con.execute(THREADS_SQL).fetchone()[0]}"
        )
        for parallel in ("false", "true"):
            for rep in range(args.repeat):
                opts = (
                    f"all_varchar = true, header = true, store_rejects = true, "
                    f"strict_mode = true, parallel = {parallel}"
                )
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW r AS SELECT row_number() OVER () AS record_no, "
                    f"n, user_id, item_id, event_type, ts FROM read_csv('{path}', {opts})"
                )
                t = time.perf_counter()
                # Same shape as staging: the view feeds a COPY to Parquet; then compare.
                out = Path(tmp, "staged.parquet")
                con.execute(f"COPY (SELECT * FROM r) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
                elapsed = time.perf_counter() - t
                wrong, first_bad = con.execute(
                    f"SELECT COUNT(*) FILTER (WHERE record_no <> CAST(n AS BIGINT)), "
                    f"MIN(record_no) FILTER (WHERE record_no <> CAST(n AS BIGINT)) "
                    f"FROM read_parquet('{out}')"
                ).fetchone()
                print(
                    f"parallel={parallel} run {rep + 1}: {elapsed:.2f} s, "
                    f"rows out of file order: {wrong:,} (first at record {first_bad})"
                )


if __name__ == "__main__":
    main()
