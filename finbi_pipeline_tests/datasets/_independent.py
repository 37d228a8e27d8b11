"""An independent reading of raw retail CSVs under DESIGN.md's rules, for the dataset tests.

Plain Python only (csv, decimal, datetime, zoneinfo): no pipeline code, no SQL, no DuckDB.
The rules are DESIGN.md's "Contract: data quality" and "Definitions", read afresh:

- interactions need user_id, item_id, an event type the source allows, a timestamp;
- sales need order_id, item_id, an integer non-zero quantity, a unit_price >= 0 and a
  timestamp; user_id may be empty;
- the timestamp must fall in [1990-01-01, now + 1 day);
- rows identical in every canonical column count once, within and across files
  (files are taken in the order given);
- KPIs: conversion_rate = purchases / views; gross_revenue sums quantity * unit_price over
  lines with quantity > 0, returns_value sums -amount over lines with quantity < 0,
  net = gross - returns, orders = distinct order_id with a line of quantity > 0,
  units = sum of positive quantities, average_order_value = gross / orders.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

EPOCH = dt.datetime(1970, 1, 1)
PLAUSIBLE_FROM = dt.datetime(1990, 1, 1)
FOUR_PLACES = Decimal("0.0001")

# A timestamp parser: raw text -> naive UTC datetime, or None when it cannot be parsed.
TimeParser = Callable[[str], dt.datetime | None]


def epoch_seconds(raw: str) -> dt.datetime | None:
    try:
        seconds = Decimal(raw)
    except InvalidOperation:
        return None
    if not seconds.is_finite():
        return None
    return EPOCH + dt.timedelta(seconds=float(seconds))


def local_time(pattern: str, zone: str) -> TimeParser:
    """A strptime pattern read as wall-clock time in `zone`, converted to naive UTC."""
    tz = ZoneInfo(zone)

    @cache
    def parse(raw: str) -> dt.datetime | None:
        try:
            local = dt.datetime.strptime(raw, pattern)
        except ValueError:
            return None
        return local.replace(tzinfo=tz).astimezone(dt.UTC).replace(tzinfo=None)

    return parse


@dataclass
class FileAccount:
    """What one file contributes: read = accepted + duplicate + quarantined."""

    rows_read: int = 0
    accepted: int = 0
    duplicate: int = 0
    # (physical line number, column the first broken rule is about)
    quarantined: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Expected:
    files: dict[str, FileAccount]
    rows: list[tuple]  # the distinct accepted rows, canonical columns only

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files.values())

    @property
    def duplicates(self) -> int:
        return sum(f.duplicate for f in self.files.values())


def records(path: Path, header: bool, names: tuple[str, ...] = ()) -> Iterator[tuple[int, dict]]:
    """(first physical line, {column: text}) per data record, read with the csv module."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        columns = next(reader) if header else list(names)
        last_line = reader.line_num
        for row in reader:
            line, last_line = last_line + 1, reader.line_num
            if len(row) != len(columns):
                raise AssertionError(f"{path}:{line}: {len(row)} fields, expected {len(columns)}")
            yield line, dict(zip(columns, row, strict=True))


def count_records(path: Path, header: bool) -> int:
    """Data records in a CSV file, by the csv module (quoted newlines stay in one record)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - int(header)


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _plausible(moment: dt.datetime, now: dt.datetime) -> bool:
    return PLAUSIBLE_FROM <= moment < now + dt.timedelta(days=1)


def interactions(
    files: list[Path],
    *,
    columns: dict[str, str],
    event_types: dict[str, str],
    allowed: set[str],
    parse_time: TimeParser,
    header: bool = True,
    names: tuple[str, ...] = (),
) -> Expected:
    """Expected rows (user_id, item_id, event_type, event_time) and per-file accounts.

    `columns` maps canonical -> file column; `event_types` maps lower-case raw values to
    canonical ones (others are upper-cased); `allowed` are the accepted event types.
    """
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    seen: set[tuple] = set()
    accounts: dict[str, FileAccount] = {}
    for path in files:
        account = accounts[path.name] = FileAccount()
        for line, record in records(path, header, names):
            account.rows_read += 1
            user = _text(record[columns["user_id"]])
            item = _text(record[columns["item_id"]])
            raw_event = _text(record[columns["event_type"]])
            raw_time = _text(record[columns["timestamp"]])
            event = event_types.get(raw_event.lower(), raw_event.upper()) if raw_event else None
            moment = parse_time(raw_time) if raw_time else None
            broken = (
                "user_id"
                if user is None
                else "item_id"
                if item is None
                else "event_type"
                if event not in allowed
                else "timestamp"
                if moment is None or not _plausible(moment, now)
                else None
            )
            if broken:
                account.quarantined.append((line, broken))
                continue
            row = (user, item, event, moment)
            if row in seen:
                account.duplicate += 1
            else:
                seen.add(row)
                account.accepted += 1
    return Expected(accounts, list(seen))


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT_ID = re.compile(r"([0-9]+)\.0+")


def sales(
    files: list[Path],
    *,
    columns: dict[str, str],
    parse_time: TimeParser,
    integer_user_ids: bool = False,
) -> Expected:
    """Expected rows (order_id, user_id, item_id, quantity, unit_price, sale_time, country)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    seen: set[tuple] = set()
    accounts: dict[str, FileAccount] = {}
    for path in files:
        account = accounts[path.name] = FileAccount()
        for line, record in records(path, header=True):
            account.rows_read += 1
            order = _text(record[columns["order_id"]])
            user = _text(record.get(columns.get("user_id", ""), ""))
            if user and integer_user_ids and (match := _FLOAT_ID.fullmatch(user)):
                user = match.group(1)
            item = _text(record[columns["item_id"]])
            raw_quantity = _text(record[columns["quantity"]]) or ""
            quantity = int(raw_quantity) if _INTEGER.fullmatch(raw_quantity) else None
            try:
                price = Decimal(_text(record[columns["unit_price"]]) or "x")
            except InvalidOperation:
                price = None
            raw_time = _text(record[columns["timestamp"]])
            moment = parse_time(raw_time) if raw_time else None
            country = _text(record.get(columns.get("country", ""), ""))
            broken = (
                "order_id"
                if order is None
                else "item_id"
                if item is None
                else "quantity"
                if not quantity
                else "unit_price"
                if price is None or not price.is_finite() or price < 0
                else "timestamp"
                if moment is None or not _plausible(moment, now)
                else None
            )
            if broken:
                account.quarantined.append((line, broken))
                continue
            row = (order, user, item, quantity, price, moment, country)
            if row in seen:
                account.duplicate += 1
            else:
                seen.add(row)
                account.accepted += 1
    return Expected(accounts, list(seen))


def funnel_kpis(rows: list[tuple]) -> dict:
    """total_views, total_add_to_carts, total_purchases, conversion_rate, total_users."""
    counts = {"VIEW": 0, "ADD_TO_CART": 0, "PURCHASE": 0}
    for _user, _item, event, _time in rows:
        if event in counts:
            counts[event] += 1
    views, purchases = counts["VIEW"], counts["PURCHASE"]
    return {
        "total_views": views,
        "total_add_to_carts": counts["ADD_TO_CART"],
        "total_purchases": purchases,
        "conversion_rate": purchases / views if views else None,
        "total_users": len({row[0] for row in rows}),
    }


def revenue_kpis(rows: list[tuple]) -> dict:
    """orders, units, gross_revenue, returns_value, net_revenue, average_order_value."""
    orders: set[str] = set()
    units, gross, returns = 0, Decimal(0), Decimal(0)
    for order, _user, _item, quantity, price, _time, _country in rows:
        if quantity > 0:
            orders.add(order)
            units += quantity
            gross += quantity * price
        else:
            returns += -quantity * price
    # Stored rounded down to 4 places, so that rounding it to cents rounds the exact quotient.
    aov = (gross / len(orders)).quantize(FOUR_PLACES, ROUND_FLOOR) if orders else None
    return {
        "orders": len(orders),
        "units": units,
        "gross_revenue": gross,
        "returns_value": returns,
        "net_revenue": gross - returns,
        "average_order_value": aov,
    }
