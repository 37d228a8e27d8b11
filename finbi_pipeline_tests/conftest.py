"""Shared fixtures: every test runs in its own temporary FINBI_HOME and Dagster home."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data"


@pytest.fixture(autouse=True)
def finbi_home(tmp_path_factory, monkeypatch) -> Path:
    """A fresh FINBI_HOME (and DAGSTER_HOME inside it) for each test; built-in sources.

    It lives beside the test's tmp_path, which stays empty for the test's own files.
    """
    home = tmp_path_factory.mktemp("finbi_home")
    monkeypatch.setenv("FINBI_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("FINBI_SOURCES", raising=False)
    monkeypatch.setenv("FINBI_TARGET", "local")
    return home


@pytest.fixture
def land(finbi_home):
    """Put a file into the landing zone as raw/<source>/<name> (what `finbi load` does)."""
    from finbi_pipeline.resources.lake import LocalLake

    def _land(source: str, path: Path, name: str | None = None):
        return LocalLake(home=str(finbi_home)).upload_file(
            Path(path), f"raw/{source}/{name or Path(path).name}"
        )

    return _land


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the bundled sample data."""
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE, target)
    return target


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with dg.instance_for_test() as test_instance:
        yield test_instance
