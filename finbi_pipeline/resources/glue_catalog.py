"""The catalog on AWS: tables in the Glue Data Catalog over the S3 lake.

Two modes (`mode` field, env FINBI_GLUE_MODE):

* `api` (default): tables and partitions are registered deterministically with the Glue
  API: `create_table`/`update_table` with the contract's columns, then
  `batch_create_partition` for every Hive-style `<date column>=<day>/` folder found in the
  lake (and `batch_delete_partition` for folders that are gone). No crawler guesses types.
* `crawler`: what the seed did, made safe: one crawler per table over the table's prefix,
  configured (`TableLevelConfiguration`, no table prefix, `CombineCompatibleSchemas`) so
  the table is named after its folder, e.g. `interactions`, never
  `interactions_clean_interactions_clean`. It is started (a `CrawlerRunningException`
  means a run is already under way and is waited for too), waited for with a bound, and
  the schema it detected is read back and checked against the contract by the asset.

Either way the schema read back from Glue is diffed with the one registered before
(`diff_schemas`). Glue keeps every earlier definition as a table version
(`get_table_versions`): that is the schema history; `update_table` is only called when
something changed, so a version is a real change.

The Glue table-definition builders here (`parquet_table_input`, `csv_table_input`, …) are
shared with the Athena engine's scratch tables.
"""

from __future__ import annotations

import contextlib
import re

from pydantic import PrivateAttr

from finbi_pipeline.resources.aws import boto_client, wait_until
from finbi_pipeline.resources.catalog import Catalog, SchemaChange, TableSpec, diff_schemas
from finbi_pipeline.resources.s3_lake import S3Lake
from finbi_pipeline.sources import CsvDialect

PARQUET_IO = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    },
}
TEXT_IO = {
    "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
}
OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"

# Contract (DuckDB-style) type names <-> Glue/Hive type names.
_TO_GLUE = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}
_FROM_GLUE = {v: k for k, v in _TO_GLUE.items()}
# batch_create_partition takes 100 partitions per call, batch_delete_partition 25.
_CREATE_BATCH, _DELETE_BATCH = 100, 25


def glue_type(contract_type: str) -> str:
    """`DECIMAL(18, 4)` -> `decimal(18,4)`, `VARCHAR` -> `string`, …"""
    compact = contract_type.replace(" ", "").upper()
    if compact.startswith("DECIMAL("):
        return compact.lower()
    if compact not in _TO_GLUE:
        raise ValueError(f"no Glue type for contract type {contract_type!r}")
    return _TO_GLUE[compact]


def contract_type(glue_name: str) -> str:
    """The contract's spelling of a Glue type, so the contract check compares like with like."""
    compact = glue_name.replace(" ", "").lower()
    if compact.startswith("decimal("):
        return compact.upper()
    return _FROM_GLUE.get(compact, compact.upper())


def _columns(columns: dict[str, str]) -> list[dict]:
    return [{"Name": name, "Type": glue_type(kind)} for name, kind in columns.items()]


def parquet_table_input(
    name: str, location: str, columns: dict[str, str], partition_keys: dict[str, str] | None = None
) -> dict:
    """A Glue TableInput for Parquet files under `location` (types in contract spelling)."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
        "PartitionKeys": _columns(partition_keys or {}),
        "StorageDescriptor": {
            "Columns": _columns(columns),
            "Location": location,
            **PARQUET_IO,
        },
    }


def json_table_input(name: str, location: str, columns: dict[str, str]) -> dict:
    """A Glue TableInput for JSON lines (the ingest log: one object per file)."""
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json", "EXTERNAL": "TRUE"},
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": _columns(columns),
            "Location": location,
            **TEXT_IO,
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                # A malformed log file should fail loudly, not read as NULLs.
                "Parameters": {"ignore.malformed.json": "FALSE"},
            },
        },
    }


def csv_table_input(name: str, location: str, column_count: int, dialect: CsvDialect) -> dict:
    """A Glue TableInput for raw CSV: text columns `c0..cN` in file order, OpenCSVSerDe.

    Columns are positional because raw headers need not be valid Glue column names.
    """
    serde = {"separatorChar": dialect.delimiter, "quoteChar": dialect.quote}
    if dialect.encoding != "utf-8":
        serde["serialization.encoding"] = dialect.encoding
    parameters = {"classification": "csv", "EXTERNAL": "TRUE"}
    if dialect.header:
        parameters["skip.header.line.count"] = "1"
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": [{"Name": f"c{i}", "Type": "string"} for i in range(column_count)],
            "Location": location,
            **TEXT_IO,
            "SerdeInfo": {"SerializationLibrary": OPEN_CSV_SERDE, "Parameters": serde},
        },
    }


def schema_of(glue_table: dict, order: list[str] | None = None) -> dict[str, str]:
    """{column: contract type} of a Glue table, partition keys included, in `order` if given."""
    columns = glue_table["StorageDescriptor"].get("Columns", []) + glue_table.get(
        "PartitionKeys", []
    )
    schema = {c["Name"]: contract_type(c["Type"]) for c in columns}
    if order:
        rank = {name: i for i, name in enumerate(order)}
        schema = dict(sorted(schema.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return schema


def _table_input_of(glue_table: dict) -> dict:
    """The TableInput part of a get_table answer, to compare with what we would write."""
    keys = ("Name", "TableType", "Parameters", "PartitionKeys")
    current = {k: glue_table.get(k) for k in keys}
    sd = glue_table.get("StorageDescriptor", {})
    current["StorageDescriptor"] = {
        k: sd.get(k) for k in ("Columns", "Location", "InputFormat", "OutputFormat", "SerdeInfo")
    }
    return _without_empty(current)


def _without_empty(value):
    """`value` without empty lists, maps and None at any depth: Glue may answer a field we
    sent empty (`PartitionKeys: []`) by leaving it out, which is no change."""
    if isinstance(value, dict):
        kept = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


class GlueCatalog(Catalog):
    """Tables in Glue database `database`; see the module docstring for the two modes."""

    lake: S3Lake
    region: str = ""
    database: str = "finbi"
    # "api" or "crawler"; a plain str so it can come from an EnvVar (checked on use).
    mode: str = "api"
    # crawler mode: the IAM role the crawlers run as, and how long to wait for one.
    crawler_role_arn: str = ""
    crawler_timeout_s: float = 900.0
    crawler_poll_s: float = 10.0
    max_attempts: int = 8
    _glue = PrivateAttr(default=None)

    @property
    def glue(self):
        if self._glue is None:
            self._glue = boto_client("glue", self.region, self.max_attempts)
        return self._glue

    def location(self, table: TableSpec) -> str:
        return self.lake.uri(table.prefix)

    def register_table(self, table: TableSpec) -> SchemaChange:
        if self.mode not in ("api", "crawler"):
            raise ValueError(f"GlueCatalog.mode must be 'api' or 'crawler', not {self.mode!r}")
        self.ensure_database()
        before = self.get_table(table.name)
        previous = schema_of(before, list(table.columns)) if before else None
        if self.mode == "crawler":
            self._crawl(table)
        else:
            self._put_table(table, before)
            if table.partition_column:
                self._sync_partitions(table)
        after = self.get_table(table.name)
        if after is None:
            raise RuntimeError(
                f"Glue table {self.database}.{table.name} does not exist after registration"
                + (" (the crawler found no data?)" if self.mode == "crawler" else "")
            )
        return diff_schemas(previous, schema_of(after, list(table.columns)))

    # --- Glue API mode ---------------------------------------------------------------------

    def table_input(self, table: TableSpec) -> dict:
        location = self.lake.uri(table.prefix)
        if table.file_format == "json":
            return json_table_input(table.name, location, table.columns)
        columns = {c: t for c, t in table.columns.items() if c != table.partition_column}
        partition_keys = (
            {table.partition_column: table.columns[table.partition_column]}
            if table.partition_column
            else {}
        )
        return parquet_table_input(table.name, location, columns, partition_keys)

    def _put_table(self, table: TableSpec, existing: dict | None) -> None:
        wanted = self.table_input(table)
        if existing is None:
            self.glue.create_table(DatabaseName=self.database, TableInput=wanted)
        elif _table_input_of(existing) != _without_empty(wanted):
            # A new table version: Glue keeps the old definition in get_table_versions.
            self.glue.update_table(DatabaseName=self.database, TableInput=wanted)

    def _sync_partitions(self, table: TableSpec) -> None:
        """Make the table's partitions exactly the `<column>=<value>/` folders in the lake."""
        pattern = re.compile(rf"^{re.escape(table.prefix)}{table.partition_column}=([^/]+)/")
        in_lake = {
            m.group(1)
            for obj in self.lake.list_objects(table.prefix)
            if (m := pattern.match(obj.key))
        }
        registered = set()
        paginator = self.glue.get_paginator("get_partitions")
        for page in paginator.paginate(DatabaseName=self.database, TableName=table.name):
            registered.update(p["Values"][0] for p in page["Partitions"])
        storage = self.table_input(table)["StorageDescriptor"]
        new = sorted(in_lake - registered)
        for start in range(0, len(new), _CREATE_BATCH):
            inputs = [
                {
                    "Values": [value],
                    "StorageDescriptor": {
                        **storage,
                        "Location": self.lake.uri(
                            f"{table.prefix}{table.partition_column}={value}/"
                        ),
                    },
                }
                for value in new[start : start + _CREATE_BATCH]
            ]
            response = self.glue.batch_create_partition(
                DatabaseName=self.database, TableName=table.name, PartitionInputList=inputs
            )
            self._raise_partition_errors("create", table, response)
        gone = sorted(registered - in_lake)
        for start in range(0, len(gone), _DELETE_BATCH):
            response = self.glue.batch_delete_partition(
                DatabaseName=self.database,
                TableName=table.name,
                PartitionsToDelete=[{"Values": [v]} for v in gone[start : start + _DELETE_BATCH]],
            )
            self._raise_partition_errors("delete", table, response)

    def _raise_partition_errors(self, verb: str, table: TableSpec, response: dict) -> None:
        errors = [
            e
            for e in response.get("Errors", [])
            if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"
        ]
        if errors:
            detail = errors[0].get("ErrorDetail", {})
            raise RuntimeError(
                f"Glue could not {verb} {len(errors)} partition(s) of {self.database}."
                f"{table.name}, e.g. {errors[0].get('PartitionValues')}: "
                f"{detail.get('ErrorCode')} {detail.get('ErrorMessage')}"
            )

    # --- crawler mode ----------------------------------------------------------------------

    def crawler_name(self, table: TableSpec) -> str:
        return f"{self.database}-{table.name}"

    def crawler_settings(self, table: TableSpec) -> dict:
        """The crawler's definition: its table is named after the prefix's last folder."""
        import json

        # Level 1 is the bucket; `curated/interactions/` puts the table at level 3.
        level = table.prefix.strip("/").count("/") + 2
        configuration = {
            "Version": 1.0,
            "Grouping": {
                "TableGroupingPolicy": "CombineCompatibleSchemas",
                "TableLevelConfiguration": level,
            },
            "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}},
        }
        return {
            "Name": self.crawler_name(table),
            "Role": self.crawler_role_arn,
            "DatabaseName": self.database,
            "Targets": {
                # `.tmp-*` folders hold merges in flight; never let them become tables.
                "S3Targets": [{"Path": self.lake.uri(table.prefix), "Exclusions": ["**/.tmp-*/**"]}]
            },
            "TablePrefix": "",
            "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
            "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
            "Configuration": json.dumps(configuration),
        }

    def _crawl(self, table: TableSpec) -> None:
        """Crawl the table's prefix once, after every file this run wrote, and wait for it.

        A crawl under way (another run's) may have started before those files were written,
        and Glue refuses to update a running crawler (`CrawlerRunningException`): it is
        waited for, then this run's own crawl starts. Our crawl is the one whose start time
        differs from the last crawl's before it, so an earlier crawl's result never passes
        for ours, whatever the clocks say.
        """
        if not self.crawler_role_arn:
            raise ValueError("crawler mode needs crawler_role_arn (FINBI_GLUE_CRAWLER_ROLE_ARN)")
        settings = self.crawler_settings(table)
        name = settings["Name"]
        try:
            self.glue.get_crawler(Name=name)
        except self.glue.exceptions.EntityNotFoundException:
            self.glue.create_crawler(**settings)
        for _ in range(3):
            before = self._wait_for_crawler(table, lambda crawler: True)
            previous = before.get("LastCrawl", {}).get("StartTime")
            try:
                self.glue.update_crawler(**settings)
                self.glue.start_crawler(Name=name)
                break
            except self.glue.exceptions.CrawlerRunningException:
                continue  # another run started it in between: wait for that crawl too
        else:
            raise RuntimeError(
                f"Glue crawler {name} was started by others three times while this run waited "
                "to crawl; run the catalog step again"
            )
        crawler = self._wait_for_crawler(
            table, lambda c: c.get("LastCrawl", {}).get("StartTime") not in (None, previous)
        )
        last = crawler["LastCrawl"]
        if last.get("Status") in ("FAILED", "CANCELLED"):
            raise RuntimeError(
                f"Glue crawler {name} ended {last.get('Status')} (started "
                f"{last.get('StartTime')}): {last.get('ErrorMessage', 'no message')}"
            )

    def _wait_for_crawler(self, table: TableSpec, done) -> dict:
        """The crawler of `table` once it is READY and `done(crawler)` holds."""
        name = self.crawler_name(table)
        return wait_until(
            lambda: self.glue.get_crawler(Name=name)["Crawler"],
            lambda c: c.get("State") == "READY" and done(c),
            what=f"Glue crawler {name} to finish crawling {self.lake.uri(table.prefix)}",
            timeout_s=self.crawler_timeout_s,
            interval_s=self.crawler_poll_s,
            describe=lambda c: f"state {c.get('State')}, last crawl {c.get('LastCrawl')}",
        )

    # --- helpers ---------------------------------------------------------------------------

    def ensure_database(self, name: str | None = None) -> None:
        """Create the Glue database if it is missing (the CloudFormation stack makes it too)."""
        with contextlib.suppress(self.glue.exceptions.AlreadyExistsException):
            self.glue.create_database(DatabaseInput={"Name": name or self.database})

    def get_table(self, name: str) -> dict | None:
        try:
            return self.glue.get_table(DatabaseName=self.database, Name=name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            return None

    def schema_history(self, name: str) -> list[dict[str, str]]:
        """Every registered schema of a table, oldest first (from Glue table versions)."""
        versions = []
        paginator = self.glue.get_paginator("get_table_versions")
        for page in paginator.paginate(DatabaseName=self.database, TableName=name):
            versions.extend(page["TableVersions"])
        versions.sort(key=lambda v: int(v["VersionId"]))
        return [schema_of(v["Table"]) for v in versions]
