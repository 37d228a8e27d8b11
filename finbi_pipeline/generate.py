"""Streaming synthetic data generator for FinBI.

Writes two CSV files that look like a small online shop:

* ``interactions.csv`` -- clickstream events ``user_id,item_id,event_type,timestamp``
  (``User_1,Item_101,VIEW,1744260000``), sorted by epoch-second timestamp.
* ``sales.csv`` -- order lines ``order_id,user_id,item_id,quantity,unit_price,timestamp,country``
  modelled on the UCI Online Retail layout: one line per PURCHASE event, plus guest
  checkouts (empty ``user_id``) and returns (``C``-prefixed order id, negative quantity).
  Order ids hold the seed (``O42-0000001``), so files of different seeds share no order.

Rows are produced in fixed-size chunks with vectorised numpy and written with the Arrow
CSV writer, so peak memory depends on the chunk size only, never on the row count. The
output is a pure function of ``(rows, seed)`` (for the default chunk size).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

__all__ = ["CHUNK_ROWS", "GenerateSummary", "generate_dataset"]

CHUNK_ROWS = 500_000

START_TS = 1_744_260_000  # 2025-04-10 04:40:00 UTC, the first timestamp of the original seed data
SPAN_DAYS = 30
_DAY = 86_400

INTERACTIONS_HEADER = "user_id,item_id,event_type,timestamp"
SALES_HEADER = "order_id,user_id,item_id,quantity,unit_price,timestamp,country"

EVENT_TYPES = ("VIEW", "ADD_TO_CART", "PURCHASE")
EVENT_PROBS = (0.80, 0.12, 0.08)

QUANTITY_PROBS = (0.62, 0.20, 0.09, 0.05, 0.04)  # quantities 1..5
RETURN_RATE = 0.03
GUEST_SHARE = 0.02  # share of all sales lines that are guest checkouts
RETURN_DELAY_DAYS = (1, 10)

# Weighted like the UCI Online Retail data: one dominant home market and a long tail.
COUNTRIES = (
    ("United Kingdom", 0.70),
    ("Germany", 0.07),
    ("France", 0.06),
    ("EIRE", 0.04),
    ("Spain", 0.03),
    ("Netherlands", 0.03),
    ("Belgium", 0.02),
    ("Switzerland", 0.02),
    ("Portugal", 0.015),
    ("Australia", 0.015),
)

FIRST_ITEM_ID = 101  # the original interactions_clean.csv numbered items from Item_101

# Zipf-Mandelbrot exponents/offsets: the offset flattens the head so a small sample is not
# dominated by one user, while large samples still have a long tail of one-off visitors.
_USER_ZIPF = (0.9, 5.0)
_ITEM_ZIPF = (1.05, 8.0)

# How long after viewing an item a user typically adds it to the cart or buys it.
_FUNNEL_DELAY_S = 1_200

_PRICE_CENT_ENDINGS = np.array([0, 25, 49, 65, 95, 99], dtype=np.int64)


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate_dataset` wrote."""

    interaction_rows: int
    sales_rows: int
    interactions_path: Path
    sales_path: Path


def generate_dataset(
    rows: int,
    out_dir: Path,
    seed: int = 42,
    progress: Callable[[int, int], None] | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> GenerateSummary:
    """Write ``interactions.csv`` (exactly ``rows`` events) and ``sales.csv`` into ``out_dir``.

    ``progress(done_rows, rows)`` is called after every chunk. Both files are written to
    temporary names in ``out_dir`` and renamed into place only when complete. The bytes
    depend only on ``rows``, ``seed`` and ``chunk_rows`` (keep the default for
    reproducible output).
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be > 0, got {chunk_rows}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    interactions_path = out_dir / "interactions.csv"
    sales_path = out_dir / "sales.csv"

    model = _Model(rows, seed)
    sales_rows = 0
    with (
        _atomic_writer(interactions_path) as f_int,
        _atomic_writer(sales_path) as f_sales,
    ):
        int_writer = _CsvSink(f_int, INTERACTIONS_HEADER, _INTERACTIONS_SCHEMA)
        sales_writer = _CsvSink(f_sales, SALES_HEADER, _SALES_SCHEMA)
        done = 0
        for chunk_index, start in enumerate(range(0, rows, chunk_rows)):
            n = min(chunk_rows, rows - start)
            rng = np.random.default_rng([seed, chunk_index])
            events = model.interactions(rng, start, n)
            int_writer.write(_interactions_table(events))
            sales = model.sales(rng, events)
            sales_writer.write(_sales_table(sales, seed))
            sales_rows += len(sales["ts"])
            done += n
            if progress is not None:
                progress(done, rows)
        int_writer.close()
        sales_writer.close()

    return GenerateSummary(
        interaction_rows=rows,
        sales_rows=sales_rows,
        interactions_path=interactions_path,
        sales_path=sales_path,
    )


# --------------------------------------------------------------------------------------
# The model: everything that is random lives here, driven by one generator per chunk.
# --------------------------------------------------------------------------------------


class _Model:
    """Population sizes, popularity samplers and the time-of-event curve for one dataset."""

    def __init__(self, rows: int, seed: int) -> None:
        self.rows = rows
        self.n_users = max(50, rows // 20)
        self.n_items = max(30, rows // 200)
        setup = np.random.default_rng([seed, 2**32 - 1])  # never collides with a chunk index
        # Popularity rank -> id through an affine bijection, so the busiest user is not
        # always User_1 and item popularity is unrelated to the item's number or price.
        self.user_perm = _AffinePermutation(setup, self.n_users)
        self.item_perm = _AffinePermutation(setup, self.n_items)
        self.hash_key = np.uint64(setup.integers(0, 2**63))
        self.cdf_t, self.cdf_q = _time_inverse_cdf(setup)
        self.country_cdf = np.cumsum([w for _, w in COUNTRIES])
        self.country_cdf /= self.country_cdf[-1]
        mean_gap_s = SPAN_DAYS * _DAY / max(rows, 1)
        self.funnel_lag_rows = max(1.0, _FUNNEL_DELAY_S / mean_gap_s)
        self.prev_users = np.empty(0, dtype=np.int64)
        self.prev_items = np.empty(0, dtype=np.int64)
        self.next_order = 1

    # ---- interactions -------------------------------------------------------------------

    def interactions(self, rng: np.random.Generator, start: int, n: int) -> dict[str, np.ndarray]:
        """Events ``start .. start+n-1`` of the global, time-sorted event stream."""
        # Stratified quantiles: row i lands in [i, i+1)/rows of the time CDF, so timestamps
        # are globally sorted without ever holding more than one chunk.
        q = (np.arange(start, start + n, dtype=np.float64) + rng.random(n)) / self.rows
        ts = np.floor(np.interp(q, self.cdf_q, self.cdf_t)).astype(np.int64)

        etype = np.searchsorted(np.cumsum(EVENT_PROBS)[:-1], rng.random(n), side="right")
        users = self.user_perm(_zipf_rank(rng, n, self.n_users, *_USER_ZIPF))
        items = self.item_perm(_zipf_rank(rng, n, self.n_items, *_ITEM_ZIPF))
        users, items = self._follow_funnel(rng, etype, users, items)
        return {"users": users, "items": items, "etype": etype.astype(np.int8), "ts": ts}

    def _follow_funnel(
        self, rng: np.random.Generator, etype: np.ndarray, users: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Make carts and purchases refer to a (user, item) pair seen a little earlier.

        Updates ``etype`` in place for events that have nothing earlier to refer to.
        """
        n = len(etype)
        p = len(self.prev_users)  # the previous chunk is kept so early rows have a past
        ext_users = np.concatenate([self.prev_users, users])
        ext_items = np.concatenate([self.prev_items, items])
        src = np.arange(p + n)
        later = np.flatnonzero(etype != 0) + p
        lag = rng.geometric(1.0 / self.funnel_lag_rows, size=len(later))
        target = later - lag
        ok = target >= 0
        src[later[ok]] = target[ok]
        # Only the very first rows of the dataset have no past to follow: they become views.
        etype[later[~ok] - p] = 0
        # Pointer jumping resolves cart -> cart -> view chains in O(log depth) vector steps,
        # so each funnel step ends up on the pair of the event that started it.
        while True:
            nxt = src[src]
            if np.array_equal(nxt, src):
                break
            src = nxt
        users = ext_users[src[p:]]
        items = ext_items[src[p:]]
        self.prev_users, self.prev_items = users, items
        return users, items

    # ---- sales -------------------------------------------------------------------------

    def sales(self, rng: np.random.Generator, ev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Order lines for the chunk's purchases, plus guest checkouts and their returns."""
        bought = np.flatnonzero(ev["etype"] == 2)
        n_reg = len(bought)
        n_guest = int(rng.binomial(n_reg, GUEST_SHARE / (1 - GUEST_SHARE))) if n_reg else 0
        n_orders = n_reg + n_guest

        users = np.concatenate([ev["users"][bought], np.full(n_guest, -1, dtype=np.int64)])
        guest_items = self.item_perm(_zipf_rank(rng, n_guest, self.n_items, *_ITEM_ZIPF))
        items = np.concatenate([ev["items"][bought], guest_items])
        # Guests are not logged in, so they have no interaction events; they still shop at
        # the same times of day as everyone else in this chunk.
        guest_ts = ev["ts"][rng.integers(0, len(ev["ts"]), n_guest)]
        ts = np.concatenate([ev["ts"][bought], guest_ts])
        order = np.argsort(ts, kind="stable")
        users, items, ts = users[order], items[order], ts[order]

        order_no = np.arange(self.next_order, self.next_order + n_orders, dtype=np.int64)
        self.next_order += n_orders
        qty = 1 + np.searchsorted(
            np.cumsum(QUANTITY_PROBS)[:-1], rng.random(n_orders), side="right"
        ).astype(np.int64)
        country = np.where(
            users >= 0,
            self._country_of(users),
            np.searchsorted(self.country_cdf[:-1], rng.random(n_orders), side="right"),
        )

        ret = np.flatnonzero(rng.random(n_orders) < RETURN_RATE)
        r_qty = -rng.integers(1, qty[ret] + 1)  # partial returns are allowed
        lo, hi = RETURN_DELAY_DAYS
        r_ts = ts[ret] + rng.integers(lo * _DAY, hi * _DAY, len(ret))

        out = {
            "order_no": np.concatenate([order_no, order_no[ret]]),
            "is_return": np.concatenate([np.zeros(n_orders, bool), np.ones(len(ret), bool)]),
            "users": np.concatenate([users, users[ret]]),
            "items": np.concatenate([items, items[ret]]),
            "qty": np.concatenate([qty, r_qty]),
            "ts": np.concatenate([ts, r_ts]),
            "country": np.concatenate([country, country[ret]]),
        }
        out["cents"] = self._price_cents(out["items"])
        order = np.argsort(out["ts"], kind="stable")
        return {k: v[order] for k, v in out.items()}

    def _country_of(self, users: np.ndarray) -> np.ndarray:
        """A customer lives in one country, so derive it from the user id, not the chunk rng."""
        u = _unit_hash(users, self.hash_key ^ np.uint64(0xC0FFEE))
        return np.searchsorted(self.country_cdf[:-1], u, side="right")

    def _price_cents(self, items: np.ndarray) -> np.ndarray:
        """A fixed, shop-like price per item (log-uniform 0.40..45, with charm endings)."""
        u = _unit_hash(items, self.hash_key)
        base = np.exp(np.log(0.4) + u * (np.log(45.0) - np.log(0.4)))
        ending = _PRICE_CENT_ENDINGS[
            _mix64(items.astype(np.uint64) ^ ~self.hash_key) % np.uint64(len(_PRICE_CENT_ENDINGS))
        ]
        cents = np.where(
            base < 1.0,
            # Small items come in 5-cent steps, as in the UCI data; floor of 0.15 avoids 0.00.
            np.maximum(np.round(base * 20).astype(np.int64) * 5, 15),
            np.floor(base).astype(np.int64) * 100 + ending,
        )
        return cents


def _zipf_rank(rng: np.random.Generator, n: int, size: int, s: float, q: float) -> np.ndarray:
    """Ranks in ``[0, size)`` with P(k) roughly proportional to ``(k + q)**-s`` (s != 1)."""
    # Inverse CDF of the continuous power law on [q+1, size+q+1]: O(1) memory in ``size``,
    # unlike a probability table, which would grow with the row count.
    a = 1.0 - s
    lo, hi = (q + 1.0) ** a, (size + q + 1.0) ** a
    x = (lo + (hi - lo) * rng.random(n)) ** (1.0 / a)
    return np.minimum(np.floor(x - q - 1.0).astype(np.int64), size - 1)


class _AffinePermutation:
    """The bijection ``k -> (a*k + b) mod n`` on ``range(n)``, returning 1-based ids."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        a = int(rng.integers(1, n)) if n > 1 else 1
        while gcd(a, n) != 1:
            a += 1
        self.a, self.b, self.n = a, int(rng.integers(0, n)), n

    def __call__(self, ranks: np.ndarray) -> np.ndarray:
        # a, k < n <= rows / 20, so a*k < n**2 fits in int64 up to ~6e10 rows.
        return (ranks * self.a + self.b) % self.n + 1


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-mixed, platform-independent integer hash."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _unit_hash(ids: np.ndarray, key: np.uint64) -> np.ndarray:
    """Deterministic pseudo-uniform floats in [0, 1) keyed by id."""
    return (_mix64(ids.astype(np.uint64) ^ key) >> np.uint64(11)).astype(np.float64) / 2.0**53


def _time_inverse_cdf(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tabulated CDF of event time over the span: daily cycle, weekends, day-to-day noise."""
    step = 600  # 10-minute bins; np.interp makes the inverse piecewise linear inside a bin
    edges = START_TS + np.arange(0, SPAN_DAYS * _DAY + 1, step, dtype=np.int64)
    mid = edges[:-1] + step / 2
    hour = (mid % _DAY) / 3600.0
    # Quiet in the early morning (UTC), busiest in the evening: about 5x from trough to peak.
    daily = (
        1.0
        + 0.60 * np.cos(2 * np.pi * (hour - 19.5) / 24)
        + 0.10 * np.cos(4 * np.pi * (hour - 13) / 24)
    )
    day_index = (mid - START_TS) // _DAY
    weekday = ((mid // _DAY) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weekend = np.where(weekday >= 5, 1.15, 1.0)
    day_noise = np.exp(rng.normal(0.0, 0.08, SPAN_DAYS + 1))[day_index.astype(np.int64)]
    intensity = np.maximum(daily, 0.05) * weekend * day_noise
    cdf = np.concatenate([[0.0], np.cumsum(intensity)])
    return edges.astype(np.float64), cdf / cdf[-1]


# --------------------------------------------------------------------------------------
# Arrow tables and CSV output.
# --------------------------------------------------------------------------------------

_INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("timestamp", pa.int64()),
    ]
)
_SALES_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.decimal128(12, 2)),
        ("timestamp", pa.timestamp("s")),
        ("country", pa.string()),
    ]
)
_EVENT_LABELS = pa.array(EVENT_TYPES)
_COUNTRY_LABELS = pa.array([c for c, _ in COUNTRIES])


def _prefixed(prefix: str, ids: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(ids), pa.string()), "")


def _interactions_table(ev: dict[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays(
        [
            _prefixed("User_", ev["users"]),
            _prefixed("Item_", ev["items"] + (FIRST_ITEM_ID - 1)),
            _EVENT_LABELS.take(pa.array(ev["etype"])),
            pa.array(ev["ts"]),
        ],
        schema=_INTERACTIONS_SCHEMA,
    )


def _sales_table(s: dict[str, np.ndarray], seed: int) -> pa.Table:
    order_digits = pc.utf8_lpad(pc.cast(pa.array(s["order_no"]), pa.string()), width=7, padding="0")
    # The seed in the id: data generated with another seed (more sales for the same shop)
    # holds other orders, not new lines of the same ones.
    prefix = pc.if_else(pa.array(s["is_return"]), f"CO{seed}-", f"O{seed}-")
    guest = s["users"] < 0
    users = pc.if_else(
        pa.array(guest), pa.scalar("", pa.string()), _prefixed("User_", np.maximum(s["users"], 0))
    )
    # decimal128 with scale 2 stores the unscaled integer, i.e. the cents, as 16-byte LE.
    cents = s["cents"].astype(np.int64)
    dec_buf = np.stack([cents, cents >> 63], axis=1).ravel()
    prices = pa.Array.from_buffers(pa.decimal128(12, 2), len(cents), [None, pa.py_buffer(dec_buf)])
    return pa.Table.from_arrays(
        [
            pc.binary_join_element_wise(prefix, order_digits, ""),
            users,
            _prefixed("Item_", s["items"] + (FIRST_ITEM_ID - 1)),
            pa.array(s["qty"]),
            prices,
            pa.array(s["ts"]).cast(pa.timestamp("s")),
            _COUNTRY_LABELS.take(pa.array(s["country"])),
        ],
        schema=_SALES_SCHEMA,
    )


class _CsvSink:
    """Arrow CSV writer with a hand-written, unquoted header (Arrow would quote it)."""

    def __init__(self, f: BinaryIO, header: str, schema: pa.Schema) -> None:
        f.write((header + "\n").encode("utf-8"))
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        self._writer = pa_csv.CSVWriter(f, schema, write_options=options)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


@contextmanager
def _atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Yield a file in ``path``'s directory that replaces ``path`` only on success."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    # os.open honours the umask, unlike tempfile's private 0600 files.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
