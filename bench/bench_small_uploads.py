"""Many small uploads vs one file: the 305 daily files of UCI Online Retail loaded at once,
against the same rows uploaded as one file. Each case: fresh FINBI_HOME, `finbi load`
(timed apart), `finbi run` timed with peak RSS. Target: many <= 2x one.

The source is `uci_online_retail` from examples/sources/real_datasets.yaml when that file
declares it; otherwise bench/uci_sources.yaml (same declaration) is written and used.

    python bench/bench_small_uploads.py [--runs 1]
    python bench/bench_small_uploads.py --quick     # the first 30 days
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

import yaml
from common import BENCH_DIR, FINBI, REPO, Recorder, finbi_env, fresh_home, measure, mib

DATA = Path("/work/shared/datasets/uci_online_retail/by-day")
FALLBACK = """\
sources:
  uci_online_retail:
    kind: sales
    columns:
      order_id: InvoiceNo
      item_id: StockCode
      quantity: Quantity
      unit_price: UnitPrice
      timestamp: InvoiceDate
      user_id: CustomerID
      country: Country
    integer_ids: [user_id]
    timestamp: {format: "%Y-%m-%d %H:%M:%S", timezone: Europe/London}
"""


def sources_file() -> Path:
    shipped = REPO / "examples/sources/real_datasets.yaml"
    try:
        if "uci_online_retail" in (yaml.safe_load(shipped.read_text())["sources"] or {}):
            return shipped
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        pass
    local = BENCH_DIR / "uci_sources.yaml"
    local.write_text(FALLBACK)
    return local


def run_case(home: Path, files: list[Path], sources: Path) -> tuple[float, float, int, str]:
    fresh_home(home)
    env = finbi_env(str(home), FINBI_SOURCES=str(sources))
    load = measure([FINBI, "load", "--source", "uci_online_retail", *map(str, files)], env=env)
    m = measure([FINBI, "run"], env=env)
    assert "status: ok" in m.stdout, m.stdout + m.stderr[-2000:]
    summary = next((line for line in m.stdout.splitlines() if line.startswith("rows")), "")
    return m.seconds, load.seconds, m.peak_rss, summary


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="the first 30 daily files")
    ap.add_argument("--work", default="/tmp/finbi-bench")
    ap.add_argument("--json")
    args = ap.parse_args()
    rec = Recorder(args.json)
    files = sorted(DATA.glob("*.csv"))
    if args.quick:
        files = files[:30]
    sources = sources_file()
    work = Path(args.work)
    one = work / "uci-one" / "uci_online_retail_all.csv"
    one.parent.mkdir(parents=True, exist_ok=True)
    with one.open("wb") as out:
        for i, f in enumerate(files):
            lines = f.read_bytes().splitlines(keepends=True)
            out.writelines(lines if i == 0 else lines[1:])
    rows = sum(1 for _ in one.open("rb")) - 1
    print(f"{len(files)} files, {rows:,} rows; sources {sources}")
    # Warm-up: one small run so imports and page cache are warm.
    run_case(work / "home-uci-warm", files[:3], sources)
    many, single = [], []
    for _ in range(args.runs):
        t, tl, rss, summary = run_case(work / "home-uci-many", files, sources)
        print(
            f"{len(files)} files: run {t:.2f} s (load {tl:.2f} s), peak {mib(rss):.0f} MiB; {summary}"
        )
        many.append(t)
        t, tl, rss, summary = run_case(work / "home-uci-one", [one], sources)
        print(f"one file: run {t:.2f} s (load {tl:.2f} s), peak {mib(rss):.0f} MiB; {summary}")
        single.append(t)
    for name in ("home-uci-warm", "home-uci-many", "home-uci-one", "uci-one"):
        shutil.rmtree(work / name, ignore_errors=True)
    cmd = f"python bench/bench_small_uploads.py --runs {args.runs}" + (
        " --quick" if args.quick else ""
    )
    m, s = statistics.median(many), statistics.median(single)
    rec.add(
        f"uploads: {len(files)} daily UCI files, finbi run",
        m,
        "s",
        command=cmd,
        detail=f"{rows:,} rows",
    )
    rec.add("uploads: same rows as one file, finbi run", s, "s", command=cmd)
    rec.add(
        f"uploads: {len(files)} files / one file",
        m / s,
        "x",
        target="<= 2x",
        ok=m / s <= 2,
        command=cmd,
    )


if __name__ == "__main__":
    main()
