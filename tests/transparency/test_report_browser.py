"""The published HTML page in a real browser (Debian's Chromium through Playwright): its tables and charts
are visible, small counts read "fewer than 10", and loading it makes no request beyond the file itself.
With ``SAFEGUARD_SCREENSHOT_DIR`` set, the page's screenshot is written there (docs/img/transparency-report.png)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safeguard.transparency import build, parse_period, render
from tests.transparency.conftest import World
from tests.web.live import chromium, needs_chromium

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api")


def test_html_report_renders_offline_with_tables_and_charts(world: World, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    period = parse_period((today - timedelta(days=6)).isoformat(), today.isoformat())
    with world.engine.db.read() as s:
        report = build(s, period, world.engine.settings.transparency_min_count)
    page_file = tmp_path / "report.html"
    page_file.write_text(render(report, "html"), encoding="utf-8")
    url = page_file.as_uri()
    requests: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.title() == "Transparency report"
        tables = page.locator("table")
        assert tables.count() >= 12
        for i in range(tables.count()):
            assert tables.nth(i).is_visible()
        charts = page.locator("svg.chart")
        assert charts.count() == 6  # two distributions, four series over time
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
        assert page.locator("svg.chart rect.bar").count() == 2 * 6 + 4 * 7  # six histogram bins, seven days
        verdicts = page.locator("table", has=page.locator("caption", has_text="Verdicts"))
        assert "fewer than 10" in verdicts.inner_text()
        hatched = page.locator('svg.chart rect.bar[fill="url(#hatch)"]')
        assert hatched.count() >= 4  # today's small counts drawn as an upper bound
        shots = os.environ.get("SAFEGUARD_SCREENSHOT_DIR")
        target = Path(shots) if shots else tmp_path
        page.screenshot(path=str(target / "transparency-report.png"), full_page=True)
    assert requests == [url], requests  # nothing but the page itself: no network, no other file
