"""Source declarations: how a landing prefix's CSV files map onto the canonical tables.

A source is `raw/<name>/` in the lake plus a declaration (YAML) of its kind, CSV dialect,
column mapping, value mapping, allowed event types and timestamp format. Adding a source is
a configuration change: nothing in the pipeline's code names a source.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

BUILTIN_SOURCES = Path(__file__).with_name("sources.yaml")

Kind = Literal["interactions", "sales"]

# Canonical input columns per kind: (name, required). `timestamp` becomes event_time/sale_time.
CANONICAL_INPUTS: dict[str, list[tuple[str, bool]]] = {
    "interactions": [
        ("user_id", True),
        ("item_id", True),
        ("event_type", True),
        ("timestamp", True),
    ],
    "sales": [
        ("order_id", True),
        ("user_id", False),
        ("item_id", True),
        ("quantity", True),
        ("unit_price", True),
        ("timestamp", True),
        ("country", False),
    ],
}
EPOCH_FORMATS = ("epoch_seconds", "epoch_millis")
ENCODINGS = ("utf-8", "latin-1", "utf-16")


class SourceConfigError(ValueError):
    """A sources file that cannot be used; the message names the file, source and field."""


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str = ","
    quote: str = '"'
    header: bool = True
    # Column names for header-less files, in file order.
    names: tuple[str, ...] = ()
    encoding: str = "utf-8"


@dataclass(frozen=True)
class SourceSpec:
    """One declared source. `columns` maps canonical name -> column name in the file."""

    name: str
    kind: Kind
    columns: dict[str, str]
    csv: CsvDialect = field(default_factory=CsvDialect)
    # Source value (matched case-insensitively, trimmed) -> canonical event type.
    event_type_values: dict[str, str] = field(default_factory=dict)
    # Canonical event types accepted; None accepts any (after mapping and upper-casing).
    event_types: tuple[str, ...] | None = None
    timestamp_format: str = "epoch_seconds"
    timezone: str = "UTC"
    # Columns whose values arrive as float strings ("17850.0") but are integer ids.
    integer_ids: tuple[str, ...] = ()
    plausible_from: dt.date = dt.date(1990, 1, 1)
    plausible_days_ahead: int = 1

    @property
    def required_columns(self) -> list[str]:
        """File columns that must be present for the file to be readable at all."""
        return [self.columns[c] for c, required in CANONICAL_INPUTS[self.kind] if required]

    def file_column(self, canonical: str) -> str | None:
        return self.columns.get(canonical)


def load_sources(path: str | Path | None = None) -> dict[str, SourceSpec]:
    """Read a sources file (default: the built-in one) and validate every declaration."""
    path = Path(path) if path else BUILTIN_SOURCES
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SourceConfigError(f"{path}: cannot read sources file: {exc}") from exc
    entries = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise SourceConfigError(f"{path}: expected a non-empty mapping under 'sources:'")
    return {name: _parse_source(path, name, entry or {}) for name, entry in entries.items()}


def _parse_source(path: Path, name: str, entry: dict) -> SourceSpec:
    where = f"{path}: source '{name}'"

    def fail(message: str) -> SourceConfigError:
        return SourceConfigError(f"{where}: {message}")

    if not name.replace("_", "").replace("-", "").isalnum():
        raise fail("names may only hold letters, digits, '_' and '-'")
    if not isinstance(entry, dict):
        raise fail(f"expected a mapping of settings (kind, columns, ...), not {entry!r}")
    kind = entry.get("kind")
    if kind not in CANONICAL_INPUTS:
        raise fail(f"kind must be 'interactions' or 'sales', not {kind!r}")

    raw_columns = entry.get("columns") or {}
    if not isinstance(raw_columns, dict):
        raise fail("columns must map canonical column names to the file's column names")
    columns = {str(k): str(v) for k, v in raw_columns.items()}
    canonical = dict(CANONICAL_INPUTS[kind])
    unknown = sorted(set(columns) - set(canonical))
    if unknown:
        raise fail(f"columns: unknown canonical column(s) {unknown}; allowed {sorted(canonical)}")
    missing = [c for c, required in canonical.items() if required and c not in columns]
    if missing:
        raise fail(f"columns: required canonical column(s) {missing} are not mapped")

    raw_csv = entry.get("csv") or {}
    names = tuple(str(n) for n in raw_csv.get("names") or ())
    header = bool(raw_csv.get("header", not names))
    if not header and not names:
        raise fail("csv: a file without a header needs 'names' (its columns in order)")
    encoding = str(raw_csv.get("encoding", "utf-8")).lower()
    if encoding not in ENCODINGS:
        raise fail(f"csv.encoding must be one of {ENCODINGS}, not {encoding!r}")
    dialect = CsvDialect(
        delimiter=str(raw_csv.get("delimiter", ",")),
        quote=str(raw_csv.get("quote", '"')),
        header=header,
        names=names,
        encoding=encoding,
    )
    if names:
        absent = sorted(set(columns.values()) - set(names))
        if absent:
            raise fail(f"columns map to {absent}, which are not in csv.names")

    timestamp = entry.get("timestamp") or {}
    ts_format = str(timestamp.get("format", "epoch_seconds"))
    if ts_format not in EPOCH_FORMATS and "%" not in ts_format:
        raise fail(f"timestamp.format must be {EPOCH_FORMATS} or a strptime pattern")

    values = (entry.get("values") or {}).get("event_type") or {}
    event_types = entry.get("event_types")
    integer_ids = tuple(entry.get("integer_ids") or ())
    bad_ids = sorted(set(integer_ids) - {"user_id", "item_id", "order_id"})
    if bad_ids:
        raise fail(f"integer_ids may only name user_id, item_id, order_id; got {bad_ids}")
    window = entry.get("plausible") or {}
    try:
        days_ahead = int(window.get("days_ahead", 1))
    except (TypeError, ValueError) as exc:
        raise fail(
            f"plausible.days_ahead must be a whole number of days, not {window.get('days_ahead')!r}"
        ) from exc
    return SourceSpec(
        name=name,
        kind=kind,
        columns=columns,
        csv=dialect,
        event_type_values={str(k).strip().lower(): str(v).upper() for k, v in values.items()},
        event_types=tuple(str(e).upper() for e in event_types) if event_types else None,
        timestamp_format=ts_format,
        timezone=str(timestamp.get("timezone", "UTC")),
        integer_ids=integer_ids,
        plausible_from=_as_date(window.get("from", "1990-01-01"), fail),
        plausible_days_ahead=days_ahead,
    )


def _as_date(value, fail) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise fail(f"plausible.from must be a date like 1990-01-01, not {value!r}") from exc
