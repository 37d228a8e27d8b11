"""Rendering and transpiling the pipeline's SQL (finbi_pipeline/sql_templates.py)."""

import dataclasses
import datetime as dt

import duckdb
import pytest
import sqlglot

from finbi_pipeline.resources.engine import TRINO_COMPAT_MACROS
from finbi_pipeline.sources import load_sources
from finbi_pipeline.sql_templates import literal, to_duckdb, validation_sql

# What DuckDB's TRIM removes (spaces, and Unicode space separators such as U+00A0 and
# U+3000) and what it keeps (tabs, newlines), at either end and inside.
TRICKY = [
    "plain",
    " lead",
    "trail ",
    "  both  ",
    " ",
    "",
    None,
    "in side",
    "\ttab\t",
    "\nline",
    "\u00a0nbsp\u00a0",
    "\u3000wide",
    "é ",
    " é",
    "ü",
]


def test_transpiled_trim_removes_what_duckdb_trim_removes():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(TRICKY)))
    transpiled = to_duckdb("SELECT i, NULLIF(TRIM(v), '') AS v FROM t ORDER BY i")
    assert "CASE" in transpiled  # the cheap path is in place
    expected = con.execute("SELECT i, NULLIF(TRIM(v), '') FROM t ORDER BY i").fetchall()
    assert con.execute(transpiled).fetchall() == expected
    assert expected[1] == (1, "lead") and expected[10] == (10, "nbsp")


@pytest.mark.parametrize(
    ("timestamp_format", "raw"),
    [("epoch_seconds", "1700000000.25"), ("epoch_millis", "1700000000250")],
)
def test_epoch_timestamps_become_utc_times_to_the_millisecond(timestamp_format, raw):
    source = dataclasses.replace(load_sources()["interactions"], timestamp_format=timestamp_format)
    raw_records = (
        "(SELECT CAST(1 AS BIGINT) AS record_no, CAST(NULL AS BIGINT) AS file_index, "
        "'u1' AS user_id, 'i1' AS item_id, "
        f"'view' AS event_type, '{raw}' AS \"timestamp\")"
    )
    sql = validation_sql(source, raw_records, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # the session's zone must not matter
    row = con.execute(f"SELECT event_time, event_date, reject_reason FROM ({to_duckdb(sql)})")
    assert row.fetchone() == (
        dt.datetime(2023, 11, 14, 22, 13, 20, 250000),
        dt.date(2023, 11, 14),
        None,
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("it's", "it's"),
        (None, None),
        (42, 42),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 600), dt.datetime(2024, 1, 2, 3, 4, 5, 600)),
        # An aware time is stored as its UTC wall time, as DuckDB's UTC session would.
        (
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2024, 1, 2, 1, 4, 5),
        ),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 2)),
    ],
)
def test_literals_read_back_as_the_value(value, expected):
    assert duckdb.sql(f"SELECT {literal(value)}").fetchone()[0] == expected


@pytest.mark.parametrize("text", ["o'k", "a\\b", "line\nbreak", "ü€", "''", "$1 {x}"])
def test_string_literals_are_what_sqlglot_writes_for_athena(text):
    assert literal(text) == sqlglot.exp.Literal.string(text).sql("athena")
    assert duckdb.sql(f"SELECT {literal(text)}").fetchone()[0] == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, [1], b"x"])
def test_values_without_a_literal_are_refused(value):
    with pytest.raises(TypeError, match="no SQL literal"):
        literal(value)


# (raw value, UTC time or None for a reject) for a source in Europe/London (UTC+1 in June).
ISO_VALUES = [
    ("2024-06-01T12:00:00Z", dt.datetime(2024, 6, 1, 12)),
    ("2024-06-01T12:00:00+02:00", dt.datetime(2024, 6, 1, 10)),
    ("2024-06-01 12:00:00 -0530", dt.datetime(2024, 6, 1, 17, 30)),
    ("2024-06-01T00:30+01", dt.datetime(2024, 5, 31, 23, 30)),
    ("2024-06-01T12:00:00.123456789Z", dt.datetime(2024, 6, 1, 12, 0, 0, 123000)),
    ("2024-06-01T12:00:00", dt.datetime(2024, 6, 1, 11)),  # no offset: the source's zone
    ("2024-01-15 12:00", dt.datetime(2024, 1, 15, 12)),  # winter: London is UTC
    ("2024-02-30T12:00:00Z", None),  # no such day
    ("2024-06-01T24:00:00Z", None),
    ("2024-06-01T12:00:00+1:00", None),
    ("2024-06-01", None),  # a date alone is no event time
    ("2024-06-01T12:00:00 UTC", None),
    ("1717243200", None),
]


@pytest.mark.parametrize(("raw", "expected"), ISO_VALUES)
def test_iso8601_timestamps_with_and_without_an_offset(raw, expected):
    source = dataclasses.replace(
        load_sources()["interactions"], timestamp_format="iso8601", timezone="Europe/London"
    )
    raw_records = (
        "(SELECT CAST(1 AS BIGINT) AS record_no, CAST(NULL AS BIGINT) AS file_index, "
        f"'u1' AS user_id, 'i1' AS item_id, 'view' AS event_type, {literal(raw)} AS \"timestamp\")"
    )
    sql = validation_sql(source, raw_records, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # the session's zone must not matter
    for macro in TRINO_COMPAT_MACROS:
        con.execute(macro)
    event_time, reason = con.execute(
        f"SELECT event_time, reject_reason FROM ({to_duckdb(sql)})"
    ).fetchone()
    if expected is None:
        assert (event_time, reason) == (
            None,
            f"timestamp: cannot parse '{raw}' as ISO 8601 (such as 2024-01-31T13:45:00+01:00)",
        )
    else:
        assert (event_time, reason) == (expected, None)


@pytest.mark.parametrize(
    ("timestamp_format", "raw", "accepted"),
    [
        # The window starts at 1990-01-01 00:00 UTC, 09:00 in Tokyo.
        ("%Y-%m-%d %H:%M:%S", "1990-01-01 08:59:59", False),
        ("%Y-%m-%d %H:%M:%S", "1990-01-01 09:00:00", True),
        ("iso8601", "1990-01-01T08:59:59", False),
        ("iso8601", "1990-01-01T00:00:00Z", True),
        ("iso8601", "1989-12-31T23:59:59Z", False),
        # It ends at 2026-01-02 00:00 UTC (now + 1 day), 09:00 in Tokyo.
        ("%Y-%m-%d %H:%M:%S", "2026-01-02 08:59:59", True),
        ("%Y-%m-%d %H:%M:%S", "2026-01-02 09:00:00", False),
        ("iso8601", "2026-01-02T08:59:59+09:00", True),
        ("iso8601", "2026-01-02T00:00:00Z", False),
    ],
)
def test_the_plausible_window_holds_for_utc_times_whatever_the_zone(
    timestamp_format, raw, accepted
):
    source = dataclasses.replace(
        load_sources()["interactions"], timestamp_format=timestamp_format, timezone="Asia/Tokyo"
    )
    raw_records = (
        "(SELECT CAST(1 AS BIGINT) AS record_no, CAST(NULL AS BIGINT) AS file_index, "
        f"'u1' AS user_id, 'i1' AS item_id, 'view' AS event_type, {literal(raw)} AS \"timestamp\")"
    )
    sql = validation_sql(source, raw_records, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    con = duckdb.connect()
    for macro in TRINO_COMPAT_MACROS:
        con.execute(macro)
    (reason,) = con.execute(f"SELECT reject_reason FROM ({to_duckdb(sql)})").fetchone()
    assert (reason is None) == accepted, reason
