"""Merging new aggregate rows into a stored aggregate table, touching only their keys.

Used by the analytics refresh (`table_refresh.Merge`) and the serving extract's SUM tables:
a refresh after new uploads groups the stored rows of the keys the new rows carry together
with the new rows, deletes those stored rows and inserts the merged ones. The rest of the
table is not rewritten, so a refresh costs what the new rows touch, plus one pass over the
key columns to find them.
"""

from __future__ import annotations

import duckdb

_DELTA, _MERGED = "finbi_merge_delta", "finbi_merge_merged"


def merge_aggregates(
    con: duckdb.DuckDBPyConnection,
    target: str,
    new_rows_sql: str,
    keys: tuple[str, ...],
    combine: dict[str, str] | None = None,
) -> None:
    """Merge the aggregate rows of the DuckDB query `new_rows_sql` into table `target`.

    Rows are matched on `keys` (NULL matches NULL, as GROUP BY does). Every other column is
    summed unless `combine` gives its expression over the group (e.g. `MIN(first_seen)`);
    results are cast back to the stored column types.
    """
    combine = combine or {}
    columns = con.execute(f"DESCRIBE {target}").fetchall()
    select = ", ".join(
        name
        if name in keys
        else f"CAST({combine.get(name, f'SUM({name})')} AS {column_type}) AS {name}"
        for name, column_type, *_ in columns
    )
    matches = " AND ".join(f"t.{key} IS NOT DISTINCT FROM d.{key}" for key in keys)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_DELTA} AS {new_rows_sql}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_MERGED} AS SELECT {select} FROM ("
        f"SELECT t.* FROM {target} AS t SEMI JOIN {_DELTA} AS d ON {matches} "
        f"UNION ALL BY NAME SELECT * FROM {_DELTA}) GROUP BY {', '.join(keys)}"
    )
    con.execute(f"DELETE FROM {target} AS t USING {_DELTA} AS d WHERE {matches}")
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {_MERGED}")
    con.execute(f"DROP TABLE {_DELTA}")
    con.execute(f"DROP TABLE {_MERGED}")
