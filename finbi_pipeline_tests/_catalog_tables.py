"""The catalog tables `interactions` and `sales` in the contract's shape (DESIGN.md), empty,
for tests that fill them by hand."""

import duckdb


def create_catalog_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "CREATE TABLE interactions (user_id VARCHAR, item_id VARCHAR, event_type VARCHAR,"
        " event_time TIMESTAMP, event_date DATE, source VARCHAR, upload_id VARCHAR)"
    )
    con.execute(
        "CREATE TABLE sales (order_id VARCHAR, user_id VARCHAR, item_id VARCHAR,"
        " quantity BIGINT, unit_price DECIMAL(18,4), amount DECIMAL(18,4),"
        " sale_time TIMESTAMP, sale_date DATE, country VARCHAR, source VARCHAR,"
        " upload_id VARCHAR)"
    )
