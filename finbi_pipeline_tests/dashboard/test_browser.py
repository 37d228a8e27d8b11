"""The served dashboard in a real browser: Playwright driving Debian's Chromium.

Starts `serve()` on a free local port for each test (own FINBI_HOME) and stops it by its
process. Without /usr/bin/chromium these tests fail, on purpose: a skipped browser test
would hide that the dashboard was never looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from finbi_pipeline.dashboard.server import CHROMIUM, CHROMIUM_ARGS, free_port, serve, stop, url

from ._warehouse import KPI_SUMMARY_SQL, add_events, refresh

pytestmark = pytest.mark.browser

LOAD_TIMEOUT_MS = 30_000
# The app checks for a new extract every 2 s; allow for a loaded machine.
LIVE_UPDATE_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get install chromium)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


@pytest.fixture
def dashboard(extract: Path, finbi_home: Path) -> str:
    """The dashboard served over the fixture extract; yields its URL."""
    port = free_port()
    process = serve("127.0.0.1", port, finbi_home)
    try:
        yield url("127.0.0.1", port)
    finally:
        stop(process)
    assert process.poll() is not None, f"dashboard server (pid {process.pid}) still running"


@pytest.fixture
def page(browser: Browser, dashboard: str) -> Page:
    context = browser.new_context(viewport={"width": 1440, "height": 2200}, accept_downloads=True)
    page = context.new_page()
    page.goto(dashboard)
    page.get_by_test_id("stMetric").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    yield page
    context.close()


def metric_value(page: Page, label: str):
    """The value element of the KPI card with exactly this label."""
    card = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True))
    return card.get_by_test_id("stMetricValue")


def pick(page: Page, widget_label: str, option: str, *, multiple: bool = False) -> None:
    """Type into a select widget of the sidebar and pick the option, as a person would."""
    test_id = "stMultiSelect" if multiple else "stSelectbox"
    widget = page.get_by_test_id("stSidebar").get_by_test_id(test_id).filter(has_text=widget_label)
    widget.locator("input").click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    if multiple:  # a multiselect stays open for more picks; a selectbox closes by itself
        page.keyboard.press("Escape")


def legend(page: Page, chart_title: str):
    """The legend entries of the Plotly chart with this title (rendered as SVG text)."""
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text=chart_title)
    return chart.locator(".legendtext")


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("FINBI_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    return path


def test_kpi_cards_show_the_kpi_summary_figures(page: Page, warehouse, tmp_path):
    views, carts, purchases, rate, orders, units, gross, returns, net, aov = warehouse.execute(
        KPI_SUMMARY_SQL
    ).fetchone()
    expected = {
        "Views": f"{views:,}",
        "Add-to-carts": f"{carts:,}",
        "Purchases": f"{purchases:,}",
        "Conversion rate": f"{rate:.2%}",
        "Orders": f"{orders:,}",
        "Units": f"{units:,}",
        "Gross revenue": f"{gross:,.2f}",
        "Returns": f"{returns:,.2f}",
        "Net revenue": f"{net:,.2f}",
        "Avg order value": "41.13",  # 41.125: shown rounded half up
    }
    for label, value in expected.items():
        expect(metric_value(page, label)).to_have_text(value)
    assert aov == pytest.approx(41.125)
    expect(page.get_by_role("heading", name="FinBI — retail finance dashboard")).to_be_visible()
    assert save_screenshot(page, tmp_path, "dashboard_loaded.png").stat().st_size > 10_000


def test_filters_change_kpis_and_charts(page: Page, tmp_path):
    expect(metric_value(page, "Views")).to_have_text("9")
    expect(legend(page, "Events per day")).to_have_text(
        ["VIEW", "ADD_TO_CART", "PURCHASE", "FAVORITE"]
    )

    pick(page, "Event type", "PURCHASE", multiple=True)
    expect(metric_value(page, "Views")).to_have_text("0")
    expect(metric_value(page, "Purchases")).to_have_text("2")
    expect(legend(page, "Events per day")).to_have_text(["PURCHASE"])

    pick(page, "Customer (user_id)", "u2")
    expect(page.get_by_role("heading", name="Customer u2")).to_be_visible()
    expect(metric_value(page, "Purchases")).to_have_text("1")
    expect(metric_value(page, "Net revenue")).to_have_text("100.00")
    save_screenshot(page, tmp_path, "dashboard_filtered.png")

    # Any user_id can be typed, even one the picker does not list.
    pick(page, "Customer (user_id)", "nobody' OR '1'='1")
    expect(page.get_by_text("No activity for user_id")).to_be_visible()
    expect(metric_value(page, "Purchases")).to_have_text("0")


def test_download_the_filtered_table_as_csv(page: Page):
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == "finbi_daily_2024-03-01_2024-03-05.csv"
    lines = Path(download.path()).read_text().splitlines()
    assert lines[0].startswith("day,views,add_to_carts,purchases,other_events,orders")
    assert len(lines) == 6  # header + 5 days


def test_a_new_extract_appears_in_the_open_page(page: Page, warehouse, finbi_home, tmp_path):
    expect(metric_value(page, "Views")).to_have_text("9")
    add_events(warehouse, [("u7", "i1", "VIEW", "2024-03-05 21:00", "web")] * 4)
    refresh(warehouse, finbi_home)  # what the pipeline's dashboard refresh does
    expect(metric_value(page, "Views")).to_have_text("13", timeout=LIVE_UPDATE_TIMEOUT_MS)
    save_screenshot(page, tmp_path, "dashboard_live_update.png")
