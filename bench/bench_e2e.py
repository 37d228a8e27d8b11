"""End-to-end benchmark: `finbi run` from a clean FINBI_HOME vs the DuckDB floor, and the
incremental refresh after one more upload of 1% more rows.

For N interactions (+ the generator's sales lines, about N/13):
  floor        DuckDB alone reads both CSVs and writes Parquet (zstd), default settings,
               in a fresh interpreter: the least any CSV->Parquet pipeline can cost here.
  Dagster      FinBI's asset graph with steps that do nothing (`dagster_floor.py`), run as
  floor        `finbi run` runs it, for one new upload and for nothing new: the least any
               run of this graph costs, whatever its steps do.
  full run     fresh FINBI_HOME, `finbi load` both files (timed apart), `finbi run` timed
               with the peak RSS of its whole process tree (psutil sampling).
  incremental  after the last full run, `finbi load` N/100 new interactions and `finbi run`
               again (ingest + every downstream refresh), four times: one file over every
               day of the data (seed 43); one file all on one new day (seed 44, moved to the
               day after the data: a daily upload); four files together on the next day
               (seed 45: a batch the sensor starts one run for); and nothing new (the fixed
               cost of a run).

A warm-up (one floor run, which also pulls the CSVs into the page cache) comes first.

    python bench/bench_e2e.py --rows 10000000 --runs 3
    python bench/bench_e2e.py --quick          # 200k rows, 1 run, < 2 minutes
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import textwrap
from pathlib import Path

import duckdb
from common import (
    BENCH_DIR,
    FINBI,
    PYTHON,
    Recorder,
    finbi_env,
    free_gib,
    fresh_home,
    measure,
    mib,
)

FLOOR = textwrap.dedent("""
    import duckdb, sys
    interactions, sales, out = sys.argv[1:4]
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{interactions}')) TO '{out}/i.parquet' (FORMAT parquet, COMPRESSION zstd)")
    con.execute(f"COPY (SELECT * FROM read_csv('{sales}')) TO '{out}/s.parquet' (FORMAT parquet, COMPRESSION zstd)")
""")


def line_count(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1


def one_new_day(increment: Path, data: Path, out: Path, days_after: int = 1) -> None:
    """Write `increment`'s events moved onto the `days_after`-th day after `data`'s last
    event (generated files: time-sorted, epoch seconds last): what a daily upload looks
    like."""
    with data.open("rb") as f:
        f.seek(max(data.stat().st_size - 4096, 0))
        last = int(f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].rsplit(b",", 1)[-1])
    day = (last // 86400 + days_after) * 86400
    duckdb.sql(
        f"COPY (SELECT user_id, item_id, event_type, {day} + timestamp % 86400 AS timestamp "
        f"FROM read_csv('{increment}')) TO '{out}' (HEADER)"
    )


def split_csv(path: Path, parts: int) -> list[Path]:
    """`path`'s records in `parts` files beside it (each with the header)."""
    header, *records = path.read_bytes().splitlines(keepends=True)
    size = -(-len(records) // parts)
    files = [path.with_name(f"{path.stem}-part{i + 1}{path.suffix}") for i in range(parts)]
    for i, file in enumerate(files):
        file.write_bytes(header + b"".join(records[i * size : (i + 1) * size]))
    return files


def dagster_floor(work: Path, runs: int) -> dict[str, list[float]]:
    """Seconds of `dagster_floor.py` runs, fresh processes, after a warm-up that creates the
    instance: {"ingest": one new upload, "refresh": nothing new}."""
    script = str(BENCH_DIR / "dagster_floor.py")
    graph, home = work / "dagster-floor-graph.json", fresh_home(work / "dagster-floor-home")
    graph.write_text(measure([PYTHON, script, "describe"]).stdout)
    measure([PYTHON, script, "prepare", str(graph), str(home)])
    times: dict[str, list[float]] = {"ingest": [], "refresh": []}
    for _ in range(runs):
        for job, seconds in times.items():
            m = measure([PYTHON, script, "run", str(graph), str(home), job])
            assert "status: ok" in m.stdout, m.stdout + m.stderr[-2000:]
            seconds.append(m.seconds)
    shutil.rmtree(home)
    graph.unlink()
    return times


def ensure_data(rows: int, seed: int, root: Path) -> Path:
    out = root / f"data-{rows}-s{seed}"
    if not (out / "interactions.csv").exists():
        measure([FINBI, "generate", "--rows", str(rows), "--out", str(out), "--seed", str(seed)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=10_000_000, help="interaction rows (default 10M)")
    ap.add_argument("--runs", type=int, default=3, help="timed full runs (default 3)")
    ap.add_argument("--quick", action="store_true", help="200k rows, 1 run: a smoke test")
    ap.add_argument("--work", default="/tmp/finbi-bench", help="data and FINBI_HOME folder")
    ap.add_argument("--no-incremental", action="store_true")
    ap.add_argument("--no-floor", action="store_true", help="skip the DuckDB floor")
    ap.add_argument("--label", default="", help="suffix for result names (e.g. 100M)")
    ap.add_argument("--keep", action="store_true", help="keep FINBI_HOME afterwards")
    ap.add_argument("--json", help="append result records (JSON lines) to this file")
    ap.add_argument(
        "--memory-limit",
        help="FINBI_DUCKDB_MEMORY_LIMIT for `finbi` (e.g. 256MB; default: FinBI's 1GB)",
    )
    args = ap.parse_args()
    if args.quick:
        args.rows, args.runs = 200_000, 1
    rec = Recorder(args.json)
    label = args.label or (f"{args.rows / 1e6:g}M" if args.rows >= 1e6 else f"{args.rows / 1e3:g}k")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"free disk on {work}: {free_gib(str(work)):.1f} GiB")
    data = ensure_data(args.rows, 42, work)
    icsv, scsv = data / "interactions.csv", data / "sales.csv"
    n_i, n_s = line_count(icsv), line_count(scsv)
    csv_bytes = icsv.stat().st_size + scsv.stat().st_size
    print(f"data: {n_i:,} interactions + {n_s:,} sales lines, {csv_bytes / 1e9:.2f} GB of CSV")

    floor_out = work / "floor-out"
    floor_times, floor_rss = [], []
    dagster_times: dict[str, list[float]] = {}
    if not args.no_floor:
        for i in range(args.runs + 1):  # the first is the warm-up
            fresh_home(floor_out)
            m = measure([PYTHON, "-c", FLOOR, str(icsv), str(scsv), str(floor_out)])
            print(
                f"floor {'warm-up' if i == 0 else i}: {m.seconds:.2f} s, peak {mib(m.peak_rss):.0f} MiB"
            )
            if i:
                floor_times.append(m.seconds)
                floor_rss.append(m.peak_rss)
        shutil.rmtree(floor_out)
        dagster_times = dagster_floor(work, args.runs)
        print(
            "Dagster floor: one new upload "
            + ", ".join(f"{t:.2f}" for t in dagster_times["ingest"])
            + " s; nothing new "
            + ", ".join(f"{t:.2f}" for t in dagster_times["refresh"])
            + " s"
        )

    home = work / f"home-{label}"
    memory = {"FINBI_DUCKDB_MEMORY_LIMIT": args.memory_limit} if args.memory_limit else {}
    run_times, run_rss, load_times = [], [], []
    for i in range(args.runs):
        fresh_home(home)
        env = finbi_env(str(home), **memory)
        t_load = 0.0
        for source, path in (("interactions", icsv), ("sales", scsv)):
            t_load += measure([FINBI, "load", "--source", source, str(path)], env=env).seconds
        m = measure([FINBI, "run"], env=env, check=False)
        if "status: ok" not in m.stdout:
            # Still record what it cost: a failed run is a finding, not a crash of the bench.
            print(
                m.stdout
                + "\n"
                + "\n".join(line for line in m.stderr.splitlines() if "Error" in line)[-2000:]
            )
            rec.add(
                f"e2e {label}: finbi run FAILED after",
                m.seconds,
                "s",
                ok=False,
                command=f"python bench/bench_e2e.py --rows {args.rows} --runs {args.runs}",
                detail=f"peak {mib(m.peak_rss):.0f} MiB; "
                + "; ".join(line for line in m.stdout.splitlines() if line.startswith("FAILED"))[
                    :300
                ],
            )
            return
        load_times.append(t_load)
        run_times.append(m.seconds)
        run_rss.append(m.peak_rss)
        print(
            f"full run {i + 1}: load {t_load:.2f} s, run {m.seconds:.2f} s, peak {mib(m.peak_rss):.0f} MiB"
        )
        if i == 0:
            print(textwrap.indent(m.stdout.strip(), "    "))

    med = statistics.median(run_times)
    rows_per_s = (n_i + n_s) / med
    cmd = f"python bench/bench_e2e.py --rows {args.rows} --runs {args.runs}"
    if args.memory_limit:
        cmd += f" --memory-limit {args.memory_limit} --label {label}"
    span = lambda v, s=1.0: f"min {min(v) / s:.2f} / max {max(v) / s:.2f}"  # noqa: E731
    rec.add(f"e2e {label}: finbi run wall (median)", med, "s", command=cmd, detail=span(run_times))
    rec.add(
        f"e2e {label}: finbi load (copy into lake, median)",
        statistics.median(load_times),
        "s",
        command=cmd,
        detail=span(load_times),
    )
    peak = max(run_rss)
    target_rss = 1.5 * 1024**3 if args.rows <= 20_000_000 else 4 * 1024**3
    rec.add(
        f"e2e {label}: finbi run peak RSS (max)",
        mib(peak),
        "MiB",
        target=f"< {target_rss / 1024**2:.0f} MiB",
        ok=peak < target_rss,
        command=cmd,
        detail=span(run_rss, 1024**2),
    )
    rec.add(
        f"e2e {label}: rows per second",
        rows_per_s,
        "rows/s",
        command=cmd,
        detail=f"{n_i + n_s:,} rows (interactions + sales lines)",
    )
    if floor_times:
        fmed = statistics.median(floor_times)
        rec.add(
            f"e2e {label}: DuckDB floor wall (median)",
            fmed,
            "s",
            command=cmd,
            detail=f"{span(floor_times)}; peak {mib(max(floor_rss)):.0f} MiB",
        )
        rec.add(
            f"e2e {label}: finbi run / floor",
            med / fmed,
            "x",
            target="<= 3x",
            ok=med / fmed <= 3,
            command=cmd,
        )
    if dagster_times:
        ingest = statistics.median(dagster_times["ingest"])
        for job, what in (("ingest", "one new upload"), ("refresh", "nothing new")):
            rec.add(
                f"e2e {label}: Dagster floor, {what} (median)",
                statistics.median(dagster_times[job]),
                "s",
                command=cmd,
                detail=f"{span(dagster_times[job])}; FinBI's graph, steps that do nothing",
            )
        rec.add(
            f"e2e {label}: Dagster floor (one new upload) / finbi run",
            ingest / med,
            "x",
            command=cmd,
            detail="the least an incremental run can cost, as a share of the full run "
            "(incremental target: <= 0.10)",
        )
        if floor_times:
            rec.add(
                f"e2e {label}: (DuckDB floor + Dagster floor) / DuckDB floor",
                (fmed + ingest) / fmed,
                "x",
                command=cmd,
                detail="the least finbi run / floor can be: the CSVs converted inside a run "
                "of this graph (target for finbi run / floor: <= 3x)",
            )

    if not args.no_incremental:
        inc_rows = max(args.rows // 100, 1000)
        spread = ensure_data(inc_rows, 43, work) / "interactions.csv"
        new_day = work / f"interactions-new-day-{inc_rows}.csv"
        one_new_day(ensure_data(inc_rows, 44, work) / "interactions.csv", icsv, new_day)
        batch_day = work / f"interactions-batch-day-{inc_rows}.csv"
        one_new_day(ensure_data(inc_rows, 45, work) / "interactions.csv", icsv, batch_day, 2)
        env = finbi_env(str(home), **memory)
        # (result name, files to upload first, what they are); names of the first kept as
        # before.
        scenarios = (
            ("+1% upload", [spread], "new interactions over every day of the data"),
            ("+1% on one new day", [new_day], "new interactions, all on the day after the data"),
            (
                "+1% in 4 uploads on one new day",
                split_csv(batch_day, 4),
                "new interactions in four files, all on the second day after the data",
            ),
            ("nothing new", [], "a run with nothing to ingest: the fixed cost of a run"),
        )
        for name, csvs, what in scenarios:
            for csv in csvs:
                upload = work / f"interactions-increment-{csv.parent.name}-{csv.name}"
                shutil.copyfile(csv, upload)
                measure([FINBI, "load", "--source", "interactions", str(upload)], env=env)
                upload.unlink()
            m = measure([FINBI, "run"], env=env)
            assert "status: ok" in m.stdout, m.stdout + m.stderr[-2000:]
            print(f"incremental, {name}: {m.seconds:.2f} s, peak {mib(m.peak_rss):.0f} MiB")
            rec.add(
                f"incremental {label}: {name}, finbi run wall",
                m.seconds,
                "s",
                command=cmd,
                detail=f"{inc_rows:,} {what}; peak {mib(m.peak_rss):.0f} MiB" if csvs else what,
            )
            ratio = m.seconds / med
            target = {"target": "<= 0.10", "ok": ratio <= 0.10} if csvs else {}
            first = name == scenarios[0][0]
            rec.add(
                f"incremental {label}: / full run"
                if first
                else f"incremental {label}: {name} / full run",
                ratio,
                "x",
                command=cmd,
                **target,
            )
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
