"""The local query engine's hold on the warehouse file during a run."""

import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from finbi_pipeline.resources.engine import DuckDBEngine, OutOfEngineMemory


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


def _hold_elsewhere(path, seconds: float) -> subprocess.Popen:
    """Another process holding the warehouse for `seconds`, once it has said so."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]);"
            " print('held', flush=True); time.sleep(float(sys.argv[2]))",
            str(path),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_waits_for_a_warehouse_that_another_run_holds(finbi_home):
    engine = DuckDBEngine(home=str(finbi_home))
    engine.fetch("SELECT 1")
    holder = _hold_elsewhere(engine.warehouse_path, seconds=1)
    try:
        with dg.build_resources({"engine": engine}) as resources:
            assert resources.engine.fetch("SELECT 1 AS one").scalar() == 1
            assert holder.poll() is not None  # it had let go
    finally:
        holder.kill()
        holder.wait()


def test_a_run_gives_up_on_the_warehouse_after_its_lock_wait(finbi_home):
    """Opened by the run's first statement, inside a step (which may be retried), not when
    the run's resources start."""
    engine = DuckDBEngine(home=str(finbi_home), lock_wait_s=0.2)
    engine.fetch("SELECT 1")
    holder = _hold_elsewhere(engine.warehouse_path, seconds=60)
    try:
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


def test_a_write_that_outgrows_the_memory_limit_says_so_in_the_engines_own_terms(tmp_path):
    # What the merge catches to split its batch of days: a partitioned write holds a buffer
    # per partition, which 500 of them overflow at 4MB.
    engine = DuckDBEngine(home=str(tmp_path), memory_limit="4MB")
    with engine.session() as session, pytest.raises(OutOfEngineMemory, match="Out of Memory"):
        session.write_parquet(
            "SELECT i % 500 AS day, repeat('x', 50) || i AS v FROM range(2000000) AS t(i)",
            str(tmp_path / "out"),
            partition_by="day",
        )
