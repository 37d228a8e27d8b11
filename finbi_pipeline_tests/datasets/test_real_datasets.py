"""The public retail datasets in ../shared/datasets through the real pipeline.

Each dataset is landed through the source declared for it in
examples/sources/real_datasets.yaml (UCI Online Retail as its 305 daily files, one upload
each), the pipeline runs once (`run_pipeline`, what `finbi run` does), and what it recorded
is compared with an independent reading of the raw files (`_independent`: the csv module,
Decimal and zoneinfo under DESIGN.md's rules; no pipeline code, no SQL):

(a) every upload reconciles, and rows_read is the file's record count;
(b) kpi_summary equals the independent KPIs, money exactly, and the curated rows equal the
    independent rows;
(c) each dataset's quirks land where they should.

The datasets are research data that may not be copied into the project: without
../shared/datasets (beside the repository) this module is skipped.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from . import _independent as independent
from ._pipeline import PipelineRun, run_files

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
if not DATASETS.is_dir():
    pytest.skip(
        f"public datasets not found at {DATASETS} (../shared/datasets beside the repository)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.datasets

UCI_FILES = sorted((DATASETS / "uci_online_retail" / "by-day").glob("*.csv"))
TAOBAO_FILE = DATASETS / "taobao_userbehavior" / "UserBehavior.csv"
PERSONALIZE_FILE = DATASETS / "personalize_poc" / "interactions.csv"
REES46_FILE = DATASETS / "rees46_sample" / "2019-Oct-sample.csv"

FUNNEL = {"VIEW", "ADD_TO_CART", "PURCHASE"}
FUNNEL_KPIS = ("total_views", "total_add_to_carts", "total_purchases", "total_users")
REVENUE_KPIS = (
    "orders",
    "units",
    "gross_revenue",
    "returns_value",
    "net_revenue",
    "average_order_value",
)


@dataclass
class Case:
    """One dataset: its files, the pipeline's run over them, the independent expectation."""

    kind: str
    files: list[Path]
    header: bool
    run: PipelineRun
    expected: independent.Expected


def _case(tmp_path_factory, source: str, kind: str, files: list[Path], header: bool, expect):
    run = run_files(tmp_path_factory.mktemp(source), source, files)
    return Case(kind, files, header, run, expect())


@pytest.fixture(scope="module")
def uci(tmp_path_factory: pytest.TempPathFactory) -> Case:
    columns = {
        "order_id": "InvoiceNo",
        "item_id": "StockCode",
        "quantity": "Quantity",
        "unit_price": "UnitPrice",
        "timestamp": "InvoiceDate",
        "user_id": "CustomerID",
        "country": "Country",
    }
    return _case(
        tmp_path_factory,
        "uci_online_retail",
        "sales",
        UCI_FILES,
        True,
        lambda: independent.sales(
            UCI_FILES,
            columns=columns,
            # No zone in the file: UK wall-clock time (GMT in winter, BST in summer).
            parse_time=independent.local_time("%Y-%m-%d %H:%M:%S", "Europe/London"),
            integer_user_ids=True,
        ),
    )


@pytest.fixture(scope="module")
def taobao(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(
        tmp_path_factory,
        "taobao_userbehavior",
        "interactions",
        [TAOBAO_FILE],
        False,
        lambda: independent.interactions(
            [TAOBAO_FILE],
            header=False,
            names=("user_id", "item_id", "category_id", "behavior", "timestamp"),
            columns={
                "user_id": "user_id",
                "item_id": "item_id",
                "event_type": "behavior",
                "timestamp": "timestamp",
            },
            event_types={"pv": "VIEW", "cart": "ADD_TO_CART", "buy": "PURCHASE", "fav": "FAVORITE"},
            allowed=FUNNEL | {"FAVORITE"},
            parse_time=independent.epoch_seconds,
        ),
    )


@pytest.fixture(scope="module")
def personalize(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(
        tmp_path_factory,
        "personalize_poc",
        "interactions",
        [PERSONALIZE_FILE],
        True,
        lambda: independent.interactions(
            [PERSONALIZE_FILE],
            columns={
                "user_id": "USER_ID",
                "item_id": "ITEM_ID",
                "event_type": "EVENT_TYPE",
                "timestamp": "TIMESTAMP",
            },
            event_types={"click": "VIEW", "watch": "PURCHASE"},
            allowed={"VIEW", "PURCHASE"},
            parse_time=independent.epoch_seconds,
        ),
    )


@pytest.fixture(scope="module")
def rees46(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return _case(
        tmp_path_factory,
        "rees46",
        "interactions",
        [REES46_FILE],
        True,
        lambda: independent.interactions(
            [REES46_FILE],
            columns={
                "user_id": "user_id",
                "item_id": "product_id",
                "event_type": "event_type",
                "timestamp": "event_time",
            },
            event_types={"view": "VIEW", "cart": "ADD_TO_CART", "purchase": "PURCHASE"},
            allowed=FUNNEL,
            parse_time=independent.local_time("%Y-%m-%d %H:%M:%S UTC", "UTC"),
        ),
    )


ALL = ["uci", "taobao", "personalize", "rees46"]


@pytest.fixture(params=ALL)
def case(request: pytest.FixtureRequest) -> Case:
    return request.getfixturevalue(request.param)


# --- every dataset ---------------------------------------------------------------------------


def test_pipeline_run_succeeds(case: Case) -> None:
    assert case.run.success, case.run.failures
    assert sorted(case.run.uploads) == sorted(path.name for path in case.files)


def test_every_upload_reconciles_with_the_raw_file(case: Case) -> None:
    mismatches = []
    for path in case.files:
        log = case.run.uploads[path.name]
        assert log["status"] == "ingested", log
        assert log["rows_read"] == (
            log["rows_accepted"] + log["rows_duplicate"] + log["rows_quarantined"]
        ), log
        account = case.expected.files[path.name]
        assert account.rows_read == independent.count_records(path, case.header)
        observed = (
            log["rows_read"],
            log["rows_accepted"],
            log["rows_duplicate"],
            log["rows_quarantined"],
        )
        wanted = (account.rows_read, account.accepted, account.duplicate, len(account.quarantined))
        if observed != wanted:
            mismatches.append((path.name, observed, wanted))
    assert not mismatches, "(file, pipeline read/accepted/dup/quarantined, independent)"


def test_kpis_equal_the_independent_computation(case: Case) -> None:
    kpis = case.run.kpis
    if case.kind == "interactions":
        wanted = independent.funnel_kpis(case.expected.rows)
        assert {k: kpis[k] for k in FUNNEL_KPIS} == {k: wanted[k] for k in FUNNEL_KPIS}
        # Both sides divide the same two integers as IEEE doubles.
        assert kpis["conversion_rate"] == wanted["conversion_rate"]
        assert kpis["orders"] == 0 and kpis["gross_revenue"] == 0
    else:
        wanted = independent.revenue_kpis(case.expected.rows)
        assert {k: kpis[k] for k in REVENUE_KPIS} == wanted
        assert all(isinstance(kpis[k], Decimal) for k in REVENUE_KPIS[2:])
        assert kpis["total_views"] == 0 and kpis["total_users"] == 0
        assert kpis["conversion_rate"] is None


def test_curated_rows_equal_the_independent_rows(case: Case) -> None:
    if case.kind == "interactions":
        sql = "SELECT user_id, item_id, event_type, event_time FROM finbi.interactions"
    else:
        sql = (
            "SELECT order_id, user_id, item_id, quantity, unit_price, sale_time, country "
            "FROM finbi.sales"
        )
    curated = Counter(case.run.query(sql))
    wanted = Counter(case.expected.rows)
    assert max(curated.values()) == 1, "the curated table holds duplicate rows"
    only_curated = list((curated - wanted).elements())[:5]
    only_wanted = list((wanted - curated).elements())[:5]
    assert curated == wanted, f"only in curated: {only_curated}; only expected: {only_wanted}"


# --- dataset quirks --------------------------------------------------------------------------


def test_taobao_truncated_last_line_is_quarantined_with_its_line(taobao: Case) -> None:
    data = TAOBAO_FILE.read_bytes()
    assert not data.endswith(b"\n") and data.rsplit(b"\n", 1)[1].endswith(b",15")
    last_line = data.count(b"\n") + 1  # no header: line n is record n
    assert taobao.expected.files[TAOBAO_FILE.name].quarantined == [(last_line, "timestamp")]
    [row] = taobao.run.quarantine
    assert (row["line_number"], row["column_name"]) == (last_line, "timestamp")
    assert row["reason"].startswith("timestamp: '15'"), row["reason"]


def test_taobao_favourites_are_kept_but_carry_no_kpi(taobao: Case) -> None:
    favourites = sum(1 for row in taobao.expected.rows if row[2] == "FAVORITE")
    assert favourites > 0
    observed = taobao.run.query(
        "SELECT COUNT(*) FROM finbi.interactions WHERE event_type = 'FAVORITE'"
    )
    assert observed == [(favourites,)]


def test_uci_negative_price_bad_debt_rows_are_quarantined(uci: Case) -> None:
    wanted = []
    for path in UCI_FILES:
        for line, column in uci.expected.files[path.name].quarantined:
            wanted.append((f"raw/uci_online_retail/{path.name}", line, column))
    # README: 3 'A' (adjust bad debt) rows, 2 with a negative price; nothing else breaks.
    bad_debt = [
        (path.name, line)
        for path in UCI_FILES
        for line, record in independent.records(path, header=True)
        if record["InvoiceNo"].startswith("A") and Decimal(record["UnitPrice"]) < 0
    ]
    assert [(key.rsplit("/", 1)[1], line) for key, line, _ in wanted] == bad_debt
    assert len(bad_debt) == 2 and {column for *_, column in wanted} == {"unit_price"}
    observed = [(q["object_key"], q["line_number"], q["column_name"]) for q in uci.run.quarantine]
    assert observed == wanted
    assert all(q["reason"].startswith("unit_price: negative") for q in uci.run.quarantine)


def test_uci_exact_duplicates_count_as_duplicates(uci: Case) -> None:
    # README: 5,268 rows are exact duplicates of another row (all eight columns).
    whole_rows = Counter()
    for path in UCI_FILES:
        with path.open(encoding="utf-8") as handle:
            whole_rows.update(handle.read().splitlines()[1:])
    exact = sum(n - 1 for n in whole_rows.values())
    assert exact == 5268
    # DESIGN: rows identical in every *canonical* column count once; Description is not
    # canonical, so a few more lines collapse than exact duplicates.
    logged = sum(log["rows_duplicate"] for log in uci.run.uploads.values())
    assert logged == uci.expected.duplicates >= exact


def test_uci_loads_as_many_small_uploads(uci: Case) -> None:
    assert len(UCI_FILES) == 305
    assert len(uci.run.uploads) == 305
    assert sum(log["rows_read"] for log in uci.run.uploads.values()) == 541_909


def test_uci_customer_ids_are_integers_and_guests_stay_null(uci: Case) -> None:
    [(with_dot, guests, customers)] = uci.run.query(
        "SELECT COUNT(*) FILTER (WHERE user_id LIKE '%.%'), COUNT(*) FILTER (WHERE user_id IS "
        "NULL), COUNT(DISTINCT user_id) FROM finbi.sales"
    )
    wanted_customers = {row[1] for row in uci.expected.rows} - {None}
    assert with_dot == 0
    assert guests == sum(1 for row in uci.expected.rows if row[1] is None)
    assert customers == len(wanted_customers)


def test_personalize_watch_and_click_pairs_are_both_kept(personalize: Case) -> None:
    kinds = defaultdict(set)
    for user, item, event, moment in personalize.expected.rows:
        kinds[(user, item, moment)].add(event)
    pairs = sum(1 for found in kinds.values() if found == {"VIEW", "PURCHASE"})
    purchases = sum(1 for row in personalize.expected.rows if row[2] == "PURCHASE")
    # README: every watch has a click with the same user, item and timestamp.
    assert pairs == purchases == 61_716
    [(observed,)] = personalize.run.query(
        "SELECT COUNT(*) FROM (SELECT user_id, item_id, event_time FROM finbi.interactions "
        "GROUP BY 1, 2, 3 HAVING COUNT(*) FILTER (WHERE event_type = 'VIEW') > 0 "
        "AND COUNT(*) FILTER (WHERE event_type = 'PURCHASE') > 0)"
    )
    assert observed == pairs
    assert sum(log["rows_duplicate"] for log in personalize.run.uploads.values()) == 0


def test_personalize_spans_decades_of_days(personalize: Case) -> None:
    [(first, last, days)] = personalize.run.query(
        "SELECT MIN(event_time), MAX(event_time), COUNT(DISTINCT event_date) "
        "FROM finbi.interactions"
    )
    moments = [row[3] for row in personalize.expected.rows]
    assert (first, last) == (min(moments), max(moments))
    assert first.year == 1996 and last.year == 2018
    assert days == len({moment.date() for moment in moments})


def test_rees46_utc_suffix_is_parsed(rees46: Case) -> None:
    assert rees46.run.quarantine == []
    [(first, last)] = rees46.run.query(
        "SELECT MIN(event_time), MAX(event_time) FROM finbi.interactions"
    )
    assert first == dt.datetime(2019, 10, 1, 0, 0, 0)
    moments = [row[3] for row in rees46.expected.rows]
    assert (first, last) == (min(moments), max(moments))
