"""End to end: `dagster dev` on a free loopback port, `finbi load`, the sensor's run, and
the new rows in kpi_summary. Every process started here is stopped by PID."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest

from finbi_pipeline_tests.conftest import REPO, SAMPLE

pytestmark = pytest.mark.e2e
FINBI = [sys.executable, "-m", "finbi_pipeline.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited ({process.returncode}) while waiting {what}")
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def dagster_dev(finbi_home, tmp_path):
    port = free_port()
    log = open(tmp_path / "dagster-dev.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-m", "finbi_pipeline.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the webserver and daemon stop too
    )  # fmt: skip
    (finbi_home / "dagster").mkdir(exist_ok=True)
    (finbi_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    try:
        yield process, port, tmp_path / "dagster-dev.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def kpi_views(finbi_home):
    try:
        with duckdb.connect(str(finbi_home / "warehouse.duckdb"), read_only=True) as con:
            return con.execute("SELECT total_views FROM finbi.kpi_summary").fetchone()[0]
    except (duckdb.Error, TypeError):  # not created yet, or a run holds the write lock
        return None


def test_upload_is_picked_up_by_the_sensor_and_reaches_kpi_summary(dagster_dev, finbi_home):
    process, port, log = dagster_dev

    def ui_up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
        except OSError:
            return None

    wait_for(ui_up, 120, "the Dagster UI", process)
    loaded = subprocess.run(
        [*FINBI, "load", "--source", "interactions", str(SAMPLE / "interactions.csv")],
        capture_output=True, text=True, env=dict(os.environ), cwd=REPO, check=True,
    )  # fmt: skip
    assert "raw/interactions/interactions.csv" in loaded.stdout

    with open(SAMPLE / "interactions.csv") as handle:
        expected_views = sum(1 for line in handle if ",VIEW," in line)
    try:
        views = wait_for(lambda: kpi_views(finbi_home), 240, "the sensor's run", process)
    except AssertionError:
        print(log.read_text()[-5000:])
        raise
    assert views == expected_views
