"""The local target's resources as `build_resources` assembles them from the environment."""

import duckdb

from finbi_pipeline.definitions import defs as load_definitions
from finbi_pipeline.resources import resolved_resources


def _warehouse_memory_limit() -> str:
    with (
        resolved_resources(load_definitions(), "engine") as resources,
        resources.engine.connect() as con,
    ):
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def _as_duckdb_reports(limit: str) -> str:
    return (
        duckdb.connect(config={"memory_limit": limit})
        .execute("SELECT current_setting('memory_limit')")
        .fetchone()[0]
    )


def test_duckdb_memory_limit_defaults_and_follows_the_environment(monkeypatch):
    default = _warehouse_memory_limit()
    monkeypatch.setenv("FINBI_DUCKDB_MEMORY_LIMIT", "3GB")
    assert _warehouse_memory_limit() == _as_duckdb_reports("3GB") != default
