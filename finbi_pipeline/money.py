"""Money as people read it: exact decimals until shown, then two places, half up."""

from decimal import ROUND_HALF_UP, Decimal


def format_money(value: Decimal | None) -> str:
    """Two decimals, half up, thousands separated: money is exact until here."""
    if value is None:
        return "—"
    return f"{Decimal(value).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"
