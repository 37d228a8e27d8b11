"""The local query engine's hold on the warehouse file during a run."""

import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from finbi_pipeline.resources.engine import DuckDBEngine


def _opens_read_only(path) -> bool:
    """Whether this process can open the warehouse read-only: DuckDB refuses while a
    read-write instance of the file is open in the process."""
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.ConnectionException:
        return False
    return True


def test_a_run_keeps_the_warehouse_open_between_statements_and_closes_it_at_the_end(
    finbi_home,
):
    engine = DuckDBEngine(home=str(finbi_home))
    engine.fetch("SELECT 1")  # outside a run: nothing stays open
    assert _opens_read_only(engine.warehouse_path)

    with dg.build_resources({"engine": engine}) as resources:
        resources.engine.fetch("CREATE TABLE finbi.t AS SELECT 42 AS answer")
        assert not _opens_read_only(engine.warehouse_path)
        assert resources.engine.fetch("SELECT answer FROM finbi.t").scalar() == 42
    assert _opens_read_only(engine.warehouse_path)


def test_a_warehouse_locked_by_another_process_fails_the_statement_not_the_run_start(
    finbi_home,
):
    """The file is opened by the run's first statement, inside a step, whose retry policy
    waits for a lock to go; opening it when the run's resources start would fail the run."""
    engine = DuckDBEngine(home=str(finbi_home))
    engine.fetch("SELECT 1")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]);"
            " print('held', flush=True); time.sleep(60)",
            str(engine.warehouse_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with (
            dg.build_resources({"engine": engine}) as resources,
            pytest.raises(duckdb.IOException, match="lock"),
        ):
            resources.engine.fetch("SELECT 1")
    finally:
        holder.kill()
        holder.wait()
    with dg.build_resources({"engine": engine}) as resources:
        assert resources.engine.fetch("SELECT 1 AS one").scalar() == 1
