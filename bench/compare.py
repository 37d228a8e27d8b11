"""Compare two benchmark tables written by run_all.py: every figure of NEW next to OLD, the
change in percent, and a flag where a figure moved the wrong way by more than --tolerance.
Lower is better for s, MiB, MB, x (except "pandas ... / FinBI", higher is better) and %;
rows/s is higher-better. Exit status 1 when something regressed.

    python bench/compare.py                       # results/latest.md vs results/previous.md
    python bench/compare.py NEW.md OLD.md --tolerance 15
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROW = re.compile(r"^\| (?P<name>[^|]+) \| (?P<value>-?[0-9.,]+(?:e[+-]?\d+)?) (?P<unit>\S+)")


def parse(path: Path) -> dict[str, tuple[float, str]]:
    figures = {}
    for line in path.read_text().splitlines():
        m = ROW.match(line)
        if m:
            figures[m["name"].strip()] = (float(m["value"].replace(",", "")), m["unit"])
    return figures


def higher_is_better(name: str, unit: str) -> bool:
    return unit == "rows/s" or name.startswith("pandas") and "/ FinBI" in name or "vs" in name


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("new", nargs="?", default=str(RESULTS / "latest.md"))
    ap.add_argument("old", nargs="?", default=str(RESULTS / "previous.md"))
    ap.add_argument("--tolerance", type=float, default=10.0, help="percent (default 10)")
    ap.add_argument("--quick", action="store_true", help="same as the default (for symmetry)")
    args = ap.parse_args()
    new, old = parse(Path(args.new)), parse(Path(args.old))
    regressed = 0
    print(f"{'figure':<70}{'old':>14}{'new':>14}{'change':>9}")
    for name, (value, unit) in new.items():
        if name not in old:
            print(f"{name:<70}{'-':>14}{value:>14,.4g} (new) {unit}")
            continue
        before = old[name][0]
        change = (value - before) / before * 100 if before else 0.0
        worse = -change if higher_is_better(name, unit) else change
        flag = "  REGRESSION" if worse > args.tolerance else ""
        regressed += bool(flag)
        print(f"{name:<70}{before:>14,.4g}{value:>14,.4g}{change:>+8.1f}% {unit}{flag}")
    for name in old.keys() - new.keys():
        print(f"{name:<70}{old[name][0]:>14,.4g}{'-':>14} (gone)")
    sys.exit(1 if regressed else 0)


if __name__ == "__main__":
    main()
