"""The query engine: runs the pipeline's Athena-dialect SQL.

`QueryEngine` is the interface; `DuckDBEngine` runs locally on the warehouse file
`$FINBI_HOME/warehouse.duckdb`, transpiling each statement with sqlglot. The Athena
implementation lives in `athena_engine.py`. SQL given to either is always Athena text.
"""

from __future__ import annotations

import gzip
import logging
import os
import time
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from itertools import accumulate, count
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from finbi_pipeline.athena_scan import estimate_scan
from finbi_pipeline.csv_quotes import (
    LINE_BEFORE_EMPTY,
    QuotedFields,
    unclosed_quote,
    utf8_chunks,
    whole_lines,
)
from finbi_pipeline.sources import SourceSpec
from finbi_pipeline.sql_templates import literal, to_duckdb
from finbi_pipeline.table_refresh import FULL, Update, refresh_table

# Trino functions sqlglot passes through unchanged; DuckDB gets them as macros (ICU).
TRINO_COMPAT_MACROS = (
    "CREATE OR REPLACE MACRO with_timezone(ts, zone) AS timezone(zone, ts)",
    "CREATE OR REPLACE MACRO at_timezone(tstz, zone) AS timezone(zone, tstz)",
)
# Distinct values per column chunk above which a scratch Parquet file's column is written
# without a dictionary. Ids (hundreds of thousands of users per row group) never fit one;
# under DuckDB's default limit the writer builds each of their dictionaries before giving
# up, which made staging 10M interactions about 20 % slower. Event types, sources and dates
# keep theirs. Not for the files that are kept: a catalog of a few thousand items
# compresses a quarter to a half better with its dictionary (bench/README.md, fix 31).
SCRATCH_DICTIONARY_SIZE_LIMIT = 1024


@dataclass
class QueryStats:
    """What one statement cost; engines fill what they report."""

    rows: int | None = None
    bytes_scanned: int | None = None
    engine_ms: float | None = None
    query_id: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def cost_usd(self) -> float | None:
        """Athena's price: $5 per TB scanned, 10 MB minimum per query."""
        if self.bytes_scanned is None:
            return None
        return max(self.bytes_scanned, 10 * 1024**2) / 1024**4 * 5.0


@dataclass(frozen=True)
class QueryResult:
    """A small query result: column names, their SQL types (as the engine names them) and
    the rows as Python values (Decimal for decimals, datetime, date, None for NULL)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple]

    @classmethod
    def of(cls, cursor: duckdb.DuckDBPyConnection) -> QueryResult:
        """The result of the statement `cursor` has just run."""
        rows = cursor.fetchall()
        description = cursor.description or []
        return cls(
            tuple(column[0] for column in description),
            tuple(str(column[1]) for column in description),
            rows,
        )

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def scalar(self):
        """The first column of the first row (a COUNT, say)."""
        return self.rows[0][0]


@dataclass(frozen=True)
class ParserReject:
    """A record the CSV reader itself could not split into the declared columns."""

    line: int
    column_name: str | None
    cause: str
    raw_line: str


class UnreadableInput(Exception):
    """The engine's reader cannot parse an input file at all (not one bad record)."""


class OutOfEngineMemory(Exception):
    """A statement needed more memory than the engine may use (DuckDB's memory limit)."""


class EngineSession(ABC):
    """One connection's worth of ingestion work; registered relations live as long as it."""

    @abstractmethod
    def register_csv(
        self,
        name: str,
        source: SourceSpec,
        uri: str,
        compression: str | None,
        line_numbers: bool = True,
        header: list[str] | None = None,
    ) -> None:
        """Expose a raw CSV as relation `name`: `record_no`, `file_index` (NULL: one file)
        and the canonical columns as text.

        `record_no` is where a record starts among the lines of the records the reader
        accepted (1-based): a record whose quoted fields hold newlines spans several lines.
        Numbering needs the file in order; with `line_numbers=False` record_no is NULL and
        the engine may read the file in parallel. `header` is the file's column names when
        the caller has read them: the engine then need not detect them.
        """

    @abstractmethod
    def register_csv_batch(
        self,
        name: str,
        source: SourceSpec,
        uris: list[str],
        compression: str | None,
        header: list[str] | None,
    ) -> None:
        """Expose CSVs of one source and folder with the same `header` as one relation, like
        `register_csv` without line numbers; `file_index` is the file's position in `uris`.
        Small files cost the statement latency once instead of once per file.
        """

    @abstractmethod
    def files_with_parser_rejects(self) -> set[str]:
        """The files of the last batch read with records the reader rejected."""

    @abstractmethod
    def parser_rejects(self) -> list[ParserReject]:
        """Records of the last read CSV that the reader rejected, with physical lines."""

    @abstractmethod
    def check_records_read(self, uri: str, records: int) -> None:
        """Raise UnreadableInput when the reader read `records` records (parsed or rejected)
        of the registered CSV `uri` and lost the others: a quoted field that never closes."""

    def blank_lines(self) -> list[int]:
        """The physical lines of the last registered CSV that its reader skipped as empty
        (in order), which the line numbers of the records after them must count. This
        reader returns an empty line as a record (Hive's text format does), so none."""
        return []

    @abstractmethod
    def parquet_relation(
        self, uris: list[str], empty_schema: dict[str, str], with_file_uri: bool = False
    ) -> str:
        """A FROM-able relation over Parquet files (empty, typed by `empty_schema`, if none);
        `with_file_uri` adds the column `file_uri`: the URI of the file each row is from."""

    @abstractmethod
    def write_parquet(
        self, sql: str, uri: str, partition_by: str | None = None, scratch: bool = False
    ) -> QueryStats:
        """Write the result of `sql` as Parquet to a file, or a Hive-partitioned folder;
        `scratch`: a file read once and deleted (staging), written for speed, not size.

        Raises UnreadableInput when a CSV the query reads cannot be parsed at all, and
        OutOfEngineMemory when the statement outgrew the engine's memory (it may have
        written some of its files).
        """

    @abstractmethod
    def fetch(self, sql: str) -> QueryResult:
        """Run `sql` and return its (small) result."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop the statement this session is running, from another thread: it raises
        instead of running to its end (the session is then only fit for closing)."""


class QueryEngine(dg.ConfigurableResource, ABC):
    """Runs the pipeline's SQL and reports rows, bytes scanned and cost."""

    @abstractmethod
    def session(self) -> AbstractContextManager[EngineSession]:
        """A scratch session for ingestion work that does not hold the warehouse."""

    @abstractmethod
    def create_table(self, table: str, sql: str) -> QueryStats:
        """Create or replace the analytics table `table` from a query."""

    def refresh_table(self, table: str, sql: str, update: Update) -> QueryStats:
        """Bring analytics table `table` up to date; `stats.extra` says how (`table_refresh`).

        This engine rebuilds it from every row; the local one can do less (`update`).
        """
        stats = self.create_table(table, sql)
        stats.extra.update(refresh_mode=FULL, refresh_reason="this engine rebuilds every table")
        return stats

    @abstractmethod
    def fetch(self, sql: str) -> QueryResult:
        """Run a query against the catalog's tables and return its (small) result."""

    @abstractmethod
    def location(self, table: str) -> str:
        """Where an analytics table's data lives, for metadata."""


class DuckDBEngine(QueryEngine):
    """DuckDB on `<home>/warehouse.duckdb`, with a memory limit so big inputs spill to disk."""

    home: str
    memory_limit: str = "1GB"
    threads: int = 0  # 0: DuckDB's default, one per core
    # How long a run waits for the warehouse while another process (another run) holds it.
    lock_wait_s: float = 600.0
    # While a run executes, one connection to the warehouse stays open, opened by the run's
    # first `connect`: DuckDB then serves every other `connect` from the same database
    # instance, about 4 ms instead of the 40 ms of opening the file (a run opens it about
    # thirty times), and runs of one FINBI_HOME take turns instead of failing each other's
    # statements.
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)
    _run_log: logging.Logger | None = PrivateAttr(default=None)  # set while a run executes

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_log = context.log

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._run_log = None
        if self._held is not None:
            self._held.close()
            self._held = None

    def _hold_warehouse(self, config: dict) -> None:
        """Open the run's held connection, waiting up to `lock_wait_s` for another process
        to let go of the file."""
        deadline = time.monotonic() + self.lock_wait_s
        for attempt in count():
            try:
                self._held = duckdb.connect(str(self.warehouse_path), config=config)
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc) or time.monotonic() >= deadline:
                    raise
                if attempt == 0:
                    self._run_log.warning(
                        f"waiting up to {self.lock_wait_s:.0f} s for the warehouse, which "
                        f"another process holds: {_first_line(exc)}"
                    )
                time.sleep(0.5)

    @property
    def warehouse_path(self) -> Path:
        return Path(self.home).resolve() / "warehouse.duckdb"

    def connect(self, database: str | None = None, read_only: bool = False):
        """A configured connection (UTC, memory limit, spill folder, Trino macros).

        Without `database`, the warehouse with `finbi` as the default schema.
        """
        home = Path(self.home).resolve()
        home.mkdir(parents=True, exist_ok=True)
        config = {"memory_limit": self.memory_limit, "temp_directory": str(home / "tmp")}
        if self.threads:
            config["threads"] = self.threads
        target = str(self.warehouse_path) if database is None else database
        if database is None and not read_only and self._held is None and self._run_log is not None:
            self._hold_warehouse(config)
        con = duckdb.connect(target, read_only=read_only, config=config)
        con.execute("SET TimeZone = 'UTC'")
        if not read_only:
            for macro in TRINO_COMPAT_MACROS:
                con.execute(macro)
        if database is None:
            if not read_only:
                con.execute("CREATE SCHEMA IF NOT EXISTS finbi")
            con.execute("SET schema = 'finbi'")
        return con

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        con = self.connect(":memory:")
        try:
            yield DuckDBSession(con)
        finally:
            con.close()

    def create_table(self, table: str, sql: str) -> QueryStats:
        started = time.perf_counter()
        with self.connect() as con:
            con.execute(f"CREATE OR REPLACE TABLE finbi.{table} AS {to_duckdb(sql)}")
            rows = con.execute(f"SELECT COUNT(*) FROM finbi.{table}").fetchone()[0]
        return QueryStats(rows=rows, engine_ms=(time.perf_counter() - started) * 1000)

    def refresh_table(self, table: str, sql: str, update: Update) -> QueryStats:
        started = time.perf_counter()
        with self.connect() as con:
            refresh = refresh_table(con, table, sql, update)
            engine_ms = (time.perf_counter() - started) * 1000
            # What Athena, which rebuilds every table by CTAS, would scan for the same SQL.
            athena_bytes, uncounted = estimate_scan(con, sql)
        return QueryStats(
            rows=refresh.rows,
            engine_ms=engine_ms,
            extra={
                "refresh_mode": refresh.mode,
                "refresh_reason": refresh.reason,
                "uploads_added": refresh.uploads_added,
                "athena_estimated_bytes_scanned": athena_bytes,
                "athena_estimated_cost_usd": QueryStats(bytes_scanned=athena_bytes).cost_usd,
                "athena_estimate_leaves_out": ", ".join(uncounted) or "nothing",
            },
        )

    def fetch(self, sql: str) -> QueryResult:
        with self.connect() as con:
            return QueryResult.of(con.execute(to_duckdb(sql)))

    def location(self, table: str) -> str:
        return f"{self.warehouse_path}#finbi.{table}"


class DuckDBSession(EngineSession):
    """An in-memory DuckDB connection: ingestion never holds the warehouse's write lock."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._blank_lines: list[int] | None = None  # of the last registered CSV
        self._csv_options: dict[str, dict] = {}  # read_csv options of each registered CSV

    def register_csv(
        self,
        name: str,
        source: SourceSpec,
        uri: str,
        compression: str | None,
        line_numbers: bool = True,
        header: list[str] | None = None,
    ) -> None:
        options = _csv_options(source, compression, header)
        select = _canonical_select(source, list(source.csv.names) or header)
        self._csv, self._blank_lines = (uri, options), None
        self._csv_options[uri] = options
        # A view streams the file once, when the validation query reads it. Newlines inside
        # quoted fields (of any column) move later records down: counted in file order.
        numbered = (
            "SELECT CAST(row_number() OVER () "
            "+ SUM(__newlines) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
            "- __newlines AS BIGINT) AS record_no, CAST(NULL AS BIGINT) AS file_index, "
            "* EXCLUDE (__newlines) "
            f"FROM (SELECT {select}, {_NEWLINES} AS __newlines FROM {_read_csv(uri, options)})"
        )
        # The running window makes the whole query follow file order on one thread.
        unnumbered = (
            "SELECT CAST(NULL AS BIGINT) AS record_no, CAST(NULL AS BIGINT) AS file_index, "
            f"{select} FROM {_read_csv(uri, options)}"
        )
        self._create_view(name, numbered if line_numbers else unnumbered)

    def register_csv_batch(
        self,
        name: str,
        source: SourceSpec,
        uris: list[str],
        compression: str | None,
        header: list[str] | None,
    ) -> None:
        options = _csv_options(source, compression, header)
        select = _canonical_select(source, list(source.csv.names) or header)
        self._csv_options.update(dict.fromkeys(uris, options))
        # file_index: DuckDB's virtual column of a multi-file read, the file's position.
        self._create_view(
            name,
            "SELECT CAST(NULL AS BIGINT) AS record_no, CAST(file_index AS BIGINT) AS file_index, "
            f"{select} FROM {_read_csv(uris, options)}",
        )

    def files_with_parser_rejects(self) -> set[str]:
        try:
            rows = self.con.execute(
                "SELECT DISTINCT s.file_path FROM reject_errors AS e JOIN reject_scans AS s "
                "ON e.scan_id = s.scan_id AND e.file_id = s.file_id"
            ).fetchall()
        except duckdb.CatalogException:  # nothing read since the session began
            return set()
        return {row[0] for row in rows}

    def _create_view(self, name: str, sql: str) -> None:
        """Register a read of CSVs as view `name`; the rejects of earlier reads are dropped
        (a session reads many uploads one after another)."""
        self.con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        except duckdb.InvalidInputException as exc:
            raise UnreadableInput(_first_line(exc)) from exc

    def parser_rejects(self) -> list[ParserReject]:
        if not self._reject_rows():
            return []
        # Accepted records with newlines inside quoted fields are rare: find them in a
        # second read (rejected ones show theirs in `csv_line`), on one thread: the parallel
        # reader skipping errors drops every record after a stray quote's, and in a CRLF
        # file with quoted line breaks it can report rejects a line late (DuckDB 1.5.6: one
        # line from the 850,000th record on), so the rejects are taken from this read too.
        uri, options = self._csv
        self.con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        multiline = self.con.execute(
            f"SELECT rn, newlines FROM (SELECT row_number() OVER () AS rn, {_NEWLINES} AS "
            f"newlines FROM {_read_csv(uri, {**options, 'parallel': False})}) "
            "WHERE newlines > 0 ORDER BY rn"
        ).fetchall()
        # DuckDB reports one error per missing column: keep one (the first) per record.
        first = {}
        for row in self._reject_rows():
            first.setdefault(int(row[0]), row)
        # DuckDB starts `csv_line` with the blank lines before the record.
        records = [
            (line, column, kind, message, (raw or "").strip("\r\n"))
            for line, column, kind, message, raw in first.values()
        ]
        lines = _parser_reject_lines(
            [line for line, *_ in records],
            [raw.count("\n") for *_, raw in records],
            int(options["header"]),
            multiline,
            self.blank_lines(),
        )
        return [
            ParserReject(physical, column, _parser_cause(kind, message), raw)
            for physical, (_, column, kind, message, raw) in zip(lines, records, strict=True)
        ]

    def _reject_rows(self) -> list[tuple]:
        """The last CSV read's rejects: line, column name, error type, message, raw line."""
        try:
            return self.con.execute(
                "SELECT line, column_name, error_type, error_message, csv_line "
                "FROM reject_errors ORDER BY line, column_idx"
            ).fetchall()
        except duckdb.CatalogException:  # no CSV read since the session began
            return []

    def blank_lines(self) -> list[int]:
        if self._blank_lines is None:  # read once per registered CSV
            uri, options = self._csv
            chunks = lambda: _file_chunks(uri, options)  # noqa: E731
            self._blank_lines = _blank_lines(chunks, options["quote"], options["delim"])
        return self._blank_lines

    def check_records_read(self, uri: str, records: int) -> None:
        """DuckDB (1.5) reads a file with a quoted field that never closes without a word
        about the rest of it: on one thread every record from the quote on is gone, without
        a reject; in parallel, a part of them.

        Every lost record leaves its lines unaccounted for: a file whose lines (one byte
        count) are no more than its header and the records read lost none. Only a file with
        more (blank lines and fields holding line breaks are the innocent causes) and a
        quote in it is walked for a quoted field that never closes.
        """
        options = self._csv_options[uri]
        lines, has_quote = _count_lines_and_find(uri, options)
        if lines <= int(options["header"]) + records or not has_quote:
            return
        chunks = _file_chunks(uri, options)
        opened = unclosed_quote(chunks, options["quote"], options["delim"])
        if opened is not None:
            line, field = opened
            names = list(options.get("columns") or options.get("names") or [])
            column = f" ({names[field - 1]})" if field <= len(names) else ""
            raise UnreadableInput(
                f"line {line}, column {field}{column}: a quoted field opens here and the "
                "file never closes it, so the rest of the file would be one value; close "
                "the quote (or remove it) and upload again"
            )

    def parquet_relation(
        self, uris: list[str], empty_schema: dict[str, str], with_file_uri: bool = False
    ) -> str:
        if not uris:
            return empty_relation(empty_schema, with_file_uri)
        files = f"[{', '.join(literal(uri) for uri in uris)}]"
        if with_file_uri:
            return (
                "(SELECT * EXCLUDE (filename), filename AS file_uri "
                f"FROM read_parquet({files}, filename = true))"
            )
        return f"read_parquet({files})"

    def write_parquet(
        self, sql: str, uri: str, partition_by: str | None = None, scratch: bool = False
    ) -> QueryStats:
        started = time.perf_counter()
        options = "FORMAT parquet, COMPRESSION zstd"
        if scratch:
            options += f", DICTIONARY_SIZE_LIMIT {SCRATCH_DICTIONARY_SIZE_LIMIT}"
        if partition_by:
            options += f", PARTITION_BY ({partition_by}), OVERWRITE_OR_IGNORE true"
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            rows = self.con.execute(f"COPY ({to_duckdb(sql)}) TO {literal(uri)} ({options})")
        except duckdb.InvalidInputException as exc:
            # What DuckDB raises when its CSV reader gives up on a whole file (dialect
            # detection, mixed line endings); single bad records go to reject_errors.
            raise UnreadableInput(_first_line(exc)) from exc
        except duckdb.OutOfMemoryException as exc:
            raise OutOfEngineMemory(_first_line(exc)) from exc
        count = rows.fetchone()[0]
        if partition_by and not count:
            # A partitioned write of no rows leaves just the folder it made (if still empty).
            with suppress(OSError):
                os.rmdir(uri)
        return QueryStats(rows=count, engine_ms=(time.perf_counter() - started) * 1000)

    def fetch(self, sql: str) -> QueryResult:
        return QueryResult.of(self.con.execute(to_duckdb(sql)))

    def cancel(self) -> None:
        # The statement raises duckdb.InterruptException; a session that a worker has
        # already closed has nothing left to cancel.
        with suppress(duckdb.ConnectionException):
            self.con.interrupt()


def _count_lines_and_find(uri: str, options: dict) -> tuple[int, bool]:
    """A local CSV's lines (a last one without its line end counts) and whether it holds
    its quote character, in one pass (a 400 MB file in 0.1 s; read in chunks, not mapped
    into memory, whose pages would count as the process's)."""
    quote = options["quote"].encode()
    lines, found, last = 0, False, b"\n"
    for chunk in _file_chunks(uri, options):
        lines += chunk.count(b"\n")
        found = found or quote in chunk
        last = chunk[-1:] or last
    return lines + (last != b"\n"), found


def _file_chunks(uri: str, options: dict) -> Iterator[bytes]:
    """A local CSV's bytes (decompressed, as UTF-8), 4 MiB at a time; `options` are its
    read_csv options."""
    opener = gzip.open if options["compression"] == "gzip" else open
    with opener(uri, "rb") as handle:
        yield from utf8_chunks(iter(lambda: handle.read(1 << 22), b""), options["encoding"])


def _first_line(exc: Exception) -> str:
    """DuckDB's reader errors run to a page of hints; the first line states the cause."""
    return str(exc).strip().split("\n", 1)[0]


def _csv_options(source: SourceSpec, compression: str | None, header: list[str] | None) -> dict:
    """read_csv's options for a source's files (`header`: their column names, if read)."""
    dialect = source.csv
    options = {
        "all_varchar": True,
        "header": dialect.header,
        "delim": dialect.delimiter,
        "quote": dialect.quote,
        "escape": dialect.quote,
        "encoding": dialect.encoding,
        "store_rejects": True,
        "strict_mode": True,
        "compression": compression or "none",
        # record_no must follow file order for line numbers to be right. The parallel
        # reader keeps it: `row_number() OVER ()` runs as a streaming window that sees
        # the scan's chunks in file order (bench/check_parallel_csv_order.py checks this
        # on 20M rows), and parsing in parallel makes staging faster.
        "parallel": True,
    }
    names = list(dialect.names) or header
    if names:
        # Known column names: no dialect sniffing, which costs a small file more than
        # reading it (8 ms of 10 for a 1,800-line UCI day; bench/README.md).
        options["auto_detect"] = False
        options["columns"] = {column: "VARCHAR" for column in _distinct_names(names)}
    elif dialect.names:
        options["names"] = list(dialect.names)
    return options


def _distinct_names(names: list[str]) -> list[str]:
    """Column names DuckDB takes: it binds names whatever their case, so a name that repeats
    an earlier one (`note` after `Note`) gets its position appended and the first one is
    the column a canonical name reads, as on Athena; an empty one (a trailing delimiter)
    is named by its position."""
    seen: set[str] = set()
    distinct = []
    for position, name in enumerate(names, 1):
        name = name or f"column{position}"
        while name.lower() in seen:
            name = f"{name}_{position}"
        seen.add(name.lower())
        distinct.append(name)
    return distinct


def _canonical_select(source: SourceSpec, header: list[str] | None) -> str:
    """The file's columns under their canonical names; an optional column the file does not
    have (its `header`, whose names DuckDB binds whatever their case) reads as NULL."""
    present = None if header is None else {name.lower() for name in header}
    return ", ".join(
        f"{_identifier(file_column)} AS {_identifier(canonical)}"
        if present is None or file_column.lower() in present
        else f"CAST(NULL AS VARCHAR) AS {_identifier(canonical)}"
        for canonical, file_column in source.columns.items()
    )


def _parser_cause(kind: str, message: str) -> str:
    causes = {
        "INVALID ENCODING": "not valid text in the declared encoding",
        "TOO MANY COLUMNS": f"too many fields ({message})",
        "MISSING COLUMNS": f"too few fields ({message})",
        "UNQUOTED VALUE": f"stray quote character ({message})",
    }
    return causes.get(kind, f"{kind.lower()}: {message}")


# Newlines inside the fields of one record (every column of the file, read as text).
_ALL_FIELDS = "concat(*COLUMNS(*))"
_NEWLINES = (
    f"CASE WHEN contains({_ALL_FIELDS}, chr(10)) THEN CAST(length({_ALL_FIELDS}) "
    f"- length(replace({_ALL_FIELDS}, chr(10), '')) AS BIGINT) ELSE 0 END"
)


def empty_relation(schema: dict[str, str], with_file_uri: bool) -> str:
    """No rows, typed by `schema` (plus `file_uri`): what a relation over no files is."""
    if with_file_uri:
        schema = {**schema, "file_uri": "VARCHAR"}
    columns = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in schema.items())
    return f"(SELECT {columns} WHERE FALSE)"


def _read_csv(uri: str | list[str], options: dict) -> str:
    rendered = ", ".join(f"{k} = {_duck_literal(v)}" for k, v in options.items())
    files = _duck_literal(uri) if isinstance(uri, list) else literal(uri)
    return f"read_csv({files}, {rendered})"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(literal(str(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return literal(str(value))


def _parser_reject_lines(
    lines: list[int],
    newlines: list[int],
    header: int,
    multiline: list[tuple[int, int]],
    blank_lines: list[int],
) -> list[int]:
    """The physical lines of the records DuckDB's CSV reader rejected, in file order.

    DuckDB's `line` counts the header, the records and the empty lines it skipped, but not
    the newlines inside quoted fields. `newlines` are those of each rejected record,
    `multiline` (rank among accepted records, newlines) those of the accepted records that
    hold any, `blank_lines` the physical empty lines.
    """
    ranks = [rank for rank, _ in multiline]
    within = [0, *accumulate(n for _, n in multiline)]  # newlines in the first i of them
    physical_lines, rejected_newlines = [], 0
    for rank, (line, own_newlines) in enumerate(zip(lines, newlines, strict=True)):
        # `line` gives how many accepted records and blank lines precede the record
        # together; the split is right where the blank lines before the physical line it
        # implies make up the rest. That sum only grows with the accepted count: bisect it.
        before = line - header - 1 - rank
        low, high = max(0, before - len(blank_lines)), before
        while low < high:
            middle = (low + high) // 2
            physical = line + rejected_newlines + within[bisect_right(ranks, middle)]
            if middle + bisect_left(blank_lines, physical) < before:
                low = middle + 1
            else:
                high = middle
        physical_lines.append(line + rejected_newlines + within[bisect_right(ranks, low)])
        rejected_newlines += own_newlines
    return physical_lines


def _blank_lines(chunks: Callable[[], Iterable[bytes]], quote: str, delimiter: str) -> list[int]:
    """The physical lines of a CSV (its bytes, in the chunks `chunks()` returns) that are
    empty and outside quoted fields, in order.

    The walk through quoted fields costs about a microsecond for each unquoted field
    between them, so a file whose empty lines all come after its last record (they shift no
    record's line) is not walked.
    """
    if not _has_blank_line_before_content(chunks()):
        return []
    quoted = QuotedFields(quote, delimiter, skip_line_ends=True)
    blanks: list[int] = []
    lines = 0  # line ends before the current block
    for block in whole_lines(chunks()):
        counted, at = 0, 0  # line ends in block[:at]
        for start, stop in quoted.unquoted(block):
            starts = [match.end() for match in LINE_BEFORE_EMPTY.finditer(block, start, stop)]
            if start == 0 and block.startswith((b"\n", b"\r\n")):
                starts.insert(0, 0)
            for line_start in starts:
                counted += block.count(b"\n", at, line_start)
                at = line_start
                blanks.append(lines + counted + 1)
        lines += block.count(b"\n")
    return blanks


def _has_blank_line_before_content(chunks: Iterable[bytes]) -> bool:
    """Whether an empty line (quoted or not) comes before a byte that ends no line."""
    blank_seen, tail = False, b""
    for chunk in chunks:
        data = tail + chunk
        if blank_seen and data.strip(b"\r\n"):
            return True
        blank = LINE_BEFORE_EMPTY.search(data)
        if blank and data[blank.end() :].strip(b"\r\n"):
            return True
        blank_seen = blank_seen or blank is not None
        tail = data[-2:]
    return False
