"""Run every FinBI benchmark and write a Markdown table to bench/results/latest.md
(the previous one is kept as bench/results/previous.md; raw records as latest.jsonl).

    python bench/run_all.py                 # 10M e2e (3 runs) + incremental, pandas, the
                                            # 10M run again with DuckDB held to 256MB,
                                            # UCI uploads, sensor, Athena bytes, dashboard,
                                            # 100M (1 run) + incremental
    python bench/run_all.py --quick         # small sizes, < 2 minutes: a smoke test
    python bench/run_all.py --big-rows 30000000   # a smaller "big" run when time is short
    python bench/run_all.py --skip big pandas     # leave some benchmarks out

Then `python bench/compare.py` shows what changed against the previous table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH_DIR, PYTHON, machine

RESULTS = BENCH_DIR / "results"
# FINBI_DUCKDB_MEMORY_LIMIT of the "lean" 10M run, compared with pandas as the default is.
LEAN_MEMORY = "256MB"


def run(script: str, *args: str, jsonl: Path) -> str:
    cmd = [PYTHON, str(BENCH_DIR / script), *args, "--json", str(jsonl)]
    print("\n$ " + " ".join(cmd[1:]), flush=True)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=BENCH_DIR, text=True, capture_output=True)
    lines = [line for line in proc.stdout.splitlines()]
    print("\n".join(lines), flush=True)
    if proc.returncode:
        print(proc.stderr[-4000:], file=sys.stderr)
        print(f"!! {script} failed ({proc.returncode})", flush=True)
    print(f"({script}: {time.perf_counter() - started:.0f} s)", flush=True)
    return proc.stdout if proc.returncode == 0 else f"FAILED: {proc.stderr[-1500:]}"


def table(records: list[dict]) -> str:
    rows = ["| figure | value | target | met | command |", "|---|---|---|---|---|"]
    for r in records:
        met = "" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
        detail = f" ({r['detail']})" if r.get("detail") else ""
        rows.append(
            f"| {r['name']} | {r['value']:,.4g} {r['unit']}{detail} | {r['target']} | "
            f"{met} | `{r['command']}` |"
        )
    return "\n".join(rows)


def _pandas_against_lean(recs: list[dict], label: str) -> list[dict]:
    """pandas' time and peak RSS over the lean run's (derived, like the 100M rate)."""
    value = {r["name"]: r["value"] for r in recs}
    pandas_s = value.get(f"pandas {label}: wall (median)")
    pandas_rss = value.get(f"pandas {label}: peak RSS (max)")
    lean_s = value.get(f"e2e {label}-lean: finbi run wall (median)")
    lean_rss = value.get(f"e2e {label}-lean: finbi run peak RSS (max)")
    if None in (pandas_s, pandas_rss, lean_s, lean_rss):
        return []
    common = {"command": "(derived)", "detail": f"FINBI_DUCKDB_MEMORY_LIMIT={LEAN_MEMORY}"}
    return [
        {
            "name": f"pandas {label}: pandas time / FinBI lean time",
            "value": pandas_s / lean_s,
            "unit": "x",
            "target": ">= 5x",
            "ok": pandas_s / lean_s >= 5,
            **common,
        },
        {
            "name": f"pandas {label}: pandas RSS / FinBI lean RSS",
            "value": pandas_rss / lean_rss,
            "unit": "x",
            "target": ">= 5x",
            "ok": pandas_rss / lean_rss >= 5,
            **common,
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small sizes for smoke use (< 2 min)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-rows", type=int, default=100_000_000)
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["e2e", "pandas", "lean", "uploads", "sensor", "athena", "dashboard", "big"],
    )
    ap.add_argument("--work", default="/tmp/finbi-bench")
    ap.add_argument("--out", default=str(RESULTS / "latest.md"))
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    if out.exists() and not args.quick:
        shutil.copyfile(out, out.with_name("previous.md"))
    jsonl.unlink(missing_ok=True)
    q = ["--quick"] if args.quick else []
    sizes = [] if args.quick else ["--rows", str(args.rows), "--runs", str(args.runs)]
    work = ["--work", args.work]
    label = f"{args.rows / 1e6:g}M"
    home = Path(args.work) / f"home-{'200k' if args.quick else label}"
    extra = {}
    started = time.perf_counter()
    if "e2e" not in args.skip:
        run("bench_e2e.py", *q, *sizes, *work, "--keep", jsonl=jsonl)
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    for r in recs:
        if r["name"].endswith("finbi run wall (median)"):
            extra["sec"] = r["value"]
        if r["name"].endswith("finbi run peak RSS (max)"):
            extra["rss"] = r["value"]
    if "athena" not in args.skip and home.exists():
        run("bench_athena_bytes.py", "--home", str(home), jsonl=jsonl)
    shutil.rmtree(home, ignore_errors=True)
    if "pandas" not in args.skip:
        cmp = (
            ["--finbi-seconds", str(extra["sec"]), "--finbi-rss-mib", str(extra["rss"])]
            if extra
            else []
        )
        run("bench_pandas.py", *q, *sizes, *work, *cmp, jsonl=jsonl)
    if "lean" not in args.skip and not args.quick:
        # The same full run with DuckDB held to LEAN_MEMORY: what memory costs in time.
        lean = [*sizes, "--no-floor", "--no-incremental", "--memory-limit", LEAN_MEMORY]
        run("bench_e2e.py", *lean, "--label", f"{label}-lean", *work, jsonl=jsonl)
    if "uploads" not in args.skip:
        run(
            "bench_small_uploads.py",
            *q,
            *(() if args.quick else ("--runs", "3")),
            *work,
            jsonl=jsonl,
        )
    if "sensor" not in args.skip:
        run("bench_sensor.py", *q, jsonl=jsonl)
    dashboard_out = ""
    if "dashboard" not in args.skip:
        appends = ["--appends", "2" if args.quick else "10"]
        cmd = [PYTHON, str(BENCH_DIR / "bench_dashboard.py"), *q, *appends]
        print("\n$ " + " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=BENCH_DIR.parent, text=True, capture_output=True)
        dashboard_out = proc.stdout + (
            f"\nFAILED ({proc.returncode}):\n{proc.stderr[-1500:]}" if proc.returncode else ""
        )
        print(dashboard_out, flush=True)
    if "big" not in args.skip and not args.quick:
        run(
            "bench_e2e.py",
            "--rows",
            str(args.big_rows),
            "--runs",
            "1",
            "--no-floor",
            *work,
            jsonl=jsonl,
        )
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    big = f"{args.big_rows / 1e6:g}M"
    small_rps = next(
        (r["value"] for r in recs if r["name"] == f"e2e {label}: rows per second"), None
    )
    big_rps = next((r["value"] for r in recs if r["name"] == f"e2e {big}: rows per second"), None)
    if small_rps and big_rps:
        ratio = big_rps / small_rps
        recs.append(
            {
                "name": f"e2e {big} rows/s vs {label} rows/s",
                "value": ratio * 100,
                "unit": "%",
                "target": ">= 75%",
                "ok": ratio >= 0.75,
                "command": "(derived)",
                "detail": "",
            }
        )
    recs += _pandas_against_lean(recs, label)
    text = (
        f"# FinBI benchmark results\n\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · "
        f"{machine()} · `python bench/run_all.py {' '.join(sys.argv[1:])}` · "
        f"{time.perf_counter() - started:.0f} s\n\n{table(recs)}\n"
    )
    if dashboard_out:
        text += f"\n## Dashboard query latency (bench/bench_dashboard.py)\n\n```\n{dashboard_out.strip()}\n```\n"
    out.write_text(text)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
