"""Fixtures for the dashboard tests.

Each test runs in its own temporary FINBI_HOME: the `finbi_home` fixture of
finbi_pipeline_tests/conftest.py (autouse) sets it with monkeypatch.setenv.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import serving_path

from ._warehouse import create_warehouse, refresh


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives the served dashboard in a real Chromium (Playwright)"
    )


@pytest.fixture
def warehouse():
    """The fixture warehouse (in memory), open read-write like the pipeline holds it."""
    con = create_warehouse()
    yield con
    con.close()


@pytest.fixture
def extract(warehouse: duckdb.DuckDBPyConnection, finbi_home: Path) -> Path:
    """The fixture warehouse's serving extract, built; returns its path."""
    refresh(warehouse, finbi_home)
    return serving_path(finbi_home)


@pytest.fixture
def con(extract: Path):
    """A reader on the fixture extract, opened the way the app opens it."""
    connection = queries.open_extract(extract)
    cursor = queries.reader(connection)
    yield cursor
    cursor.close()
    connection.close()
