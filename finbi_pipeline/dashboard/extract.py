"""Serving extract: the local stand-in for QuickSight's SPICE dataset.

The dashboard never reads the warehouse. The pipeline's dashboard-refresh asset calls
`build_serving_extract`, which copies small, pre-aggregated tables out of `finbi.*` into a
new DuckDB file and swaps it in atomically as `<dashboard_dir>/serving.duckdb`. So:

* the dashboard never holds a lock on the warehouse the pipeline writes to;
* a reader sees either the old extract or the new one, never a half-written file
  (`os.replace` swaps the directory entry; a reader that has the old file open keeps
  reading the old inode until it lets go);
* chart queries touch tables whose size depends on days x types x sources or on
  orders/items, not on the raw event count, except the per-user tables, which are
  clustered by `user_bucket` (a hash of `user_id`, see `USER_BUCKET`) so that DuckDB's
  zone maps reduce a user lookup to a row group or two.

Clustering by a small integer bucket instead of sorting by `user_id` (and then time, type,
item) keeps the build cheap: the sort key is two bytes instead of four columns, and at 100M
events the sort spills within the warehouse connection's memory limit. Queries order a
user's rows themselves (they are few).
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SERVING_FILENAME = "serving.duckdb"
# Bump when the serving tables change shape: the app then asks for a rebuild instead of
# failing on an extract written by an older version.
EXTRACT_VERSION = 2

# How the per-user tables (`user_events`, `sales_orders`, `sales_lines`) are clustered: by
# `user_bucket`, this expression of `user_id`. A user's rows then share one bucket, which
# spans one or two row groups, and a query that filters on `user_bucket` as well as on
# `user_id` lets DuckDB's zone maps skip every other row group. Queries build the same
# expression over the bound user id (`queries.py`). DuckDB's `hash` is only stable within a
# DuckDB version; the extract is rebuilt by the pipeline and read by the same installation.
# 1,024 buckets: about 10k events each at 10M events, 100k (a row group) at 100M.
USER_BUCKETS = 1024
# `{0}` is the user id expression; NULL (a guest) has no bucket.
USER_BUCKET = f"CASE WHEN {{0}} IS NOT NULL THEN (hash({{0}}) % {USER_BUCKETS})::USMALLINT END"

# The alias under which the extract under construction is attached to the warehouse.
_BUILD_ALIAS = "finbi_serving_build"
# The alias of the scratch database that holds the `STAGING` tables during a build.
_SCRATCH_ALIAS = "finbi_serving_scratch"
# Above this many distinct values a column stays VARCHAR rather than becoming an ENUM.
_MAX_ENUM_VALUES = 200

# (table, query) in build order. Every query reads only the contract tables `finbi.*`.
# ORDER BY matters for speed: DuckDB keeps min/max per row group, so data sorted by the
# column a query filters on lets it skip the rest of the table.
# Stored money sums are cast back to DECIMAL(18, 4), the contract's own money type: per
# order or per item and day they fit easily (a value that did not would fail the build,
# never come out wrong), and summing 64-bit decimals is far faster than DuckDB's default
# 128-bit DECIMAL(38, 4) sums (about 1 ms instead of 50 ms over 170k orders).
SERVING_TABLES: tuple[tuple[str, str], ...] = (
    (
        # Events per day x type x source: every interaction chart and KPI when no user is chosen.
        "events_daily",
        """
        SELECT event_date, event_type, source, count(*)::BIGINT AS event_count
        FROM finbi.interactions
        GROUP BY event_date, event_type, source
        ORDER BY event_date, event_type, source
        """,
    ),
    (
        # Purchases per day x source x item: "top items by purchases" without a user filter.
        "item_purchases_daily",
        """
        SELECT event_date, source, item_id, count(*)::BIGINT AS purchases
        FROM finbi.interactions
        WHERE event_type = 'PURCHASE'
        GROUP BY event_date, source, item_id
        ORDER BY event_date, source, item_id
        """,
    ),
    (
        # Every event, clustered by user bucket: the user filter and the user's timeline.
        # event_type and source are ENUMs of the values in events_daily (see `_enum_of`):
        # one byte instead of a string halves what the clustering sort moves and spills.
        "user_events",
        """
        SELECT {user_bucket} AS user_bucket,
               user_id, event_time, event_date,
               event_type::{event_type_type} AS event_type,
               item_id,
               source::{source_type} AS source
        FROM finbi.interactions
        ORDER BY user_bucket
        """,
    ),
    (
        # One row per order x day x source (x user, x country): the smallest table on which
        # "orders = distinct order_id with a positive line" stays exact for any filter.
        # order_rows (how many rows the order has here, nearly always 1) lets queries count
        # most orders with count(*) and keep count(DISTINCT) for the few split ones.
        "sales_orders",
        """
        SELECT *, count(*) OVER (PARTITION BY order_id)::BIGINT AS order_rows,
               {user_bucket} AS user_bucket
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
                coalesce(sum(amount) FILTER (WHERE quantity > 0), 0)::DECIMAL(18, 4)
                    AS gross_revenue,
                coalesce(sum(-amount) FILTER (WHERE quantity < 0), 0)::DECIMAL(18, 4)
                    AS returns_value
            FROM finbi.sales
            GROUP BY order_id, user_id, sale_date, source, country
        )
        ORDER BY user_bucket NULLS LAST
        """,
    ),
    (
        # Sales per day x source x item: "top items by revenue" without a user filter.
        "item_sales_daily",
        """
        SELECT
            sale_date,
            source,
            item_id,
            coalesce(sum(quantity) FILTER (WHERE quantity > 0), 0)::BIGINT AS units,
            coalesce(sum(amount) FILTER (WHERE quantity > 0), 0)::DECIMAL(18, 4) AS gross_revenue,
            coalesce(sum(-amount) FILTER (WHERE quantity < 0), 0)::DECIMAL(18, 4) AS returns_value
        FROM finbi.sales
        GROUP BY sale_date, source, item_id
        ORDER BY sale_date, source, item_id
        """,
    ),
    (
        # Sales lines of known customers, clustered by user bucket: a chosen user's items.
        # Guest lines (user_id NULL) cannot be chosen, so they are left out.
        "sales_lines",
        """
        SELECT {user_bucket} AS user_bucket,
               user_id, order_id, item_id, quantity, unit_price, amount,
               sale_time, sale_date, country, source
        FROM finbi.sales
        WHERE user_id IS NOT NULL
        ORDER BY user_bucket
        """,
    ),
    (
        # Every known user with all-time totals, most active first: the user picker's
        # options and the drill-down's profile. From two staged tables (`STAGING`).
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
            coalesce(orders.returns_value, 0) AS returns_value
        FROM {scratch}.user_event_totals AS events
        FULL OUTER JOIN {scratch}.user_order_totals AS orders USING (user_id)
        ORDER BY events DESC, orders DESC, user_id
        """,
    ),
    (
        # One row per upload: small by nature, copied as is for the data panel.
        "ingest_log",
        "SELECT * FROM finbi.ingest_log ORDER BY ingested_at, upload_id",
    ),
    (
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
    ),
    (
        # One row describing the whole extract; written last so it sums up the tables above.
        "extract_info",
        """
        SELECT
            {version} AS extract_version,
            $refreshed_at::TIMESTAMP AS refreshed_at,
            (SELECT count(*) FROM finbi.interactions)::BIGINT AS events,
            (SELECT count(*) FROM finbi.sales)::BIGINT AS sales_lines,
            (SELECT count(*) FROM {build}.users)::BIGINT AS users,
            (SELECT count(*) FROM finbi.ingest_log)::BIGINT AS uploads,
            least(
                (SELECT min(event_date) FROM finbi.interactions),
                (SELECT min(sale_date) FROM finbi.sales)
            ) AS first_date,
            greatest(
                (SELECT max(event_date) FROM finbi.interactions),
                (SELECT max(sale_date) FROM finbi.sales)
            ) AS last_date
        """,
    ),
)


# Intermediate tables, built into a scratch database (alias `{scratch}`) just before the
# serving table they feed, and thrown away with it. Each step is then a single aggregate,
# join or sort that DuckDB can spill to disk; as one statement, the `users` query (an
# aggregate over every event, one over orders, a full join and a sort, all holding memory at
# once) ran out of the warehouse connection's 1 GB at 100M events.
STAGING: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (
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
            FROM finbi.interactions
            GROUP BY user_id
            """,
        ),
        (
            # Two GROUP BYs rather than a grouped count(DISTINCT order_id), which DuckDB
            # cannot spill to disk; over the per-order table, already far smaller than sales.
            "user_order_totals",
            """
            SELECT
                user_id,
                count(*) FILTER (WHERE positive)::BIGINT AS orders,
                sum(gross_revenue)::DECIMAL(18, 4) AS gross_revenue,
                sum(returns_value)::DECIMAL(18, 4) AS returns_value
            FROM (
                SELECT user_id, order_id, bool_or(positive_lines > 0) AS positive,
                       sum(gross_revenue) AS gross_revenue, sum(returns_value) AS returns_value
                FROM {build}.sales_orders
                WHERE user_id IS NOT NULL
                GROUP BY user_id, order_id
            )
            GROUP BY user_id
            """,
        ),
    ),
}


def serving_path(home: Path | None = None) -> Path:
    """Where the dashboard reads its extract: `$FINBI_HOME/dashboard/serving.duckdb`.

    FINBI_HOME is read on every call (not at import) so tests and the CLI can point a
    running process at another home.
    """
    if home is None:
        home = Path(os.environ.get("FINBI_HOME") or ".finbi").absolute()
    return home / "dashboard" / SERVING_FILENAME


def build_serving_extract(warehouse: duckdb.DuckDBPyConnection, dashboard_dir: Path) -> dict:
    """Write a fresh serving extract from the warehouse and swap it in atomically.

    `warehouse` is an open connection to the warehouse (schema `finbi`); it is only read.
    Returns metadata for the Dagster asset: path, bytes, refreshed_at (ISO, UTC) and the
    row count of every serving table.
    """
    dashboard_dir = Path(dashboard_dir)
    dashboard_dir.mkdir(parents=True, exist_ok=True)
    target = dashboard_dir / SERVING_FILENAME
    # A unique temporary name: two refreshes running at once never write the same file,
    # and the last one to finish wins the swap.
    temporary = dashboard_dir / f".{SERVING_FILENAME}.{uuid.uuid4().hex}.tmp"
    refreshed_at = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, like the warehouse

    # Staging tables go to a scratch file beside it, deleted at the end either way.
    scratch = temporary.with_name(temporary.name + ".scratch")

    row_counts: dict[str, int] = {}
    # Every serving table's order is set by its own ORDER BY (or does not matter), so DuckDB
    # need not keep the order rows are read in: it then writes in parallel, with less memory.
    # The setting belongs to the caller's connection, so it is put back afterwards.
    (preserve_order,) = warehouse.execute(
        "SELECT current_setting('preserve_insertion_order')"
    ).fetchone()
    warehouse.execute("SET preserve_insertion_order = false")
    try:
        _attach(warehouse, temporary, _BUILD_ALIAS)
        _attach(warehouse, scratch, _SCRATCH_ALIAS)
        for table, query in SERVING_TABLES:
            for staged, staging_query in STAGING.get(table, ()):
                warehouse.execute(
                    f"CREATE TABLE {_SCRATCH_ALIAS}.{staged} AS "
                    + _render(warehouse, staging_query)
                )
            sql = _render(warehouse, query)
            params = {"refreshed_at": refreshed_at} if "$refreshed_at" in sql else None
            warehouse.execute(f"CREATE TABLE {_BUILD_ALIAS}.{table} AS {sql}", params)
            row_counts[table] = warehouse.execute(
                f"SELECT count(*) FROM {_BUILD_ALIAS}.{table}"
            ).fetchone()[0]
            for staged, _ in STAGING.get(table, ()):
                warehouse.execute(f"DROP TABLE {_SCRATCH_ALIAS}.{staged}")
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
        "row_counts": row_counts,
    }


def _attach(warehouse: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    quoted_path = str(path).replace("'", "''")  # ATTACH takes no bound parameter
    warehouse.execute(f"ATTACH '{quoted_path}' AS {alias}")


def _render(warehouse: duckdb.DuckDBPyConnection, query: str) -> str:
    """A build query with its placeholders filled in."""
    enums = {}
    if "{event_type_type}" in query:
        enums = {
            f"{column}_type": _enum_of(warehouse, "events_daily", column)
            for column in ("event_type", "source")
        }
    return query.format(
        build=_BUILD_ALIAS,
        scratch=_SCRATCH_ALIAS,
        version=EXTRACT_VERSION,
        user_bucket=USER_BUCKET.format("user_id"),
        **enums,
    )


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
    literals = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"ENUM({literals})"


def _detach_quietly(warehouse: duckdb.DuckDBPyConnection, alias: str) -> None:
    attached = warehouse.execute(
        "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]
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
