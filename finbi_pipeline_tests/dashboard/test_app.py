"""The Streamlit app, driven headless with Streamlit's AppTest."""

from __future__ import annotations

import base64
import json
from datetime import date
from decimal import Decimal

import duckdb
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from finbi_pipeline.dashboard import app as app_module
from finbi_pipeline.dashboard.extract import serving_path
from finbi_pipeline.dashboard.server import APP_PATH

from ._warehouse import (
    EXPECTED_KPIS,
    KPI_SUMMARY_SQL,
    add_events,
    create_empty_warehouse,
    refresh,
)


def run_app() -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, tuple[str, str]]:
    """label -> (value, delta) of every st.metric on the page."""
    return {m.label: (m.value, m.delta) for m in at.metric}


def values(at: AppTest) -> dict[str, str]:
    return {label: value for label, (value, _) in metrics(at).items()}


def chart(at: AppTest, title: str) -> dict:
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        if spec["layout"].get("title", {}).get("text") == title:
            return spec
    raise AssertionError(f"no chart titled {title!r}")


def array(value) -> list:
    """Plotly sends numeric arrays base64-encoded ({"dtype", "bdata"}); decode them."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return list(value)


def test_empty_state_without_an_extract(finbi_home):
    at = run_app()
    assert at.title[0].value == "FinBI — retail finance dashboard"
    assert "No data to show yet" in at.info[0].value
    assert at.code[0].value == (
        "finbi load --source interactions data/interactions.csv\n"
        "finbi load --source sales data/sales.csv\n"
        "finbi run"
    )
    assert not at.metric
    assert not at.error


def test_empty_state_with_an_empty_extract(finbi_home):
    refresh(create_empty_warehouse(), finbi_home)
    at = run_app()
    assert "no interactions and no sales" in at.info[0].value
    assert "finbi run" in at.code[0].value
    assert not at.metric


def test_uploads_without_accepted_rows_still_show_the_data_panel(finbi_home):
    # Every key retracted with a header-only file: uploads processed, nothing to chart.
    con = create_empty_warehouse()
    con.execute(
        "INSERT INTO finbi.ingest_log VALUES ('up-1', 'sales', 'sales', 'raw/sales/b.csv',"
        " 'v2', 0, 0, 0, 0, 'ok', '', '2024-03-06 00:00')"
    )
    refresh(con, finbi_home)

    at = run_app()

    assert "the uploads processed hold no accepted rows" in at.info[0].value
    assert values(at)["Uploads processed"] == "1" and values(at)["Rows accepted"] == "0"
    assert len(at.metric) == 5  # the data panel's cards only: no KPI cards


def test_an_extract_from_another_version_asks_for_a_rebuild(finbi_home):
    path = serving_path(finbi_home)
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE TABLE extract_info AS SELECT now() AS refreshed_at")
    at = run_app()
    assert "needs a rebuild" in at.info[0].value
    assert "finbi run" in at.code[0].value
    assert not at.metric


@pytest.mark.parametrize("emptied", ["finbi.interactions", "finbi.sales"])
def test_only_interactions_or_only_sales(warehouse, finbi_home, emptied):
    warehouse.execute(f"DELETE FROM {emptied}")
    refresh(warehouse, finbi_home)
    at = run_app()
    shown = values(at)
    if emptied == "finbi.sales":
        assert (shown["Views"], shown["Orders"], shown["Avg order value"]) == ("9", "0", "—")
        assert any("No sales for these filters" in i.value for i in at.info)
    else:
        assert (shown["Views"], shown["Conversion rate"], shown["Orders"]) == ("0", "—", "4")
        assert any("No events for these filters" in i.value for i in at.info)


def test_kpi_cards_show_the_kpi_summary_figures(extract, warehouse):
    at = run_app()
    row = warehouse.execute(KPI_SUMMARY_SQL).fetchone()
    views, carts, purchases, rate, orders, units, gross, returns, net, aov = row
    shown = values(at)
    assert shown["Views"] == f"{views:,}" == "9"
    assert shown["Add-to-carts"] == str(carts) == "2"
    assert shown["Purchases"] == str(purchases) == "2"
    assert shown["Conversion rate"] == f"{rate:.2%}" == "22.22%"
    assert shown["Orders"] == str(orders) == "4"
    assert shown["Units"] == str(units) == "11"
    assert shown["Gross revenue"] == "164.50" == f"{gross:.2f}"
    assert shown["Returns"] == "10.00" == f"{returns:.2f}"
    assert shown["Net revenue"] == "154.50" == f"{net:.2f}"
    assert shown["Avg order value"] == "41.13"  # 41.125 rounded half up, for display only
    assert aov == pytest.approx(float(EXPECTED_KPIS["average_order_value"]))


def test_kpi_deltas_against_the_previous_period(extract):
    at = run_app()
    at.date_input(key="date_range").set_value((date(2024, 3, 4), date(2024, 3, 5))).run()
    shown = metrics(at)
    # Worked out in test_queries.test_kpi_deltas.
    assert shown["Views"] == ("3", "+0")
    assert shown["Add-to-carts"] == ("0", "-1")
    assert shown["Purchases"] == ("0", "-2")
    assert shown["Conversion rate"] == ("0.00%", "-66.67 pp")
    assert shown["Orders"] == ("2", "+0")
    assert shown["Units"] == ("7", "+3")
    assert shown["Gross revenue"] == ("39.00", "-86.50")
    assert shown["Returns"] == ("10.00", "+10.00")
    assert shown["Net revenue"] == ("29.00", "-96.50")
    assert shown["Avg order value"] == ("19.50", "-43.25")
    assert "previous 2 days (2024-03-02 to 2024-03-03)" in at.metric[0].help
    assert "showing 2024-03-04 to 2024-03-05 (2 days)" in at.caption[0].value


def test_widgets_and_charts_are_all_there(extract):
    at = run_app()
    assert at.selectbox(key="user_id").options == ["u1", "u2", "u3", "o'brien"]
    assert at.multiselect(key="event_types").options == [
        "VIEW", "ADD_TO_CART", "PURCHASE", "FAVORITE",
    ]  # fmt: skip
    assert at.multiselect(key="sources").options == ["app", "pos", "shop", "web"]
    assert at.date_input(key="date_range").value == (date(2024, 3, 1), date(2024, 3, 5))
    assert at.radio(key="grain").options == ["Day", "Week", "Month"]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles == [
        "Events by type",
        "Funnel: view → add to cart → purchase",
        "Events per day",
        "Revenue per day",
        "Top items by net revenue",
        "Top items by purchases",
    ]
    donut = chart(at, "Events by type")["data"][0]
    assert donut["hole"] == 0.55
    funnel = chart(at, "Funnel: view → add to cart → purchase")["data"][0]
    assert (funnel["type"], array(funnel["x"])) == ("funnel", [9, 2, 2])
    revenue = chart(at, "Revenue per day")["data"]
    assert [trace["name"] for trace in revenue] == ["Gross", "Returns", "Net"]
    download = at.get("download_button")[0]
    assert download.proto.label == "Download CSV"
    assert download.proto.ignore_rerun


def test_filtered_table_on_request(extract):
    at = run_app()
    tables_before = len(at.dataframe)
    at.toggle(key="show_table").set_value(True).run()
    assert len(at.dataframe) == tables_before + 1
    at.multiselect(key="sources").set_value(["web"]).run()
    table = next(df.value for df in at.dataframe if "other_events" in df.value.columns)
    assert table.views.tolist() == [2, 1, 1, 2]  # web views on 03-01 .. 03-04
    assert table.orders.sum() == 0  # no sales through "web"


def test_event_type_filter_changes_kpis_and_charts(extract):
    at = run_app()
    at.multiselect(key="event_types").set_value(["PURCHASE"]).run()
    shown = values(at)
    assert (shown["Views"], shown["Purchases"], shown["Conversion rate"]) == ("0", "2", "—")
    assert shown["Gross revenue"] == "164.50"  # sales do not have event types
    donut = chart(at, "Events by type")["data"][0]
    assert donut["labels"] == ["PURCHASE"]
    bars = chart(at, "Events per day")["data"]
    assert [trace["name"] for trace in bars] == ["PURCHASE"]


def test_source_filter(extract):
    at = run_app()
    at.multiselect(key="sources").set_value(["pos"]).run()
    shown = values(at)
    assert (shown["Views"], shown["Orders"], shown["Gross revenue"]) == ("0", "1", "9.00")


def test_grain_selector(extract):
    at = run_app()
    at.radio(key="grain").set_value("week").run()
    spec = chart(at, "Events per week")
    periods = {x[:10] for trace in spec["data"] for x in trace["x"]}
    assert sorted(periods) == ["2024-02-26", "2024-03-04"]
    assert chart(at, "Revenue per week")


def test_user_drill_down(extract):
    at = run_app()
    at.selectbox(key="user_id").set_value("u1").run()
    shown = values(at)
    assert (shown["Views"], shown["Orders"], shown["Net revenue"]) == ("3", "1", "15.50")
    assert at.subheader[0].value == "Customer u1"
    assert shown["Events (all time)"] == "5"
    assert shown["Purchases (all time)"] == "1"
    assert shown["Orders (all time)"] == "1"
    assert shown["Gross revenue (all time)"] == "25.50"
    assert shown["Returns (all time)"] == "10.00"
    assert any(
        "First event 2024-03-01 09:00, last event 2024-03-05 18:00 (UTC)" in c.value
        for c in at.caption
    )
    assert [t.label for t in at.tabs] == ["Timeline", "Orders"]
    timeline, orders = (df.value for df in at.dataframe[:2])
    assert timeline.event_type.tolist() == ["VIEW", "PURCHASE", "ADD_TO_CART", "VIEW", "VIEW"]
    assert orders.order_id.tolist() == ["c1", "o1"]
    assert "customer u1" in at.caption[0].value

    at.selectbox(key="user_id").set_value(None).run()
    assert values(at)["Views"] == "9"
    assert not [s for s in at.subheader if s.value.startswith("Customer")]


def test_a_user_id_with_a_quote(extract):
    at = run_app()
    at.selectbox(key="user_id").set_value("o'brien").run()
    assert values(at)["Views"] == "1"
    assert at.subheader[0].value == "Customer o'brien"


def test_a_user_download_is_named_after_the_user_id_made_safe():
    assert app_module.file_name_part("u1") == "u1"
    assert app_module.file_name_part("o'brien") == "o_brien"
    assert app_module.file_name_part("../etc/passwd") == "etc_passwd"
    assert app_module.file_name_part("Zoë Smith <zs@example.org>") == "Zoë_Smith_zs_example.org"
    assert app_module.file_name_part("///") == "_"


def test_data_panel(extract):
    at = run_app()
    shown = values(at)
    with duckdb.connect(str(extract), read_only=True) as con:
        refreshed_at = con.execute("SELECT refreshed_at FROM extract_info").fetchone()[0]
    assert shown["Last refresh (UTC)"] == f"{refreshed_at:%Y-%m-%d %H:%M}"
    assert shown["Uploads processed"] == "2"
    assert shown["Rows accepted"] == "20"
    assert shown["Rows duplicate"] == "1"
    assert shown["Rows quarantined"] == "2"
    reasons = at.dataframe[-2].value  # quarantine reasons, then the upload log
    assert sorted(reasons.reason) == [
        "event type not allowed",
        "quantity must be a non-zero integer",
    ]
    assert "uploads by status: ok 2" in at.caption[-1].value


def test_a_new_extract_is_picked_up_without_restart(extract, warehouse, finbi_home):
    at = run_app()
    assert values(at)["Views"] == "9"
    add_events(warehouse, [("u9", "i1", "VIEW", "2024-03-07 10:00", "web")] * 3)
    refresh(warehouse, finbi_home)
    at.run()  # what the watcher fragment triggers when the file's signature changes
    assert values(at)["Views"] == "12"
    # The viewer never touched the date range, so it follows the extract's new last day.
    assert at.date_input(key="date_range").value == (date(2024, 3, 1), date(2024, 3, 7))


def test_a_picked_date_range_survives_a_new_extract(extract, warehouse, finbi_home):
    at = run_app()
    at.date_input(key="date_range").set_value((date(2024, 3, 2), date(2024, 3, 3))).run()
    add_events(warehouse, [("u9", "i1", "VIEW", "2024-03-07 10:00", "web")])
    refresh(warehouse, finbi_home)
    at.run()
    assert at.date_input(key="date_range").value == (date(2024, 3, 2), date(2024, 3, 3))
    assert values(at)["Views"] == "3"


def test_value_formatting():
    assert app_module.format_money(Decimal("41.125")) == "41.13"
    assert app_module.format_money(Decimal("1234567.005")) == "1,234,567.01"
    assert app_module.format_money(None) == "—"
    assert app_module.format_delta("money", Decimal("-86.5")) == "-86.50"
    assert app_module.format_delta("count", 1234) == "+1,234"
    assert app_module.format_delta("rate", -2 / 3) == "-66.67 pp"
    assert app_module.format_rate(2 / 9) == "22.22%"
    assert app_module.format_value("rate", None) == "—"
    # Big figures are compact on the cards, exact elsewhere.
    assert app_module.format_value("money", Decimal("3567801.39"), compact=True) == "3.57M"
    assert app_module.format_value("money", Decimal("3567801.39")) == "3,567,801.39"
    assert app_module.format_value("money", Decimal("99999.99"), compact=True) == "99,999.99"
    assert app_module.format_value("money", Decimal("264301.92"), compact=True) == "264.30K"
    assert app_module.format_value("count", 9_999_999, compact=True) == "9,999,999"
    assert app_module.format_value("count", 12_345_678, compact=True) == "12.35M"
    assert app_module.format_delta("money", Decimal("-2500000"), compact=True) == "-2.50M"
    assert app_module.format_delta("count", 0) == "+0"
