"""The query engine on AWS: Athena runs the pipeline's SQL files as they are (Athena dialect).

`AthenaEngine.run` is the one place a statement is executed: it starts the query in the
workgroup (`FINBI_ATHENA_WORKGROUP`) with database `FINBI_GLUE_DATABASE`, waits for it with
a bound, and reports id, state, `DataScannedInBytes`, engine time and cost ($5/TB) as
`QueryStats`. FAILED or CANCELLED raises `AthenaQueryError` with Athena's
StateChangeReason and the query id. Anything that stops the wait (Dagster's interrupt,
KeyboardInterrupt, the time-out, a staging worker's session cancelled by the run's thread)
cancels the query with `stop_query_execution` first, so a stopped run never leaves Athena
scanning (and billing) on its behalf.

Analytics tables are CTAS to Parquet under `analytics/<table>/` (the old table and its
files are dropped first: CTAS refuses a non-empty location).

`AthenaSession` implements ingestion's `EngineSession`:

* `register_csv` registers a scratch Glue table (OpenCSVSerDe, the source's dialect) over
  the upload's own folder and reads it through a `"$path"` filter, so only that object is
  scanned. Athena has no line numbers: `record_no` is `row_number() OVER ()` in read order,
  which is file order when the file is read as one split (gzip, or smaller than a split).
  `register_csv_batch` does the same for several objects of one folder, `file_index` being
  the position of a record's `"$path"` among them: a batch of small uploads costs one
  Glue table, one CTAS and one count, not two queries per file.
* `parser_rejects` is always empty: Athena's CSV reader does not report the records it
  could not split; a short record reads as NULLs and is quarantined by validation instead.
* `write_parquet` is CTAS to Parquet with one bucket, which makes exactly one file per
  partition (`ingest.py` names curated files per partition). A single file is written to a
  scratch prefix and moved to its key. Partitioned writes are split into CTAS statements
  of at most 100 partitions (Athena's limit per CTAS/INSERT INTO).
* `parquet_relation` (and `read_parquet('<uri>')` in ingestion's SQL, rewritten to it)
  registers a scratch Glue table over the files' common folder, typed from one file's
  Parquet footer, with a `"$path"` filter unless every file of the folder is wanted;
  Hive-style `name=value` folders become columns, as DuckDB's hive partitioning does.

Scratch tables live in Glue database `<database>_scratch` and are deleted when the session
ends.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import os
import re
import struct
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from pydantic import PrivateAttr

from finbi_pipeline.resources.aws import boto_client, wait_until
from finbi_pipeline.resources.engine import (
    EngineSession,
    ParserReject,
    QueryEngine,
    QueryResult,
    QueryStats,
    empty_relation,
)
from finbi_pipeline.resources.glue_catalog import csv_table_input, parquet_table_input
from finbi_pipeline.resources.s3_lake import S3Lake
from finbi_pipeline.sources import SourceSpec
from finbi_pipeline.sql_templates import literal

TERMINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
# Athena allows at most 100 partitions written by one CTAS or INSERT INTO.
MAX_PARTITIONS_PER_WRITE = 100
_FOOTER_GUESS = 64 * 1024
_READ_PARQUET = re.compile(r"read_parquet\(\s*(\[[^\]]*\]|'(?:[^']|'')*')\s*\)", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'((?:[^']|'')*)'")


class AthenaQueryError(RuntimeError):
    """An Athena query that ended FAILED or CANCELLED; `permanent` when Athena's own
    `AthenaError` says that resubmitting it would not help."""

    def __init__(
        self, query_id: str, state: str, reason: str, sql: str, retryable: bool | None = None
    ):
        self.query_id, self.state, self.reason = query_id, state, reason
        self.permanent = retryable is False
        first_line = sql.strip().splitlines()[0][:120] if sql.strip() else ""
        super().__init__(f"Athena query {query_id} {state}: {reason} (query: {first_line} …)")


class AthenaWorkgroupError(RuntimeError):
    """The workgroup's settings forbid what FinBI's statements need."""

    permanent = True


@dataclass
class QueryExecution:
    stats: QueryStats
    state: str
    statement_type: str


class AthenaEngine(QueryEngine):
    """Athena in workgroup `workgroup`, tables in Glue database `database`."""

    lake: S3Lake
    region: str = ""
    database: str = "finbi"
    workgroup: str = "primary"
    # Where results go when the workgroup does not enforce its own output location.
    results_prefix: str = "athena-results/"
    analytics_prefix: str = "analytics/"
    query_timeout_s: float = 1800.0
    poll_interval_s: float = 1.0
    max_attempts: int = 8
    _athena = PrivateAttr(default=None)
    _glue = PrivateAttr(default=None)
    _workgroup_checked = PrivateAttr(default=False)

    @property
    def athena(self):
        if self._athena is None:
            self._athena = boto_client("athena", self.region, self.max_attempts)
        return self._athena

    @property
    def glue(self):
        if self._glue is None:
            self._glue = boto_client("glue", self.region, self.max_attempts)
        return self._glue

    @property
    def scratch_database(self) -> str:
        return f"{self.database}_scratch"

    # --- running statements ----------------------------------------------------------------

    def run(self, sql: str, stop: threading.Event | None = None) -> QueryExecution:
        """Run one statement and wait for it; raise AthenaQueryError unless it succeeds.

        Setting `stop` (from another thread) stops the query and raises WaitStopped."""
        request = {
            "QueryString": sql,
            # Makes botocore's retries of this call idempotent: one query, not two.
            "ClientRequestToken": uuid.uuid4().hex,
            "QueryExecutionContext": {"Catalog": "AwsDataCatalog", "Database": self.database},
            "WorkGroup": self.workgroup,
            "ResultConfiguration": {"OutputLocation": self.lake.uri(self.results_prefix)},
        }
        query_id = self.athena.start_query_execution(**request)["QueryExecutionId"]
        try:
            execution = wait_until(
                lambda: self.athena.get_query_execution(QueryExecutionId=query_id)[
                    "QueryExecution"
                ],
                lambda e: e["Status"]["State"] in TERMINAL_STATES,
                what=f"Athena query {query_id} in workgroup {self.workgroup} to finish",
                timeout_s=self.query_timeout_s,
                interval_s=self.poll_interval_s,
                describe=lambda e: e["Status"]["State"],
                stop=stop,
            )
        except BaseException:
            # Interrupted (Dagster's run termination, Ctrl-C, `stop`) or timed out: stop paying.
            self.athena.stop_query_execution(QueryExecutionId=query_id)
            raise
        status = execution["Status"]
        state = status["State"]
        if state != "SUCCEEDED":
            raise AthenaQueryError(
                query_id,
                state,
                status.get("StateChangeReason", "no reason given"),
                sql,
                retryable=status.get("AthenaError", {}).get("Retryable"),
            )
        statistics = execution.get("Statistics", {})
        stats = QueryStats(
            bytes_scanned=statistics.get("DataScannedInBytes", 0),
            engine_ms=_float_or_none(statistics.get("EngineExecutionTimeInMillis")),
            query_id=query_id,
            extra={
                "state": state,
                "total_ms": statistics.get("TotalExecutionTimeInMillis"),
            },
        )
        return QueryExecution(stats, state, execution.get("StatementType", "DML"))

    def run_write(self, sql: str, stop: threading.Event | None = None) -> QueryStats:
        """Run a CTAS; its stats carry the rows written (Athena's UpdateCount)."""
        result = self.run(sql, stop)
        response = self.athena.get_query_results(
            QueryExecutionId=result.stats.query_id, MaxResults=1
        )
        result.stats.rows = int(response.get("UpdateCount", 0))
        return result.stats

    def fetch_with_stats(
        self, sql: str, stop: threading.Event | None = None
    ) -> tuple[QueryResult, QueryStats]:
        result = self.run(sql, stop)
        query_id = result.stats.query_id
        columns, types, sql_types, rows = [], [], [], []
        paginator = self.athena.get_paginator("get_query_results")
        for page_no, page in enumerate(paginator.paginate(QueryExecutionId=query_id)):
            result_set = page["ResultSet"]
            if page_no == 0:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [c["Name"] for c in info]
                types = [c["Type"].lower() for c in info]
                sql_types = [_sql_type(c) for c in info]
            page_rows = [[d.get("VarCharValue") for d in r["Data"]] for r in result_set["Rows"]]
            # A SELECT's first row is its header.
            if page_no == 0 and page_rows and page_rows[0] == columns:
                page_rows = page_rows[1:]
            rows.extend(page_rows)
        converted = [tuple(_convert(v, t) for v, t in zip(row, types, strict=True)) for row in rows]
        result.stats.rows = len(converted)
        return QueryResult(tuple(columns), tuple(sql_types), converted), result.stats

    def fetch(self, sql: str) -> QueryResult:
        # Never Athena's result reuse: it matches on the SQL text, and every read here
        # (previews, row counts, the blocking KPI check) follows a write under the same text.
        return self.fetch_with_stats(sql)[0]

    # --- QueryEngine -----------------------------------------------------------------------

    def create_table(self, table: str, sql: str) -> QueryStats:
        prefix = f"{self.analytics_prefix}{table}/"
        self.check_workgroup_allows_ctas()  # before the old table is dropped
        self._delete_glue_table(self.database, table)
        self.lake.delete_prefix(prefix)
        return self.run_write(
            f'CREATE TABLE "{self.database}"."{table}"\n'
            "WITH (format = 'PARQUET', write_compression = 'SNAPPY', "
            f"external_location = {literal(self.lake.uri(prefix))})\nAS\n{sql}"
        )

    def location(self, table: str) -> str:
        return self.lake.uri(f"{self.analytics_prefix}{table}/")

    @contextmanager
    def session(self) -> Iterator[AthenaSession]:
        self._ensure_scratch_database()
        session = AthenaSession(self)
        try:
            yield session
        finally:
            session.close()

    def check_workgroup_allows_ctas(self) -> None:
        """Raise AthenaWorkgroupError when the workgroup enforces its own settings.

        Athena then fails every CTAS that names an `external_location` ("Considerations and
        limitations for CTAS queries"), and every FinBI table lives at a chosen prefix. Asked
        once per engine, before a first CTAS, so that nothing is dropped first.
        """
        if self._workgroup_checked:
            return
        workgroup = self.athena.get_work_group(WorkGroup=self.workgroup)["WorkGroup"]
        config = workgroup.get("Configuration", {})
        # Whether it names a results location of its own or uses managed query results.
        if config.get("EnforceWorkGroupConfiguration", False):
            raise AthenaWorkgroupError(
                f"Athena workgroup {self.workgroup!r} overrides client-side settings "
                "(EnforceWorkGroupConfiguration): Athena then refuses "
                "every CREATE TABLE AS SELECT with an external_location, which FinBI's tables "
                "need. Turn 'Override client-side settings' off for this workgroup (the stack "
                "in infra/finbi.yaml does) or set FINBI_ATHENA_WORKGROUP to one that does not "
                "enforce its settings."
            )
        self._workgroup_checked = True

    # --- helpers ---------------------------------------------------------------------------

    # One client per call: staging workers start sessions at once, each may make the lazy
    # client, and a client's error classes are its own (another's AlreadyExists escapes).
    def _ensure_scratch_database(self) -> None:
        glue = self.glue
        with suppress(glue.exceptions.AlreadyExistsException):
            glue.create_database(DatabaseInput={"Name": self.scratch_database})

    def _delete_glue_table(self, database: str, table: str) -> None:
        glue = self.glue
        with suppress(glue.exceptions.EntityNotFoundException):
            glue.delete_table(DatabaseName=database, Name=table)


class AthenaSession(EngineSession):
    """Ingestion work on Athena; relations are scratch Glue tables dropped at close()."""

    def __init__(self, engine: AthenaEngine):
        self.engine = engine
        self.lake = engine.lake
        self.relations: dict[str, str] = {}
        self.scratch_tables: list[str] = []
        self.stats: list[QueryStats] = []
        self._stopped = threading.Event()  # set by `cancel`: every query of the session stops

    def close(self) -> None:
        for table in self.scratch_tables:
            self.engine._delete_glue_table(self.engine.scratch_database, table)
        self.scratch_tables.clear()

    def cancel(self) -> None:
        self._stopped.set()  # the running query's wait stops it (StopQueryExecution)

    # --- EngineSession ---------------------------------------------------------------------

    def register_csv(
        self,
        name: str,
        source: SourceSpec,
        uri: str,
        compression: str | None,
        line_numbers: bool = True,
        header: list[str] | None = None,
    ) -> None:
        # Without line numbers Athena need not keep file order (no single-reader window).
        record_no = "row_number() OVER ()" if line_numbers else "CAST(NULL AS BIGINT)"
        self.relations[name] = self._csv_relation(
            source, [uri], header, record_no, "CAST(NULL AS BIGINT)"
        )

    def register_csv_batch(
        self,
        name: str,
        source: SourceSpec,
        uris: list[str],
        compression: str | None,
        header: list[str] | None,
    ) -> None:
        # "$path" is an object's URI, as in `uris`: its position there is the file's index.
        files = f"ARRAY[{', '.join(literal(uri) for uri in uris)}]"
        file_index = f'CAST(array_position({files}, "$path") - 1 AS BIGINT)'
        self.relations[name] = self._csv_relation(
            source, uris, header, "CAST(NULL AS BIGINT)", file_index
        )

    def parser_rejects(self) -> list[ParserReject]:
        # Athena does not report records its CSV reader could not split (module docstring).
        return []

    def files_with_parser_rejects(self) -> set[str]:
        return set()  # as parser_rejects

    def check_records_read(self, uri: str, records: int) -> None:
        # Not checked on Athena: counting an upload's lines would download it from S3
        # (README, "Known limitations").
        return None

    def _csv_relation(
        self,
        source: SourceSpec,
        uris: list[str],
        header: list[str] | None,
        record_no: str,
        file_index: str,
    ) -> str:
        """The objects `uris` of one folder, read through a scratch CSV table over it."""
        keys = [self.lake.key_of(uri) for uri in uris]
        file_columns = list(source.csv.names) or header or self._csv_header(keys[0], source)
        table = self._scratch_name("csv", "\n".join(uris))
        folder = self.lake.uri(keys[0].rsplit("/", 1)[0] + "/")
        self._create_scratch(csv_table_input(table, folder, len(file_columns), source.csv))
        # Names match whatever their case, as DuckDB binds them; an optional column the file
        # does not have reads as NULL.
        position: dict[str, int] = {}
        for index, column in enumerate(file_columns):
            position.setdefault(column.lower(), index)
        select = ", ".join(
            f'"c{position[file_column.lower()]}" AS "{canonical}"'
            if file_column.lower() in position
            else f'CAST(NULL AS VARCHAR) AS "{canonical}"'
            for canonical, file_column in source.columns.items()
        )
        if len(uris) == 1:
            paths = f'"$path" = {literal(uris[0])}'
        else:
            paths = f'"$path" IN ({", ".join(literal(uri) for uri in uris)})'
        return (
            f"(SELECT {record_no} AS record_no, {file_index} AS file_index, {select} "
            f'FROM "{self.engine.scratch_database}"."{table}" WHERE {paths})'
        )

    def parquet_relation(
        self, uris: list[str], empty_schema: dict[str, str], with_file_uri: bool = False
    ) -> str:
        if not uris:
            return empty_relation(empty_schema, with_file_uri)
        keys = [self.lake.key_of(u) for u in uris]
        folder = _common_folder(keys)
        table = self._scratch_name("parquet", folder + "\n" + "\n".join(sorted(keys)))
        self._create_scratch(
            parquet_table_input(table, self.lake.uri(folder), self._parquet_columns(keys[0]))
        )
        # Hive-style folders in the keys become columns (e.g. event_date), as in DuckDB.
        derived = []
        for name, value in _hive_segments(keys[0]):
            kind = "DATE" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else "VARCHAR"
            derived.append(
                f'CAST(regexp_extract("$path", \'/{name}=([^/]+)/\', 1) AS {kind}) AS "{name}"'
            )
        everything = {o.key for o in self.lake.list_objects(folder)}
        where = ""
        if set(keys) != everything:
            where = f' WHERE "$path" IN ({", ".join(literal(u) for u in uris)})'
        if with_file_uri:
            derived.append('"$path" AS file_uri')
        columns = ", ".join(["t.*", *derived])
        return f'(SELECT {columns} FROM "{self.engine.scratch_database}"."{table}" AS t{where})'

    def write_parquet(
        self, sql: str, uri: str, partition_by: str | None = None, scratch: bool = False
    ) -> QueryStats:
        sql = self.resolve(sql)
        columns = sqlglot.parse_one(sql, read="athena").named_selects
        if partition_by:
            return self._write_partitioned(sql, columns, uri, partition_by)
        return self._write_file(sql, columns, uri)

    def fetch(self, sql: str) -> QueryResult:
        result, stats = self.engine.fetch_with_stats(self.resolve(sql), self._stopped)
        self.stats.append(stats)
        return result

    # --- SQL rewriting ---------------------------------------------------------------------

    def resolve(self, sql: str) -> str:
        """Ingestion's SQL with registered names and `read_parquet(...)` made Athena relations."""

        def parquet(match: re.Match) -> str:
            uris = [m.replace("''", "'") for m in _STRING_LITERAL.findall(match.group(1))]
            return self.parquet_relation(uris, {})

        sql = _READ_PARQUET.sub(parquet, sql)
        for name, relation in self.relations.items():
            pattern = rf'(?<![\w."]){re.escape(name)}(?![\w"])'
            sql = re.sub(pattern, lambda _, relation=relation: relation, sql)
        return sql

    # --- writing ---------------------------------------------------------------------------

    def _ctas(self, sql: str, columns: list[str], location: str, partition_by: str | None):
        """CTAS to Parquet at `location`, one bucket (so one file per partition)."""
        self.engine.check_workgroup_allows_ctas()
        table = self._scratch_name("ctas", location + uuid.uuid4().hex)
        data_columns = [c for c in columns if c != partition_by]
        properties = [
            "format = 'PARQUET'",
            "write_compression = 'SNAPPY'",
            f"external_location = {literal(location)}",
            f"bucketed_by = ARRAY[{literal(data_columns[0])}]",
            "bucket_count = 1",
        ]
        select = ", ".join(f'"{c}"' for c in data_columns)
        if partition_by:
            properties.append(f"partitioned_by = ARRAY[{literal(partition_by)}]")
            select += f', "{partition_by}"'  # CTAS wants partition columns last
        self.scratch_tables.append(table)
        stats = self.engine.run_write(
            f'CREATE TABLE "{self.engine.scratch_database}"."{table}"\n'
            f"WITH ({', '.join(properties)})\nAS SELECT {select} FROM (\n{sql}\n) AS q",
            self._stopped,
        )
        self.stats.append(stats)
        return table, stats

    def _write_file(self, sql: str, columns: list[str], uri: str) -> QueryStats:
        scratch_prefix = f"{self.engine.results_prefix}ctas/{uuid.uuid4().hex}/"
        table, stats = self._ctas(sql, columns, self.lake.uri(scratch_prefix), None)
        written = [o.key for o in self.lake.list_objects(scratch_prefix)]
        target = self.lake.key_of(uri)
        if not written:
            # No rows, no file: write an empty one with the CTAS table's schema instead,
            # so readers of `uri` still find a typed (empty) table.
            self._write_empty_parquet(table, target)
        elif len(written) == 1:
            self.lake.move(written[0], target)
        else:
            raise RuntimeError(
                f"Athena wrote {len(written)} files for one bucket under "
                f"{self.lake.uri(scratch_prefix)}; expected one"
            )
        self.lake.delete_prefix(scratch_prefix)
        return stats

    def _write_partitioned(
        self, sql: str, columns: list[str], uri: str, partition_by: str
    ) -> QueryStats:
        """Hive-partitioned Parquet under `uri`, one file per partition.

        Each CTAS writes into a fresh sub-folder (CTAS refuses a non-empty location, and a
        caller may write several batches to one `uri`); files still sit in
        `<partition column>=<value>/` folders, which is what callers read.
        """
        first = self._fresh_folder(uri)
        try:
            return self._ctas(sql, columns, first, partition_by)[1]
        except AthenaQueryError as exc:
            if "TOO_MANY_OPEN_PARTITIONS" not in exc.reason:
                raise
        self.lake.delete_prefix(self.lake.key_of(first))  # whatever the failed CTAS left
        # More than 100 partitions: one CTAS per 100 partition values.
        values, stats = self.engine.fetch_with_stats(
            f'SELECT DISTINCT CAST("{partition_by}" AS VARCHAR) AS v FROM ({sql})',
            self._stopped,
        )
        self.stats.append(stats)
        values = sorted(str(v) for v in values.column("v") if v is not None)
        total = QueryStats(rows=0, bytes_scanned=0, engine_ms=0.0)
        for start in range(0, len(values), MAX_PARTITIONS_PER_WRITE):
            chunk = values[start : start + MAX_PARTITIONS_PER_WRITE]
            chunk_sql = (
                f'SELECT * FROM ({sql}) WHERE CAST("{partition_by}" AS VARCHAR) IN '
                f"({', '.join(literal(v) for v in chunk)})"
            )
            _, stats = self._ctas(chunk_sql, columns, self._fresh_folder(uri), partition_by)
            total.rows += stats.rows or 0
            total.bytes_scanned += stats.bytes_scanned or 0
            total.engine_ms += stats.engine_ms or 0.0
            total.query_id = stats.query_id
        return total

    def _fresh_folder(self, uri: str) -> str:
        return f"{uri.rstrip('/')}/ctas-{uuid.uuid4().hex[:12]}/"

    def _write_empty_parquet(self, table: str, key: str) -> None:
        glue_table = self.engine.glue.get_table(
            DatabaseName=self.engine.scratch_database, Name=table
        )["Table"]
        schema = pa.schema(
            [
                (c["Name"], _arrow_type(c["Type"]))
                for c in glue_table["StorageDescriptor"]["Columns"]
            ]
        )
        buffer = io.BytesIO()
        pq.write_table(schema.empty_table(), buffer)
        self.lake.write_bytes(key, buffer.getvalue())

    # --- reading ---------------------------------------------------------------------------

    def _csv_header(self, key: str, source: SourceSpec) -> list[str]:
        head = self.lake.read_bytes(key, max_bytes=_FOOTER_GUESS)
        if head[:2] == b"\x1f\x8b":
            import zlib

            head = zlib.decompressobj(wbits=31).decompress(head)
        encoding = "utf-8-sig" if source.csv.encoding == "utf-8" else source.csv.encoding
        first_line = head.split(b"\n", 1)[0].rstrip(b"\r").decode(encoding, errors="replace")
        return next(
            csv.reader(
                io.StringIO(first_line), delimiter=source.csv.delimiter, quotechar=source.csv.quote
            )
        )

    def _parquet_columns(self, key: str) -> dict[str, str]:
        """{column: contract type} from a Parquet file's footer (two small range reads)."""
        tail = self.lake.read_range(key, _FOOTER_GUESS)
        if tail[-4:] != b"PAR1":
            raise ValueError(f"{self.lake.uri(key)} is not a Parquet file")
        footer_length = struct.unpack("<I", tail[-8:-4])[0]
        if footer_length + 8 > len(tail):
            tail = self.lake.read_range(key, footer_length + 8)
        # The footer alone, framed by the magic bytes, is enough for pyarrow to read a schema.
        schema = pq.read_schema(io.BytesIO(b"PAR1" + tail[-(footer_length + 8) :]))
        return {field.name: _contract_type(field.type) for field in schema}

    # --- scratch tables --------------------------------------------------------------------

    def _scratch_name(self, kind: str, identity: str) -> str:
        digest = hashlib.sha1(f"{identity}\n{uuid.uuid4().hex}".encode()).hexdigest()[:16]
        return f"{kind}_{digest}"

    def _create_scratch(self, table_input: dict) -> None:
        self.engine.glue.create_table(
            DatabaseName=self.engine.scratch_database, TableInput=table_input
        )
        self.scratch_tables.append(table_input["Name"])


# --- helpers -------------------------------------------------------------------------------


def _common_folder(keys: list[str]) -> str:
    prefix = os.path.commonprefix([k.rsplit("/", 1)[0] + "/" for k in keys])
    return prefix[: prefix.rfind("/") + 1]


def _hive_segments(relative_key: str) -> list[tuple[str, str]]:
    parts = relative_key.split("/")[:-1]
    return [tuple(p.split("=", 1)) for p in parts if "=" in p]  # type: ignore[misc]


def _contract_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    simple = {
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise ValueError(f"no Athena column type for Parquet type {arrow_type}")


def _arrow_type(glue_type: str) -> pa.DataType:
    kind = glue_type.lower().replace(" ", "")
    if kind.startswith("decimal("):
        precision, scale = (int(x) for x in kind[8:-1].split(","))
        return pa.decimal128(precision, scale)
    return {
        "string": pa.string(),
        "varchar": pa.string(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "integer": pa.int32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
    }.get(kind, pa.string())


def _float_or_none(value) -> float | None:
    # Athena reports integers; metadata (and QueryStats) want float milliseconds.
    return None if value is None else float(value)


def _sql_type(column_info: dict) -> str:
    """A result column's type as the local engine names it (`DECIMAL(18,4)`, `BIGINT`), so
    that metadata reads the same on both targets."""
    name = column_info["Type"].upper()
    if name == "DECIMAL" and "Precision" in column_info:
        return f"DECIMAL({column_info['Precision']},{column_info.get('Scale', 0)})"
    return name


def _convert(value: str | None, athena_type: str):
    """An Athena result cell (always text) as the Python value of its column type."""
    if value is None:
        return None
    if athena_type in ("bigint", "integer", "int", "smallint", "tinyint"):
        return int(value)
    if athena_type in ("double", "float", "real"):
        return float(value)
    if athena_type.startswith("decimal"):
        return decimal.Decimal(value)
    if athena_type == "boolean":
        return value == "true"
    if athena_type == "date":
        return dt.date.fromisoformat(value)
    if athena_type.startswith("timestamp"):
        return _timestamp(value)
    return value


def _timestamp(value: str) -> dt.datetime:
    """Athena's text of a timestamp: `2024-01-01 10:00:00.000`, followed by its zone (a name
    such as `UTC`, or an offset) when it has one."""
    day, clock, *zone = value.split(" ")
    if zone and zone[0].startswith(("+", "-")):
        return dt.datetime.fromisoformat(f"{day} {clock}{zone[0]}")
    moment = dt.datetime.fromisoformat(f"{day} {clock}")
    return moment.replace(tzinfo=ZoneInfo(zone[0])) if zone else moment
