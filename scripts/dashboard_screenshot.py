"""Screenshot of the live dashboard for the docs (default: docs/dashboard.png).

    python scripts/dashboard_screenshot.py [--home FINBI_HOME] [--output docs/dashboard.png]

Serves the dashboard over FINBI_HOME (default: $FINBI_HOME, else .finbi) on a free local
port, opens it in headless Chromium with Playwright, waits for the KPI cards and charts,
captures the whole page and stops the server. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from finbi_pipeline.dashboard.server import CHROMIUM, CHROMIUM_ARGS, free_port, serve, stop, url

PROJECT = Path(__file__).resolve().parents[1]


def take_screenshot(home: Path, output: Path, width: int = 1440) -> Path:
    port = free_port()
    process = serve("127.0.0.1", port, home)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS)
            )
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(url("127.0.0.1", port))
            # The data panel comes last on a full page; the empty state is one message.
            last = page.get_by_role("heading", name="Data freshness and quality")
            last.or_(page.get_by_text("No data to show yet")).first.wait_for(timeout=60_000)
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0)
            for chart in page.get_by_test_id("stPlotlyChart").all():
                chart.locator(".main-svg").first.wait_for()
            # Streamlit scrolls inside its main block, not the document: size the window to
            # the content so one screenshot holds the whole page.
            height = page.evaluate(
                "document.querySelector('[data-testid=\"stMain\"]').scrollHeight"
            )
            page.set_viewport_size({"width": width, "height": max(height, 800)})
            page.wait_for_timeout(1500)  # charts re-layout to the new size
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output))
            browser.close()
    finally:
        stop(process)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("FINBI_HOME", ".finbi")))
    parser.add_argument("--output", type=Path, default=PROJECT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1440)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 1
    print(take_screenshot(args.home, args.output, args.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
