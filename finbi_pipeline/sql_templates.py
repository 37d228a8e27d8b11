"""The pipeline's SQL: Athena-dialect files under `sql/`, rendered and transpiled.

Every transformation is written once, in the Athena (Trino) dialect. Placeholders
(`{{name}}`) are filled with SQL fragments built here from a source's declaration, with
quoted literals (`literal`). Locally the rendered text is transpiled to DuckDB with sqlglot; on AWS
it runs as is.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlglot
from sqlglot import exp

from finbi_pipeline.sources import ISO8601, SourceSpec

SQL_DIR = Path(__file__).with_name("sql")
ANALYTICS_TABLES = (
    "event_counts_by_type",
    "daily_events",
    "user_activity",
    "daily_sales",
    "top_items",
    "kpi_summary",
)
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@cache
def sql_file(name: str) -> str:
    """The text of `sql/<name>.sql`."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def kpi_consistency_sql() -> str:
    """The blocking KPI check's query (`kpi_summary_consistency.sql`), over the catalog."""
    current = render("ingest_log_current", ingest_log="ingest_log")
    return render("kpi_summary_consistency", ingest_log_current=current)


def render(name: str, **fragments: str) -> str:
    """Fill the placeholders of `sql/<name>.sql`; every placeholder must be given."""
    text = sql_file(name)
    missing = sorted(set(_PLACEHOLDER.findall(text)) - set(fragments))
    if missing:
        raise KeyError(f"sql/{name}.sql needs placeholder(s) {missing}")
    return _PLACEHOLDER.sub(lambda m: fragments[m.group(1)], text)


@cache
def to_duckdb(athena_sql: str) -> str:
    """Transpile Athena SQL to DuckDB's dialect."""
    tree = sqlglot.parse_one(athena_sql, read="athena")
    return tree.transform(_trim_only_when_needed).sql("duckdb", pretty=False)


def _trim_only_when_needed(node: exp.Expression) -> exp.Expression:
    """DuckDB's TRIM(column) copies every value (a second of staging's five for 10M records'
    four columns); most values have nothing to trim. Ask first: an ASCII value needs it
    only when it starts or ends with a space (the one ASCII character DuckDB trims), and
    any other value gets TRIM itself. Same result, a quarter of the cost."""
    if not (isinstance(node, exp.Trim) and isinstance(node.this, exp.Column)):
        return node
    if node.args.get("position") or node.args.get("expression"):
        return node
    value = node.this
    needs_trim = exp.or_(
        exp.Like(this=value.copy(), expression=exp.Literal.string(" %")),
        exp.Like(this=value.copy(), expression=exp.Literal.string("% ")),
        exp.NEQ(
            this=exp.Anonymous(this="strlen", expressions=[value.copy()]),
            expression=exp.Length(this=value.copy()),
        ),
    )
    return exp.Case(ifs=[exp.If(this=needs_trim, true=node.copy())], default=value.copy())


def literal(value: str | int | float | dt.date | None) -> str:
    """A SQL literal, quoted for the Athena dialect (DuckDB reads it the same way); an
    aware datetime becomes its UTC TIMESTAMP.

    The local warehouse code writes values as literals instead of bound parameters: DuckDB
    loads pandas to bind any parameter, 0.35 s and 80 MiB of every run process."""
    if value is None:
        return "NULL"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return f"TIMESTAMP {literal(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {literal(value.isoformat())}"
    if isinstance(value, str):
        # Standard SQL quoting, which is what sqlglot writes for Athena (tested), at a
        # hundredth of its cost per value: the upload lists hold thousands.
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise TypeError(f"no SQL literal for {value!r}")


def plausible_window(source: SourceSpec, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The [low, high) window of plausible timestamps for a source, as UTC datetimes."""
    low = dt.datetime.combine(source.plausible_from, dt.time())
    high = now.replace(tzinfo=None) + dt.timedelta(days=source.plausible_days_ahead)
    return low, high


def validation_sql(source: SourceSpec, raw_records: str, now: dt.datetime) -> str:
    """The Athena text that validates one upload of `source` read as `raw_records`.

    `raw_records` is a relation with `record_no`, `file_index` (which file of a batch read
    a record is from; NULL for one file) and the canonical columns as text.
    """
    low, high = plausible_window(source, now)
    fragments = {
        "raw_records": raw_records,
        "delimiter": source.csv.delimiter.replace("'", "''"),
        "quote_field": _quote_field(source),
        "window_text": f"[{low:%Y-%m-%d}, {high:%Y-%m-%d %H:%M})",
        **_timestamp_fragments(source, low, high),
    }
    for column in ("user_id", "item_id", "order_id", "country"):
        fragments[column] = _text_column(source, column)
    if source.kind == "interactions":
        fragments.update(_event_type_fragments(source))
    return render(f"validate_{source.kind}", **fragments)


def staged_records_sql(
    source: SourceSpec, raw_records: str, now: dt.datetime, by_file: bool = False
) -> str:
    """The validated records as staged: `validation_sql` without `file_index`, which a
    batch of files keeps, last, to write each file's records apart (`by_file`)."""
    sql = validation_sql(source, raw_records, now)
    columns = [column for column in _output_columns(sql) if column != "file_index"]
    if by_file:
        columns.append("file_index")
    return f"SELECT {', '.join(columns)} FROM ({sql}) AS validated"


@cache
def _output_columns(sql: str) -> tuple[str, ...]:
    return tuple(sqlglot.parse_one(sql, read="athena").named_selects)


def curation_sql(kind: str, staged: str, existing: str, members: str) -> str:
    """The Athena text selecting what staged uploads add to the curated `kind` table.

    `members` relates each day the statement writes (the kind's date column) to the upload
    whose records are on it: `source` and `upload_id` (one statement may merge several
    uploads, on days no two of them share). `existing` must leave out the files of the
    uploads' own keys.
    """
    return render(f"curate_{kind}", staged=staged, existing=existing, members=members)


def _quote_field(source: SourceSpec) -> str:
    """A lambda writing a text field as the source's dialect would: in quotes (doubled
    inside) when it holds the delimiter, the quote or a line break."""
    delimiter = source.csv.delimiter.replace("'", "''")
    quote = source.csv.quote.replace("'", "''")
    return (
        f"field -> CASE WHEN strpos(field, '{delimiter}') > 0 OR strpos(field, '{quote}') > 0"
        " OR strpos(field, chr(10)) > 0 OR strpos(field, chr(13)) > 0"
        f" THEN '{quote}' || replace(field, '{quote}', '{quote}{quote}') || '{quote}'"
        " ELSE field END"
    )


def _text_column(source: SourceSpec, canonical: str) -> str:
    """A trimmed text column, NULL when empty or absent; float-string ids made integral."""
    if source.file_column(canonical) is None:
        return "CAST(NULL AS VARCHAR)"
    value = f"NULLIF(TRIM({_quote(canonical)}), '')"
    if canonical in source.integer_ids:
        # "17850.0" and "17850" are the same customer. No regexp_replace: its back-reference
        # is '$1' in Athena but '\\1' in DuckDB, and sqlglot does not translate it.
        value = (
            f"CASE WHEN regexp_like({value}, '^[0-9]+\\.0+$') "
            f"THEN split_part({value}, '.', 1) ELSE {value} END"
        )
    return value


def _event_type_fragments(source: SourceSpec) -> dict[str, str]:
    mapped = "UPPER(event_type_raw)"
    if source.event_type_values:
        branches = " ".join(
            f"WHEN {literal(raw)} THEN {literal(canonical)}"
            for raw, canonical in sorted(source.event_type_values.items())
        )
        mapped = f"CASE LOWER(event_type_raw) {branches} ELSE UPPER(event_type_raw) END"
    allowed = "TRUE"
    allowed_text = "any"
    if source.event_types:
        allowed = f"event_type IN ({', '.join(literal(e) for e in source.event_types)})"
        allowed_text = ", ".join(source.event_types)
    return {
        "event_type": mapped,
        "event_type_allowed": allowed,
        "event_types_text": allowed_text.replace("'", "''"),
    }


def _timestamp_fragments(source: SourceSpec, low: dt.datetime, high: dt.datetime) -> dict:
    """ts_value (a number for epochs, a local timestamp otherwise), its window, event_time."""
    fmt = source.timestamp_format
    if fmt in ("epoch_seconds", "epoch_millis"):
        scale = 1000 if fmt == "epoch_millis" else 1
        to_epoch = lambda d: int(d.replace(tzinfo=dt.UTC).timestamp()) * scale  # noqa: E731
        millis_hint = ""
        if fmt == "epoch_seconds":
            millis_hint = (
                "' || CASE WHEN ts_value >= 1e11 THEN '; it looks like epoch milliseconds, "
                "but the source declares epoch seconds' ELSE '' END || '"
            )
        return {
            "timestamp_local": "CAST(NULL AS VARCHAR)",
            # A number as both engines read one: DuckDB alone reads '1_700_000_000', Athena
            # (Java) alone '1700000000d' or 'f' and hexadecimal ('0x1p30'). Cheap tests for
            # those instead of a regular expression over every record; both cases spelled
            # out rather than lower(), which copies every value (10M: 1.10 s -> 0.85 s).
            "timestamp_value": "CASE WHEN strpos(timestamp_raw, '_') = 0 AND "
            "strpos(timestamp_raw, 'x') = 0 AND strpos(timestamp_raw, 'X') = 0 AND "
            "substr(timestamp_raw, -1) NOT IN ('d', 'D', 'f', 'F') "
            "THEN TRY_CAST(timestamp_raw AS DOUBLE) END",
            # NaN and infinity ('nan', 'inf', '1e400') parse as doubles but are no time.
            "ts_finite": "ts_value - ts_value = 0",
            "ts_low": str(to_epoch(low)),
            "ts_high": str(to_epoch(high)),
            # Milliseconds after the epoch as a plain timestamp, Athena's precision. Not
            # from_unixtime: it returns a zoned timestamp, and converting 10M of those back
            # to UTC wall time took a second of staging's five (DuckDB's ICU).
            "event_time": f"date_add('millisecond', CAST(ts_value * {1000 // scale} AS BIGINT), "
            "TIMESTAMP '1970-01-01 00:00:00')",
            "timestamp_format_text": fmt.replace("_", " "),
            "millis_hint": millis_hint,
        }

    # The window's bounds are UTC instants; ts_value is a wall time in the source's zone (or
    # UTC, for an ISO value with an offset). Comparing it with the bounds' wall times in
    # that zone is comparing UTC times (but for an hour at a daylight-saving change), and
    # costs no zone conversion per row.
    def wall_time(instant: dt.datetime, utc: bool = False) -> str:
        zone = dt.UTC if utc or source.timezone.upper() == "UTC" else ZoneInfo(source.timezone)
        wall = instant.replace(tzinfo=dt.UTC).astimezone(zone)
        return f"TIMESTAMP '{wall:%Y-%m-%d %H:%M:%S}'"

    window = {
        "ts_finite": "TRUE",
        "ts_low": wall_time(low),
        "ts_high": wall_time(high),
        "millis_hint": "",
    }
    if fmt == ISO8601:
        for bound, instant in (("ts_low", low), ("ts_high", high)):
            window[bound] = (
                f"CASE WHEN {_ISO_OFFSET} <> '' THEN {wall_time(instant, utc=True)} "
                f"ELSE {window[bound]} END"
            )
        return {
            **window,
            # regexp_extract finds no match as NULL on Athena, '' on DuckDB.
            "timestamp_local": (
                f"NULLIF(regexp_extract(timestamp_raw, {literal(_ISO_TIMESTAMP)}, 1), '')"
            ),
            "timestamp_value": f"date_add('minute', {_ISO_MINUTES_WEST}, TRY(CAST("
            "replace(substr(timestamp_local, 1, 23), 'T', ' ') AS TIMESTAMP)))",
            # A value with an offset is UTC already; one without is in the source's zone.
            "event_time": f"CASE WHEN {_ISO_OFFSET} <> '' THEN ts_value "
            f"ELSE {_from_zone('ts_value', source.timezone)} END",
            "timestamp_format_text": "ISO 8601 (such as 2024-01-31T13:45:00+01:00)",
        }
    # A strptime pattern, written by users in Python/DuckDB style; sqlglot turns it into
    # Athena's date_parse pattern.
    parse = sqlglot.parse_one(f"STRPTIME(timestamp_raw, {literal(fmt)})", read="duckdb")
    return {
        **window,
        "timestamp_local": "CAST(NULL AS VARCHAR)",
        "timestamp_value": f"TRY({parse.sql('athena')})",
        "event_time": _from_zone("ts_value", source.timezone),
        "timestamp_format_text": fmt.replace("'", "''"),
    }


# ISO 8601 as FinBI reads it: a date, `T` or a space, hh:mm with optional seconds and
# fraction, then an optional UTC offset (`Z`, `+01`, `+0100` or `+01:00`, perhaps after a
# space). One regular expression decides what parses and finds the local part (group 1),
# so that DuckDB and Athena accept the same values: each engine's own ISO parsing accepts
# more, and not the same more. The engines then only cast the local part, cut to
# milliseconds (Athena's precision), and subtract the offset, the rest of the value; a day
# that does not exist (02-30) fails the cast.
_ISO_TIMESTAMP = (
    "^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?)"
    "( ?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?))?$"
)
_ISO_OFFSET = "substr(timestamp_raw, length(timestamp_local) + 1)"  # '', 'Z', ' -05:30'...
_ISO_DIGITS = f"replace(replace({_ISO_OFFSET}, ' ', ''), ':', '')"  # '', 'Z', '+01', '-0530'
_ISO_MINUTES_WEST = (
    f"(CASE WHEN strpos({_ISO_OFFSET}, '-') > 0 THEN 1 ELSE -1 END) * ("
    f"coalesce(TRY_CAST(substr({_ISO_DIGITS}, 2, 2) AS INTEGER), 0) * 60 "
    f"+ coalesce(TRY_CAST(substr({_ISO_DIGITS}, 4, 2) AS INTEGER), 0))"
)


def _from_zone(local_time: str, timezone: str) -> str:
    """SQL for the UTC wall time of `local_time`, a time in `timezone`."""
    if timezone.upper() == "UTC":
        return local_time
    zoned = f"with_timezone({local_time}, {literal(timezone)})"
    return f"CAST(at_timezone({zoned}, 'UTC') AS TIMESTAMP)"


def _quote(identifier: str) -> str:
    return exp.to_identifier(identifier, quoted=True).sql("athena")
