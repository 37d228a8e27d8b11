"""The UCI Online Retail excerpt through the real pipeline, with the real-datasets sources.

Runs without ../shared: the excerpt is committed (CC BY 4.0, attributed in data/README.md).
`fixtures/uci_online_retail_excerpt.csv` is the header plus 194 lines of the by-day files:
2010-12-01.csv lines 102-200, 505-560, 620-630 and 1440-1450, 2010-12-20.csv line 372 and
2011-08-12.csv lines 625-640. It holds, on its lines (the header is line 1):

- 11: `"AIRLINE LOUNGE,METAL SIGN"`, a quoted description with a comma;
- 43, 56, 171, 172: cancellations (C invoices): -1 x 27.50, -1 x 4.65, -1 x 2.10,
  -2 x 0.85, so returns_value = 27.50 + 4.65 + 2.10 + 1.70 = 35.95;
- two exact duplicate lines (invoices 536409 and 536412);
- 161, 173-179, 185-187: guest checkouts (empty CustomerID); 161 has a zero price;
- 179: a description holding a UTF-8 '£';
- 185-187: 'A' (adjust bad debt) invoices, at 14:50-14:52 British Summer Time: A563185 at
  +11,062.06 is an ordinary line, A563186 and A563187 at -11,062.06 break unit_price >= 0.

So 194 lines read = 190 accepted + 2 duplicates + 2 quarantined, and the KPIs are the
figures below, which `_independent` recomputes from the file (plain Python, no pipeline).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from . import _independent as independent
from ._pipeline import PipelineRun, run_files

EXCERPT = Path(__file__).resolve().parents[1] / "fixtures" / "uci_online_retail_excerpt.csv"
UCI_COLUMNS = {
    "order_id": "InvoiceNo",
    "item_id": "StockCode",
    "quantity": "Quantity",
    "unit_price": "UnitPrice",
    "timestamp": "InvoiceDate",
    "user_id": "CustomerID",
    "country": "Country",
}
UK_TIME = independent.local_time("%Y-%m-%d %H:%M:%S", "Europe/London")

# Worked out by hand from the excerpt (see the module docstring), and by _independent.
HAND_KPIS = {
    "total_views": 0,
    "total_add_to_carts": 0,
    "total_purchases": 0,
    "conversion_rate": None,
    "total_users": 0,
    "orders": 20,
    "units": 3075,
    "gross_revenue": Decimal("17650.99"),
    "returns_value": Decimal("35.95"),
    "net_revenue": Decimal("17615.04"),
    # 17,650.99 / 20 = 882.5495
    "average_order_value": Decimal("882.5495"),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    return run_files(tmp_path_factory.mktemp("uci_excerpt"), "uci_online_retail", [EXCERPT])


@pytest.fixture(scope="module")
def expected() -> independent.Expected:
    return independent.sales(
        [EXCERPT], columns=UCI_COLUMNS, parse_time=UK_TIME, integer_user_ids=True
    )


def test_pipeline_succeeds(run: PipelineRun) -> None:
    assert run.success, run.failures


def test_upload_reconciles(run: PipelineRun, expected: independent.Expected) -> None:
    log = run.uploads[EXCERPT.name]
    assert independent.count_records(EXCERPT, header=True) == 194
    assert (log["rows_read"], log["rows_accepted"], log["rows_duplicate"]) == (194, 190, 2)
    assert log["rows_quarantined"] == 2
    account = expected.files[EXCERPT.name]
    assert (account.rows_read, account.accepted, account.duplicate) == (194, 190, 2)
    assert account.quarantined == [(186, "unit_price"), (187, "unit_price")]


def test_kpis_match_hand_and_independent_computation(
    run: PipelineRun, expected: independent.Expected
) -> None:
    computed = {**independent.funnel_kpis([]), **independent.revenue_kpis(expected.rows)}
    assert computed == HAND_KPIS
    observed = {name: run.kpis[name] for name in HAND_KPIS}
    assert observed == HAND_KPIS
    assert run.kpis["net_revenue"] == run.kpis["gross_revenue"] - run.kpis["returns_value"]


def test_bad_debt_rows_are_quarantined_with_their_lines(run: PipelineRun) -> None:
    rows = [(q["line_number"], q["column_name"], q["reason"]) for q in run.quarantine]
    assert [(line, column) for line, column, _ in rows] == [
        (186, "unit_price"),
        (187, "unit_price"),
    ]
    assert all(reason.startswith("unit_price") and "-11062.06" in reason for *_, reason in rows)


def test_rows_land_typed_and_in_utc(run: PipelineRun) -> None:
    def line(order: str, item: str) -> tuple:
        found = run.query(
            "SELECT user_id, quantity, unit_price, amount, sale_time, country "
            f"FROM finbi.sales WHERE order_id = '{order}' AND item_id = '{item}'"
        )
        assert len(found) == 1, (order, item, found)
        return found[0]

    # "14527.0" is customer 14527; winter: UK time is UTC.
    assert line("C536379", "D") == (
        "14527",
        -1,
        Decimal("27.5"),
        Decimal("-27.5"),
        dt.datetime(2010, 12, 1, 9, 41),
        "United Kingdom",
    )
    # The quoted comma stays inside the description: the columns after it are intact.
    assert line("536381", "82567")[1:3] == (2, Decimal("2.1"))
    # Guest checkout with a '£' in its description; summer: 14:50 BST is 13:50 UTC.
    assert line("539492", "gift_0001_40")[0] is None
    assert line("A563185", "B")[0::4] == (None, dt.datetime(2011, 8, 12, 13, 50))
    # The duplicate line counts once.
    assert (
        run.query("SELECT COUNT(*) FROM finbi.sales WHERE order_id = '536412'")[0][0]
        == len(
            [r for r in independent.records(EXCERPT, header=True) if r[1]["InvoiceNo"] == "536412"]
        )
        - 1
    )


def test_curated_rows_equal_independent_rows(
    run: PipelineRun, expected: independent.Expected
) -> None:
    curated = run.query(
        "SELECT order_id, user_id, item_id, quantity, unit_price, sale_time, country "
        "FROM finbi.sales"
    )
    assert sorted(curated, key=repr) == sorted(expected.rows, key=repr)
