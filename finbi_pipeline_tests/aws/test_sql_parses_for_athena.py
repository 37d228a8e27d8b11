"""Every SQL file, rendered as the pipeline renders it, parses in Athena's dialect."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlglot

from finbi_pipeline.ingest import DATE_COLUMN
from finbi_pipeline.sources import load_sources
from finbi_pipeline.sql_templates import (
    SQL_DIR,
    curation_sql,
    kpi_consistency_sql,
    render,
    sql_file,
    validation_sql,
)

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def _rendered() -> dict[str, str]:
    rendered = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        name = path.stem
        if name.startswith("validate_"):
            for source in load_sources().values():
                if f"validate_{source.kind}" == name:
                    rendered[f"{name}[{source.name}]"] = validation_sql(source, "raw_records", NOW)
            # Every kind of timestamp format, in a zone other than UTC.
            source = next(s for s in load_sources().values() if f"validate_{s.kind}" == name)
            for fmt in ("epoch_millis", "iso8601", "%d/%m/%Y %H:%M"):
                zoned = dataclasses.replace(source, timestamp_format=fmt, timezone="Europe/London")
                rendered[f"{name}[{fmt}]"] = validation_sql(zoned, "raw_records", NOW)
        elif name.startswith("curate_"):
            rendered[name] = curation_sql(
                name.removeprefix("curate_"),
                staged="staged_records",
                existing="(SELECT * FROM curated WHERE FALSE)",
                members=(
                    f"(SELECT DATE '2024-01-01' AS {DATE_COLUMN[name.removeprefix('curate_')]}, "
                    "'s' AS source, 'u' AS upload_id)"
                ),
            )
        elif name.endswith("_increment"):
            rendered[name] = render(name, new_rows="SELECT 1", stored_rows="SELECT 1")
        elif name == "ingest_log_current":
            rendered[name] = render(name, ingest_log="ingest_log")
        elif name == "kpi_summary_consistency":
            rendered[name] = kpi_consistency_sql()
        else:
            rendered[name] = sql_file(name)
    return rendered


RENDERED = _rendered()


def test_every_file_is_covered():
    names = {name.split("[")[0] for name in RENDERED}
    assert names == {p.stem for p in SQL_DIR.glob("*.sql")}
    assert "validate_interactions[interactions]" in RENDERED
    assert "validate_sales[sales]" in RENDERED


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_parses_as_athena(name):
    tree = sqlglot.parse_one(RENDERED[name], read="athena")
    assert tree is not None and tree.named_selects  # a query with named output columns
