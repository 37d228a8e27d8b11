"""Money as `finbi run` and the dashboard print it."""

from decimal import Decimal

from finbi_pipeline.money import format_money
from finbi_pipeline.runner import RunSummary, format_summary


def test_money_rounds_half_up_to_cents():
    assert format_money(Decimal("0.0250")) == "0.03"
    assert format_money(Decimal("1234.5650")) == "1,234.57"
    assert format_money(None) == "—"


def test_the_run_summary_prints_money_as_the_dashboard_does():
    kpis = {
        "total_views": 10,
        "total_add_to_carts": 2,
        "total_purchases": 1,
        "conversion_rate": 0.1,
        "orders": 1,
        "units": 1,
        "gross_revenue": Decimal("1234.5650"),
        "returns_value": Decimal("0.0250"),
        "net_revenue": Decimal("1234.5400"),
        "average_order_value": None,
    }

    text = format_summary(RunSummary(success=True, uploads=1, kpis=kpis))

    assert "gross 1,234.57 · returns 0.03 · net 1,234.54 · AOV n/a" in text
    assert "conversion 10.00%" in text
