"""Run the real pipeline (`run_pipeline`, what `finbi run` does) on files, and read back
what it recorded, for the dataset tests. Every run gets its own FINBI_HOME."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_SOURCES = REPO / "examples" / "sources" / "real_datasets.yaml"


@dataclass
class PipelineRun:
    home: Path
    success: bool
    failures: list[str]
    seconds: float
    # ingest_log rows by file name (the last part of the object key)
    uploads: dict[str, dict] = field(default_factory=dict)
    kpis: dict = field(default_factory=dict)
    quarantine: list[dict] = field(default_factory=list)

    def query(self, sql: str) -> list[tuple]:
        """Run `sql` on the warehouse (schema finbi), read-only."""
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(sql).fetchall()

    def records(self, sql: str) -> list[dict]:
        with duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def run_files(home: Path, source: str, files: list[Path]) -> PipelineRun:
    """Land `files` as raw/<source>/<name> (one upload each) and run the pipeline once."""
    from finbi_pipeline.resources.lake import LocalLake
    from finbi_pipeline.runner import run_pipeline

    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FINBI_TARGET", "local")
        env.setenv("FINBI_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        env.setenv("FINBI_SOURCES", str(REAL_SOURCES))
        lake = LocalLake(home=str(home))
        for path in files:
            lake.upload_file(path, f"raw/{source}/{path.name}")
        started = time.perf_counter()
        summary = run_pipeline(dg.DagsterInstance.ephemeral())
        seconds = time.perf_counter() - started
    run = PipelineRun(home, summary.success, summary.failures, seconds)
    if (home / "warehouse.duckdb").exists():
        log = run.records("SELECT * FROM finbi.ingest_log ORDER BY object_key")
        run.uploads = {row["object_key"].rsplit("/", 1)[-1]: row for row in log}
        kpis = run.records("SELECT * FROM finbi.kpi_summary")
        run.kpis = kpis[0] if kpis else {}
        run.quarantine = run.records(
            "SELECT * FROM finbi.quarantine ORDER BY object_key, line_number"
        )
    return run
