"""The bad-input matrix: every odd file is accepted, deduplicated or quarantined, never lost.

Each test stages and merges real files with `stage_upload` + `merge_staged` on a LocalLake
and a DuckDBEngine in its own temporary FINBI_HOME (no Dagster run), then checks the exact
counts (rows_read = accepted + duplicate + quarantined), the quarantine rows (line, column,
reason) and the curated rows.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import json
import os
import random
import signal
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from finbi_pipeline import ingest
from finbi_pipeline.ingest import (
    DATE_COLUMN,
    UploadReport,
    ingest_log_key,
    merge_staged,
    quarantine_key,
    stage_upload,
)
from finbi_pipeline.resources import engine as engine_module
from finbi_pipeline.resources.engine import DuckDBEngine
from finbi_pipeline.resources.lake import LocalLake
from finbi_pipeline.sources import SourceSpec, load_sources
from finbi_pipeline.sql_templates import curation_sql
from finbi_pipeline.uploads import Upload

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
# The default plausible window for NOW: [1990-01-01, 2024-06-02 00:00) UTC.
WINDOW = "[1990-01-01, 2024-06-02 00:00)"
LOW, HIGH = 631152000, 1717286400  # 1990-01-01 and NOW + 1 day, in epoch seconds

IH = b"user_id,item_id,event_type,timestamp\n"
SH = b"order_id,user_id,item_id,quantity,unit_price,timestamp,country\n"
T0 = 1700000000  # 2023-11-14 22:13:20 UTC
NOT_DECLARED = "is not an event type this source declares (VIEW, ADD_TO_CART, PURCHASE)"


# --- helpers -------------------------------------------------------------------------------


@dataclass
class Ingested:
    """What one upload became: the merged report, the staged one and its quarantine rows."""

    report: UploadReport
    staged: UploadReport
    upload: Upload
    quarantine: pd.DataFrame


class Pipeline:
    """Ingestion on a fresh FINBI_HOME: land a file, stage it, merge it."""

    def __init__(self, home: Path, sources: dict[str, SourceSpec] | None = None):
        self.lake = LocalLake(home=str(home))
        self.engine = DuckDBEngine(home=str(home), memory_limit="256MB", threads=2)
        self.sources = sources or load_sources()

    def land(self, source: str, name: str, data: bytes, mtime_ns: int | None = None) -> Upload:
        key = f"raw/{source}/{name}"
        self.lake.write_bytes(key, data)
        if mtime_ns is not None:  # a distinct version even within the clock's resolution
            os.utime(self.lake.uri(key), ns=(mtime_ns, mtime_ns))
        obj = self.lake.head(key)
        assert obj is not None
        return Upload.from_object(obj)

    def ingest(self, source: str, name: str, data: bytes, mtime_ns: int | None = None):
        spec = self.sources[source]
        upload = self.land(source, name, data, mtime_ns)
        with self.engine.session() as session:
            staged = stage_upload(upload, spec, self.lake, session, NOW)
        merged = merge_staged(spec.kind, [spec], self.lake, self.engine, NOW)
        assert [r.upload_id for r in merged] == [upload.upload_id]
        report = merged[0]
        assert report.reconciles, report
        assert (staged.rows_read, staged.rows_quarantined) == (
            report.rows_read,
            report.rows_quarantined,
        )
        logged = json.loads(self.lake.read_bytes(ingest_log_key(upload)))
        assert logged["rows_read"] == report.rows_read
        assert logged["rows_accepted"] == report.rows_accepted
        return Ingested(report, staged, upload, self.quarantine(upload))

    def quarantine(self, upload: Upload) -> pd.DataFrame:
        key = quarantine_key(upload)
        if self.lake.head(key) is None:
            return pd.DataFrame(columns=["line_number", "column_name", "reason", "raw_record"])
        frame = pd.read_parquet(self.lake.uri(key))
        assert set(frame["object_key"]) <= {upload.key}
        assert set(frame["upload_id"]) <= {upload.upload_id}
        return frame.reset_index(drop=True)

    def curated(self, kind: str) -> list[tuple]:
        """The curated rows, sorted, with the date partition column last."""
        files = [
            self.lake.uri(o.key)
            for o in self.lake.list_objects(f"curated/{kind}/")
            if o.key.endswith(".parquet")
        ]
        if not files:
            return []
        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            frame = con.execute(
                "SELECT * FROM read_parquet(?, hive_partitioning = true)", [files]
            ).df()
        frame[DATE_COLUMN[kind]] = frame[DATE_COLUMN[kind]].astype(str)
        time_column = "event_time" if kind == "interactions" else "sale_time"
        frame[time_column] = frame[time_column].astype(str)
        frame = frame.drop(columns=["source", "upload_id"])
        return sorted(frame.itertuples(index=False, name=None), key=repr)


def counts(result: Ingested) -> tuple[int, int, int, int]:
    return counts_of(result.report)


def counts_of(r: UploadReport) -> tuple[int, int, int, int]:
    return r.rows_read, r.rows_accepted, r.rows_duplicate, r.rows_quarantined


def rejects(result: Ingested) -> list[tuple]:
    """(line, column, reason) of each quarantined row, in line order."""
    frame = result.quarantine.sort_values("line_number")
    return [
        (int(r.line_number), r.column_name, r.reason)
        for r in frame.itertuples()
        if not pd.isna(r.line_number)
    ]


def interaction(user: str, item: str, kind: str, ts: int) -> tuple:
    moment = dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)
    return (user, item, kind, str(moment), str(moment.date()))


def assert_whole_file_rejected(result: Ingested, *fragments: str) -> str:
    assert result.report.status == "rejected"
    assert result.report.rows_accepted == result.report.rows_duplicate == 0
    assert result.report.rows_quarantined == result.report.rows_read
    assert len(result.quarantine) == 1
    row = result.quarantine.iloc[0]
    assert pd.isna(row["line_number"]) and row["column_name"] is None
    assert row["reason"] == f"whole file rejected: {result.report.message}"
    assert result.upload.key in row["reason"]
    for fragment in fragments:
        assert fragment in row["reason"], row["reason"]
    return row["reason"]


@pytest.fixture
def pipe(tmp_path) -> Pipeline:
    return Pipeline(tmp_path / "finbi_home")


def write_sources(tmp_path: Path, text: str) -> dict[str, SourceSpec]:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return load_sources(path)


# --- files that cannot be read at all -------------------------------------------------------


def test_empty_file_is_rejected_whole(pipe):
    result = pipe.ingest("interactions", "empty.csv", b"")
    assert counts(result) == (0, 0, 0, 0)
    assert_whole_file_rejected(result, "empty file")
    assert pipe.curated("interactions") == []


def test_header_only_is_an_empty_upload_not_an_error(pipe):
    result = pipe.ingest("interactions", "header.csv", IH)
    assert counts(result) == (0, 0, 0, 0)
    assert result.report.status == "ingested"
    assert result.report.message == "header only: the file has no data rows"
    assert result.quarantine.empty
    assert pipe.curated("interactions") == []


def test_missing_required_column_rejects_the_file_naming_the_column(pipe):
    data = (
        b"order_id,user_id,item_id,quantity,timestamp,country\n"
        b"O1,C1,I1,2,2024-01-01 10:00:00,UK\n"
        b"O2,C1,I2,1,2024-01-01 10:00:00,UK\n"
    )
    result = pipe.ingest("sales", "no_price.csv", data)
    assert counts(result) == (2, 0, 0, 2)
    assert_whole_file_rejected(result, "line 1", "missing required column(s) 'unit_price'")
    assert pipe.curated("sales") == []


def test_wrong_delimiter_is_rejected_with_a_delimiter_hint(pipe):
    data = b"user_id;item_id;event_type;timestamp\nU1;I1;VIEW;1700000000\nU2;I2;VIEW;1700000001\n"
    result = pipe.ingest("interactions", "semicolon.csv", data)
    assert counts(result) == (2, 0, 0, 2)
    assert_whole_file_rejected(
        result,
        "line 1",
        "missing required column(s)",
        "looks ';'-delimited but source 'interactions' declares ','",
    )


def test_non_utf8_header_rejects_the_whole_file(pipe):
    data = b"user_id,item_id,event_t\xffype,timestamp\nU1,I1,VIEW,1700000000\n"
    result = pipe.ingest("interactions", "bad_header.csv", data)
    assert counts(result) == (1, 0, 0, 1)
    assert_whole_file_rejected(
        result, "line 1, column 24", "the header is not valid utf-8 (byte 0xff)"
    )


def test_a_bom_only_file_is_empty(pipe):
    result = pipe.ingest("interactions", "bom.csv", b"\xef\xbb\xbf")
    assert counts(result) == (0, 0, 0, 0)
    assert_whole_file_rejected(result, "empty file")


def test_a_blank_first_line_is_rejected_whole_not_a_crash(pipe):
    data = b"\n" + IH + b"U1,I1,VIEW,1700000000\n"
    result = pipe.ingest("interactions", "blank_first.csv", data)
    assert counts(result) == (1, 0, 0, 1)  # the header and one record; the empty line is none
    assert_whole_file_rejected(result, "line 1 is empty: the header must be the first line")


@pytest.mark.parametrize(
    "data",
    [
        IH.replace(b"\n", b"\r") + b"U1,I1,VIEW,1700000000\rU2,I2,VIEW,1700000001\r",
        b"user_id,item_id\r,event_type,timestamp\nU1,I1,VIEW,1700000000\nU2,I2,VIEW,1\n",
    ],
    ids=["cr-only line endings", "cr inside the header"],
)
def test_a_carriage_return_in_the_header_is_rejected_whole_not_a_crash(pipe, data):
    result = pipe.ingest("interactions", "mac.csv", data)
    assert counts(result) == (2, 0, 0, 2)
    assert_whole_file_rejected(result, "line 1 holds a carriage return (CR)", "CR-only")


def test_a_good_upload_beside_an_unreadable_one_is_still_ingested(pipe):
    """The check that rejects a file must not fail the whole batch's staging."""
    spec = pipe.sources["interactions"]
    bad = pipe.land("interactions", "mac.csv", IH.replace(b"\n", b"\r") + b"U9,I9,VIEW,1\r")
    good = pipe.land("interactions", "good.csv", IH + b"U1,I1,VIEW,1700000000\n")
    reports = ingest.stage_uploads(
        [(bad, 60), (good, 60)], {"interactions": spec}, pipe.lake, pipe.engine, NOW
    )
    assert [r.status for r in reports] == ["rejected", "staged"]
    merge_staged("interactions", [spec], pipe.lake, pipe.engine, NOW)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


@pytest.mark.parametrize("name", ["x*.csv", "q?.csv", "[ab].csv"])
def test_a_name_read_as_a_file_pattern_is_rejected_whole(pipe, name):
    """DuckDB would read every file the pattern matches: rows of other uploads, or none."""
    pipe.land("interactions", "xy.csv", IH + b"U9,I9,VIEW,1700000000\n")
    pipe.land("interactions", "qq.csv", IH + b"U9,I9,VIEW,1700000000\n")
    pipe.land("interactions", "a.csv", IH + b"U9,I9,VIEW,1700000000\n")
    result = pipe.ingest("interactions", name, IH + b"U1,I1,VIEW,1700000000\n")
    assert counts(result) == (1, 0, 0, 1)
    assert_whole_file_rejected(result, "is read as a file pattern", "rename the file")


def test_a_rejected_file_does_not_stop_other_uploads(pipe):
    pipe.ingest("interactions", "bad.csv", b"")
    good = pipe.ingest("interactions", "good.csv", IH + b"U1,I1,VIEW,1700000000\n")
    assert counts(good) == (1, 1, 0, 0)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


# --- dialect and encoding --------------------------------------------------------------------


def test_extra_columns_are_ignored_and_rows_accepted(pipe):
    data = (
        b"session,user_id,item_id,note,event_type,timestamp,extra\n"
        b'S1,U1,I1,"a, note",VIEW,1700000000,x\n'
        b"S2,U2,I2,,PURCHASE,1700000001,\n"
    )
    result = pipe.ingest("interactions", "extra.csv", data)
    assert counts(result) == (2, 2, 0, 0)
    assert result.quarantine.empty
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "PURCHASE", T0 + 1),
    ]


def test_header_names_that_repeat_whatever_their_case_read_the_first_column(pipe):
    # DuckDB refused a header with `Note` and `note` outright, failing the whole batch.
    data = (
        b"user_id,item_id,event_type,timestamp,Note,note,USER_ID,user_id_7\n"
        b"U1,I1,VIEW,1700000000,a,b,U9,c\n"
    )
    result = pipe.ingest("interactions", "repeats.csv", data)
    assert counts(result) == (1, 1, 0, 0)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_utf8_bom_header_is_recognised(pipe):
    data = b"\xef\xbb\xbf" + IH + b"U1,I1,VIEW,1700000000\nU2,I2,view,x\n"
    result = pipe.ingest("interactions", "bom.csv", data)
    assert counts(result) == (2, 1, 0, 1)
    assert rejects(result) == [(3, "timestamp", "timestamp: cannot parse 'x' as epoch seconds")]
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_crlf_line_endings(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\nU2,I2,CLICK,1700000001\nU3,I3,PURCHASE,1700000002\n"
    result = pipe.ingest("interactions", "crlf.csv", data.replace(b"\n", b"\r\n"))
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(result) == [(3, "event_type", f"event_type: 'CLICK' {NOT_DECLARED}")]
    assert result.quarantine.iloc[0]["raw_record"] == "U2,I2,CLICK,1700000001"
    # No stray carriage return in the last column: the timestamps parsed.
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U3", "I3", "PURCHASE", T0 + 2),
    ]


UTF16_TABS = """
sources:
  excel:
    kind: interactions
    columns: {user_id: user_id, item_id: item_id, event_type: event_type, timestamp: timestamp}
    csv: {delimiter: "\\t", encoding: utf-16}
"""


def test_utf16_with_crlf_line_endings_as_excel_saves_unicode_text(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, UTF16_TABS)
    text = "user_id\titem_id\tevent_type\ttimestamp\r\nU1\tI1\tVIEW\t1700000000\r\n"
    result = pipe.ingest("excel", "export.txt", text.encode("utf-16"))
    assert counts(result) == (1, 1, 0, 0)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_utf16_lines_are_numbered_and_counted_as_in_utf8(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, UTF16_TABS)
    header = "user_id\titem_id\tevent_type\ttimestamp\n"
    # Line 3 is empty; U+010A holds the byte 0x0A, which is no line end in UTF-16.
    text = header + "U1\tI1\tVIEW\t1700000000\n\nU\u010a2\tI2\tVIEW\tnotatime\n"
    result = pipe.ingest("excel", "blank.txt", text.encode("utf-16"))
    assert rejects(result) == [
        (4, "timestamp", "timestamp: cannot parse 'notatime' as epoch seconds")
    ]
    # A file rejected whole counts its records, not its empty lines or stray 0x0A bytes.
    missing = text.replace("\ttimestamp", "").encode("utf-16")
    rejected = pipe.ingest("excel", "missing.txt", missing)
    assert_whole_file_rejected(rejected, "missing required column(s) 'timestamp'")
    assert counts(rejected) == (2, 0, 0, 2)


def test_a_cut_off_utf16_file_is_rejected_whole(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, UTF16_TABS)
    text = "user_id\titem_id\tevent_type\ttimestamp\nU1\tI1\tVIEW\t1700000000\nU2\tI2\tVIEW\t17\n"
    rejected = pipe.ingest("excel", "cut.txt", text.encode("utf-16")[:-3])  # ends in 0x31
    assert_whole_file_rejected(rejected, "an odd number of bytes")
    assert counts(rejected) == (2, 0, 0, 2)


def test_a_file_rejected_whole_counts_no_empty_lines_as_records(pipe):
    rejected = pipe.ingest("interactions", "blank.csv", b"user_id,item_id\nU1,I1\n\r\n\nU2,I2\n\n")
    assert counts(rejected) == (2, 0, 0, 2)


def test_big_endian_utf16_is_rejected_saying_so_and_counted(pipe, tmp_path):
    headerless = UTF16_TABS.replace(
        "encoding: utf-16}", "encoding: utf-16, names: [user_id, item_id, event_type, timestamp]}"
    )
    rows = "U1\tI1\tVIEW\t1700000000\nU2\tI2\tVIEW\t1700000001\n"
    header = "user_id\titem_id\tevent_type\ttimestamp\n"
    for sources, text in ((UTF16_TABS, header + rows), (headerless, rows)):
        pipe.sources = write_sources(tmp_path, sources)
        big_endian = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
        result = pipe.ingest("excel", "be.txt", big_endian)
        assert_whole_file_rejected(result, "big-endian UTF-16 (it starts with the byte order mark")
        assert counts(result) == (2, 0, 0, 2)


def test_non_utf8_bytes_in_a_row_quarantine_that_row_only(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\nU\xff2,I2,VIEW,1700000001\nU3,I3,VIEW,1700000002\n"
    result = pipe.ingest("interactions", "latin_row.csv", data)
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(result) == [(3, "user_id", "user_id: not valid text in the declared encoding")]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U3", "I3", "VIEW", T0 + 2),
    ]


def test_quoted_commas_and_newlines_are_accepted_and_later_lines_stay_right(pipe):
    data = (
        IH
        + b'U1,"I,1",VIEW,1700000000\n'  # line 2
        + b'U2,"I\n2",VIEW,1700000001\n'  # lines 3-4
        + b"U3,I3,VIEW,1\n"  # line 5
        + b'U4,"I\n\n4",VIEW,1700000003\n'  # lines 6-8
        + b"U5,I5,VIEW,1700000004,extra\n"  # line 9: too many fields
        + b"U6,I6,CLICK,1700000005\n"  # line 10
    )
    result = pipe.ingest("interactions", "quoted.csv", data)
    assert counts(result) == (6, 3, 0, 3)
    assert rejects(result) == [
        (5, "timestamp", f"timestamp: '1' is outside the plausible window {WINDOW}"),
        (9, None, "record: too many fields (Expected Number of Columns: 4 Found: 5)"),
        (10, "event_type", f"event_type: 'CLICK' {NOT_DECLARED}"),
    ]
    assert pipe.curated("interactions") == [
        interaction("U1", "I,1", "VIEW", T0),
        interaction("U2", "I\n2", "VIEW", T0 + 1),
        interaction("U4", "I\n\n4", "VIEW", T0 + 3),
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_lines_stay_right_after_blank_lines(pipe, newline):
    """The reader skips empty lines; the lines of the records after them still count them,
    but not an empty line inside a quoted field."""
    lines = [
        IH.rstrip(b"\n"),  # 1
        b"U1,I1,VIEW,1700000000",  # 2
        b"",  # 3
        b"",  # 4
        b"U2,I2,BAD,1700000000",  # 5: value reject
        b"U3,I3,VIEW",  # 6: too few fields
        b'U4,"I',  # 7: a quoted field over lines 7-9, with an empty line inside
        b"",  # 8
        b'4",VIEW,1700000000',  # 9
        b"",  # 10
        b"U5,I5,VIEW,abc",  # 11: value reject
        b"",  # 12: trailing
    ]
    result = pipe.ingest("interactions", "gaps.csv", newline.join(lines) + newline)
    assert counts(result) == (5, 2, 0, 3)
    assert [(line, column) for line, column, _ in rejects(result)] == [
        (5, "event_type"),
        (6, "timestamp"),  # the missing field
        (11, "timestamp"),
    ]


def test_blank_lines_are_found_across_chunk_boundaries():
    data = b'h\n\na\r\n\r\n"q\n\nq"\n\n\nb\n\n'
    expected = [2, 4, 8, 9, 11]  # not 6: inside the quoted field
    for size in range(1, len(data) + 1):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert engine_module._blank_lines(lambda chunks=chunks: chunks, '"', ",") == expected, size


def test_blank_lines_ignore_stray_quotes_in_unquoted_fields():
    # 42" and I"1 are text (the quote does not start a field); "a""b" is one quoted field.
    data = b'h\n42",x\n\nI"1,y\n\n"a""b\n\nc",z\n\n'
    assert engine_module._blank_lines(lambda: [data], '"', ",") == [3, 5, 9]
    assert engine_module._blank_lines(lambda: [b'h;"a;b"\n\nc;d"\n\n'], '"', ";") == [2, 4]


def test_a_stray_quote_does_not_make_a_crlf_file_look_like_mixed_line_endings(pipe):
    # Counting quotes, 42" opened a field, and the LF inside the quoted field after it
    # looked like a line end: the whole file was rejected.
    data = IH.replace(b"\n", b"\r\n") + b'U1,42",VIEW,1700000000\r\nU2,"I\n2",VIEW,1700000001\r\n'
    result = pipe.ingest("interactions", "stray.csv", data)
    assert result.report.status == "ingested"
    assert counts(result) == (2, 2, 0, 0)


def test_a_quote_that_never_closes_rejects_the_file_naming_its_line_and_column(pipe):
    # DuckDB read the 1,000 records before it and took the rest of the file for one
    # rejected record (rows_read 1,001 of 2,000); in files of some MB it lost records
    # without a reject, on one thread all of them.
    lines = [f"U{i},I{i},VIEW,{T0 + i}" for i in range(2000)]
    lines[1000] = 'U1000,"I1000,VIEW,1700001000'
    result = pipe.ingest("interactions", "open.csv", IH + "\n".join(lines).encode() + b"\n")
    assert counts(result) == (2000, 0, 0, 2000)
    assert_whole_file_rejected(
        result,
        "line 1002, column 2 (item_id): a quoted field opens here and the file never closes it",
    )
    # A stray quote before it (text, which DuckDB accepts) hides it no more, nor gzip.
    stray = [*lines[:10], 'U10,I1"0,VIEW,1700000010', *lines[11:]]
    data = IH + "\n".join(stray).encode() + b"\n"
    for name, upload in (("stray.csv", data), ("stray.csv.gz", gzip.compress(data))):
        result = pipe.ingest("interactions", name, upload)
        assert counts(result) == (2000, 0, 0, 2000), name
        assert_whole_file_rejected(result, "line 1002, column 2 (item_id): a quoted field opens")
    # A stray quote, or a quoted field that closes lines later, is no such file.
    lines[1000] = 'U1000,"I1000,VIEW,1700001000\nU1001",I1001,VIEW,1700001001'
    lines[1500] = 'U1500,I15"00,VIEW,1700001500'
    result = pipe.ingest("interactions", "open.csv", IH + "\n".join(lines).encode() + b"\n")
    assert result.report.status == "ingested"
    assert counts(result) == (2000, 1999, 0, 1)  # lines 1002-1003 are one record
    assert [line for line, *_ in rejects(result)] == [1002]


# Lines of the random files below: (text with {u} for the record's unique id, whether the
# record is quarantined). "Stray" quotes sit inside unquoted fields and are text; DuckDB
# opens a quoted field one space into a field, and reads `"a" "b"` as one field.
RANDOM_LINES = [
    ("{u},I,VIEW,1700000000", False),
    ("", False),  # a blank line: no record
    ("{u},I,VIEW", True),
    ("{u},I,VIEW,1700000000,x", True),
    ("{u},I,VIEW,abc", True),
    ('{u},"I\n1",VIEW,1700000000', False),
    ('{u},"I\n1",VIEW', True),
    ('{u},"I\n1",BAD,1700000000', True),
    ('{u},"I\n\n1",VIEW,1700000000', False),
    ('{u},I"1,VIEW,1700000000', False),
    ('{u},42",VIEW,1700000000', False),
    ('{u},"I ""1"", 2",VIEW,1700000000', False),
    ('{u},"I ""1""\n2",VIEW,1700000000', False),
    ('{u}, "I\n\n1",VIEW,1700000000', False),
    ('{u},"a" "b\n\nc",VIEW,1700000000', False),
    ('{u},"I"x,VIEW,1700000000', True),  # text after a closing quote: unreadable
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_quarantine_lines_are_where_the_records_are_in_random_files(pipe, newline):
    """Blank lines, newlines inside quoted fields (of accepted and of unparsable records),
    stray and doubled quotes, mixed at random: the right records are quarantined, each
    under the line its unique id starts on in the file."""
    rng = random.Random(20261201)
    for n in range(25):
        lines = [rng.choice(RANDOM_LINES) for _ in range(12)]
        records = [text.format(u=f"U{i}") for i, (text, _) in enumerate(lines)]
        text = newline.join(["user_id,item_id,event_type,timestamp", *records]) + newline
        result = pipe.ingest("interactions", f"random{n}.csv", text.encode())
        line_of = {
            i: text[: text.index(f"{newline}U{i},")].count("\n") + 2
            for i, record in enumerate(records)
            if record
        }
        expected = [(line_of[i], f"U{i}") for i, (_, bad) in enumerate(lines) if bad]
        frame = result.quarantine.sort_values("line_number")
        found = [(int(r.line_number), r.raw_record.split(",")[0]) for r in frame.itertuples()]
        assert found == expected, text


def test_quoted_newline_in_an_unparsable_record_and_in_an_ignored_column(pipe):
    data = (
        b"user_id,item_id,event_type,timestamp,note\r\n"
        + b'U1,I1,VIEW,1700000000,"two\r\nlines"\r\n'  # lines 2-3, newline in an extra column
        + b'U2,"I\n2",VIEW\r\n'  # lines 4-5: too few fields
        + b"U3,I3,VIEW,abc,\r\n"  # line 6
    )
    result = pipe.ingest("interactions", "multiline.csv", data)
    assert counts(result) == (3, 1, 0, 2)
    lines = [(line, column) for line, column, _ in rejects(result)]
    assert lines == [(4, "timestamp"), (6, "timestamp")]
    assert "too few fields" in rejects(result)[0][2]
    assert rejects(result)[1][2] == "timestamp: cannot parse 'abc' as epoch seconds"
    raw = result.quarantine.set_index("line_number")["raw_record"]
    assert raw[4] == 'U2,"I\n2",VIEW'  # the record itself, without the CRLF before it


def test_truncated_last_line_mid_value_is_an_implausible_timestamp(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\nU7,I7,VIEW,15"
    result = pipe.ingest("interactions", "cut.csv", data)
    assert counts(result) == (2, 1, 0, 1)
    assert rejects(result) == [
        (3, "timestamp", f"timestamp: '15' is outside the plausible window {WINDOW}")
    ]
    assert result.quarantine.iloc[0]["raw_record"] == "U7,I7,VIEW,15"
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_truncated_last_line_with_too_few_fields_counts_once(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\nU7,I7"
    result = pipe.ingest("interactions", "cut.csv", data)
    # DuckDB reports one error per missing column; the record is still one record.
    assert counts(result) == (2, 1, 0, 1)
    assert rejects(result) == [
        (3, "event_type", "event_type: too few fields (Expected Number of Columns: 4 Found: 2)")
    ]
    assert result.quarantine.iloc[0]["raw_record"] == "U7,I7"
    assert result.report.quarantine_reasons == {"unreadable record": 1}


# --- values ----------------------------------------------------------------------------------


def test_timestamps_unparsable_implausible_and_milliseconds(pipe):
    data = (
        IH
        + (
            f"U1,I1,VIEW,abc\n"  # 2
            f"U2,I2,VIEW,{LOW - 1}\n"  # 3: 1989-12-31 23:59:59
            f"U3,I3,VIEW,{LOW}\n"  # 4: accepted (window start)
            f"U4,I4,VIEW,{HIGH - 1}\n"  # 5: accepted (just before now + 1 day)
            f"U5,I5,VIEW,{HIGH}\n"  # 6: now + 1 day
            f"U6,I6,VIEW,{T0 * 1000}\n"  # 7: milliseconds
            f"U7,I7,VIEW,\n"  # 8
            f"U8,I8,VIEW,nan\n"  # 9: a double, but no time
            f"U9,I9,VIEW,1e400\n"  # 10: infinity
            f"U10,I10,VIEW,1_700_000_000\n"  # 11: DuckDB alone reads it
            f"U11,I11,VIEW,1700000000d\n"  # 12: Athena alone reads it
            f"U12,I12,VIEW,0x1p30\n"  # 13: and this (2004-01-10)
            f"U13,I13,VIEW,1700000000F\n"  # 14: upper case too
            f"U14,I14,VIEW,0X1P30\n"  # 15
        ).encode()
    )
    result = pipe.ingest("interactions", "times.csv", data)
    assert counts(result) == (14, 2, 0, 12)
    outside = f"is outside the plausible window {WINDOW}"
    assert rejects(result) == [
        (2, "timestamp", "timestamp: cannot parse 'abc' as epoch seconds"),
        (3, "timestamp", f"timestamp: '{LOW - 1}' {outside}"),
        (6, "timestamp", f"timestamp: '{HIGH}' {outside}"),
        (
            7,
            "timestamp",
            f"timestamp: '{T0 * 1000}' {outside}; it looks like epoch milliseconds, "
            "but the source declares epoch seconds",
        ),
        (8, "timestamp", "timestamp: missing value"),
        (9, "timestamp", "timestamp: cannot parse 'nan' as epoch seconds"),
        (10, "timestamp", "timestamp: cannot parse '1e400' as epoch seconds"),
        (11, "timestamp", "timestamp: cannot parse '1_700_000_000' as epoch seconds"),
        (12, "timestamp", "timestamp: cannot parse '1700000000d' as epoch seconds"),
        (13, "timestamp", "timestamp: cannot parse '0x1p30' as epoch seconds"),
        (14, "timestamp", "timestamp: cannot parse '1700000000F' as epoch seconds"),
        (15, "timestamp", "timestamp: cannot parse '0X1P30' as epoch seconds"),
    ]
    assert pipe.curated("interactions") == [
        interaction("U3", "I3", "VIEW", LOW),
        interaction("U4", "I4", "VIEW", HIGH - 1),
    ]


def test_event_type_not_declared_is_quarantined_and_case_is_normalised(pipe):
    data = IH + b"U1,I1,view,1700000000\nU2,I2,Add_To_Cart,1700000001\nU3,I3,CLICK,1700000002\n"
    result = pipe.ingest("interactions", "types.csv", data)
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(result) == [(4, "event_type", f"event_type: 'CLICK' {NOT_DECLARED}")]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "ADD_TO_CART", T0 + 1),
    ]


def test_sales_value_rules(pipe):
    when = "2024-01-01 10:00:00"
    data = (
        SH
        + (
            f"O1,C1,I1,2,1.50,{when},UK\n"  # 2: accepted
            f"O2,C1,I1,1,-1.00,{when},UK\n"  # 3: negative price
            f"O3,C1,I1,0,1.00,{when},UK\n"  # 4: zero quantity
            f"O4,C1,I1,1.5,1.00,{when},UK\n"  # 5: non-integer quantity
            f"O5,,I1,-1,1.50,{when},\n"  # 6: accepted (guest return)
            f"O6,C1,I1,1,1.00,2024/01/01,UK\n"  # 7: unparsable timestamp
            f"O7,C1,I1,1,1.00,1989-12-31 23:59:59,UK\n"  # 8: before 1990
            f"O8,C1,I1,1,abc,{when},UK\n"  # 9: price not a number
            f",C1,I1,1,1.00,{when},UK\n"  # 10: no order id
            f"O9,C1,I1,1,0,2024-06-02 00:00:00,UK\n"  # 11: now + 1 day
            f"O10,C1,I1,99999999999999999999,1.00,{when},UK\n"  # 12: too many digits
        ).encode()
    )
    result = pipe.ingest("sales", "sales.csv", data)
    assert counts(result) == (11, 2, 0, 9)
    outside = f"is outside the plausible window {WINDOW}"
    assert rejects(result) == [
        (3, "unit_price", "unit_price: negative price -1.00"),
        (4, "quantity", "quantity: zero quantity"),
        (5, "quantity", "quantity: '1.5' is not an integer"),
        (7, "timestamp", "timestamp: cannot parse '2024/01/01' as %Y-%m-%d %H:%M:%S"),
        (8, "timestamp", f"timestamp: '1989-12-31 23:59:59' {outside}"),
        (9, "unit_price", "unit_price: 'abc' is not a number"),
        (10, "order_id", "order_id: missing value"),
        (11, "timestamp", f"timestamp: '2024-06-02 00:00:00' {outside}"),
        (12, "quantity", "quantity: '99999999999999999999' has more than 18 digits"),
    ]
    assert result.quarantine.set_index("line_number").loc[5, "raw_record"] == (
        "O4,C1,I1,1.5,1.00,2024-01-01 10:00:00,UK"
    )
    rows = pipe.curated("sales")
    assert [(r[0], r[1], r[3], float(r[4]), float(r[5]), r[6], r[7]) for r in rows] == [
        ("O1", "C1", 2, 1.5, 3.0, when, "UK"),
        ("O5", None, -1, 1.5, -1.5, when, None),
    ]


def test_a_quarantined_record_reads_back_as_a_line_of_the_file(pipe):
    """Fields holding the delimiter or the quote are quoted again in raw_record."""
    data = SH + b'O1,C1,"Mug, ""large""",1,"1,234.50",2024-01-02 10:00:00,UK\n'
    result = pipe.ingest("sales", "quoted.csv", data)
    assert rejects(result) == [(2, "unit_price", "unit_price: '1,234.50' is not a number")]
    assert result.quarantine.iloc[0]["raw_record"] == (
        'O1,C1,"Mug, ""large""",1,"1,234.50",2024-01-02 10:00:00,UK'
    )


def test_header_names_match_whatever_their_case_and_padding(pipe):
    # Required names too: `USER_ID` and ` item_id` were missing columns, the file rejected.
    data = b"USER_ID, item_id ,Event_Type,timestamp,\nU1,I1,VIEW,1700000000,\n"
    result = pipe.ingest("interactions", "padded.csv", data)
    assert counts(result) == (1, 1, 0, 0)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_optional_header_names_match_whatever_their_case(pipe):
    """As DuckDB binds them: a `User_ID` column is `user_id`, not an absent one (NULL)."""
    data = b"order_id,User_ID,item_id,quantity,unit_price,timestamp,Country\n"
    data += b"O1,C1,I1,2,10.5,2024-01-02 10:00:00,GB\n"
    result = pipe.ingest("sales", "shouting.csv", data)
    assert counts(result) == (1, 1, 0, 0)
    (row,) = pipe.curated("sales")
    assert (row[0], row[1], row[7]) == ("O1", "C1", "GB")


def test_prices_only_in_the_notation_both_engines_read(pipe):
    when = "2024-01-02 10:00:00"
    data = SH + f"O1,C1,I1,1,1.1234_5,{when},UK\nO2,C1,I1,1,1_000,{when},UK\n".encode()
    result = pipe.ingest("sales", "underscores.csv", data)
    assert [reason for _, _, reason in rejects(result)] == [
        "unit_price: '1.1234_5' is not a number",
        "unit_price: '1_000' is not a number",
    ]


def test_a_price_is_never_rounded_to_fit(pipe):
    when = "2024-01-02 10:00:00"
    data = (
        SH
        + (
            f"O1,C1,I1,3,0.12340000,{when},UK\n"  # 2: accepted: trailing zeros change nothing
            f"O2,C1,I1,3,0.123456789,{when},UK\n"  # 3
            f"O3,C1,I1,1,0.12341,{when},UK\n"  # 4: would round onto line 5's price
            f"O3,C1,I1,1,0.1234,{when},UK\n"  # 5: accepted
            f"O4,C1,I1,1,-0.00001,{when},UK\n"  # 6: negative, whatever it rounds to
            f"O5,C1,I1,1,100000000000000,{when},UK\n"  # 7
            f"O6,C1,I1,1,nan,{when},UK\n"  # 8
            f"O7,C1,I1,1,1.5e-7,{when},UK\n"  # 9: exponent notation, compared exactly
            f"O8,C1,I1,1,1.25E1,{when},UK\n"  # 10: accepted: 12.5
        ).encode()
    )
    result = pipe.ingest("sales", "prices.csv", data)
    assert counts(result) == (9, 3, 0, 6)
    assert rejects(result) == [
        (3, "unit_price", "unit_price: '0.123456789' has more than 4 decimal places"),
        (4, "unit_price", "unit_price: '0.12341' has more than 4 decimal places"),
        (6, "unit_price", "unit_price: negative price -0.00001"),
        (
            7,
            "unit_price",
            "unit_price: '100000000000000' is too large "
            "(at most 14 digits before the decimal point)",
        ),
        (8, "unit_price", "unit_price: 'nan' is not a number"),
        (9, "unit_price", "unit_price: '1.5e-7' has more than 4 decimal places"),
    ]
    rows = pipe.curated("sales")
    assert [(r[0], r[4], r[5]) for r in rows] == [
        ("O1", 0.1234, 0.3702),
        ("O3", 0.1234, 0.1234),
        ("O8", 12.5, 12.5),
    ]


def test_optional_sales_columns_may_be_absent(pipe):
    data = b"order_id,item_id,quantity,unit_price,timestamp\nO1,I1,2,10.5,2024-01-02 10:00:00\n"
    result = pipe.ingest("sales", "no_customer.csv", data)
    assert counts(result) == (1, 1, 0, 0)
    (row,) = pipe.curated("sales")
    assert (row[0], row[1], row[5], row[7]) == ("O1", None, 21.0, None)


# --- duplicates and re-uploads ---------------------------------------------------------------


def test_duplicate_rows_within_a_file_count_once(pipe):
    data = IH + (
        b"U1,I1,VIEW,1700000000\n"
        b"U1,I1,VIEW,1700000000\n"
        b" U1 ,I1,view,1700000000\n"  # same canonical row after trimming and upper-casing
        b"U1,I1,VIEW,1700000001\n"
        b"U1,I1,VIEW,zz\n"
    )
    result = pipe.ingest("interactions", "dups.csv", data)
    assert counts(result) == (5, 2, 2, 1)
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U1", "I1", "VIEW", T0 + 1),
    ]


def test_same_file_under_two_keys_second_is_all_duplicates(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\nU2,I2,VIEW,1700000001\nU2,I2,VIEW,x\n"
    first = pipe.ingest("interactions", "a.csv", data)
    second = pipe.ingest("interactions", "copy_of_a.csv", data)
    assert counts(first) == (3, 2, 0, 1)
    assert counts(second) == (3, 0, 2, 1)
    assert rejects(second) == [(4, "timestamp", "timestamp: cannot parse 'x' as epoch seconds")]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "VIEW", T0 + 1),
    ]


def test_a_key_that_extends_another_keys_name_with_at_is_another_key(pipe):
    # "a.csv@b.csv"'s upload ids start with "a.csv@", like a version of "a.csv" would.
    data = IH + b"U1,I1,VIEW,1700000000\n"
    first = pipe.ingest("interactions", "a.csv@b.csv", data)
    second = pipe.ingest("interactions", "a.csv", data)
    assert counts(first) == (1, 1, 0, 0)
    assert counts(second) == (1, 0, 1, 0)
    assert pipe.curated("interactions") == [interaction("U1", "I1", "VIEW", T0)]


def test_overwritten_key_replaces_its_old_contribution(pipe):
    old = IH + b"U1,I1,VIEW,1700000000\nU2,I2,VIEW,1600000000\n"  # U2 on 2020-09-13
    new = IH + b"U1,I1,VIEW,1700000000\nU3,I3,PURCHASE,1700000003\nU3,I3,PURCHASE,1700000003\n"
    v1 = pipe.ingest("interactions", "daily.csv", old, mtime_ns=1_000_000_000)
    v2 = pipe.ingest("interactions", "daily.csv", new, mtime_ns=2_000_000_000)
    assert v1.upload.version != v2.upload.version
    assert counts(v1) == (2, 2, 0, 0)
    # U1 is not a duplicate of the key's own older version: it is that key's row again.
    assert counts(v2) == (3, 2, 1, 0)
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U3", "I3", "PURCHASE", T0 + 3),
    ]
    # The day only the old version touched is gone, not left behind as an empty folder.
    days = {o.key.split("/")[2] for o in pipe.lake.list_objects("curated/interactions/")}
    assert days == {"event_date=2023-11-14"}
    logs = [o.key for o in pipe.lake.list_objects("ingest_log/interactions/")]
    assert len(logs) == 2


def test_overwritten_key_with_an_unreadable_file_drops_its_old_rows(pipe):
    pipe.ingest("interactions", "daily.csv", IH + b"U1,I1,VIEW,1700000000\n", mtime_ns=10**9)
    broken = pipe.ingest(
        "interactions", "daily.csv", b"user_id;item_id\nU1;I1\n", mtime_ns=2 * 10**9
    )
    assert counts(broken) == (1, 0, 0, 1)
    assert_whole_file_rejected(broken, "missing required column(s)")
    assert pipe.curated("interactions") == []


def test_a_header_only_reupload_retracts_what_the_key_gave(pipe):
    """How to take an upload back: deleting the raw file leaves its rows (README)."""
    pipe.ingest("interactions", "daily.csv", IH + b"U1,I1,VIEW,1700000000\n", mtime_ns=10**9)
    emptied = pipe.ingest("interactions", "daily.csv", IH, mtime_ns=2 * 10**9)
    assert counts(emptied) == (0, 0, 0, 0)
    assert pipe.curated("interactions") == []


def test_overwritten_key_still_dedups_against_other_keys(pipe):
    pipe.ingest("interactions", "other.csv", IH + b"U9,I9,VIEW,1700000009\n")
    pipe.ingest("interactions", "daily.csv", IH + b"U1,I1,VIEW,1700000000\n", mtime_ns=10**9)
    again = pipe.ingest(
        "interactions",
        "daily.csv",
        IH + b"U1,I1,VIEW,1700000000\nU9,I9,VIEW,1700000009\n",
        mtime_ns=2 * 10**9,
    )
    assert counts(again) == (2, 1, 1, 0)
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U9", "I9", "VIEW", T0 + 9),
    ]


def test_a_row_a_replaced_key_gives_up_counts_again_under_the_key_that_also_has_it(pipe):
    pipe.ingest("interactions", "a.csv", IH + b"U1,I1,VIEW,1700000000\nU2,I2,VIEW,1700000002\n")
    other = pipe.ingest("interactions", "b.csv", IH + b"U2,I2,VIEW,1700000002\n")
    assert counts(other) == (1, 0, 1, 0)  # a.csv has it
    spec = pipe.sources["interactions"]
    upload = pipe.land("interactions", "a.csv", IH + b"U1,I1,VIEW,1700000000\n", 2 * 10**9)
    with pipe.engine.session() as session:
        stage_upload(upload, spec, pipe.lake, session, NOW)
    merged = merge_staged("interactions", [spec], pipe.lake, pipe.engine, NOW)
    # a.csv no longer has U2, b.csv does: b.csv is merged again and U2 counts, once.
    assert [(r.object_key, counts_of(r)) for r in merged] == [
        ("raw/interactions/a.csv", (1, 1, 0, 0)),
        ("raw/interactions/b.csv", (1, 1, 0, 0)),
    ]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "VIEW", T0 + 2),
    ]
    logged = json.loads(pipe.lake.read_bytes(ingest_log_key(other.upload)))
    assert (logged["rows_accepted"], logged["rows_duplicate"]) == (1, 0)


def test_an_upload_merged_before_the_replacement_in_the_same_batch_is_merged_again(pipe):
    pipe.ingest("interactions", "a.csv", IH + b"U2,I2,VIEW,1700000002\n", mtime_ns=10**9)
    spec = pipe.sources["interactions"]
    other = pipe.land("interactions", "0.csv", IH + b"U2,I2,VIEW,1700000002\n")
    replaced = pipe.land("interactions", "a.csv", IH + b"U1,I1,VIEW,1700000000\n", 2 * 10**9)
    with pipe.engine.session() as session:
        # Same staging time: merged in key order, 0.csv first, against a.csv's old version.
        for upload in (other, replaced):
            stage_upload(upload, spec, pipe.lake, session, NOW)
    merged = merge_staged("interactions", [spec], pipe.lake, pipe.engine, NOW)
    assert sorted((r.object_key, counts_of(r)) for r in merged) == [
        ("raw/interactions/0.csv", (1, 1, 0, 0)),
        ("raw/interactions/a.csv", (1, 1, 0, 0)),
    ]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "VIEW", T0 + 2),
    ]


def test_uploads_on_other_days_are_not_merged_again_when_a_key_is_replaced(pipe):
    pipe.ingest("interactions", "a.csv", IH + b"U1,I1,VIEW,1700000000\n", mtime_ns=10**9)
    pipe.ingest("interactions", "b.csv", IH + b"U2,I2,VIEW,1600000000\nU2,I2,VIEW,1600000000\n")
    again = pipe.ingest("interactions", "a.csv", IH + b"U3,I3,VIEW,1700000003\n", 2 * 10**9)
    assert counts(again) == (1, 1, 0, 0)  # and `ingest` saw only a.csv merged


# --- compression -----------------------------------------------------------------------------


def test_gzip_csv_with_gz_name_and_gzip_bytes_under_csv_name(pipe):
    plain = pipe.ingest("interactions", "a.csv.gz", gzip.compress(IH + b"U1,I1,VIEW,1700000000\n"))
    disguised = pipe.ingest(
        "interactions", "b.csv", gzip.compress(IH + b"U2,I2,VIEW,1700000001\nU3,I3,VIEW,zz\n")
    )
    assert counts(plain) == (1, 1, 0, 0)
    assert counts(disguised) == (2, 1, 0, 1)
    assert rejects(disguised) == [(3, "timestamp", "timestamp: cannot parse 'zz' as epoch seconds")]
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "VIEW", T0 + 1),
    ]


def test_gzip_larger_than_the_sniffed_head_and_gzip_missing_column(pipe):
    rng = random.Random(7)
    lines = [f"U{rng.randrange(10**9)},I{rng.randrange(10**9)},VIEW,{T0 + i}" for i in range(8000)]
    data = gzip.compress(IH + "\n".join(lines).encode() + b"\n")
    assert len(data) > 1 << 16
    big = pipe.ingest("interactions", "big.csv.gz", data)
    assert counts(big) == (8000, 8000, 0, 0)
    cut = gzip.compress(b"user_id,item_id,timestamp\nU1,I1,1700000000\nU2,I2,1700000001\n")
    rejected = pipe.ingest("interactions", "cut.csv.gz", cut)
    assert counts(rejected) == (2, 0, 0, 2)
    assert_whole_file_rejected(rejected, "line 1", "missing required column(s) 'event_type'")


def test_corrupt_and_truncated_gzip_are_rejected_whole(pipe):
    garbage = pipe.ingest("interactions", "garbage.csv.gz", b"\x1f\x8b" + b"garbage" * 50)
    assert_whole_file_rejected(garbage, "not a readable gzip file")
    assert counts(garbage) == (0, 0, 0, 0)

    rng = random.Random(3)
    lines = [f"U{rng.randrange(10**9)},I{rng.randrange(10**9)},VIEW,{T0 + i}" for i in range(4000)]
    whole = gzip.compress(IH + "\n".join(lines).encode() + b"\n")
    cut = pipe.ingest("interactions", "cut.csv.gz", whole[: len(whole) // 2])
    # Silently taking the rows before the cut would lose the rest of the file unnoticed.
    reason = assert_whole_file_rejected(cut, "cut.csv.gz", "truncated")
    assert "upload it again" in reason
    assert 0 < cut.report.rows_read < 4000
    assert pipe.curated("interactions") == []


def test_concatenated_gzip_members_are_one_file(pipe):
    first = gzip.compress(IH + b"U1,I1,VIEW,1700000000\n")
    second = gzip.compress(b"U2,I2,VIEW,1700000001\nU3,I3,VIEW,1700000002\n")
    result = pipe.ingest("interactions", "two.csv.gz", first + second)
    assert counts(result) == (3, 3, 0, 0)

    headless = gzip.compress(b"user_id,item_id,timestamp\nU1,I1,1\n") + gzip.compress(
        b"U2,I2,2\nU3,I3,3\n"
    )
    rejected = pipe.ingest("interactions", "two_bad.csv.gz", headless)
    assert_whole_file_rejected(rejected, "missing required column(s) 'event_type'")
    assert counts(rejected) == (3, 0, 0, 3)


# --- declared dialects -----------------------------------------------------------------------

LATIN1_SALES = """
sources:
  shop_uk:
    kind: sales
    columns: {order_id: Order, item_id: Item, quantity: Qty, unit_price: "Price £",
              timestamp: When, country: Country, user_id: Customer}
    csv: {delimiter: ";", encoding: latin-1}
    timestamp: {format: "%d/%m/%Y %H:%M"}
"""


def test_latin1_declared_encoding_with_pound_sign(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, LATIN1_SALES)
    data = (
        "Order;Customer;Item;Qty;Price £;When;Country\n"
        "O1;C1;Tea £ pot;2;1.50;01/02/2024 09:30;United Kingdom\n"
        "O2;C2;Scone;-1;2.00;01/02/2024 10:00;Österreich\n"
        "O3;C3;Jam;1;-2.00;01/02/2024 10:00;UK\n"
    ).encode("latin-1")
    result = pipe.ingest("shop_uk", "feb.csv", data)
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(result) == [(4, "unit_price", "unit_price: negative price -2.00")]
    assert result.quarantine.iloc[0]["raw_record"] == "O3;C3;Jam;1;-2.00;01/02/2024 10:00;UK"
    rows = pipe.curated("sales")
    assert [(r[0], r[2], r[3], r[6], r[7]) for r in rows] == [
        ("O1", "Tea £ pot", 2, "2024-02-01 09:30:00", "United Kingdom"),
        ("O2", "Scone", -1, "2024-02-01 10:00:00", "Österreich"),
    ]


ISO_SALES = """
sources:
  shop_export:
    kind: sales
    columns: {order_id: order, item_id: sku, quantity: qty, unit_price: price,
              timestamp: created_at}
    timestamp: {format: iso8601, timezone: Europe/London}
"""


def test_iso8601_sales_times_with_offsets_are_stored_as_utc(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, ISO_SALES)
    data = (
        b"order,sku,qty,price,created_at\n"
        b"O1,A,1,2.50,2024-03-31T00:30:00-05:00\n"  # 05:30 UTC
        b"O2,B,1,2.50,2024-03-31 02:30:00\n"  # no offset: London, a DST gap -> 01:30 UTC
        b"O3,C,1,2.50,2024-03-31T12:00:00.250Z\n"
        b"O4,D,1,2.50,31/03/2024 12:00\n"  # not ISO
    )
    result = pipe.ingest("shop_export", "export.csv", data)
    assert counts(result) == (4, 3, 0, 1)
    assert rejects(result) == [
        (
            5,
            "timestamp",
            "timestamp: cannot parse '31/03/2024 12:00' as ISO 8601 "
            "(such as 2024-01-31T13:45:00+01:00)",
        )
    ]
    assert [(r[0], r[6], r[-1]) for r in pipe.curated("sales")] == [
        ("O1", "2024-03-31 05:30:00.000", "2024-03-31"),
        ("O2", "2024-03-31 01:30:00.000", "2024-03-31"),
        ("O3", "2024-03-31 12:00:00.250", "2024-03-31"),
    ]


HEADERLESS = """
sources:
  legacy:
    kind: interactions
    csv: {names: [ts, uid, iid, ev]}
    columns: {timestamp: ts, user_id: uid, item_id: iid, event_type: ev}
    values: {event_type: {pv: VIEW, buy: PURCHASE}}
    event_types: [VIEW, PURCHASE]
"""


def test_headerless_source_with_names(pipe, tmp_path):
    pipe.sources = write_sources(tmp_path, HEADERLESS)
    data = (
        b"1700000000,U1,I1,pv\n"  # line 1
        b"1700000001,U2,I2,buy\n"  # line 2
        b"1700000002,U3,I3,cart\n"  # line 3
        b"1700000003,U4\n"  # line 4: too few fields
        b'1700000004,U5,"I\n5",pv\n'  # lines 5-6
        b",U6,I6,pv\n"  # line 7
    )
    result = pipe.ingest("legacy", "dump.csv", data)
    assert counts(result) == (6, 3, 0, 3)
    lines = [(line, column) for line, column, _ in rejects(result)]
    # A parser reject names the file's column, a value reject the canonical one.
    assert lines == [(3, "event_type"), (4, "iid"), (7, "timestamp")]
    assert rejects(result)[0][2] == (
        "event_type: 'cart' is not an event type this source declares (VIEW, PURCHASE)"
    )
    assert "too few fields" in rejects(result)[1][2]
    assert rejects(result)[2][2] == "timestamp: missing value"
    assert pipe.curated("interactions") == [
        interaction("U1", "I1", "VIEW", T0),
        interaction("U2", "I2", "PURCHASE", T0 + 1),
        interaction("U5", "I\n5", "VIEW", T0 + 4),
    ]


def test_mixed_line_endings_are_a_whole_file_reject_not_a_crash(pipe):
    data = IH + b"U1,I1,VIEW,1700000000\r\nU2,I2,VIEW,1700000001\r\n"
    result = pipe.ingest("interactions", "mixed.csv", data)
    assert result.report.reconciles
    assert_whole_file_rejected(
        result, "mixed.csv", "mixed line endings: line 1 ends with LF, line 2 with CRLF"
    )
    assert counts(result) == (2, 0, 0, 2)


def test_a_file_the_csv_reader_gives_up_on_is_rejected_whole(pipe, monkeypatch):
    """Beyond what the header sniff catches, the engine's own verdict rejects the file."""
    monkeypatch.setattr(ingest, "_check_line_endings", lambda *args: None)
    data = IH + b"U1,I1,VIEW,1700000000\r\nU2,I2,VIEW,1700000001\r\n"
    result = pipe.ingest("interactions", "mixed.csv", data)
    assert_whole_file_rejected(result, "mixed.csv", "the CSV reader cannot parse the file")
    assert counts(result) == (2, 0, 0, 2)


def test_a_clean_reupload_clears_the_keys_old_quarantine(pipe):
    bad = IH + b"U1,I1,VIEW,1700000000\nU2,I2,VIEW,not-a-time\n"
    first = pipe.ingest("interactions", "a.csv", bad, mtime_ns=1_700_000_000_000_000_000)
    assert counts(first) == (2, 1, 0, 1)

    clean = IH + b"U1,I1,VIEW,1700000000\nU2,I2,VIEW,1700000001\n"
    second = pipe.ingest("interactions", "a.csv", clean, mtime_ns=1_700_000_001_000_000_000)

    assert counts(second) == (2, 2, 0, 0)
    assert pipe.lake.head(quarantine_key(second.upload)) is None


# --- batches: many uploads staged and merged together ---------------------------------------

DAY = 86_400
BATCH = [
    # name, content: d1 and d2 on days of their own, d3 on a day of its own and on d2's day
    # (with a copy of d2's row), d4 with a rejected record, and an unreadable file.
    ("d1.csv", IH + f"U1,I1,VIEW,{T0}\nU1,I1,VIEW,{T0}\n".encode()),
    ("d2.csv", IH + f"U2,I2,VIEW,{T0 + DAY}\n".encode()),
    ("d3.csv", IH + f"U3,I3,VIEW,{T0 + 2 * DAY}\nU2,I2,VIEW,{T0 + DAY}\n".encode()),
    ("d4.csv", IH + f"U4,I4,VIEW,{T0 + 3 * DAY}\nU9,I9,CLICK,{T0 + 3 * DAY}\n".encode()),
    ("empty.csv", b""),
]


def test_a_batch_merges_like_its_uploads_one_at_a_time(tmp_path, monkeypatch):
    one_by_one = Pipeline(tmp_path / "one-by-one")
    expected = {
        name: counts(one_by_one.ingest("interactions", name, data, mtime_ns=T0 * 10**9 + i))
        for i, (name, data) in enumerate(BATCH)
    }

    batch = Pipeline(tmp_path / "batch")
    spec = batch.sources["interactions"]
    uploads = [
        batch.land("interactions", name, data, mtime_ns=T0 * 10**9 + i)
        for i, (name, data) in enumerate(BATCH)
    ]
    staged = ingest.stage_uploads(
        [(u, batch.lake.head(u.key).size) for u in uploads],
        {"interactions": spec},
        batch.lake,
        batch.engine,
        NOW,
    )
    assert [r.upload_id for r in staged] == [u.upload_id for u in uploads]
    statements = []  # each merge statement renders the curation SQL once

    def counting_curation_sql(*args, **kwargs):
        statements.append(args)
        return curation_sql(*args, **kwargs)

    monkeypatch.setattr(ingest, "curation_sql", counting_curation_sql)
    merged = merge_staged("interactions", [spec], batch.lake, batch.engine, NOW)

    assert {r.object_key.rsplit("/", 1)[1]: counts_of(r) for r in merged} == expected
    assert expected["d3.csv"] == (2, 1, 1, 0)  # d2's row, again: a duplicate
    assert batch.curated("interactions") == one_by_one.curated("interactions")
    # d1+d2 and d3+d4 each merged by one statement (d3 shares a day with d2).
    assert len(statements) == 2
    assert not list((tmp_path / "batch").rglob(".tmp-*"))


SMALL_UPLOADS = [
    # source, name, content: clean files staged together, and the ones staged alone.
    ("interactions", "c1.csv", IH + f"U1,I1,VIEW,{T0}\nU1,I2,PURCHASE,{T0 + 5}\n".encode()),
    ("interactions", "c2.csv", IH + f'U2,"I,2",VIEW,{T0 + DAY}\n'.encode()),
    ("interactions", "c3.csv", IH + f"U3,I3,add_to_cart,{T0 + 2 * DAY}\n".encode()),
    ("interactions", "c4.csv.gz", gzip.compress(IH + f"U4,I4,VIEW,{T0}\n".encode())),
    ("interactions", "crlf.csv", IH.replace(b"\n", b"\r\n") + f"U5,I5,VIEW,{T0}\r\n".encode()),
    ("interactions", "multiline.csv", IH + f'U5,"I\n5",VIEW,{T0}\nU5,I6,VIEW,{T0}\n'.encode()),
    (
        "interactions",
        "reordered.csv",
        f"timestamp,user_id,event_type,item_id\n{T0},U5,VIEW,I5\n".encode(),
    ),
    ("interactions", "named.csv", IH.rstrip() + f",file_index\nU6,I6,VIEW,{T0},7\n".encode()),
    ("interactions", "header_only.csv", IH),
    ("interactions", "noted_header_only.csv", IH.rstrip() + b",note\n"),
    ("interactions", "bad_value.csv", IH + f"U7,I7,VIEW,{T0}\nU7,I7,CLICK,{T0}\n".encode()),
    ("interactions", "bad_record.csv", IH + f"U8,I8,VIEW,{T0}\nU8,I8,VIEW,{T0},extra\n".encode()),
    ("interactions", "empty.csv", b""),
    ("interactions", "twice.csv", IH + f"U9,I9,VIEW,{T0}\n".encode()),
    ("interactions", "twice.csv", IH + f"U9,I9,VIEW,{T0}\nU9,I10,VIEW,{T0}\n".encode()),
    ("sales", "s1.csv", SH + b"O1,U1,I1,2,9.99,2023-11-14 22:13:20,UK\n"),
    ("sales", "s2.csv", SH + b"O2,,I2,-1,5.00,2023-11-15 08:00:00,\n"),
]


def stage_landed(pipeline: Pipeline, uploads: list) -> list:
    """`stage_uploads` over uploads `pipeline` landed, as `raw_uploads` calls it."""
    sized = [(u, pipeline.lake.head(u.key).size) for u in uploads]
    return ingest.stage_uploads(sized, pipeline.sources, pipeline.lake, pipeline.engine, NOW)


def test_small_uploads_staged_together_equal_each_staged_alone(tmp_path, monkeypatch):
    """What staging a batch of small uploads leaves (reports, manifests, staged records,
    quarantine) is what staging each alone leaves; only the clean files of one source and
    header share a statement."""

    def land_all(pipeline: Pipeline) -> list[Upload]:
        return [
            pipeline.land(source, name, data, mtime_ns=T0 * 10**9 + i)
            for i, (source, name, data) in enumerate(SMALL_UPLOADS)
        ]

    def left_behind(pipeline: Pipeline, uploads: list[Upload]) -> dict:
        found = {}
        for upload in dict.fromkeys(uploads):  # a key's versions share staging files
            staged = pipeline.lake.head(ingest.staging_key(upload, "parquet"))
            records = []
            if staged is not None:
                frame = pd.read_parquet(pipeline.lake.uri(staged.key))
                records = sorted(frame.astype(str).itertuples(index=False, name=None))
            manifest = json.loads(pipeline.lake.read_bytes(ingest.staging_key(upload, "json")))
            quarantine = pipeline.quarantine(upload).astype(str).to_dict("records")
            found[upload.key] = (manifest, records, quarantine)
        return found

    alone = Pipeline(tmp_path / "alone")
    alone_uploads = land_all(alone)
    with alone.engine.session() as session:
        expected = [
            stage_upload(u, alone.sources[u.source], alone.lake, session, NOW)
            for u in alone_uploads
        ]

    together = Pipeline(tmp_path / "together")
    uploads = land_all(together)
    batches, singles = [], []
    real_batch, real_single = ingest._stage_batch, ingest.stage_upload
    monkeypatch.setattr(ingest, "STAGING_WORKERS", 1)  # one share: every batch as big as can be
    monkeypatch.setattr(
        ingest, "_stage_batch", lambda batch, *a: batches.append(batch) or real_batch(batch, *a)
    )
    monkeypatch.setattr(
        ingest, "stage_upload", lambda upload, *a: singles.append(upload) or real_single(upload, *a)
    )
    reports = stage_landed(together, uploads)

    assert [asdict(r) for r in reports] == [asdict(r) for r in expected]
    assert left_behind(together, uploads) == left_behind(alone, alone_uploads)
    names = lambda group: sorted(u.key.rsplit("/", 1)[1] for u in group)  # noqa: E731
    # A batch per source, header and compression; every file that is not clean, whose
    # header names a file_index column or whose key comes twice is staged alone.
    assert sorted(map(names, batches)) == [
        [
            "bad_record.csv",
            "bad_value.csv",
            "c1.csv",
            "c2.csv",
            "c3.csv",
            "crlf.csv",
            "header_only.csv",
            "multiline.csv",
        ],
        ["c4.csv.gz"],
        ["noted_header_only.csv"],
        ["reordered.csv"],
        ["s1.csv", "s2.csv"],
    ]
    assert names(singles) == [
        "bad_record.csv",
        "bad_value.csv",
        "empty.csv",
        "header_only.csv",
        "named.csv",
        "noted_header_only.csv",
        "twice.csv",
        "twice.csv",
    ]
    assert not list((tmp_path / "together").rglob(".tmp-*"))


def test_an_interrupt_stops_the_staging_workers_before_their_next_batch(tmp_path, monkeypatch):
    """Ctrl-C during a backfill of small uploads stops the run within a statement, not
    after every worker has staged its whole share (the interrupt reaches the main thread
    only, and the thread pool waits for its workers)."""
    pipeline = Pipeline(tmp_path)
    uploads = [
        pipeline.land("interactions", f"day{i:02}.csv", IH + f"u{i},i1,VIEW,{T0 + i}\n".encode())
        for i in range(40)
    ]
    monkeypatch.setattr(ingest, "STAGING_WORKERS", 2)
    monkeypatch.setattr(ingest, "BATCH_FILES", 2)  # 10 batches a worker
    batches = []
    real_batch = ingest._stage_batch

    def slow_batch(batch, *args):
        if not batches:  # Ctrl-C while the first statement runs
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        batches.append(batch)
        time.sleep(0.2)
        return real_batch(batch, *args)

    monkeypatch.setattr(ingest, "_stage_batch", slow_batch)
    with pytest.raises(KeyboardInterrupt):
        stage_landed(pipeline, uploads)
    assert len(batches) <= 2  # the statement each worker had started


def test_an_interrupt_cancels_the_statement_a_staging_worker_is_running(tmp_path, monkeypatch):
    """The statement a worker had started when Ctrl-C came raises at once instead of
    running to its end (a batch of 100 files, or an Athena CTAS that is billed)."""
    pipeline = Pipeline(tmp_path)
    uploads = [
        pipeline.land("interactions", f"day{i}.csv", IH + f"u{i},i1,VIEW,{T0 + i}\n".encode())
        for i in range(2)
    ]
    monkeypatch.setattr(ingest, "STAGING_WORKERS", 1)
    outcome = []

    def long_batch(batch, source, header, compression, lake, session, now):
        # Ctrl-C once the statement runs (a cancel between statements is the next
        # statement's `stopping` check's to catch).
        main = threading.main_thread().ident
        threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT)).start()
        try:  # many seconds when left to finish
            session.fetch("SELECT count(*) FROM range(1000000000) AS t(i) WHERE i % 7 = 3")
            outcome.append("finished")
        except duckdb.InterruptException:
            outcome.append("cancelled")
            raise

    monkeypatch.setattr(ingest, "_stage_batch", long_batch)
    with pytest.raises(KeyboardInterrupt):
        stage_landed(pipeline, uploads)
    assert outcome == ["cancelled"]


def test_a_staging_workers_failure_is_reported_as_itself(tmp_path, monkeypatch):
    """The failure stops the other workers, one of which has already closed its session:
    what the run reports is the failure, not that session's cancel."""
    pipeline = Pipeline(tmp_path)
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    uploads = [
        pipeline.land("interactions", f"{day}.csv", IH + f"u{i},i1,VIEW,{T0 + i}\n".encode())
        for i, day in enumerate(days)
    ]
    monkeypatch.setattr(ingest, "STAGING_WORKERS", 2)
    assert len({zlib.crc32(u.key.encode()) % 2 for u in uploads}) == 2  # both workers stage
    real_batch = ingest._stage_batch

    def failing_batch(batch, *args):
        if any(upload.key.endswith("/mon.csv") for upload in batch):
            time.sleep(0.5)  # the other worker is done by then
            raise RuntimeError("No space left on device")
        return real_batch(batch, *args)

    monkeypatch.setattr(ingest, "_stage_batch", failing_batch)
    with pytest.raises(RuntimeError, match="No space left on device"):
        stage_landed(pipeline, uploads)


def test_reader_rejects_keep_their_lines_deep_into_a_crlf_file_with_quoted_line_breaks(pipe):
    # DuckDB's parallel reader put the short record after the 850,000th one a line late.
    rows = [b"user_id,item_id,event_type,timestamp"]
    rows += [b"u%d,i1,VIEW,%d" % (i, T0 + i) for i in range(900_000)]
    for k in range(50_000, 900_000, 50_000):
        rows[k] = b'"u\r\nx",i1,VIEW,1700000000'
        rows[k + 400] = b"u1,i1"
    data = b"\r\n".join(rows) + b"\r\n"
    # The line of each short record: one more than the line ends before it.
    short = [data.count(b"\n", 0, at + 1) + 1 for at in _offsets(data, b"\nu1,i1\r")]

    result = pipe.ingest("interactions", "deep.csv", data)

    assert [line for line, _, reason in rejects(result) if "too few" in reason] == short


def _offsets(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def test_lines_stay_right_after_several_unparsable_multi_line_records_and_blank_lines(pipe):
    lines = [
        IH.rstrip(b"\n"),  # 1
        b"U1,I1,VIEW,1700000000",  # 2
        b'U2,"I',  # 3: too few fields, over lines 3-4
        b'2",VIEW',  # 4
        b"U3,I3,BAD,1700000000",  # 5: value reject
        b"",  # 6
        b'U4,I4,VIEW,1700000000,"x',  # 7: too many fields, over lines 7-8
        b'y"',  # 8
        b"U5,I5,VIEW,abc",  # 9: value reject
        b"",  # 10
        b"",  # 11
        b"U6,I6,CLICK,1700000000",  # 12: value reject
        b"U7,I7,VIEW,1700000001",  # 13
    ]
    result = pipe.ingest("interactions", "spans.csv", b"\n".join(lines) + b"\n")
    assert counts(result) == (7, 2, 0, 5)
    assert [(line, column) for line, column, _ in rejects(result)] == [
        (3, "timestamp"),  # the missing field
        (5, "event_type"),
        (7, None),
        (9, "timestamp"),
        (12, "event_type"),
    ]


def test_curated_files_keep_the_dictionary_of_a_catalog_of_a_few_thousand_items(pipe):
    # The staging file skips dictionaries over 1,024 values (it is read once); the files
    # Athena and the analytics read keep DuckDB's own limit: +25-60 % bytes otherwise.
    # 60,000 events of one day (one file), 3,000 items in random order: 20 events an item.
    rng = random.Random(3)
    rows = "".join(
        f"U{i % 97},I{rng.randrange(3000)},VIEW,{1_699_920_000 + i}\n" for i in range(60_000)
    )
    pipe.ingest("interactions", "catalog.csv", IH + rows.encode())
    files = [pipe.lake.uri(o.key) for o in pipe.lake.list_objects("curated/interactions/")]
    encodings = duckdb.execute(
        "SELECT encodings FROM parquet_metadata(?) WHERE path_in_schema = 'item_id'", [files]
    ).fetchall()
    assert encodings and all("DICTIONARY" in e for (e,) in encodings), encodings
