"""Resources: one interface per external system, a local and an AWS implementation each.

`build_resources(target)` picks the set once; assets are typed against the interfaces.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from finbi_pipeline.resources.catalog import DuckDBCatalog
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.resources.publisher import LocalDashboardPublisher
from finbi_pipeline.resources.sources_resource import SourcesResource
from finbi_pipeline.resources.upload_events import UploadEvents

TARGETS = ("local", "aws")


class ConfigError(ValueError):
    """An environment setting FinBI cannot work with; the message names it."""


def finbi_home() -> str:
    """FINBI_HOME, or `.finbi` in the working directory, as an absolute path."""
    home = os.path.abspath(os.environ.get("FINBI_HOME") or ".finbi")
    if os.path.exists(home) and not os.path.isdir(home):
        raise ConfigError(f"FINBI_HOME={home} is a file: point it at a folder (made if missing)")
    return home


def build_resources(target: str) -> dict:
    """The resources of one target: lake, catalog, engine, publisher, sources and the
    upload events the sensor reads (none locally)."""
    sources = SourcesResource(
        path=dg.EnvVar("FINBI_SOURCES") if "FINBI_SOURCES" in os.environ else ""
    )
    if target == "local":
        home = finbi_home()
        lake = LocalLake(home=home)
        memory = {}
        if "FINBI_DUCKDB_MEMORY_LIMIT" in os.environ:
            memory["memory_limit"] = dg.EnvVar("FINBI_DUCKDB_MEMORY_LIMIT")
        engine = DuckDBEngine(home=home, **memory)
        return {
            "lake": lake,
            "engine": engine,
            "catalog": DuckDBCatalog(lake=lake, engine=engine),
            "publisher": LocalDashboardPublisher(home=home, engine=engine),
            "sources": sources,
            "upload_events": UploadEvents(),
        }
    if target == "aws":
        from finbi_pipeline.resources.aws import build_aws_resources

        return {**build_aws_resources(), "sources": sources}
    raise ConfigError(f"FINBI_TARGET must be one of {', '.join(TARGETS)}, not {target!r}")


@contextmanager
def resolved_resources(defs: dg.Definitions, *names: str) -> Iterator:
    """Resources as a run sees them (EnvVar fields resolved), for code outside a run."""
    with dg.build_resources({name: defs.resources[name] for name in names}) as resources:
        yield resources
