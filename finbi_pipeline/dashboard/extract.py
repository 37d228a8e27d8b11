"""Serving extract: the local stand-in for QuickSight's SPICE dataset.

The dashboard never reads the warehouse. The pipeline's dashboard-refresh asset calls
`build_serving_extract`, which writes small, pre-aggregated tables from `finbi.*` into a
new DuckDB file and swaps it in atomically as `<dashboard_dir>/serving.duckdb`. When the
warehouse only gained uploads since the last refresh, the new file is a copy of the current
one updated with the new uploads' rows: a refresh costs what is new, not what is stored.
So:

* the dashboard never holds a lock on the warehouse the pipeline writes to;
* a reader sees either the old extract or the new one, never a half-written file
  (`os.replace` swaps the directory entry; a reader that has the old file open keeps
  reading the old inode until it lets go);
* chart queries touch tables whose size depends on days x types x sources or on
  orders/items, not on the raw event count, except the per-user tables, which are sorted
  by `user_key` (a 64-bit hash of `user_id`, see `USER_KEY`) so that DuckDB's zone maps
  reduce a user lookup to the row group or two holding that user's rows.

Sorting by an integer key instead of by `user_id` (and then time, type, item) keeps the
build cheap: the sort key is eight bytes instead of four columns, and at 100M events the
sort spills within the warehouse connection's memory limit. `user_events`, a copy of every
event, does not even store `user_id` (writing that string column was a third of its
cost): the key alone says whose an event is, as long as no two users share a key, which
the build checks (`_user_keys_collide`). Queries order a user's rows themselves (they are
few).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from finbi_pipeline.aggregate_merge import merge_aggregates
from finbi_pipeline.sql_templates import literal, render, to_duckdb
from finbi_pipeline.upload_counts import (
    KINDS,
    quoted,
    rows_of_uploads,
    upload_row_counts,
    uploads_values,
)

_log = logging.getLogger(__name__)

SERVING_FILENAME = "serving.duckdb"
# Bump when the serving tables change shape: the app then asks for a rebuild instead of
# failing on an extract written by an older version.
EXTRACT_VERSION = 6
# A refresh builds the extract from scratch once the rows added incrementally since the
# last full build exceed this share of it: appended rows sit in row groups of their own,
# outside the per-user clustering, and a user lookup reads a little more with each append.
FULL_BUILD_AFTER = 0.25

# How the per-user tables (`user_events`, `sales_orders`, `sales_lines`) are sorted: by
# `user_key`, this expression of `user_id`. A query that filters on `user_key` lets DuckDB's
# zone maps skip every row group but the user's own; queries build the same expression over
# the bound user id (`queries.py`). DuckDB's `hash` is only stable within a DuckDB version:
# an extract written with another one is rebuilt (`_plan_update`), and read by the same
# installation that wrote it.
# `{0}` is the user id expression; NULL (a guest) has no key.
USER_KEY = "CASE WHEN {0} IS NOT NULL THEN hash({0}) END"

# The alias under which the extract under construction is attached to the warehouse.
_BUILD_ALIAS = "finbi_serving_build"
# The alias of the scratch database that holds the `STAGING` tables during a build.
_SCRATCH_ALIAS = "finbi_serving_scratch"
# Above this many distinct values a column stays VARCHAR rather than becoming an ENUM.
_MAX_ENUM_VALUES = 200

# How a refresh that only adds uploads brings each table up to date (see `ServingTable`).
APPEND, SUM, RECOMPUTE, REBUILD = "append", "sum", "recompute", "rebuild"


@dataclass(frozen=True)
class ServingTable:
    """One table of the extract.

    `query` builds it from the relations `{interactions}`, `{sales}` (the warehouse's
    `finbi.*` tables) and `{sales_orders}` (the extract's own, built earlier). `update` says
    how a refresh that only adds uploads brings it up to date, reading only what is new:

    * APPEND: insert the query's result over the new uploads' rows;
    * SUM: re-aggregate the stored rows of the keys the new rows carry with the query's
      result over the new rows (`keys` are the grouping columns, every other column is a
      sum); other rows stay as they are;
    * RECOMPUTE: delete the rows of every `keys[0]` value the new rows carry and recompute
      them from all rows with those values;
    * REBUILD: build it again (small tables).

    `staging` are intermediate tables, built into a scratch database (alias `{scratch}`) just
    before the table they feed and thrown away with it. Each step is then a single
    aggregate, join or sort that DuckDB can spill to disk.
    """

    name: str
    query: str
    update: str
    keys: tuple[str, ...] = ()
    staging: tuple[tuple[str, str], ...] = ()
    # RECOMPUTE only: (staging table, query over `{build}`, combine). In an update that
    # staging table is built from the new rows alone, then merged (`merge_aggregates`, on
    # `keys`) with the stored totals the query selects, instead of reading every old row
    # of the affected keys again. For totals that add up (counts, sums, MIN and MAX).
    merge_stored: tuple[str, str, dict[str, str]] | None = None


# In build order. Every query reads only the contract tables `finbi.*` (through the
# relations above) and tables built before it.
# ORDER BY matters for speed: DuckDB keeps min/max per row group, so data sorted by the
# column a query filters on lets it skip the rest of the table.
# Stored money sums are cast back to `{money}`: DECIMAL(18, 4), the contract's own money
# type, whenever every sum must fit it (`_money_type`), since summing 64-bit decimals is far
# faster than DuckDB's default 128-bit DECIMAL(38, 4) sums (about 1 ms instead of 50 ms over
# 170k orders); DECIMAL(38, 4) for sales whose amounts add up past what it holds.
SERVING_TABLES: tuple[ServingTable, ...] = (
    ServingTable(
        # Events per day x type x source: every interaction chart and KPI when no user is chosen.
        "events_daily",
        """
        SELECT event_date, event_type, source, count(*)::BIGINT AS event_count
        FROM {interactions}
        GROUP BY event_date, event_type, source
        ORDER BY event_date, event_type, source
        """,
        SUM,
        keys=("event_date", "event_type", "source"),
    ),
    ServingTable(
        # Purchases per day x source x item: "top items by purchases" without a user filter.
        "item_purchases_daily",
        """
        SELECT event_date, source, item_id, count(*)::BIGINT AS purchases
        FROM {interactions}
        WHERE event_type = 'PURCHASE'
        GROUP BY event_date, source, item_id
        ORDER BY event_date, source, item_id
        """,
        SUM,
        keys=("event_date", "source", "item_id"),
    ),
    ServingTable(
        # One row per order x day x source (x user, x country): the smallest table on which
        # "orders = distinct order_id with a positive line" stays exact for any filter.
        # order_rows (how many rows the order has here, nearly always 1) lets queries count
        # most orders with count(*) and keep count(DISTINCT) for the few split ones.
        "sales_orders",
        """
        SELECT *, count(*) OVER (PARTITION BY order_id)::BIGINT AS order_rows,
               {user_key} AS user_key
        FROM (
            SELECT
                order_id,
                user_id,
                sale_date,
                source,
                country,
                min(sale_time) AS first_sale_time,
                count(*)::BIGINT AS lines,
                count(*) FILTER (WHERE quantity > 0)::BIGINT AS positive_lines,
                coalesce(sum(quantity) FILTER (WHERE quantity > 0), 0)::BIGINT AS units,
                coalesce(sum(amount) FILTER (WHERE quantity > 0), 0)::{money}
                    AS gross_revenue,
                coalesce(sum(-amount) FILTER (WHERE quantity < 0), 0)::{money}
                    AS returns_value
            FROM {sales}
            GROUP BY order_id, user_id, sale_date, source, country
        )
        ORDER BY user_key NULLS LAST
        """,
        RECOMPUTE,
        keys=("order_id",),
    ),
    ServingTable(
        # Sales per day x source x item: "top items by revenue" without a user filter.
        "item_sales_daily",
        """
        SELECT
            sale_date,
            source,
            item_id,
            coalesce(sum(quantity) FILTER (WHERE quantity > 0), 0)::BIGINT AS units,
            coalesce(sum(amount) FILTER (WHERE quantity > 0), 0)::{money} AS gross_revenue,
            coalesce(sum(-amount) FILTER (WHERE quantity < 0), 0)::{money} AS returns_value
        FROM {sales}
        GROUP BY sale_date, source, item_id
        ORDER BY sale_date, source, item_id
        """,
        SUM,
        keys=("sale_date", "source", "item_id"),
    ),
    ServingTable(
        # Sales lines of known customers, sorted by user key: a chosen user's items.
        # Guest lines (user_id NULL) cannot be chosen, so they are left out.
        "sales_lines",
        """
        SELECT {user_key} AS user_key,
               user_id, order_id, item_id, quantity, unit_price, amount,
               sale_time, sale_date, country, source
        FROM {sales}
        WHERE user_id IS NOT NULL
        ORDER BY user_key
        """,
        APPEND,
    ),
    ServingTable(
        # Every known user with all-time totals, sorted by user key: the user picker's
        # options, the drill-down's profile, and which ids `user_events` can be asked for
        # (queries.py: an id without events could share a key). As one statement (an aggregate
        # over every event, one over orders, a full join and a sort, all holding memory at
        # once) it ran out of the warehouse connection's 1 GB at 100M events, hence the
        # staging tables.
        "users",
        """
        SELECT
            user_id,
            coalesce(events.events, 0) AS events,
            coalesce(events.views, 0) AS views,
            coalesce(events.add_to_carts, 0) AS add_to_carts,
            coalesce(events.purchases, 0) AS purchases,
            events.first_event_time,
            events.last_event_time,
            coalesce(orders.orders, 0) AS orders,
            coalesce(orders.gross_revenue, 0) AS gross_revenue,
            coalesce(orders.returns_value, 0) AS returns_value,
            {user_key} AS user_key
        FROM {scratch}.user_event_totals AS events
        FULL OUTER JOIN {scratch}.user_order_totals AS orders USING (user_id)
        ORDER BY user_key
        """,
        RECOMPUTE,
        keys=("user_id",),
        merge_stored=(
            "user_event_totals",
            """
            SELECT user_id, events, views, add_to_carts, purchases, first_event_time,
                   last_event_time
            FROM {build}.users SEMI JOIN {scratch}.affected_user_id USING (user_id)
            WHERE events > 0
            """,
            {
                "first_event_time": "MIN(first_event_time)",
                "last_event_time": "MAX(last_event_time)",
            },
        ),
        staging=(
            (
                "user_event_totals",
                """
                SELECT
                    user_id,
                    count(*)::BIGINT AS events,
                    count(*) FILTER (WHERE event_type = 'VIEW')::BIGINT AS views,
                    count(*) FILTER (WHERE event_type = 'ADD_TO_CART')::BIGINT AS add_to_carts,
                    count(*) FILTER (WHERE event_type = 'PURCHASE')::BIGINT AS purchases,
                    min(event_time) AS first_event_time,
                    max(event_time) AS last_event_time
                FROM {interactions}
                GROUP BY user_id
                """,
            ),
            (
                # Two GROUP BYs rather than a grouped count(DISTINCT order_id), which DuckDB
                # cannot spill to disk; over the per-order table, far smaller than sales.
                "user_order_totals",
                """
                SELECT
                    user_id,
                    count(*) FILTER (WHERE positive)::BIGINT AS orders,
                    sum(gross_revenue)::{money} AS gross_revenue,
                    sum(returns_value)::{money} AS returns_value
                FROM (
                    SELECT user_id, order_id, bool_or(positive_lines > 0) AS positive,
                           sum(gross_revenue) AS gross_revenue,
                           sum(returns_value) AS returns_value
                    FROM {sales_orders}
                    WHERE user_id IS NOT NULL
                    GROUP BY user_id, order_id
                )
                GROUP BY user_id
                """,
            ),
        ),
    ),
    ServingTable(
        # Every event, sorted by user key: the user filter and the user's timeline. Built
        # after `users`, which says whether two users share a key: only then does it store
        # `user_id` too (`_user_keys_collide`); else that column is NULL, which costs nothing.
        # event_type and source are ENUMs of the values in events_daily (see `_enum_of`):
        # one byte instead of a string halves what the sort moves and spills.
        "user_events",
        """
        SELECT {user_key} AS user_key,
               {user_id_if_keys_collide} AS user_id,
               event_time, event_date,
               event_type::{event_type_type} AS event_type,
               item_id,
               source::{source_type} AS source
        FROM {interactions}
        ORDER BY user_key
        """,
        APPEND,
    ),
    ServingTable(
        # One row per upload: small by nature, copied for the data panel, with whether it is
        # its key's current version (totals count those: the tables hold nothing else).
        "ingest_log",
        "SELECT * FROM {ingest_log} ORDER BY ingested_at, upload_id",
        REBUILD,
    ),
    ServingTable(
        # Quarantined rows can be many: the panel only needs counts per reason and an example.
        "quarantine_reasons",
        """
        SELECT
            source,
            column_name,
            reason,
            count(*)::BIGINT AS rows,
            count(DISTINCT upload_id)::BIGINT AS uploads,
            arg_min(object_key, line_number) AS example_object_key,
            min(line_number) AS example_line_number,
            arg_min(raw_record, line_number) AS example_raw_record
        FROM finbi.quarantine
        GROUP BY source, column_name, reason
        ORDER BY rows DESC, source, reason
        """,
        REBUILD,
    ),
    ServingTable(
        # The uploads whose rows the extract holds, and how many: what the next refresh
        # compares with the warehouse to find what is new.
        "extract_uploads",
        "SELECT * FROM {scratch}.current_uploads ORDER BY kind, upload_id",
        REBUILD,
    ),
    ServingTable(
        # One row describing the whole extract; written last so it sums up the tables above.
        "extract_info",
        """
        SELECT
            {version} AS extract_version,
            {refreshed_at}::TIMESTAMP AS refreshed_at,
            {build_mode}::VARCHAR AS build_mode,
            {full_build_at}::TIMESTAMP AS full_build_at,
            {rows_since_full_build}::BIGINT AS rows_since_full_build,
            {duckdb_version}::VARCHAR AS duckdb_version,
            {sales_abs_amount}::DECIMAL(38, 4) AS sales_abs_amount,
            (SELECT coalesce(sum(rows), 0) FROM {build}.extract_uploads
             WHERE kind = 'interactions')::BIGINT AS events,
            (SELECT coalesce(sum(rows), 0) FROM {build}.extract_uploads
             WHERE kind = 'sales')::BIGINT AS sales_lines,
            (SELECT count(*) FROM {build}.users)::BIGINT AS users,
            (SELECT count(*) FROM finbi.ingest_log)::BIGINT AS uploads,
            least(
                (SELECT min(event_date) FROM {build}.events_daily),
                (SELECT min(sale_date) FROM {build}.item_sales_daily)
            ) AS first_date,
            greatest(
                (SELECT max(event_date) FROM {build}.events_daily),
                (SELECT max(sale_date) FROM {build}.item_sales_daily)
            ) AS last_date
        """,
        REBUILD,
    ),
)


def serving_path(home: Path | None = None) -> Path:
    """Where the dashboard reads its extract: `$FINBI_HOME/dashboard/serving.duckdb`.

    FINBI_HOME is read on every call (not at import) so tests and the CLI can point a
    running process at another home.
    """
    if home is None:
        home = Path(os.environ.get("FINBI_HOME") or ".finbi").absolute()
    return home / "dashboard" / SERVING_FILENAME


def build_serving_extract(warehouse: duckdb.DuckDBPyConnection, dashboard_dir: Path) -> dict:
    """Bring the serving extract up to date with the warehouse and swap it in atomically.

    When the warehouse only gained uploads since the last refresh, a copy of the current
    extract is updated with the new uploads' rows (each table as its `update` says), so a
    refresh costs in proportion to what is new. Otherwise (no extract yet, an upload
    replaced or removed, new event types or sources, another extract version, or more rows
    added since the last full build than `FULL_BUILD_AFTER` of the extract) it is built
    from scratch, which also restores the per-user tables' clustering.

    `warehouse` is an open connection to the warehouse (schema `finbi`); it is only read.
    Raises `WarehouseChanged`, keeping the previous extract, when uploads were merged into
    the warehouse while the extract was being built.
    Returns metadata for the Dagster asset: path, bytes, refreshed_at (ISO, UTC), how it
    was built and why, and the row count of every serving table.
    """
    dashboard_dir = Path(dashboard_dir)
    dashboard_dir.mkdir(parents=True, exist_ok=True)
    target = dashboard_dir / SERVING_FILENAME
    # A unique temporary name: two refreshes running at once never write the same file,
    # and the last one to finish wins the swap.
    temporary = dashboard_dir / f".{SERVING_FILENAME}.{uuid.uuid4().hex}.tmp"
    # Staging tables go to a scratch file beside it, deleted at the end either way.
    scratch = temporary.with_name(temporary.name + ".scratch")
    refreshed_at = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, like the warehouse

    # Every serving table's order is set by its own ORDER BY (or does not matter), so DuckDB
    # need not keep the order rows are read in: it then writes in parallel, with less memory.
    # The setting belongs to the caller's connection, so it is put back afterwards.
    (preserve_order,) = warehouse.execute(
        "SELECT current_setting('preserve_insertion_order')"
    ).fetchone()
    warehouse.execute("SET preserve_insertion_order = false")
    try:
        _attach(warehouse, scratch, _SCRATCH_ALIAS)
        # Rows per upload: an upload's rows never change once merged (a new version of a
        # key is a new upload_id), so comparing them with `extract_uploads` tells what is new.
        current = upload_row_counts(warehouse, KINDS)
        warehouse.execute(
            f"CREATE TABLE {_SCRATCH_ALIAS}.current_uploads AS {uploads_values(current)}"
        )
        plan = _start_build(warehouse, target, temporary)
        if plan.mode == "full":
            plan.full_build_at = refreshed_at
            plan.sales_abs_amount = _abs_amount(warehouse, "finbi.sales")
        else:
            _find_affected_keys(warehouse, plan)
        # Literals, not bound parameters (`literal` says why).
        facts = {
            "refreshed_at": literal(refreshed_at),
            "build_mode": literal(plan.mode),
            "full_build_at": literal(plan.full_build_at),
            "rows_since_full_build": literal(plan.rows_since_full_build),
            "duckdb_version": literal(duckdb.__version__),
            "sales_abs_amount": literal(str(plan.sales_abs_amount)),  # cast to DECIMAL
            "money": _money_type(plan.sales_abs_amount),
        }
        row_counts = {}
        for table in SERVING_TABLES:
            if plan.mode == "full" or table.update == REBUILD:
                _build(warehouse, table, facts)
            else:
                _update(warehouse, table, plan, facts)
            row_counts[table.name] = warehouse.execute(
                f"SELECT count(*) FROM {_BUILD_ALIAS}.{table.name}"
            ).fetchone()[0]
        _check_uploads_unchanged(warehouse, current)
        warehouse.execute(f"DETACH {_SCRATCH_ALIAS}")
        # DETACH checkpoints: the file is complete and self-contained (no WAL) afterwards.
        warehouse.execute(f"DETACH {_BUILD_ALIAS}")
        os.replace(temporary, target)
    except BaseException:
        _detach_quietly(warehouse, _BUILD_ALIAS)
        for leftover in (temporary, temporary.with_name(temporary.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        _detach_quietly(warehouse, _SCRATCH_ALIAS)
        for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
            leftover.unlink(missing_ok=True)
        warehouse.execute(f"SET preserve_insertion_order = {bool(preserve_order)}")
    _fsync_directory(dashboard_dir)

    return {
        "path": str(target),
        "bytes": target.stat().st_size,
        "refreshed_at": refreshed_at.isoformat() + "Z",
        "build_mode": plan.mode,
        "build_reason": plan.reason,
        "uploads_added": sum(len(ids) for ids in plan.new_uploads.values()),
        "row_counts": row_counts,
    }


@dataclass
class _Plan:
    """How this refresh builds the extract, and from what."""

    mode: str  # "full" | "incremental"
    reason: str
    new_uploads: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # Per kind, a subquery over the rows the new uploads added.
    new_rows: dict[str, str] = field(default_factory=dict)
    full_build_at: datetime | None = None
    rows_since_full_build: int = 0
    # The absolute amounts of the sales lines the extract holds, added up (`_money_type`).
    sales_abs_amount: Decimal = Decimal(0)


def _start_build(warehouse: duckdb.DuckDBPyConnection, target: Path, temporary: Path) -> _Plan:
    """Attach the extract under construction as `_BUILD_ALIAS`: a copy of the current one
    when it can be updated in place, else a new, empty database."""
    if not target.exists():
        plan = _Plan("full", "no extract yet")
    else:
        shutil.copyfile(target, temporary)
        _attach(warehouse, temporary, _BUILD_ALIAS)
        plan = _plan_update(warehouse)
        if plan.mode == "incremental":
            return plan
        warehouse.execute(f"DETACH {_BUILD_ALIAS}")
        temporary.unlink()
    _attach(warehouse, temporary, _BUILD_ALIAS)
    return plan


def _plan_update(warehouse: duckdb.DuckDBPyConnection) -> _Plan:
    """Compare the extract attached as `_BUILD_ALIAS` with the warehouse: an incremental
    plan when the warehouse only gained uploads, else a full one that says why."""
    build, scratch = _BUILD_ALIAS, _SCRATCH_ALIAS
    try:
        version, full_build_at, since, built_by, sales_abs_amount = warehouse.execute(
            "SELECT extract_version, full_build_at, rows_since_full_build, duckdb_version, "
            f"sales_abs_amount FROM {build}.extract_info"
        ).fetchone()
    except duckdb.Error:
        version = None
    if version != EXTRACT_VERSION:
        return _Plan("full", "the extract was written by another version of FinBI")
    if built_by != duckdb.__version__:
        # User keys are DuckDB hashes, stable only within a DuckDB version.
        return _Plan("full", f"the extract was written with DuckDB {built_by}")
    (gone,) = warehouse.execute(
        f"SELECT count(*) FROM (SELECT * FROM {build}.extract_uploads "
        f"EXCEPT SELECT * FROM {scratch}.current_uploads)"
    ).fetchone()
    if gone:
        return _Plan("full", f"{gone} upload(s) replaced or removed since the last refresh")
    new = warehouse.execute(
        f"SELECT kind, upload_id, rows FROM {scratch}.current_uploads "
        f"ANTI JOIN {build}.extract_uploads USING (kind, upload_id)"
    ).fetchall()
    (held,) = warehouse.execute(
        f"SELECT coalesce(sum(rows), 0) FROM {build}.extract_uploads"
    ).fetchone()
    added = sum(rows for _, _, rows in new)
    since += added
    if since > FULL_BUILD_AFTER * (held + added):
        return _Plan(
            "full",
            f"{since:,} rows added since the last full build, over {FULL_BUILD_AFTER:.0%} of "
            "the extract: rebuilt to restore the per-user tables' clustering",
        )
    plan = _Plan("incremental", f"{len(new)} new upload(s)", full_build_at=full_build_at)
    plan.rows_since_full_build = since
    for kind, upload_id, _ in new:
        plan.new_uploads[kind].append(upload_id)
    for kind in KINDS:
        plan.new_rows[kind] = f"({rows_of_uploads(warehouse, kind, plan.new_uploads[kind])})"
    plan.sales_abs_amount = sales_abs_amount + _abs_amount(warehouse, plan.new_rows["sales"])
    if _money_type(plan.sales_abs_amount) != _money_type(sales_abs_amount):
        return _Plan("full", f"the sales' money sums need {_money_type(plan.sales_abs_amount)}")
    # user_events stores event types and sources as ENUMs of the values it was built with.
    delta = plan.new_rows["interactions"]
    (unseen,) = warehouse.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT event_type, source FROM {delta}) AS d "
        f"WHERE event_type NOT IN (SELECT event_type FROM {build}.events_daily) "
        f"OR source NOT IN (SELECT source FROM {build}.events_daily)"
    ).fetchone()
    if unseen:
        return _Plan("full", "new event types or sources")
    # The stored user_events tell users apart by key alone unless keys collided already.
    new_events = plan.new_uploads["interactions"]
    if (
        new_events
        and _new_user_keys_collide(warehouse, delta)
        and not _user_keys_collide(warehouse)
    ):
        return _Plan("full", "a new user shares a user key with another: user ids are stored")
    return plan


class WarehouseChanged(RuntimeError):
    """Uploads were merged into the warehouse while the extract was being built."""


def _check_uploads_unchanged(warehouse: duckdb.DuckDBPyConnection, current: dict) -> None:
    """Refuse to swap in an extract whose tables may have read different uploads.

    The catalog views read the curated files as they are at each statement, so a merge
    that ran alongside could leave some tables with an upload and `extract_uploads`
    without it (the next refresh would add it twice). The step's retry builds it again.
    """
    changed = set(upload_row_counts(warehouse, KINDS).items()) ^ set(current.items())
    if changed:
        raise WarehouseChanged(
            f"{len(changed)} upload(s) changed in the warehouse during the dashboard refresh; "
            "the previous extract is kept: refresh again"
        )


def _find_affected_keys(warehouse: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
    """Scratch tables `affected_<key>`: the keys whose RECOMPUTE rows the new rows change."""
    interactions, sales = (plan.new_rows[k] for k in KINDS)
    warehouse.execute(
        f"CREATE TABLE {_SCRATCH_ALIAS}.affected_user_id AS SELECT DISTINCT user_id FROM "
        f"(SELECT user_id FROM {interactions} UNION ALL SELECT user_id FROM {sales}) "
        "WHERE user_id IS NOT NULL"
    )
    warehouse.execute(
        f"CREATE TABLE {_SCRATCH_ALIAS}.affected_order_id AS SELECT DISTINCT order_id FROM {sales}"
    )


def _build(warehouse: duckdb.DuckDBPyConnection, table: ServingTable, facts: dict) -> None:
    """(Re)create `table` in the extract from every row of the warehouse; `facts` are SQL
    literals for the query's other placeholders (the build's time and mode)."""
    relations = {
        "interactions": "finbi.interactions",
        "sales": "finbi.sales",
        "sales_orders": f"{_BUILD_ALIAS}.sales_orders",
    }
    sql = _render(warehouse, table.query, relations, table.staging, facts)
    warehouse.execute(f"DROP TABLE IF EXISTS {_BUILD_ALIAS}.{table.name}")
    warehouse.execute(f"CREATE TABLE {_BUILD_ALIAS}.{table.name} AS {sql}")
    _drop_staging(warehouse, table)


def _update(
    warehouse: duckdb.DuckDBPyConnection, table: ServingTable, plan: _Plan, facts: dict
) -> None:
    """Bring `table` up to date with the new uploads' rows, as its `update` says; `facts`
    as for `_build`."""
    target = f"{_BUILD_ALIAS}.{table.name}"
    if table.update == RECOMPUTE:
        (key,) = table.keys
        affected = f"{_SCRATCH_ALIAS}.affected_{key}"
        if not warehouse.execute(f"SELECT count(*) FROM {affected}").fetchone()[0]:
            return
        restricted = f"WHERE {key} IN (SELECT {key} FROM {affected})"
        relations = {
            "interactions": f"(SELECT * FROM finbi.interactions {restricted})",
            "sales": f"(SELECT * FROM finbi.sales {restricted})",
            "sales_orders": f"(SELECT * FROM {_BUILD_ALIAS}.sales_orders {restricted})",
        }
        if table.merge_stored:
            relations["interactions"] = plan.new_rows["interactions"]
        sql = _render(warehouse, table.query, relations, table.staging, facts)
        if table.merge_stored:
            staging_table, stored_query, combine = table.merge_stored
            stored = _render(warehouse, stored_query, relations, facts=facts)
            merge_aggregates(
                warehouse, f"{_SCRATCH_ALIAS}.{staging_table}", stored, table.keys, combine
            )
        warehouse.execute(f"DELETE FROM {target} {restricted}")
        warehouse.execute(f"INSERT INTO {target} {sql}")
        _drop_staging(warehouse, table)
        return
    reads = [kind for kind in KINDS if "{" + kind + "}" in table.query]
    if not any(plan.new_uploads[kind] for kind in reads):
        return
    relations = dict(plan.new_rows)
    sql = _render(warehouse, table.query, relations, facts=facts)
    if table.update == APPEND:
        warehouse.execute(f"INSERT INTO {target} {sql}")
        return
    # SUM: the stored rows of the keys the new rows carry, re-summed with them.
    merge_aggregates(warehouse, target, sql, table.keys)


def _render(
    warehouse: duckdb.DuckDBPyConnection,
    query: str,
    relations: dict[str, str],
    staging: tuple[tuple[str, str], ...] = (),
    facts: dict[str, str] | None = None,
) -> str:
    """A build query with its placeholders filled in; its staging tables built first."""
    for name, staging_query in staging:
        _execute_within_memory(
            warehouse,
            f"CREATE TABLE {_SCRATCH_ALIAS}.{name} AS "
            + _render(warehouse, staging_query, relations, facts=facts),
        )
    built = {}  # placeholders that depend on tables built earlier
    if "{event_type_type}" in query:
        built = {
            f"{column}_type": _enum_of(warehouse, "events_daily", column)
            for column in ("event_type", "source")
        }
    if "{user_id_if_keys_collide}" in query:
        collide = _user_keys_collide(warehouse)
        built["user_id_if_keys_collide"] = "user_id" if collide else "CAST(NULL AS VARCHAR)"
    return query.format(
        build=_BUILD_ALIAS,
        scratch=_SCRATCH_ALIAS,
        version=EXTRACT_VERSION,
        user_key=USER_KEY.format("user_id"),
        ingest_log=f"({to_duckdb(render('ingest_log_current', ingest_log='finbi.ingest_log'))})",
        **relations,
        **built,
        **(facts or {}),
    )


def _execute_within_memory(warehouse: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run a staging statement; when DuckDB runs out of its memory limit, run it again on
    one thread.

    The per-user totals group every event by user; over 100M events, with a thread-local
    hash table per core, that aggregate sometimes outgrows the warehouse's 1 GB instead of
    spilling (one build in four here), and the step's retry redid the whole extract. On one
    thread it fits, at 18 s instead of 13 s; the failed statement leaves nothing behind.
    """
    try:
        warehouse.execute(sql)
    except duckdb.OutOfMemoryException as exc:
        _log.warning("%s; running the statement again on one thread", exc.args[0][:120])
        (threads,) = warehouse.execute("SELECT current_setting('threads')").fetchone()
        warehouse.execute("SET threads = 1")
        try:
            warehouse.execute(sql)
        finally:
            warehouse.execute(f"SET threads = {int(threads)}")


def _money_type(sales_abs_amount: Decimal) -> str:
    """The type of the extract's money sums: DECIMAL(18, 4) when the absolute amounts of its
    sales lines add up to less than that type's 10^14, so that no sum of them can overflow
    it (a shop in rupiah or dong may get past that), else DECIMAL(38, 4)."""
    return "DECIMAL(18, 4)" if sales_abs_amount < 10**14 else "DECIMAL(38, 4)"


def _abs_amount(warehouse: duckdb.DuckDBPyConnection, sales: str) -> Decimal:
    """The absolute amounts of the sales lines of relation `sales`, added up: read from
    every line at a full build, from the new uploads' lines at an incremental one."""
    (total,) = warehouse.execute(f"SELECT coalesce(sum(abs(amount)), 0) FROM {sales}").fetchone()
    return Decimal(total)


def _user_keys_collide(warehouse: duckdb.DuckDBPyConnection) -> bool:
    """Whether two users with events share a `user_key`, so that `user_events` must store
    `user_id` to tell their events apart, among the users of the extract under construction.

    With 64-bit keys that takes about five billion users for even odds, but a wrong answer
    is never acceptable; the check reads the `users` table, not every event.
    """
    (collide,) = warehouse.execute(
        f"SELECT count(DISTINCT user_id) <> count(DISTINCT user_key) FROM {_BUILD_ALIAS}.users "
        "WHERE events > 0"
    ).fetchone()
    return bool(collide)


def _new_user_keys_collide(warehouse: duckdb.DuckDBPyConnection, new_events: str) -> bool:
    """Whether a user of the relation `new_events` shares a `user_key` with another user
    with events, new or already in the extract under construction: the extract's own users
    are probed by key, not counted again."""
    (collide,) = warehouse.execute(
        f"""
        WITH new_users AS (
            SELECT DISTINCT user_id, {USER_KEY.format("user_id")} AS user_key
            FROM {new_events}
            WHERE user_id IS NOT NULL
        )
        SELECT (SELECT count(*) <> count(DISTINCT user_key) FROM new_users)
            OR EXISTS (
                SELECT 1 FROM {_BUILD_ALIAS}.users AS stored JOIN new_users USING (user_key)
                WHERE stored.events > 0 AND stored.user_id <> new_users.user_id
            )
        """
    ).fetchone()
    return bool(collide)


def _drop_staging(warehouse: duckdb.DuckDBPyConnection, table: ServingTable) -> None:
    for name, _ in table.staging:
        warehouse.execute(f"DROP TABLE {_SCRATCH_ALIAS}.{name}")


def _attach(warehouse: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    warehouse.execute(f"ATTACH {literal(str(path))} AS {alias}")  # ATTACH binds no parameter


def _enum_of(warehouse: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    """The SQL type `ENUM(...)` of the values of `column` in the built `table`.

    VARCHAR when there are none, or too many for an ENUM to pay off.
    """
    values = [
        value
        for (value,) in warehouse.execute(
            f"SELECT DISTINCT {column} FROM {_BUILD_ALIAS}.{table} "
            f"WHERE {column} IS NOT NULL ORDER BY {column} LIMIT {_MAX_ENUM_VALUES + 1}"
        ).fetchall()
    ]
    if not values or len(values) > _MAX_ENUM_VALUES:
        return "VARCHAR"
    return f"ENUM({quoted(values)})"


def _detach_quietly(warehouse: duckdb.DuckDBPyConnection, alias: str) -> None:
    attached = warehouse.execute(
        f"SELECT count(*) FROM duckdb_databases() WHERE database_name = {literal(alias)}"
    ).fetchone()[0]
    if attached:
        warehouse.execute(f"DETACH {alias}")


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable, so a crash cannot bring back the old extract."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
