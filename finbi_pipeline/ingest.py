"""Ingestion: stage each upload (validate, quarantine), then merge staged uploads into the
curated tables (deduplicate, partition by date). Engine- and lake-agnostic.

Staging is per upload and safe to run for many uploads at once. Merging is per kind and
runs once per batch, in upload order, so cross-upload duplicates are decided in one place.

Lake layout (keys):
  staging/<source>/<slug>.parquet      validated records of a staged upload, one per record
  staging/<source>/<slug>.json         its manifest (counts, status), until merged
  quarantine/<source>/<slug>.parquet   rejected records: line, column, reason, raw values
                                       (only for uploads with rejected records)
  curated/<kind>/<date column>=<day>/<slug>.parquet   what each object key contributes
  ingest_log/<source>/<slug>@<version hash>.json     the reconciled counts of each upload
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import threading
import uuid
import zlib
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from finbi_pipeline.csv_quotes import LINE_BEFORE_EMPTY, QuotedFields, utf8_chunks, whole_lines
from finbi_pipeline.resources.engine import (
    EngineSession,
    OutOfEngineMemory,
    ParserReject,
    QueryEngine,
    UnreadableInput,
)
from finbi_pipeline.resources.lake import Lake
from finbi_pipeline.sources import SourceSpec
from finbi_pipeline.sql_templates import (
    curation_sql,
    literal,
    staged_records_sql,
    validation_sql,
)
from finbi_pipeline.uploads import Upload, list_uploads

_log = logging.getLogger(__name__)

SNIFF_BYTES = 1 << 16
# Characters DuckDB's readers take for a glob in a path, whatever the file is called.
PATTERN_CHARACTERS = ("*", "?", "[")

# Curated tables: columns in the files (the date partition column lives in the path).
CURATED_COLUMNS: dict[str, dict[str, str]] = {
    "interactions": {
        "user_id": "VARCHAR",
        "item_id": "VARCHAR",
        "event_type": "VARCHAR",
        "event_time": "TIMESTAMP",
        "source": "VARCHAR",
        "upload_id": "VARCHAR",
    },
    "sales": {
        "order_id": "VARCHAR",
        "user_id": "VARCHAR",
        "item_id": "VARCHAR",
        "quantity": "BIGINT",
        "unit_price": "DECIMAL(18,4)",
        "amount": "DECIMAL(18,4)",
        "sale_time": "TIMESTAMP",
        "country": "VARCHAR",
        "source": "VARCHAR",
        "upload_id": "VARCHAR",
    },
}
DATE_COLUMN = {"interactions": "event_date", "sales": "sale_date"}
MERGE_DAYS = 100  # partitions (days) written per statement when merging an upload
QUARANTINE_COLUMNS = {
    "upload_id": "VARCHAR",
    "source": "VARCHAR",
    "object_key": "VARCHAR",
    "line_number": "BIGINT",
    "column_name": "VARCHAR",
    "reason": "VARCHAR",
    "raw_record": "VARCHAR",
}


@dataclass
class UploadReport:
    """The reconciled account of one upload: read = accepted + duplicate + quarantined."""

    upload_id: str
    source: str
    kind: str
    object_key: str
    object_version: str
    rows_read: int = 0
    rows_accepted: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    status: str = "staged"  # staged | ingested | rejected
    message: str = ""
    staged_at: str = ""
    ingested_at: str | None = None
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    # The days (ISO dates) the upload has accepted records on, set when it is merged.
    days: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        accounted = self.rows_accepted + self.rows_duplicate + self.rows_quarantined
        return self.rows_read == accounted


class UnreadableFile(Exception):
    """A file that cannot be read at all; the message names the file, line and cause."""


def staging_key(upload: Upload, suffix: str) -> str:
    return f"staging/{upload.source}/{upload.slug}.{suffix}"


def quarantine_key(upload: Upload) -> str:
    return f"quarantine/{upload.source}/{upload.slug}.parquet"


def ingest_log_key(upload: Upload) -> str:
    version = hashlib.sha1(upload.version.encode()).hexdigest()[:10]
    return f"ingest_log/{upload.source}/{upload.slug}@{version}.json"


# --- staging -------------------------------------------------------------------------------


def stage_upload(
    upload: Upload, source: SourceSpec, lake: Lake, session: EngineSession, now: dt.datetime
) -> UploadReport:
    """Validate one upload: typed records to staging, rejects to quarantine, a manifest.

    One engine session serves a whole batch of uploads.
    """
    report = _new_report(upload, source, now)
    head, compression = _read_head(lake, upload)
    try:
        header = _check_readable(upload, source, head, compression, lake)
    except UnreadableFile as exc:
        return _reject_whole_file(upload, source, lake, report, str(exc), compression)

    staged = lake.uri(staging_key(upload, "parquet"))
    uri = lake.uri(upload.key)
    try:
        session.register_csv(
            "raw_records", source, uri, compression, line_numbers=False, header=header
        )
        stats = session.write_parquet(
            staged_records_sql(source, "raw_records", now), staged, scratch=True
        )
        parser_rejects = session.parser_rejects()
        session.check_records_read(uri, stats.rows + len(parser_rejects))
    except UnreadableInput as exc:
        message = f"{upload.key}: the CSV reader cannot parse the file: {exc}"
        if "invalid state" in str(exc):
            message += (
                " (the usual causes: mixed LF and CRLF line endings, or a carriage return"
                " (CR) outside quotes; save the file with one kind of line ending)"
            )
        return _reject_whole_file(upload, source, lake, report, message, compression)
    reasons = session.fetch(
        f"SELECT reject_column, COUNT(*) AS n FROM read_parquet({literal(staged)}) "
        "WHERE reject_reason IS NOT NULL GROUP BY reject_column"
    )
    rejected = f"read_parquet({literal(staged)})"
    if len(reasons):
        # Physical lines need a second, sequential pass that numbers the records: only
        # files with rejected values pay for it.
        session.register_csv("numbered", source, uri, compression, header=header)
        rejected = f"({validation_sql(source, 'numbered', now)})"
    value_rejects = 0
    if len(reasons) or parser_rejects:
        value_rejects = _write_quarantine(
            session, upload, source, lake, rejected, parser_rejects, session.blank_lines()
        )
    else:  # a clean file: nothing to quarantine, and nothing left from an older version
        lake.delete([quarantine_key(upload)])
    report.rows_read = stats.rows + len(parser_rejects)
    report.rows_quarantined = value_rejects + len(parser_rejects)
    report.quarantine_reasons = {str(column): int(n) for column, n in reasons.rows}
    if parser_rejects:
        report.quarantine_reasons["unreadable record"] = len(parser_rejects)
    if report.rows_read == 0:
        report.message = "header only: the file has no data rows"
    lake.write_bytes(staging_key(upload, "json"), json.dumps(asdict(report)).encode())
    return report


def _new_report(upload: Upload, source: SourceSpec, now: dt.datetime) -> UploadReport:
    return UploadReport(
        upload_id=upload.upload_id,
        source=source.name,
        kind=source.kind,
        object_key=upload.key,
        object_version=upload.version,
        staged_at=now.isoformat(),
    )


def _read_head(lake: Lake, upload: Upload) -> tuple[bytes, str | None]:
    """The first bytes of an upload and its compression (gzip whatever its name)."""
    head = lake.read_bytes(upload.key, max_bytes=SNIFF_BYTES)
    return head, "gzip" if head[:2] == b"\x1f\x8b" else None


# Uploads smaller than this are staged STAGING_WORKERS at a time, each worker with its own
# engine session: a small file's cost is mostly per-statement latency (DuckDB's, or Athena's
# seconds), which workers overlap even on two cores (305 UCI daily files: raw_uploads 5.5 s
# with 4 workers, 6.2 s with 2, 6.1 s with 8). Larger ones are staged one at a time, each
# using every core and the whole memory limit.
SMALL_UPLOAD_BYTES = 32 << 20
STAGING_WORKERS = 4
# A worker validates its small uploads of one source, folder and header together, this
# many files or bytes at a time: DuckDB holds a buffer for each file's output while it
# writes them, and an Athena CTAS writes at most 100 partitions.
BATCH_FILES = 100
BATCH_BYTES = 64 << 20


def stage_uploads(
    uploads: list[tuple[Upload, int]],
    sources: dict[str, SourceSpec],
    lake: Lake,
    engine: QueryEngine,
    now: dt.datetime,
) -> list[UploadReport]:
    """Stage a batch of (upload, size in bytes); reports in the batch's order."""
    small = [(upload, size) for upload, size in uploads if size < SMALL_UPLOAD_BYTES]
    large = [upload for upload, size in uploads if size >= SMALL_UPLOAD_BYTES]

    stopping = threading.Event()
    sessions: list[EngineSession] = []  # the workers', to cancel their running statements

    def stage_small(share: list[tuple[Upload, int]]) -> list[UploadReport]:
        if not share:
            return []
        with engine.session() as session:
            sessions.append(session)
            _stop_if(stopping)  # a session opened after the others were cancelled
            return _stage_in_batches(share, sources, lake, session, now, stopping)

    # Versions of one key share staging files: they go to the same worker, in order.
    workers = max(1, min(STAGING_WORKERS, len(small)))
    shares = [
        [(u, size) for u, size in small if zlib.crc32(u.key.encode()) % workers == i]
        for i in range(workers)
    ]
    with ThreadPoolExecutor(workers) as pool:
        try:
            reports = [report for share in pool.map(stage_small, shares) for report in share]
        except BaseException:
            # Ctrl-C or SIGTERM reaches the main thread only (as does a worker's failure),
            # and leaving this block waits for the workers: their running statements are
            # cancelled and they start no other, instead of staging their whole share.
            stopping.set()
            for session in list(sessions):
                session.cancel()
            raise
    if large:
        with engine.session() as session:
            reports += [stage_upload(u, sources[u.source], lake, session, now) for u in large]
    by_upload = {report.upload_id: report for report in reports}
    return [by_upload[upload.upload_id] for upload, _ in uploads]


def _stage_in_batches(
    share: list[tuple[Upload, int]],
    sources: dict[str, SourceSpec],
    lake: Lake,
    session: EngineSession,
    now: dt.datetime,
    stopping: threading.Event,
) -> list[UploadReport]:
    """Stage small uploads, those of one source, folder and header by one statement per
    batch; _Stopped as soon as `stopping` is set.

    A batch stages only its clean files (every record accepted); a file with a rejected
    record, no records or an unreadable part is staged alone, as `stage_upload` words
    and numbers its rejects. So is every version of a key the share has twice.
    """
    versions = Counter(upload.key for upload, _ in share)
    groups: dict[tuple, list[tuple[Upload, int]]] = defaultdict(list)
    alone: list[Upload] = []
    for upload, size in share:
        _stop_if(stopping)
        source = sources[upload.source]
        head, compression = _read_head(lake, upload)
        try:
            header = _check_readable(upload, source, head, compression, lake)
        except UnreadableFile:
            alone.append(upload)
            continue
        # A file column named file_index would hide the reader's own.
        if versions[upload.key] > 1 or "file_index" in (header or ()):
            alone.append(upload)
        else:  # one folder: on Athena a batch is read as one table over it
            folder = upload.key.rsplit("/", 1)[0]
            groups[(source.name, folder, tuple(header or ()), compression)].append((upload, size))
    reports = []
    for (name, _, header, compression), members in groups.items():
        for batch in _batches(members):
            _stop_if(stopping)
            staged, left = _stage_batch(
                batch, sources[name], list(header) or None, compression, lake, session, now
            )
            reports += staged
            alone += left
    order = {upload.upload_id: i for i, (upload, _) in enumerate(share)}
    alone.sort(key=lambda upload: order[upload.upload_id])
    for upload in alone:
        _stop_if(stopping)
        reports.append(stage_upload(upload, sources[upload.source], lake, session, now))
    return reports


class _Stopped(Exception):
    """A staging worker stopped because the run was interrupted (never seen by callers:
    the interrupt itself propagates)."""


def _stop_if(stopping: threading.Event) -> None:
    if stopping.is_set():
        raise _Stopped


def _batches(members: list[tuple[Upload, int]]) -> Iterator[list[Upload]]:
    """Consecutive runs of at most BATCH_FILES uploads and BATCH_BYTES bytes."""
    batch, size = [], 0
    for upload, upload_size in members:
        if batch and (len(batch) == BATCH_FILES or size + upload_size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(upload)
        size += upload_size
    if batch:
        yield batch


def _stage_batch(
    batch: list[Upload],
    source: SourceSpec,
    header: list[str] | None,
    compression: str | None,
    lake: Lake,
    session: EngineSession,
    now: dt.datetime,
) -> tuple[list[UploadReport], list[Upload]]:
    """Validate a batch of uploads in one statement; return the reports of the clean ones
    (staged) and the uploads left to stage alone."""
    temp = f"staging/{source.name}/.tmp-{uuid.uuid4().hex}"
    uris = [lake.uri(upload.key) for upload in batch]
    try:
        session.register_csv_batch("raw_records", source, uris, compression, header)
        session.write_parquet(
            staged_records_sql(source, "raw_records", now, by_file=True),
            lake.uri(temp),
            partition_by="file_index",
            scratch=True,
        )
    except UnreadableInput:  # staged alone, each file says whether it is the one, and why
        lake.delete_prefix(temp + "/")
        return [], batch
    output = {}  # file_index -> the file of its validated records (none: no records)
    for obj in lake.list_objects(temp + "/"):
        output[int(obj.key.split("/")[-2].split("=", 1)[1])] = obj.key
    index_of = {lake.uri(key): index for index, key in output.items()}
    clean = {}  # file_index -> records, of the files with every record accepted
    if index_of:
        counts = session.fetch(
            "SELECT file_uri, COUNT(*) AS n, COUNT(reject_reason) AS rejected FROM "
            f"{session.parquet_relation(list(index_of), {}, with_file_uri=True)} "
            "GROUP BY file_uri"
        )
        clean = {index_of[uri]: int(n) for uri, n, rejected in counts.rows if not rejected}
    for index, records in list(clean.items()):
        try:
            session.check_records_read(uris[index], records)
        except UnreadableInput:  # staged alone, which rejects it saying why
            del clean[index]
    with_parser_rejects = session.files_with_parser_rejects()
    reports, left = [], []
    for index, upload in enumerate(batch):
        if index in output:
            # Every file's records are staged, which empties the temporary folder; staging
            # a file again alone replaces them.
            lake.move(output[index], staging_key(upload, "parquet"))
        if index not in clean or uris[index] in with_parser_rejects:
            left.append(upload)
            continue
        # A clean file has nothing to quarantine, and nothing left from an older version.
        lake.delete([quarantine_key(upload)])
        report = _new_report(upload, source, now)
        report.rows_read = clean[index]
        lake.write_bytes(staging_key(upload, "json"), json.dumps(asdict(report)).encode())
        reports.append(report)
    lake.delete_prefix(temp + "/")  # whatever else the engine wrote there
    return reports, left


def _check_readable(
    upload: Upload, source: SourceSpec, head: bytes, compression, lake: Lake
) -> list[str] | None:
    """The file's header (None without one); UnreadableFile for an empty file, corrupt or
    truncated gzip data, an undecodable header or missing columns."""
    where = f"{upload.key}"
    if any(character in upload.key for character in PATTERN_CHARACTERS):
        raise UnreadableFile(
            f"{where}: a name holding {' or '.join(map(repr, PATTERN_CHARACTERS))} is read as a "
            "file pattern by the local engine, which would read other files too: rename the file"
        )
    if compression == "gzip":
        try:
            head = _Gunzip().feed(head)
        except zlib.error as exc:
            raise UnreadableFile(f"{where}: not a readable gzip file ({exc})") from exc
        _check_gzip_complete(lake, upload)
    if not head.removeprefix(codecs.BOM_UTF8).strip():
        raise UnreadableFile(f"{where}: empty file (no header and no rows)")
    if source.csv.encoding == "utf-16" and head.startswith(codecs.BOM_UTF16_BE):
        raise UnreadableFile(
            f"{where}: the file is big-endian UTF-16 (it starts with the byte order mark FE FF); "
            "the CSV reader reads little-endian UTF-16 only: save it as UTF-16 LE or UTF-8"
        )
    if source.csv.encoding == "utf-16" and compression is None and lake.head(upload.key).size % 2:
        # The reader would decode the lone last byte into the last value.
        raise UnreadableFile(
            f"{where}: an odd number of bytes, which UTF-16 text (two bytes a character) "
            "never has: the file looks cut off; upload it again"
        )
    _check_line_endings(where, head, source.csv.quote, source.csv.delimiter)
    if not source.csv.header:
        return None
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    encoding = "utf-8-sig" if source.csv.encoding == "utf-8" else source.csv.encoding
    try:
        text = codecs.decode(first_line, encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"{where}: line 1, column {exc.start + 1}: the header is not valid "
            f"{source.csv.encoding} (byte 0x{first_line[exc.start]:02x})"
        ) from exc
    # Decoded first: in UTF-16 a CRLF's CR is followed by a zero byte, not the LF.
    if "\r" in text.rstrip("\r"):
        raise UnreadableFile(
            f"{where}: line 1 holds a carriage return (CR) that ends no CRLF line: the file "
            "may have classic Mac (CR-only) line endings; save it with LF or CRLF line endings"
        )
    if not text.strip():
        raise UnreadableFile(f"{where}: line 1 is empty: the header must be the first line")
    try:
        header = next(
            csv.reader(
                io.StringIO(text), delimiter=source.csv.delimiter, quotechar=source.csv.quote
            )
        )
    except csv.Error as exc:
        raise UnreadableFile(f"{where}: line 1: cannot read the header: {exc}") from exc
    # Names match as DuckDB binds them, whatever their case, and trimmed as values are.
    header = [name.strip() for name in header]
    present = {name.lower() for name in header}
    missing = [column for column in source.required_columns if column.lower() not in present]
    if missing:
        hint = _delimiter_hint(text, source)
        raise UnreadableFile(
            f"{where}: line 1: missing required column(s) {', '.join(map(repr, missing))}; "
            f"the header has {len(header)} column(s) {header!r}{hint}"
        )
    return header


def _check_line_endings(where: str, head: bytes, quote: str, delimiter: str) -> None:
    """CSV readers cannot split a file whose records end in both LF and CRLF.

    Only line ends outside quoted fields count: a quoted field may hold a bare LF.
    """
    if b"\r" not in head:  # the usual case, decided without a walk through every byte
        return
    first_end = {}  # ends with CR? -> first physical line that ends that way
    lines, counted_to = 1, 0
    for start, stop in QuotedFields(quote, delimiter).unquoted(head):
        for index in _positions(head, b"\n", start, stop):
            lines += head.count(b"\n", counted_to, index)
            counted_to = index
            first_end.setdefault(index > 0 and head[index - 1] == 0x0D, lines)
    if len(first_end) == 2:
        raise UnreadableFile(
            f"{where}: mixed line endings: line {first_end[False]} ends with LF, line "
            f"{first_end[True]} with CRLF; save the file with one kind of line ending"
        )


def _positions(data: bytes, needle: bytes, start: int, stop: int) -> Iterator[int]:
    """Where `needle` occurs in data[start:stop]."""
    at = data.find(needle, start, stop)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1, stop)


def _delimiter_hint(header_text: str, source: SourceSpec) -> str:
    for candidate in (",", ";", "\t", "|"):
        if candidate == source.csv.delimiter:
            continue
        fields = next(csv.reader(io.StringIO(header_text), delimiter=candidate))
        if all(column in fields for column in source.required_columns):
            return (
                f"; the file looks {candidate!r}-delimited but source '{source.name}' "
                f"declares {source.csv.delimiter!r}"
            )
    return ""


def _reject_whole_file(
    upload: Upload, source: SourceSpec, lake: Lake, report: UploadReport, message: str, compression
) -> UploadReport:
    """Quarantine every record of an unreadable file under one reason."""
    lines = _count_lines(lake, upload.key, compression, source.csv.encoding)
    report.rows_read = report.rows_quarantined = max(lines - int(source.csv.header), 0)
    report.status = "rejected"
    report.message = message
    report.quarantine_reasons = {"whole file": report.rows_quarantined}
    row = {
        "upload_id": upload.upload_id,
        "source": source.name,
        "object_key": upload.key,
        "line_number": None,
        "column_name": None,
        "reason": f"whole file rejected: {message}",
        "raw_record": None,
    }
    _write_small_parquet(lake, quarantine_key(upload), [row])
    lake.delete([staging_key(upload, "parquet")])
    lake.write_bytes(staging_key(upload, "json"), json.dumps(asdict(report)).encode())
    return report


def _count_lines(lake: Lake, key: str, compression: str | None, encoding: str) -> int:
    """Lines in an object that are not empty (a last line without a line end counts), read
    in chunks in its encoding. Lines end in LF (or CRLF), or in CR in a file without LF
    (classic Mac); of a corrupt gzip file, the lines before the damage count."""

    def chunks() -> Iterator[bytes]:
        gunzip = _Gunzip() if compression == "gzip" else None
        for chunk in lake.iter_bytes(key):
            if gunzip is not None:
                try:
                    chunk = gunzip.feed(chunk)
                except zlib.error:
                    return
            yield chunk

    lf = cr = empty = 0
    last = b"\n"
    for block in whole_lines(utf8_chunks(chunks(), encoding)):
        lf += block.count(b"\n")
        cr += block.count(b"\r")
        last = block[-1:]
        empty += len(LINE_BEFORE_EMPTY.findall(block)) + block.startswith((b"\n", b"\r\n"))
    if lf == 0 and cr:
        return cr + (last != b"\r")
    return lf + (last not in (b"\n", b"")) - empty


def _check_gzip_complete(lake: Lake, upload: Upload) -> None:
    """UnreadableFile when a gzip upload is corrupt or cut short (an interrupted transfer):
    the CSV reader would take the rows before the damage for the whole file."""
    gunzip = _Gunzip()
    try:
        for chunk in lake.iter_bytes(upload.key):
            gunzip.feed(chunk)
    except zlib.error as exc:
        raise UnreadableFile(f"{upload.key}: the gzip data is corrupt ({exc})") from exc
    if not gunzip.complete:
        raise UnreadableFile(
            f"{upload.key}: the gzip data ends before its end marker: the file is truncated "
            "(an interrupted upload?); upload it again"
        )


class _Gunzip:
    """Incremental gzip decompression of one member after another, as `gzip` writes
    concatenated files; `feed` raises zlib.error on data that is not gzip."""

    def __init__(self):
        self._member = zlib.decompressobj(wbits=31)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._member.decompress(data))
            self._started = True
            if not self._member.eof:
                break
            data = self._member.unused_data
            self._member, self._started = zlib.decompressobj(wbits=31), False
        return b"".join(out)

    @property
    def complete(self) -> bool:
        """Whether the data fed so far ends where a member ends."""
        return not self._started


def _write_quarantine(
    session: EngineSession,
    upload: Upload,
    source: SourceSpec,
    lake: Lake,
    validated: str,
    parser_rejects: list[ParserReject],
    blank_lines: list[int],
) -> int:
    """Write rejected records with their physical line numbers; return value-level rejects.

    `validated` is a relation of validated records with `record_no` set; `blank_lines` the
    physical lines the CSV reader skipped as empty.
    """
    header_lines = int(source.csv.header)
    value_sql = f"""
        SELECT
            {literal(upload.upload_id)} AS upload_id,
            {literal(source.name)} AS source,
            {literal(upload.key)} AS object_key,
            record_no + {header_lines} AS line_number,
            reject_column AS column_name,
            reject_reason AS reason,
            raw_values AS raw_record
        FROM {validated} AS validated
        WHERE reject_reason IS NOT NULL
    """
    key = quarantine_key(upload)
    stats = session.write_parquet(value_sql, lake.uri(key))
    if not (parser_rejects or blank_lines):
        return stats.rows  # each record is on the line after the one before it
    rows = [
        {
            "upload_id": upload.upload_id,
            "source": source.name,
            "object_key": upload.key,
            "line_number": r.line,
            "column_name": r.column_name,
            "reason": f"{r.column_name or 'record'}: {r.cause}",
            "raw_record": r.raw_line,
        }
        for r in parser_rejects
    ]
    _renumber_quarantine(
        lake, key, rows, _value_reject_lines(header_lines, parser_rejects, blank_lines)
    )
    return stats.rows


def _value_reject_lines(header_lines: int, parser_rejects: list[ParserReject], blank_lines):
    """A function from the line numbers the quarantine SQL gives rejected records (their
    number among the lines of parsed records, plus the header; a NumPy array) to their
    physical lines: plus the lines of the unparsable records before them and the blank
    lines before them. Binary searches over both (sorted) lists: n log m where a subquery
    per record was n x m.
    """
    import numpy as np

    # How many lines of parsed records precede each unparsable one (its physical line less
    # the header, the blank lines and the unparsable lines before it), and its own lines.
    good_before, spans, reject_lines = [], [0], 0
    for r in parser_rejects:
        span = r.raw_line.count("\n") + 1
        good_before.append(
            r.line - bisect_left(blank_lines, r.line) - header_lines - 1 - reject_lines
        )
        spans.append(span)
        reject_lines += span
    lines_before = np.cumsum(spans)
    # Counted without blank lines, a record is on line n; the i-th blank line (1-based) has
    # `blank - i` other lines before it, so the blank lines before the record are those
    # with fewer than n.
    others = np.array([line - i for i, line in enumerate(blank_lines, 1)], dtype=np.int64)

    def physical(numbered):
        without_blanks = (
            numbered + lines_before[np.searchsorted(good_before, numbered - header_lines)]
        )
        return without_blanks + np.searchsorted(others, without_blanks)

    return physical


def _renumber_quarantine(lake: Lake, key: str, rows: list[dict], physical_lines) -> None:
    """Rewrite the quarantine file at `key` with `rows` first and each of its records'
    `line_number` mapped through `physical_lines`, a batch at a time: a file of millions of
    rejects never sits in memory whole (outside DuckDB's memory limit)."""
    import pyarrow as pa  # here: only files with such lines need pyarrow
    import pyarrow.parquet as pq

    schema = _quarantine_schema()
    column = schema.get_field_index("line_number")
    # Through the lake, not a URI: on S3 that is the project's client and retries.
    numbered = pq.ParquetFile(io.BytesIO(lake.read_bytes(key)))
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, schema) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
        for batch in numbered.iter_batches(batch_size=1 << 16):
            table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
            lines = physical_lines(table.column(column).to_numpy())
            writer.write_table(table.set_column(column, "line_number", [lines]))
    lake.write_bytes(key, buffer.getvalue())


def _quarantine_schema():
    import pyarrow as pa

    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64()}
    return pa.schema([(name, types[kind]) for name, kind in QUARANTINE_COLUMNS.items()])


def _write_small_parquet(lake: Lake, key: str, rows: list[dict]) -> None:
    """A quarantine file of `rows`."""
    import pyarrow as pa  # here: only rejected files need pyarrow (40 MiB, 0.1 s to load)
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=_quarantine_schema()), buffer)
    lake.write_bytes(key, buffer.getvalue())


# --- merging -------------------------------------------------------------------------------


def pending_manifests(lake: Lake, sources: list[SourceSpec]) -> list[UploadReport]:
    """Staged uploads of the given sources not merged yet, oldest first."""
    reports = []
    for source in sources:
        for obj in lake.list_objects(f"staging/{source.name}/"):
            if obj.key.endswith(".json"):
                reports.append(UploadReport(**json.loads(lake.read_bytes(obj.key))))
    return sorted(reports, key=lambda r: (r.staged_at, r.upload_id))


def merge_staged(
    kind: str, sources: list[SourceSpec], lake: Lake, engine: QueryEngine, now: dt.datetime
) -> list[UploadReport]:
    """Merge every pending staged upload of `kind` into `curated/<kind>/`, in order.

    Uploads that cannot hold duplicates of each other (new keys on days no other upload of
    the group touches) are merged by one statement: a batch of many small daily files costs
    a few statements, not a few per file.

    A key's new version may no longer hold rows that later uploads of other keys also hold
    and that were dropped there as its duplicates. Those uploads are staged and merged
    again, so that such a row counts once, under the other key, instead of not at all.
    """
    curated = CuratedFiles(lake, kind)
    with engine.session() as session:
        merged, given_up_days = _merge_pending(kind, sources, lake, session, curated, now)
        if given_up_days:
            # Uploads merged earlier in this batch count too: they were judged against the
            # replaced version. Merging one again changes nothing it need not.
            for upload, source in _uploads_with_duplicates_on(kind, sources, lake, given_up_days):
                stage_upload(upload, source, lake, session, now)
            again = _merge_pending(kind, sources, lake, session, curated, now)[0]
            redone = {report.upload_id for report in again}
            merged = [report for report in merged if report.upload_id not in redone] + again
    return merged


def _merge_pending(
    kind: str,
    sources: list[SourceSpec],
    lake: Lake,
    session: EngineSession,
    curated: CuratedFiles,
    now: dt.datetime,
) -> tuple[list[UploadReport], set[str]]:
    """Merge the pending staged uploads; return their reports and the days on which a
    replaced key's older version had rows (what it may have given up)."""
    merged, given_up_days = [], set()
    reports = pending_manifests(lake, sources)
    days = _staged_days(kind, reports, lake, session)
    for group in _merge_groups(reports, days, curated):
        for report in group:
            older = curated.of_upload(Upload.from_partition_key(report.upload_id))
            given_up_days |= {key.split("/")[-2].split("=", 1)[1] for key in older}
        if group[0].status == "rejected":
            # The key's new content is unreadable: it no longer contributes anything.
            curated.replace(Upload.from_partition_key(group[0].upload_id), [])
        else:
            _merge_group(kind, group, days, lake, session, curated)
        for report in group:
            upload = Upload.from_partition_key(report.upload_id)
            report.ingested_at = now.isoformat()
            report.days = [day.isoformat() for day in days.get(report.upload_id, [])]
            lake.write_bytes(ingest_log_key(upload), json.dumps(asdict(report)).encode())
            lake.delete([staging_key(upload, "json"), staging_key(upload, "parquet")])
            merged.append(report)
    return merged, given_up_days


def _uploads_with_duplicates_on(
    kind: str, sources: list[SourceSpec], lake: Lake, days: set[str]
) -> list[tuple[Upload, SourceSpec]]:
    """The landing zone's ingested uploads (current versions) that counted duplicates and
    have records on one of `days` (an ingest log that does not list days counts as
    having)."""
    by_name = {source.name: source for source in sources if source.kind == kind}
    found = []
    for upload in list_uploads(lake, list(by_name)):
        if lake.head(ingest_log_key(upload)) is None:
            continue  # not ingested yet: its own merge decides its duplicates
        report = json.loads(lake.read_bytes(ingest_log_key(upload)))
        on_days = "days" not in report or bool(days & set(report["days"]))
        if report["status"] == "ingested" and report["rows_duplicate"] > 0 and on_days:
            found.append((upload, by_name[upload.source]))
    return found


def _staged_days(
    kind: str, reports: list[UploadReport], lake: Lake, session: EngineSession
) -> dict[str, list[dt.date]]:
    """The days each staged upload has accepted records on (one query for the batch)."""
    date_column = DATE_COLUMN[kind]
    staged = {
        lake.uri(staging_key(Upload.from_partition_key(r.upload_id), "parquet")): r.upload_id
        for r in reports
        if r.status != "rejected"
    }
    days: dict[str, list[dt.date]] = {upload_id: [] for upload_id in staged.values()}
    if not staged:
        return days
    relation = session.parquet_relation(list(staged), {}, with_file_uri=True)
    found = session.fetch(
        f"SELECT DISTINCT file_uri, {date_column} AS day FROM {relation} "
        f"WHERE reject_reason IS NULL AND {date_column} IS NOT NULL"
    )
    for uri, day in sorted(found.rows):
        days[staged[uri]].append(day)
    return days


def _merge_groups(
    reports: list[UploadReport], days: dict[str, list[dt.date]], curated: CuratedFiles
) -> Iterator[list[UploadReport]]:
    """Consecutive uploads that one statement can merge with the result of merging them one
    by one: new keys (nothing of theirs to replace) on days no other member touches (a
    duplicate is identical in every column, its date too), at most MERGE_DAYS days in all.
    Rejected uploads, re-uploaded keys and uploads with more days go alone.

    The caller merges each group before asking for the next, so `curated` shows what
    earlier groups wrote."""
    group: list[UploadReport] = []
    group_days: set[dt.date] = set()
    for report in reports:
        upload = Upload.from_partition_key(report.upload_id)
        own = set(days.get(report.upload_id, ()))
        alone = report.status == "rejected" or bool(curated.of_upload(upload))
        joins = (
            not alone
            and not (own & group_days)
            and len(group_days) + len(own) <= MERGE_DAYS
            and all(Upload.from_partition_key(r.upload_id).key != upload.key for r in group)
        )
        if group and not joins:
            yield group
            group, group_days = [], set()
        if alone:
            yield [report]
        else:
            group.append(report)
            group_days |= own
    if group:
        yield group


class CuratedFiles:
    """The curated files of a kind, listed once per merge and kept current as it writes
    (listing them for every upload made a batch of many small uploads quadratic)."""

    def __init__(self, lake: Lake, kind: str):
        self.lake, self.kind = lake, kind
        self.by_day: dict[str, set[str]] = defaultdict(set)  # "<date column>=<day>" -> keys
        self.by_slug: dict[str, set[str]] = defaultdict(set)  # upload slug -> keys
        for obj in lake.list_objects(f"curated/{kind}/"):
            if "/.tmp-" not in obj.key:  # a killed merge's leftovers are no curated rows
                self._add(obj.key)

    def of_upload(self, upload: Upload) -> list[str]:
        """The files holding what an object key contributes (any version)."""
        return sorted(self.by_slug.get(upload.slug, ()))

    def on_days(self, days: list) -> list[str]:
        """The files of every upload on these days: what a merge can collide with."""
        folders = [f"{DATE_COLUMN[self.kind]}={day:%Y-%m-%d}" for day in days]
        return sorted(key for folder in folders for key in self.by_day.get(folder, ()))

    def replace(self, upload: Upload, written: list[str]) -> None:
        """Record that `written` now holds what the key contributes; delete its other files."""
        stale = [key for key in self.of_upload(upload) if key not in written]
        self.lake.delete(stale)
        for key in stale:
            self.by_day[key.split("/")[-2]].discard(key)
            self.by_slug[upload.slug].discard(key)
        for key in written:
            self._add(key)

    def _add(self, key: str) -> None:
        folder, name = key.split("/")[-2:]
        self.by_day[folder].add(key)
        self.by_slug[name.removesuffix(".parquet")].add(key)


def _merge_group(
    kind: str,
    group: list[UploadReport],
    days: dict[str, list[dt.date]],
    lake: Lake,
    session: EngineSession,
    curated: CuratedFiles,
) -> None:
    """Write what each upload's key contributes, replacing what an older version did.

    Members of a group touch disjoint days, so every day written belongs to one upload.
    """
    date_column = DATE_COLUMN[kind]
    prefix = f"curated/{kind}/"
    uploads = {r.upload_id: Upload.from_partition_key(r.upload_id) for r in group}
    owner = {day: upload_id for upload_id in uploads for day in days[upload_id]}
    all_days = sorted(owner)
    staged_uris = [lake.uri(staging_key(uploads[r.upload_id], "parquet")) for r in group]
    staged = session.parquet_relation(staged_uris, {})
    source_of = {r.upload_id: r.source for r in group}
    temp_prefix = f"{prefix}.tmp-{uuid.uuid4().hex}"
    # What the keys contributed before is replaced, so it is no duplicate of their new rows:
    # their files are left out (each curated file holds one upload of one key).
    own = {key for upload in uploads.values() for key in curated.of_upload(upload)}
    # At most MERGE_DAYS days per statement: DuckDB buffers every partition it writes in
    # a block of its own, so a file spanning thousands of days (the Personalize POC data:
    # 4,075) exhausts the memory limit in one statement; a batch that still outgrows it
    # (days of many rows under a low limit) is split in two. No days: nothing accepted.
    batches = [
        all_days[start : start + MERGE_DAYS] for start in range(0, len(all_days), MERGE_DAYS)
    ]
    while batches:
        batch = batches.pop(0)
        existing = [lake.uri(key) for key in curated.on_days(batch) if key not in own]
        # Which upload each day of the batch is from: the upload of every record on it.
        members = ", ".join(
            f"(DATE {literal(f'{day:%Y-%m-%d}')}, {literal(source_of[owner[day]])}, "
            f"{literal(owner[day])})"
            for day in batch
        )
        sql = curation_sql(
            kind,
            staged=staged,
            existing=session.parquet_relation(existing, CURATED_COLUMNS[kind]),
            members=f"(SELECT * FROM (VALUES {members}) AS m({date_column}, source, upload_id))",
        )
        if len(batch) < len(all_days):
            sql = (
                f"SELECT * FROM ({sql}\n) AS batch WHERE {date_column} "
                f"BETWEEN DATE '{batch[0]:%Y-%m-%d}' AND DATE '{batch[-1]:%Y-%m-%d}'"
            )
        try:
            session.write_parquet(sql, lake.uri(temp_prefix), partition_by=date_column)
        except OutOfEngineMemory as exc:
            if len(batch) == 1:
                raise
            half = len(batch) // 2
            _log.warning("%s: merging %d days at a time instead of %d", exc, half, len(batch))
            lake.delete(
                [
                    obj.key
                    for day in batch
                    for obj in lake.list_objects(f"{temp_prefix}/{date_column}={day:%Y-%m-%d}/")
                ]
            )
            batches[:0] = [batch[:half], batch[half:]]
    written: dict[str, list[str]] = {upload_id: [] for upload_id in uploads}
    for obj in lake.list_objects(temp_prefix + "/"):
        day_folder = obj.key.split("/")[-2]  # <date column>=<day>
        upload_id = owner[dt.date.fromisoformat(day_folder.split("=", 1)[1])]
        target = f"{prefix}{day_folder}/{uploads[upload_id].slug}.parquet"
        lake.move(obj.key, target)
        written[upload_id].append(target)
    files = [lake.uri(key) for keys in written.values() for key in keys]
    accepted = session.fetch(
        "SELECT upload_id, COUNT(*) AS n FROM "
        f"{session.parquet_relation(files, CURATED_COLUMNS[kind])} GROUP BY upload_id"
    )
    accepted_rows = dict(accepted.rows)
    for report in group:
        curated.replace(uploads[report.upload_id], written[report.upload_id])
        report.status = "ingested"
        report.rows_accepted = int(accepted_rows.get(report.upload_id, 0))
        valid = report.rows_read - report.rows_quarantined
        report.rows_duplicate = valid - report.rows_accepted
