"""FinBI vs what a user would write instead: bench/pandas_pipeline.py (plain pandas, same
ingestion and aggregates) on the same CSVs, wall time and peak RSS of the process tree.

FinBI's figures are taken from --finbi-seconds/--finbi-rss-mib (run_all.py passes the
medians of bench_e2e.py) or measured here once (fresh FINBI_HOME, load, `finbi run`).
Target at 10M rows: FinBI at least 5x faster and 5x leaner.

    python bench/bench_pandas.py --rows 10000000 --runs 3
    python bench/bench_pandas.py --quick
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

from bench_e2e import ensure_data
from common import BENCH_DIR, FINBI, PYTHON, Recorder, finbi_env, fresh_home, measure, mib


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200k rows, 1 run")
    ap.add_argument("--work", default="/tmp/finbi-bench")
    ap.add_argument("--finbi-seconds", type=float)
    ap.add_argument("--finbi-rss-mib", type=float)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.runs = 200_000, 1
    rec = Recorder(args.json)
    label = f"{args.rows / 1e6:g}M" if args.rows >= 1e6 else f"{args.rows / 1e3:g}k"
    work = Path(args.work)
    data = ensure_data(args.rows, 42, work)
    icsv, scsv = data / "interactions.csv", data / "sales.csv"
    out = work / "pandas-out"
    times, rss = [], []
    for i in range(args.runs + 1):  # first: warm-up
        fresh_home(out)
        m = measure([PYTHON, str(BENCH_DIR / "pandas_pipeline.py"), str(icsv), str(scsv), str(out)])
        print(
            f"pandas {'warm-up' if i == 0 else i}: {m.seconds:.2f} s, peak {mib(m.peak_rss):.0f} MiB"
            f"  {m.stdout.strip()}"
        )
        if i:
            times.append(m.seconds)
            rss.append(m.peak_rss)
    shutil.rmtree(out)
    if args.finbi_seconds is None or args.finbi_rss_mib is None:
        home = fresh_home(work / "home-pandas-cmp")
        env = finbi_env(str(home))
        for source, path in (("interactions", icsv), ("sales", scsv)):
            measure([FINBI, "load", "--source", source, str(path)], env=env)
        m = measure([FINBI, "run"], env=env)
        args.finbi_seconds, args.finbi_rss_mib = m.seconds, mib(m.peak_rss)
        shutil.rmtree(home)
    cmd = f"python bench/bench_pandas.py --rows {args.rows} --runs {args.runs}"
    med, peak = statistics.median(times), mib(max(rss))
    rec.add(
        f"pandas {label}: wall (median)",
        med,
        "s",
        command=cmd,
        detail=f"min {min(times):.2f} / max {max(times):.2f}",
    )
    rec.add(f"pandas {label}: peak RSS (max)", peak, "MiB", command=cmd)
    rec.add(
        f"pandas {label}: pandas time / FinBI time",
        med / args.finbi_seconds,
        "x",
        target=">= 5x",
        ok=med / args.finbi_seconds >= 5,
        command=cmd,
        detail=f"FinBI {args.finbi_seconds:.2f} s",
    )
    rec.add(
        f"pandas {label}: pandas RSS / FinBI RSS",
        peak / args.finbi_rss_mib,
        "x",
        target=">= 5x",
        ok=peak / args.finbi_rss_mib >= 5,
        command=cmd,
        detail=f"FinBI {args.finbi_rss_mib:.0f} MiB",
    )


if __name__ == "__main__":
    main()
