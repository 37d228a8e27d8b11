"""Refreshing an analytics table from what is new, not from every stored row.

An upload's curated rows never change once merged: a new version of a key is a new
`upload_id`, and the old one's rows go. So when the only change since a table's last
refresh is uploads that were added, the table can be brought up to date from their rows
alone, as its `update` rule says:

* `Merge`: re-aggregate the stored rows of the keys the new rows carry with the table's
  own query over the new rows (counts and sums add up; `combine` gives the columns that do
  not, e.g. MIN and MAX); other rows stay as they are (`aggregate_merge`);
* `MergeAgainstStored`: like `Merge`, with what the new rows add computed by a SQL file that
  also consults the stored rows of the days they fall on (distinct users per day);
* `RecomputeDays`: keep the days the new rows do not touch and recompute the days they do
  from all of those days' rows (distinct counts, where the rows per day are few);
* `None`: always rebuilt from every row.

Anything else (no previous build, an upload replaced or removed, another definition of the
table, a warehouse that changed during the last refresh) rebuilds the table from every row.
Which uploads each table reflects is kept beside it in the warehouse (schema
`finbi_state`), and a rebuild and its record commit in one transaction.

Only the local engine (DuckDB) refreshes incrementally; Athena rebuilds with CTAS.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb
import sqlglot
from sqlglot import exp

from finbi_pipeline.aggregate_merge import merge_aggregates
from finbi_pipeline.sql_templates import literal, render, to_duckdb
from finbi_pipeline.upload_counts import (
    KINDS,
    rows_of_other_uploads,
    rows_of_uploads,
    upload_row_counts,
    uploads_values,
)

FULL, INCREMENTAL, UNCHANGED = "full", "incremental", "unchanged"
# Bump when the way tables are merged changes, so that every table is rebuilt once.
REFRESH_VERSION = 1

_STATE_DDL = (
    "CREATE SCHEMA IF NOT EXISTS finbi_state",
    "CREATE TABLE IF NOT EXISTS finbi_state.analytics_definitions "
    "(table_name VARCHAR PRIMARY KEY, definition VARCHAR)",
    "CREATE TABLE IF NOT EXISTS finbi_state.analytics_uploads "
    "(table_name VARCHAR, kind VARCHAR, upload_id VARCHAR, rows BIGINT)",
)


@dataclass(frozen=True)
class Merge:
    """The query over the new rows, merged into the stored rows with the same `keys`.

    Every other column is summed unless `combine` gives its expression over the group
    (e.g. `MIN(first_event_time)`, or a ratio of two sums). Results are cast back to the
    stored column types.
    """

    keys: tuple[str, ...]
    combine: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecomputeDays:
    """Rows whose `column` is a day the new `kind` rows fall on are recomputed from all rows
    of those days; every other row is kept. `column` names the day in both the table and
    `kind`, whose curated files are partitioned by it, so only those days are read."""

    kind: str
    column: str


@dataclass(frozen=True)
class MergeAgainstStored:
    """Like `Merge`, but what the new `kind` rows add comes from the SQL file `increment`,
    rendered with `{{new_rows}}` and `{{stored_rows}}` (the other rows of the days, in
    `column`, that the new rows fall on): for counts that only add up once the stored rows
    are consulted, such as distinct users per day."""

    keys: tuple[str, ...]
    kind: str
    column: str
    increment: str


# How a table takes in new uploads; None: it is rebuilt from every row each time.
Update = Merge | MergeAgainstStored | RecomputeDays | None


@dataclass(frozen=True)
class TableRefresh:
    """How a refresh went: `mode` is FULL, INCREMENTAL or UNCHANGED, `reason` says why."""

    mode: str
    reason: str
    uploads_added: int
    rows: int


def refresh_table(
    con: duckdb.DuckDBPyConnection, table: str, sql: str, update: Update
) -> TableRefresh:
    """Bring `finbi.<table>`, defined by the Athena query `sql`, up to date on `con`."""
    for statement in _STATE_DDL:
        con.execute(statement)
    kinds = [kind for kind in KINDS if kind in _tables_read(sql)]
    definition = hashlib.sha256(f"{REFRESH_VERSION}\n{sql}\n{update!r}".encode()).hexdigest()
    con.execute("BEGIN TRANSACTION")
    try:
        before = upload_row_counts(con, kinds)
        mode, reason, new = _plan(con, table, definition, update, before)
        if mode == FULL:
            con.execute(f"CREATE OR REPLACE TABLE finbi.{table} AS {to_duckdb(sql)}")
        elif mode == INCREMENTAL:
            _apply_new_uploads(con, table, sql, update, new)
        if mode != UNCHANGED:  # else the record already says what the table reflects
            # A curated merge that ran alongside could have added rows after `before` was
            # read; then what the table holds is unknown, and recording nothing rebuilds it
            # next time.
            recorded = before if upload_row_counts(con, kinds) == before else None
            _record(con, table, definition, recorded)
        (rows,) = con.execute(f"SELECT count(*) FROM finbi.{table}").fetchone()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return TableRefresh(mode, reason, sum(len(ids) for ids in new.values()), rows)


def _plan(
    con: duckdb.DuckDBPyConnection,
    table: str,
    definition: str,
    update: Update,
    current: dict[tuple[str, str], int],
) -> tuple[str, str, dict[str, list[str]]]:
    """(mode, reason, new upload ids per kind) for this refresh."""
    new: dict[str, list[str]] = {kind: [] for kind in KINDS}
    if update is None:
        return FULL, "rebuilt from every row on each refresh", new
    (exists,) = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        f"WHERE schema_name = 'finbi' AND table_name = {literal(table)}"
    ).fetchone()
    stored = con.execute(
        "SELECT definition FROM finbi_state.analytics_definitions "
        f"WHERE table_name = {literal(table)}"
    ).fetchone()
    if not exists or stored is None:
        return FULL, "no record of a previous build", new
    if stored[0] != definition:
        return FULL, "the table's definition changed", new
    reflected = {
        (kind, upload_id): rows
        for kind, upload_id, rows in con.execute(
            "SELECT kind, upload_id, rows FROM finbi_state.analytics_uploads "
            f"WHERE table_name = {literal(table)}"
        ).fetchall()
    }
    gone = [key for key, rows in reflected.items() if current.get(key) != rows]
    if gone:
        return FULL, f"{len(gone)} upload(s) replaced or removed since the last refresh", new
    for kind, upload_id in sorted(current.keys() - reflected.keys()):
        new[kind].append(upload_id)
    added = sum(len(ids) for ids in new.values())
    if not added:
        return UNCHANGED, "no new uploads since the last refresh", new
    return INCREMENTAL, f"{added} new upload(s)", new


def _apply_new_uploads(
    con: duckdb.DuckDBPyConnection,
    table: str,
    sql: str,
    update: Update,
    new: dict[str, list[str]],
) -> None:
    """Bring `finbi.<table>` up to date with the `new` uploads, rewriting only the rows
    they change."""
    target = f"finbi.{table}"
    if isinstance(update, Merge):
        over_new = _over(sql, {kind: rows_of_uploads(con, kind, new[kind]) for kind in KINDS})
        merge_aggregates(con, target, over_new, update.keys, update.combine)
        return
    ids = new[update.kind]
    new_rows = rows_of_uploads(con, update.kind, ids)
    days = con.execute(f"SELECT DISTINCT {update.column} FROM ({new_rows}) ORDER BY 1").fetchall()
    if not days:
        return
    # Literal days, not a subquery: DuckDB then reads only those days' partition folders.
    in_days = ", ".join(f"DATE {literal(day.isoformat())}" for (day,) in days)
    on_days = f"{update.column} IN ({in_days})"
    if isinstance(update, MergeAgainstStored):
        increment = render(
            update.increment,
            new_rows=new_rows,
            stored_rows=rows_of_other_uploads(con, update.kind, ids, on_days),
        )
        merge_aggregates(con, target, to_duckdb(increment), update.keys)
        return
    con.execute(f"DELETE FROM {target} WHERE {on_days}")
    days_only = f"SELECT * FROM {update.kind} WHERE {on_days}"
    con.execute(f"INSERT INTO {target} BY NAME {_over(sql, {update.kind: days_only})}")


def _over(sql: str, relations: dict[str, str]) -> str:
    """`sql` with each table named in `relations` read from that query instead; DuckDB text."""
    tree = sqlglot.parse_one(sql, read="athena")
    for node in list(tree.find_all(exp.Table)):
        if node.name in relations and not node.db:
            query = sqlglot.parse_one(relations[node.name], read="athena")
            node.replace(query.subquery(node.alias_or_name))
    return tree.sql("duckdb")


def _tables_read(sql: str) -> set[str]:
    return {node.name for node in sqlglot.parse_one(sql, read="athena").find_all(exp.Table)}


def _record(
    con: duckdb.DuckDBPyConnection,
    table: str,
    definition: str,
    uploads: dict[tuple[str, str], int] | None,
) -> None:
    """Remember which uploads `table` now reflects (forget it all when that is unknown)."""
    name = literal(table)
    con.execute(f"DELETE FROM finbi_state.analytics_uploads WHERE table_name = {name}")
    con.execute(f"DELETE FROM finbi_state.analytics_definitions WHERE table_name = {name}")
    if uploads is None:
        return
    con.execute(
        f"INSERT INTO finbi_state.analytics_definitions VALUES ({name}, {literal(definition)})"
    )
    con.execute(
        f"INSERT INTO finbi_state.analytics_uploads SELECT {name}, * FROM "
        f"({uploads_values(uploads)})"
    )
