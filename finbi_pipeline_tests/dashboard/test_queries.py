"""The dashboard's queries on the hand-made fixture (see `_warehouse.py` for the rows)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from decimal import Decimal

import pytest

from finbi_pipeline.dashboard import queries
from finbi_pipeline.dashboard.extract import serving_path
from finbi_pipeline.dashboard.queries import Filters

from ._warehouse import EXPECTED_KPIS, FIRST_DAY, KPI_SUMMARY_SQL, LAST_DAY, refresh

ALL = Filters(FIRST_DAY, LAST_DAY)


def test_kpis_match_hand_computed_figures(con):
    assert asdict(queries.kpis(con, ALL)) == pytest.approx(EXPECTED_KPIS)


def test_kpis_match_kpi_summary_sql_over_the_warehouse(con, warehouse):
    row = warehouse.execute(KPI_SUMMARY_SQL).fetchone()
    k = queries.kpis(con, ALL)
    assert (k.views, k.add_to_carts, k.purchases) == row[:3]
    assert k.conversion_rate == pytest.approx(row[3])
    assert (k.orders, k.units, k.gross_revenue, k.returns_value, k.net_revenue) == row[4:9]
    assert k.average_order_value == pytest.approx(row[9])


def test_money_is_exact_decimal(con):
    k = queries.kpis(con, ALL)
    assert isinstance(k.gross_revenue, Decimal)
    assert isinstance(k.average_order_value, Decimal)
    assert k.average_order_value == Decimal("41.125")


def test_date_range_filter(con):
    k = queries.kpis(con, Filters(date(2024, 3, 4), date(2024, 3, 5)))
    # Events on 03-04: u3 VIEW x2; 03-05: u1 VIEW.
    # Sales: o3 (3 x 10), c1 (a return of 10), o4 (4 x 2.25).
    assert (k.views, k.add_to_carts, k.purchases) == (3, 0, 0)
    assert k.conversion_rate == 0
    assert (k.orders, k.units) == (2, 7)
    assert (k.gross_revenue, k.returns_value, k.net_revenue) == (
        Decimal("39.00"),
        Decimal("10.00"),
        Decimal("29.00"),
    )
    assert k.average_order_value == Decimal("19.50")


def test_event_type_filter_applies_to_events_only(con):
    k = queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, event_types=("PURCHASE",)))
    assert (k.views, k.add_to_carts, k.purchases) == (0, 0, 2)
    assert k.conversion_rate is None  # no views: undefined, not zero
    assert k.gross_revenue == EXPECTED_KPIS["gross_revenue"]


def test_source_filter(con):
    k = queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, sources=("app", "pos")))
    # app: u2 VIEW x2, ADD_TO_CART, PURCHASE; u1 VIEW on 03-05. pos: o4.
    assert (k.views, k.add_to_carts, k.purchases) == (3, 1, 1)
    assert (k.orders, k.units, k.gross_revenue) == (1, 4, Decimal("9.00"))


def test_user_filter(con):
    k = queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, user_id="u1"))
    assert (k.views, k.add_to_carts, k.purchases) == (3, 1, 1)
    assert (k.orders, k.units) == (1, 3)
    assert (k.gross_revenue, k.returns_value, k.net_revenue) == (
        Decimal("25.50"),
        Decimal("10.00"),
        Decimal("15.50"),
    )


def test_an_order_split_over_days_and_sources_counts_once(warehouse, finbi_home):
    """sales_orders has one row per order and day and source: such an order has several."""
    warehouse.execute(
        """
        INSERT INTO finbi.sales VALUES
          ('o5', 'u3', 'i1', 1, 10, 10, '2024-03-04 23:59', '2024-03-04', 'UK', 'shop', 'up-2'),
          ('o5', 'u3', 'i2', 1, 5, 5, '2024-03-05 00:01', '2024-03-05', 'UK', 'shop', 'up-2'),
          ('o5', 'u3', 'i3', 2, 1, 2, '2024-03-05 00:02', '2024-03-05', 'UK', 'pos', 'up-2'),
          ('o5', 'u3', 'i3', -1, 1, -1, '2024-03-05 00:03', '2024-03-05', 'UK', 'pos', 'up-2')
        """
    )
    refresh(warehouse, finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    assert queries.kpis(con, ALL).orders == 5
    assert queries.kpis(con, Filters(date(2024, 3, 5), LAST_DAY)).orders == 2  # o4, o5
    assert queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, sources=("pos",))).orders == 2
    assert queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, user_id="u3")).orders == 2
    assert queries.daily_table(con, ALL).orders.tolist() == [0, 1, 1, 2, 2]
    assert len(queries.user_orders(con, Filters(FIRST_DAY, LAST_DAY, user_id="u3"))) == 2


@pytest.mark.parametrize("user_id", ["x' OR '1'='1", "u1' --", "%", "u%"])
def test_user_id_is_bound_literally(con, user_id):
    f = Filters(FIRST_DAY, LAST_DAY, user_id=user_id)
    k = queries.kpis(con, f)
    assert (k.views, k.orders) == (0, 0)
    assert queries.events_by_type(con, f).empty
    assert queries.user_profile(con, user_id) is None
    assert queries.user_timeline(con, f).empty


def test_user_id_with_a_quote_is_found(con):
    f = Filters(FIRST_DAY, LAST_DAY, user_id="o'brien")
    assert queries.kpis(con, f).views == 1
    assert queries.user_profile(con, "o'brien")["views"] == 1


def test_event_type_and_source_values_are_bound_literally(con):
    f = Filters(FIRST_DAY, LAST_DAY, event_types=("VIEW') OR ('1'='1",), sources=("web' --",))
    k = queries.kpis(con, f)
    assert (k.views, k.purchases, k.orders) == (0, 0, 0)


def test_previous_period_has_the_same_length():
    f = Filters(date(2024, 3, 4), date(2024, 3, 5), event_types=("VIEW",))
    before = f.previous_period()
    assert (before.start, before.end, before.days) == (date(2024, 3, 2), date(2024, 3, 3), 2)
    assert before.event_types == ("VIEW",)


def test_kpi_deltas(con):
    f = Filters(date(2024, 3, 4), date(2024, 3, 5))
    deltas = queries.kpi_deltas(queries.kpis(con, f), queries.kpis(con, f.previous_period()))
    # Previous period 03-02..03-03: views 3, carts 1, purchases 2, orders o1+o2, units 4,
    # gross 125.50, returns 0.
    assert deltas["views"] == 0
    assert deltas["add_to_carts"] == -1
    assert deltas["purchases"] == -2
    assert deltas["conversion_rate"] == pytest.approx(0 - 2 / 3)
    assert deltas["orders"] == 0
    assert deltas["units"] == 3
    assert deltas["gross_revenue"] == Decimal("-86.50")
    assert deltas["returns_value"] == Decimal("10.00")
    assert deltas["net_revenue"] == Decimal("-96.50")
    assert deltas["average_order_value"] == Decimal("19.50") - Decimal("62.75")


def test_deltas_are_none_where_a_side_is_undefined(con):
    f = Filters(FIRST_DAY, LAST_DAY)  # the previous period holds no data
    deltas = queries.kpi_deltas(queries.kpis(con, f), queries.kpis(con, f.previous_period()))
    assert deltas["conversion_rate"] is None
    assert deltas["average_order_value"] is None
    assert deltas["views"] == 9


def test_events_by_type(con):
    df = queries.events_by_type(con, ALL)
    assert dict(zip(df.event_type, df.event_count, strict=True)) == {
        "VIEW": 9,
        "ADD_TO_CART": 2,
        "PURCHASE": 2,
        "FAVORITE": 1,
    }


@pytest.mark.parametrize(
    ("grain", "expected"),
    [
        ("day", {"2024-03-01": 4, "2024-03-02": 4, "2024-03-03": 3, "2024-03-04": 2,
                 "2024-03-05": 1}),
        ("week", {"2024-02-26": 11, "2024-03-04": 3}),  # weeks start on Monday
        ("month", {"2024-03-01": 14}),
    ],
)  # fmt: skip
def test_events_over_time(con, grain, expected):
    df = queries.events_over_time(con, ALL, grain)
    totals = df.groupby(df.period.dt.strftime("%Y-%m-%d")).event_count.sum().to_dict()
    assert totals == expected


def test_grain_is_checked(con):
    with pytest.raises(ValueError, match="grain"):
        queries.events_over_time(con, ALL, "hour'; DROP TABLE users; --")


def test_revenue_over_time(con):
    df = queries.revenue_over_time(con, ALL, "week")
    assert df.period.dt.strftime("%Y-%m-%d").tolist() == ["2024-02-26", "2024-03-04"]
    assert df.gross_revenue.tolist() == [125.5, 39.0]
    assert df.returns_value.tolist() == [0.0, 10.0]
    assert df.net_revenue.tolist() == [125.5, 29.0]


def test_funnel_follows_event_type_filter():
    k = queries.Kpis(10, 4, 2, 0.2, 0, 0, Decimal(0), Decimal(0), Decimal(0), None)
    assert queries.funnel(k).to_dict("list") == {
        "stage": ["VIEW", "ADD_TO_CART", "PURCHASE"],
        "event_count": [10, 4, 2],
    }
    assert queries.funnel(k, ("PURCHASE", "VIEW")).stage.tolist() == ["VIEW", "PURCHASE"]


def test_top_items_by_revenue(con):
    df = queries.top_items_by_revenue(con, ALL)
    # i3: 100; i1: 20 + 30 - 10 = 40 (units 5); i2: 5.50 + 9 = 14.50 (units 5)
    assert df.to_dict("list") == {
        "item_id": ["i3", "i1", "i2"],
        "units": [1, 5, 5],
        "net_revenue": [100.0, 40.0, 14.5],
    }
    mine = queries.top_items_by_revenue(con, Filters(FIRST_DAY, LAST_DAY, user_id="u1"))
    assert mine.to_dict("list") == {
        "item_id": ["i1", "i2"],
        "units": [2, 1],
        "net_revenue": [10.0, 5.5],
    }


def test_top_items_by_purchases(con):
    df = queries.top_items_by_purchases(con, ALL)
    assert df.to_dict("list") == {"item_id": ["i1", "i3"], "purchases": [1, 1]}
    mine = queries.top_items_by_purchases(con, Filters(FIRST_DAY, LAST_DAY, user_id="u2"))
    assert mine.to_dict("list") == {"item_id": ["i3"], "purchases": [1]}
    views_only = Filters(FIRST_DAY, LAST_DAY, event_types=("VIEW",))
    assert queries.top_items_by_purchases(con, views_only).empty


def test_user_path_equals_aggregate_path_summed_over_users(con):
    """Two paths answer each question: a user's rows must add up like the aggregates."""
    users = queries.user_options(con)
    per_user = [queries.kpis(con, Filters(FIRST_DAY, LAST_DAY, user_id=u)) for u in users]
    total = queries.kpis(con, ALL)
    assert sum(k.views for k in per_user) == total.views
    assert sum(k.purchases for k in per_user) == total.purchases
    # Guest order o3 (30.00, 3 units) belongs to no user.
    assert sum(k.gross_revenue for k in per_user) == total.gross_revenue - Decimal("30.00")
    assert sum(k.units for k in per_user) == total.units - 3


def test_daily_table(con):
    df = queries.daily_table(con, ALL)
    assert df.day.dt.strftime("%Y-%m-%d").tolist() == [
        "2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05",
    ]  # fmt: skip
    assert df.views.tolist() == [3, 2, 1, 2, 1]
    assert df.other_events.tolist() == [0, 1, 0, 0, 0]
    assert df.orders.tolist() == [0, 1, 1, 1, 1]
    assert df.net_revenue.tolist() == [0.0, 25.5, 100.0, 30.0, -1.0]
    csv = df.to_csv(index=False).splitlines()
    assert csv[0].startswith("day,views,add_to_carts,purchases,other_events,orders,units")
    assert csv[1].startswith("2024-03-01,3,1,0,0,0,0")


def test_the_csv_download_matches_the_table_with_money_exact(con):
    rows = queries.daily_csv(con, ALL).splitlines()
    table = queries.daily_table(con, ALL)
    assert rows[0] == ",".join(table.columns)
    assert rows[1].startswith("2024-03-01,3,1,0,0,0,0")
    assert [row.split(",")[-1] for row in rows[1:]] == [
        "0.0000", "25.5000", "100.0000", "30.0000", "-1.0000",
    ]  # fmt: skip


def test_the_csv_download_keeps_money_past_a_float_exact(warehouse, finbi_home):
    def gross_on_march_3() -> Decimal:
        refresh(warehouse, finbi_home)
        connection = queries.open_extract(serving_path(finbi_home))
        try:
            rows = queries.daily_csv(queries.reader(connection), ALL).splitlines()
        finally:
            connection.close()
        (march_3,) = [row for row in rows if row.startswith("2024-03-03,")]
        return Decimal(march_3.split(",")[-3])

    before = gross_on_march_3()
    # Two lines of 99,999,999,999,999.9999: a float has no digits left for the 0.0001s.
    line = "99999999999999.9999"
    for order in ("B1", "B3"):
        warehouse.execute(
            f"INSERT INTO finbi.sales VALUES ('{order}', 'u1', 'i1', 1, {line}, {line}, "
            "'2024-03-03 10:00', '2024-03-03', 'UK', 'web', 'up-2')"
        )

    assert gross_on_march_3() - before == 2 * Decimal(line)


def test_user_drill_down(con):
    f = Filters(FIRST_DAY, LAST_DAY, user_id="u1")
    profile = queries.user_profile(con, "u1")
    assert (profile["events"], profile["views"], profile["orders"]) == (5, 3, 1)
    assert profile["gross_revenue"] == Decimal("25.50")
    timeline = queries.user_timeline(con, f)
    assert timeline.event_type.tolist() == ["VIEW", "PURCHASE", "ADD_TO_CART", "VIEW", "VIEW"]
    orders = queries.user_orders(con, f)
    assert orders.order_id.tolist() == ["c1", "o1"]
    assert orders.net_revenue.tolist() == [-10.0, 25.5]


def test_users_and_filter_options(con):
    dims = queries.dimensions(con)
    assert (dims.first_date, dims.last_date) == (FIRST_DAY, LAST_DAY)
    assert dims.event_types == ["VIEW", "ADD_TO_CART", "PURCHASE", "FAVORITE"]
    assert dims.sources == ["app", "pos", "shop", "web"]
    assert (dims.events, dims.sales_lines, dims.is_empty) == (14, 6, False)
    assert queries.user_options(con) == ["u1", "u2", "u3", "o'brien"]  # most active first
    assert queries.user_options(con, limit=2) == ["u1", "u2"]


def test_data_panel(con):
    summary = queries.ingest_summary(con)
    assert summary["uploads"] == 2
    assert summary["uploads_by_status"] == {"ok": 2}
    assert (summary["rows_read"], summary["rows_accepted"]) == (23, 20)
    assert (summary["rows_duplicate"], summary["rows_quarantined"]) == (1, 2)
    reasons = queries.quarantine_reasons(con)
    assert sorted(reasons.reason) == [
        "event type not allowed",
        "quantity must be a non-zero integer",
    ]
    assert reasons.rows.tolist() == [1, 1]
    assert len(queries.ingest_log(con)) == 2


def test_a_re_uploaded_key_counts_its_current_version_only(warehouse, finbi_home):
    """The tables hold only what a key's latest upload gave; the totals say the same."""
    warehouse.execute(
        "INSERT INTO finbi.ingest_log VALUES ('up-3', 'interactions', 'interactions', "
        "'raw/interactions/a.csv', 'v2', 10, 10, 0, 0, 'ok', '', '2024-03-07 00:00')"
    )
    refresh(warehouse, finbi_home)
    con = queries.reader(queries.open_extract(serving_path(finbi_home)))
    summary = queries.ingest_summary(con)
    assert summary["uploads"] == 3  # every upload processed
    assert (summary["rows_read"], summary["rows_accepted"]) == (17, 16)  # up-3 + up-2
    assert (summary["rows_duplicate"], summary["rows_quarantined"]) == (0, 1)
    log = queries.ingest_log(con)
    keys = log.object_key + " " + log.ingested_at.astype(str)
    assert dict(zip(keys, log.is_current, strict=True)) == {
        "raw/interactions/a.csv 2024-03-07 00:00:00": True,
        "raw/interactions/a.csv 2024-03-06 00:00:00": False,
        "raw/sales/b.csv 2024-03-06 00:01:00": True,
    }
