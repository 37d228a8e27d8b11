"""Tests for the streaming synthetic data generator."""

from __future__ import annotations

import csv
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from finbi_pipeline.generate import (
    INTERACTIONS_HEADER,
    SALES_HEADER,
    START_TS,
    generate_dataset,
)

REPO_ROOT = Path(__file__).parents[1]
ROWS = 20_000


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], list[dict]]:
    # Small chunks so the cross-chunk paths (funnel carry-over, order numbering) are exercised.
    out = tmp_path_factory.mktemp("sample")
    summary = generate_dataset(ROWS, out, seed=7, chunk_rows=6_000)
    interactions, sales = _read(summary.interactions_path), _read(summary.sales_path)
    assert summary.interaction_rows == len(interactions) == ROWS
    assert summary.sales_rows == len(sales)
    return interactions, sales


@pytest.mark.parametrize("rows", [0, 1, 999, 1000, 1001, 3000])
def test_exact_row_count_and_headers(tmp_path: Path, rows: int) -> None:
    summary = generate_dataset(rows, tmp_path, chunk_rows=1000)
    lines = summary.interactions_path.read_bytes().split(b"\n")
    assert lines[0].decode() == INTERACTIONS_HEADER
    assert lines[-1] == b""  # trailing newline, no CRLF anywhere
    assert len(lines) - 2 == rows == summary.interaction_rows
    sales = summary.sales_path.read_bytes()
    assert sales.split(b"\n")[0].decode() == SALES_HEADER
    assert b"\r" not in sales and b'"' not in sales
    assert sales.count(b"\n") - 1 == summary.sales_rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interactions.csv", "sales.csv"]


def test_row_format(sample: tuple[list[dict], list[dict]]) -> None:
    interactions, sales = sample
    first = interactions[0]
    assert first["user_id"].startswith("User_") and first["item_id"].startswith("Item_")
    stamps = [int(r["timestamp"]) for r in interactions]
    assert stamps == sorted(stamps)
    assert stamps[0] >= START_TS and stamps[-1] < START_TS + 31 * 86_400
    for row in sales[:50]:
        assert row["order_id"][0] in "OC"
        assert len(row["unit_price"].split(".")[1]) == 2
        datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S")


def test_deterministic_for_same_seed(tmp_path: Path) -> None:
    a = generate_dataset(5_000, tmp_path / "a", seed=3, chunk_rows=2_000)
    b = generate_dataset(5_000, tmp_path / "b", seed=3, chunk_rows=2_000)
    assert a.interactions_path.read_bytes() == b.interactions_path.read_bytes()
    assert a.sales_path.read_bytes() == b.sales_path.read_bytes()


def test_different_seed_differs(tmp_path: Path) -> None:
    a = generate_dataset(2_000, tmp_path / "a", seed=1)
    b = generate_dataset(2_000, tmp_path / "b", seed=2)
    assert a.interactions_path.read_bytes() != b.interactions_path.read_bytes()
    assert a.sales_path.read_bytes() != b.sales_path.read_bytes()


def test_funnel_proportions(sample: tuple[list[dict], list[dict]]) -> None:
    interactions, _ = sample
    share = {k: v / ROWS for k, v in Counter(r["event_type"] for r in interactions).items()}
    assert set(share) == {"VIEW", "ADD_TO_CART", "PURCHASE"}
    assert 0.76 < share["VIEW"] < 0.84
    assert 0.10 < share["ADD_TO_CART"] < 0.14
    assert 0.065 < share["PURCHASE"] < 0.095


def test_populations_are_skewed(sample: tuple[list[dict], list[dict]]) -> None:
    interactions, _ = sample
    users = Counter(r["user_id"] for r in interactions)
    items = Counter(r["item_id"] for r in interactions)
    assert len(users) <= ROWS // 20 and len(items) <= max(30, ROWS // 200)
    # The busiest tenth of users and items account for far more than a tenth of events.
    top_users = sum(c for _, c in users.most_common(len(users) // 10))
    top_items = sum(c for _, c in items.most_common(len(items) // 10))
    assert top_users > 0.2 * ROWS and top_items > 0.25 * ROWS


def test_every_purchase_has_a_sales_line(sample: tuple[list[dict], list[dict]]) -> None:
    interactions, sales = sample
    purchases = Counter(
        (r["user_id"], r["item_id"], int(r["timestamp"]))
        for r in interactions
        if r["event_type"] == "PURCHASE"
    )
    orders = Counter(
        (r["user_id"], r["item_id"], _epoch(r["timestamp"]))
        for r in sales
        if r["user_id"] and not r["order_id"].startswith("C")
    )
    assert purchases == orders


def test_purchases_follow_a_view(sample: tuple[list[dict], list[dict]]) -> None:
    interactions, _ = sample
    first_view: dict[tuple[str, str], int] = {}
    for r in interactions:
        if r["event_type"] == "VIEW":
            first_view.setdefault((r["user_id"], r["item_id"]), int(r["timestamp"]))
    for r in interactions:
        if r["event_type"] == "PURCHASE":
            assert first_view[(r["user_id"], r["item_id"])] <= int(r["timestamp"])


def test_other_seeds_hold_other_orders(tmp_path: Path) -> None:
    # More generated sales for the same shop must not become lines of its existing orders.
    a = _read(generate_dataset(2_000, tmp_path / "a", seed=1).sales_path)
    b = _read(generate_dataset(2_000, tmp_path / "b", seed=2).sales_path)
    assert a and b and not {r["order_id"] for r in a} & {r["order_id"] for r in b}


def test_orders_returns_and_prices(sample: tuple[list[dict], list[dict]]) -> None:
    _, sales = sample
    orders = {r["order_id"]: r for r in sales if r["order_id"].startswith("O")}
    returns = [r for r in sales if r["order_id"].startswith("C")]
    assert len(orders) == len(sales) - len(returns)  # order ids are unique
    assert all(re.fullmatch(r"O7-\d{7}", r["order_id"]) for r in orders.values())
    assert all(1 <= int(r["quantity"]) <= 5 for r in orders.values())
    assert 0.01 < len(returns) / len(orders) < 0.05
    for ret in returns:
        original = orders[ret["order_id"][1:]]
        assert ret["item_id"] == original["item_id"] and ret["user_id"] == original["user_id"]
        assert -int(original["quantity"]) <= int(ret["quantity"]) < 0
        assert _epoch(ret["timestamp"]) > _epoch(original["timestamp"])
    prices: dict[str, set[str]] = {}
    for r in sales:
        prices.setdefault(r["item_id"], set()).add(r["unit_price"])
    assert all(len(p) == 1 and float(next(iter(p))) > 0 for p in prices.values())


def test_guest_checkouts_have_no_user(sample: tuple[list[dict], list[dict]]) -> None:
    _, sales = sample
    guests = [r for r in sales if r["user_id"] == ""]
    assert 0.005 < len(guests) / len(sales) < 0.04
    assert all(r["item_id"].startswith("Item_") and r["country"] for r in guests)


def test_bundled_sample_matches_seed_42(tmp_path: Path) -> None:
    summary = generate_dataset(3000, tmp_path, seed=42)
    data = REPO_ROOT / "data"
    assert (data / "interactions.csv").read_bytes() == summary.interactions_path.read_bytes()
    assert (data / "sales.csv").read_bytes() == summary.sales_path.read_bytes()


def test_progress_reports_increasing_counts(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    generate_dataset(
        2_500, tmp_path, progress=lambda done, total: calls.append((done, total)), chunk_rows=1_000
    )
    assert calls == [(1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]


def test_failure_leaves_no_partial_files(tmp_path: Path) -> None:
    def boom(done: int, total: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        generate_dataset(2_000, tmp_path, progress=boom, chunk_rows=1_000)
    assert list(tmp_path.iterdir()) == []


def test_rejects_negative_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_dataset(-1, tmp_path)
