"""A report approved in a real browser (Debian's Chromium through Playwright): the lead who confirmed the
case logs in with TOTP, opens the report page (the XML, its validation, the files, the steps), tries to
approve and is refused; a second lead logs in and approves it. The report page's screenshot is what
docs/img/console-report.png shows (``SAFEGUARD_SCREENSHOT_DIR=docs/img`` writes it there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safeguard.accounts import Who
from safeguard.cases import CaseService
from safeguard.reports import ReportService
from tests.helpers.console import browser_log_in
from tests.web.conftest import banked_case, person
from tests.web.live import chromium, live_console, needs_chromium

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api")
REPORTER = {
    "reporter_organisation": "Example Platform",
    "reporter_contact": "Ann Lee",
    "reporter_email": "safety@example.org",
    "reporter_phone": "+1 555 0100",
}


def test_lead_approves_a_report_in_the_browser_and_the_confirming_lead_is_refused(tmp_path: Path) -> None:
    with live_console(tmp_path, **REPORTER) as (base, engine):
        case_id, _ = banked_case(engine)
        lea, leo = person(engine, "lea", "lead"), person(engine, "leo", "lead")
        lea_who = Who("user:lea", "lead", "lea", "user")  # the actor her console session acts as
        cs = CaseService(engine.db, engine.settings)
        cs.claim(lea_who, case_id)
        cs.decide(lea_who, case_id, outcome="confirmed", category="A1", notes="bank match")
        reports = ReportService(engine.db, engine.settings)
        [draft], _ = reports.list_reports(lea_who)
        rid = draft.id
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            browser_log_in(page, base, lea)
            page.get_by_role("link", name="Reports").click()
            page.wait_for_url("**/console/reports")
            page.locator("a.report-link", has_text=f"#{rid}").click()
            page.wait_for_url(f"**/console/reports/{rid}")
            assert page.locator("#valid").is_visible()
            xml = page.locator("#report-xml").inner_text()
            assert xml == reports.preview(lea_who, rid)["xml"]  # exactly what POST /submit sends
            assert "You confirmed this case" in page.locator("#approve-form").inner_text()
            page.get_by_role("button", name="Approve for sending").click()
            page.wait_for_load_state()
            alert = page.get_by_role("alert")
            assert "second_approver_required" in alert.inner_text()
            assert reports.get(lea_who, rid).state == "draft"
            page.get_by_role("button", name="Log out").click()

            other = browser.new_context(viewport={"width": 1366, "height": 1000}).new_page()
            browser_log_in(other, base, leo)
            other.goto(f"{base}/console/reports/{rid}")
            other.get_by_role("button", name="Approve for sending").click()
            other.wait_for_url(f"**/console/reports/{rid}")
            sync_api.expect(other.locator("h1 .state")).to_have_text("approved")
            assert "report.approved by user:leo" in other.locator("ol.steps").inner_text()
            shots = Path(os.environ.get("SAFEGUARD_SCREENSHOT_DIR") or tmp_path)
            other.screenshot(path=str(shots / "console-report.png"), full_page=True)
            assert (shots / "console-report.png").stat().st_size > 10_000
        got = reports.get(lea_who, rid)
        assert got.state == "approved" and got.approved_by == "user:leo" and got.confirmed_by == "user:lea"
