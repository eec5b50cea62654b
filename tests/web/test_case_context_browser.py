"""The case page in a real browser (Debian's Chromium through Playwright): a grooming case opened through the
real conversation detector shows the conversation around each evidence message (times, senders, stage
labels; text only where the detector kept a snippet), and a lead assigns the case from the page (the
``a`` shortcut focuses the list); the ``case.assigned`` event is checked. Chat lines are benign fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from safeguard.detectors.grooming.service import GroomingService
from safeguard.store.models import Case, Event
from tests.detectors.grooming.helpers import GROOMING_LINES, msg
from tests.helpers.console import browser_log_in
from tests.web.conftest import person
from tests.web.live import chromium, live_console, needs_chromium

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api")


def test_a_lead_sees_the_conversation_around_the_evidence_and_assigns_the_case(tmp_path: Path) -> None:
    with live_console(tmp_path) as (base, engine):
        grooming = GroomingService(engine)
        # two ordinary lines (no indicator: their text is not kept) before the secrecy message (m6)
        lines = [*GROOMING_LINES[:4], "gg", "what music do you like", *GROOMING_LINES[4:]]
        for i, line in enumerate(lines):
            grooming.post("chat-42", [msg(i, line)])
        with engine.db.read() as s:
            case_id = s.execute(select(Case.id).where(Case.subject_id == "chat-42")).scalar_one()
        person(engine, "mia", "moderator")
        lea = person(engine, "lea", "lead")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            browser_log_in(page, base, lea)
            page.goto(f"{base}/console/cases/{case_id}")
            around = page.get_by_role("list", name="Messages around m6, oldest first").first
            # three before, the evidence message, three after: m3 .. m9, oldest first
            texts = around.locator("li").all_inner_texts()
            assert len(texts) == 7 and all(f"m{i}" in texts[i - 3] for i in range(3, 10)), texts
            hit = around.locator("li[aria-current=true]")
            assert "this is our little secret ok" in hit.inner_text() and "secrecy" in hit.inner_text()
            assert "1970-01-01 00:17:40" in hit.inner_text()  # sent_at 1060 s, shown as UTC time
            # the ordinary lines: no stage, and their text was never kept
            assert "no indicator" in texts[1] and "(text not kept)" in texts[1] and "gg" not in texts[1]
            assert all("adult1" in t for t in texts)
            # a lead assigns the case from the page: ``a`` focuses the list
            page.locator("body").click()
            page.keyboard.press("a")
            assert page.evaluate("document.activeElement.id") == "assignee"
            page.get_by_label("Assign to").select_option("user:mia")
            page.get_by_role("button", name="Assign").click()
            page.wait_for_url(f"**/console/cases/{case_id}")
            assert "user:mia" in page.locator(".facts").inner_text()
            # and back to the queue
            page.get_by_label("Assign to").select_option("")
            page.get_by_role("button", name="Assign").click()
            page.wait_for_url(f"**/console/cases/{case_id}")
            assert "nobody" in page.locator(".facts").inner_text()
        with engine.db.read() as s:
            assigned = list(s.execute(select(Event).where(Event.type == "case.assigned").order_by(Event.seq)).scalars())
        assert [(e.actor, e.payload) for e in assigned] == [
            ("user:lea", {"from": None, "to": "user:mia"}),
            ("user:lea", {"from": "user:mia", "to": None}),
        ]
