"""Source declarations: how a landing prefix's CSV files map onto the canonical tables.

A source is `raw/<name>/` in the lake plus a declaration (YAML) of its kind, CSV dialect,
column mapping, value mapping, allowed event types and timestamp format. Adding a source is
a configuration change: nothing in the pipeline's code names a source.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
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
# ISO 8601 date and time, each value with or without its own UTC offset.
ISO8601 = "iso8601"
NAMED_FORMATS = (*EPOCH_FORMATS, ISO8601)
# strptime directives that DuckDB parses and sqlglot writes as Athena's date_parse.
STRPTIME_DIRECTIVES = frozenset(
    "Y y m -m d -d H -H I -I M S f p b B a A j %".split()  # noqa: SIM905 - a table
)
# The settings each part of a declaration may hold ("": the source itself); any other name
# is a typo that would otherwise be ignored without a word.
SETTINGS: dict[str, tuple[str, ...]] = {
    "": (
        "kind",
        "columns",
        "csv",
        "values",
        "event_types",
        "timestamp",
        "integer_ids",
        "plausible",
    ),
    "csv": ("delimiter", "quote", "header", "names", "encoding"),
    "values": ("event_type",),
    "timestamp": ("format", "timezone"),
    "plausible": ("from", "days_ahead"),
}
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


def _parse_source(path: Path, name, entry) -> SourceSpec:
    where = f"{path}: source '{name}'"

    def fail(message: str) -> SourceConfigError:
        return SourceConfigError(f"{where}: {message}")

    if not isinstance(name, str):
        raise fail(f"a source name must be text: write '{name}' in quotes")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise fail("names may only hold letters, digits, '_' and '-'")
    if not isinstance(entry, dict):
        raise fail(f"expected a mapping of settings (kind, columns, ...), not {entry!r}")
    _check_settings(entry, "", fail)
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

    raw_csv = _section(entry, "csv", fail)
    names = tuple(str(n) for n in _list(raw_csv, "names", "csv.names", fail))
    header = raw_csv.get("header", not names)
    if not isinstance(header, bool):
        raise fail(f"csv.header must be true or false, not {header!r}")
    if not header and not names:
        raise fail("csv: a file without a header needs 'names' (its columns in order)")
    encoding = str(raw_csv.get("encoding", "utf-8")).lower()
    if encoding not in ENCODINGS:
        raise fail(f"csv.encoding must be one of {ENCODINGS}, not {encoding!r}")
    dialect = CsvDialect(
        delimiter=_character(raw_csv, "delimiter", ",", fail),
        quote=_character(raw_csv, "quote", '"', fail),
        header=header,
        names=names,
        encoding=encoding,
    )
    if dialect.delimiter == dialect.quote:
        raise fail(f"csv.delimiter and csv.quote must differ (both {dialect.quote!r})")
    if names:
        absent = sorted(set(columns.values()) - set(names))
        if absent:
            raise fail(f"columns map to {absent}, which are not in csv.names")

    timestamp = _section(entry, "timestamp", fail)
    ts_format = str(timestamp.get("format", "epoch_seconds"))
    if ts_format not in NAMED_FORMATS and "%" not in ts_format:
        raise fail(f"timestamp.format must be one of {NAMED_FORMATS} or a strptime pattern")
    if ts_format not in NAMED_FORMATS:
        _check_strptime(ts_format, fail)
    timezone = str(timestamp.get("timezone", "UTC"))
    try:
        if timezone.upper() != "UTC":  # as the engines read it, in any case
            zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise fail(
            f"timestamp.timezone {timezone!r} is not a time zone name such as Europe/London"
        ) from exc

    if kind == "sales" and ("values" in entry or "event_types" in entry):
        raise fail("values and event_types apply to interactions sources only")
    values = _section(_section(entry, "values", fail), "event_type", fail, "values.event_type")
    for raw, mapped in values.items():
        if not isinstance(raw, str) or not isinstance(mapped, str):
            raise fail(
                f"values.event_type: {raw!r}: {mapped!r} must map text to text; YAML reads 01 "
                "as a number and on/off/yes/no as true/false, so quote such values"
            )
    event_types = _list(entry, "event_types", "event_types", fail) or None
    integer_ids = tuple(_list(entry, "integer_ids", "integer_ids", fail))
    bad_ids = sorted(set(integer_ids) - {"user_id", "item_id", "order_id"})
    if bad_ids:
        raise fail(f"integer_ids may only name user_id, item_id, order_id; got {bad_ids}")
    window = _section(entry, "plausible", fail)
    days_ahead = window.get("days_ahead", 1)
    if isinstance(days_ahead, bool) or not isinstance(days_ahead, int):
        raise fail(f"plausible.days_ahead must be a whole number of days, not {days_ahead!r}")
    if days_ahead < 0:
        raise fail(f"plausible.days_ahead must be 0 or more, not {days_ahead}")
    return SourceSpec(
        name=name,
        kind=kind,
        columns=columns,
        csv=dialect,
        event_type_values={k.strip().lower(): v.upper() for k, v in values.items()},
        event_types=tuple(str(e).upper() for e in event_types) if event_types else None,
        timestamp_format=ts_format,
        timezone=timezone,
        integer_ids=integer_ids,
        plausible_from=_as_date(window.get("from", "1990-01-01"), fail),
        plausible_days_ahead=days_ahead,
    )


def _check_settings(mapping: dict, part: str, fail) -> None:
    unknown = [str(key) for key in mapping if str(key) not in SETTINGS[part]]
    if not unknown:
        return
    prefix = f"{part}: " if part else ""
    homes = {key: home for home, keys in SETTINGS.items() if home for key in keys}
    hints = [f"{key} belongs under {homes[key]}:" for key in unknown if key in homes]
    raise fail(
        f"{prefix}unknown setting(s) {unknown}; allowed: {', '.join(SETTINGS[part])}"
        + (f" ({'; '.join(hints)})" if hints and not part else "")
    )


def _section(mapping: dict, key: str, fail, label: str | None = None) -> dict:
    """The mapping under `key` ({} when absent), its setting names checked if it has some."""
    value = mapping.get(key)
    if value is None:
        return {}
    label = label or key
    if not isinstance(value, dict):
        raise fail(f"{label} must be a mapping, not {value!r}")
    if key in SETTINGS:
        _check_settings(value, key, fail)
    return value


def _list(mapping: dict, key: str, label: str, fail) -> list:
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"{label} must be a list, e.g. [a, b], not {value!r}")
    return value


def _character(raw_csv: dict, key: str, default: str, fail) -> str:
    value = raw_csv.get(key, default)
    if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
        raise fail(f"csv.{key} must be one character (not a line break), not {value!r}")
    return value


def _check_strptime(pattern: str, fail) -> None:
    for directive in re.findall(r"%(-?.?)", pattern):
        if directive in ("z", "Z"):
            raise fail(
                f"timestamp.format: %{directive} (a UTC offset or zone in each value) is not "
                f"supported in a pattern: use format {ISO8601} for values such as "
                "2024-01-31T13:45:00+01:00, or declare the source's timestamp.timezone"
            )
        if directive not in STRPTIME_DIRECTIVES:
            raise fail(
                f"timestamp.format: %{directive} is not a directive FinBI can parse; allowed: "
                + " ".join(f"%{d}" for d in sorted(STRPTIME_DIRECTIVES))
            )


def _as_date(value, fail) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise fail(f"plausible.from must be a date like 1990-01-01, not {value!r}") from exc
