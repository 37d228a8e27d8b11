"""Athena cost proxy: the bytes a dashboard refresh would scan on Athena.

Athena bills the Parquet column chunks a query reads (only the columns it references, only
the partitions its filters keep) and, over CSV, the whole of every file it reads. For each
analytics SQL file (the Athena text in finbi_pipeline/sql/) and, when present, each query
of the dashboard's serving extract, this finds the curated columns it references
(`finbi_pipeline.athena_scan.referenced_columns`, which also gives the local analytics
assets their `athena_estimated_*` metadata) and sums `total_compressed_size` of those column
chunks over every curated Parquet file (pyarrow metadata; the date partition column lives
in the path and costs nothing). An analytics table that another reads (kpi_summary reads
user_activity) is exported from the warehouse as Snappy Parquet, as Athena's CTAS writes
it, and counted at its column chunks in both figures. The CSV figure is the same queries over the raw CSVs: each
query scans every raw file of each table it reads. Target: at most 10% of the CSV bytes.

Needs a FINBI_HOME after `finbi run` (bench_e2e.py --keep leaves one).

    python bench/bench_athena_bytes.py --home /tmp/finbi-bench/home-10M
    python bench/bench_athena_bytes.py --quick   # builds a 200k-row home first
"""

from __future__ import annotations

import argparse
import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from common import FINBI, Recorder, finbi_env, fresh_home, measure

from finbi_pipeline.assets.catalog import TABLES
from finbi_pipeline.athena_scan import referenced_columns
from finbi_pipeline.sql_templates import ANALYTICS_TABLES, sql_file

KINDS = ("interactions", "sales")


def column_bytes(home: Path, kind: str) -> dict[str, int]:
    return column_bytes_of((home / "lake" / "curated" / kind).rglob("*.parquet"))


def column_bytes_of(paths) -> dict[str, int]:
    """{column: compressed bytes of its chunks} over Parquet files."""
    sizes: dict[str, int] = defaultdict(int)
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                chunk = group.column(c)
                sizes[chunk.path_in_schema] += chunk.total_compressed_size
    return sizes


def analytics_column_bytes(home: Path, scratch: Path) -> dict[str, dict[str, int]]:
    """{analytics table: {column: bytes}}: each table written as Athena's CTAS writes it
    (Parquet, Snappy), for the queries that read other analytics tables (kpi_summary)."""
    sizes = {}
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    for table in ANALYTICS_TABLES:
        path = scratch / f"{table}.parquet"
        con.execute(f"COPY finbi.{table} TO '{path}' (FORMAT parquet, COMPRESSION snappy)")
        sizes[table] = column_bytes_of([path])
        path.unlink()
    con.close()
    return sizes


def queries() -> list[tuple[str, str, str]]:
    found = [(f"analytics/{t}", sql_file(t), "athena") for t in ANALYTICS_TABLES]
    from finbi_pipeline.dashboard.extract import SERVING_TABLES, USER_KEY

    # A full build's queries, with the placeholders the warehouse does not fill.
    names = {
        "interactions": "finbi.interactions",
        "sales": "finbi.sales",
        "sales_orders": "build.sales_orders",
        "ingest_log": "finbi.ingest_log",
        "scratch": "scratch",
        "build": "build",
        "version": 0,
        "user_key": USER_KEY.format("user_id"),  # reads user_id, as the build does
        "user_id_if_keys_collide": "NULL",  # no two users share a key
        "event_type_type": "VARCHAR",
        "source_type": "VARCHAR",
        "money": "DECIMAL(18, 4)",
        # The build's own facts (`extract_info`): literals, which read nothing.
        "refreshed_at": "NULL",
        "build_mode": "NULL",
        "full_build_at": "NULL",
        "rows_since_full_build": "NULL",
        "duckdb_version": "NULL",
        "sales_abs_amount": "NULL",
    }
    for table in SERVING_TABLES:
        for name, sql in ((table.name, table.query), *table.staging):
            found.append((f"serving/{name}", sql.format(**names), "duckdb"))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--home", help="a FINBI_HOME after `finbi run`")
    ap.add_argument("--quick", action="store_true", help="build a 200k-row home and measure it")
    ap.add_argument("--work", default="/tmp/finbi-bench")
    ap.add_argument("--json")
    args = ap.parse_args()
    rec = Recorder(args.json)
    built = None
    if args.home is None:
        from bench_e2e import ensure_data

        data = ensure_data(200_000, 42, Path(args.work))
        built = home = fresh_home(Path(args.work) / "home-athena-quick")
        env = finbi_env(str(home))
        for source in KINDS:
            measure([FINBI, "load", "--source", source, str(data / f"{source}.csv")], env=env)
        measure([FINBI, "run"], env=env)
    else:
        home = Path(args.home)
    sizes = {k: column_bytes(home, k) for k in KINDS}
    sizes.update(analytics_column_bytes(home, Path(args.work)))
    schemas = {k: list(TABLES[k].columns) for k in KINDS}
    schemas.update({t: list(columns) for t, columns in sizes.items() if t not in KINDS})
    csv_bytes = {
        k: sum(
            p.stat().st_size
            for p in (home / "lake" / "raw").glob("*/*")
            if p.parent.name in {s for s in _sources_of(home, k)}
        )
        for k in KINDS
    }
    total_parquet = total_csv = 0
    refresh_parquet = refresh_csv = 0
    print(f"raw CSV bytes: {csv_bytes}")
    print(f"{'query':<34}{'columns read':<60}{'Parquet MB':>11}{'CSV MB':>10}")
    for name, sql, dialect in queries():
        try:
            used = referenced_columns(sql, dialect, schemas)
        except Exception as exc:  # noqa: BLE001 - report, do not stop the bench
            print(f"{name}: cannot analyse ({exc})")
            continue
        p = sum(sizes[k].get(c, 0) for k, cols in used.items() for c in cols)
        # An analytics table another one reads is Parquet in both cases.
        c = sum(
            csv_bytes[k] if k in KINDS else sum(sizes[k].get(col, 0) for col in cols)
            for k, cols in used.items()
        )
        # COUNT(*) over no column: Athena reads the smallest column's metadata; count 0.
        cols = "; ".join(f"{k}: {','.join(sorted(v)) or '(none)'}" for k, v in used.items())
        print(f"{name:<34}{cols[:58]:<60}{p / 1e6:>11.2f}{c / 1e6:>10.1f}")
        total_parquet += p
        total_csv += c
        if name.startswith("analytics/"):
            refresh_parquet += p
            refresh_csv += c
    cmd = f"python bench/bench_athena_bytes.py --home {home}"
    rec.add(
        "athena: analytics refresh scans, Parquet",
        refresh_parquet / 1e6,
        "MB",
        command=cmd,
        detail="6 analytics queries over curated Parquet (column chunks referenced)",
    )
    rec.add("athena: analytics refresh scans, raw CSV", refresh_csv / 1e6, "MB", command=cmd)
    rec.add(
        "athena: Parquet / CSV bytes (analytics)",
        refresh_parquet / refresh_csv * 100,
        "%",
        target="<= 10%",
        ok=refresh_parquet / refresh_csv <= 0.10,
        command=cmd,
    )
    if total_csv != refresh_csv:
        rec.add(
            "athena: Parquet / CSV bytes (analytics + serving extract)",
            total_parquet / total_csv * 100,
            "%",
            target="<= 10%",
            ok=total_parquet / total_csv <= 0.10,
            command=cmd,
        )
    if built:
        shutil.rmtree(built)


def _sources_of(home: Path, kind: str) -> list[str]:
    """Raw source folders whose data lands in curated `kind` (from the ingest log)."""
    import json

    names = set()
    for log in (home / "lake" / "ingest_log").rglob("*.json"):
        entry = json.loads(log.read_text())
        if entry.get("kind") == kind:
            names.add(entry["source"])
    return sorted(names)


if __name__ == "__main__":
    main()
