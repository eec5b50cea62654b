"""The console in a real browser (Debian's Chromium through Playwright): log in with TOTP, change the
one-time password, see the queue (j/k and c from the keyboard), claim the next case (a banked benign generated image), reveal it with a
reason (the ``evidence.read`` event is checked), decide ``confirmed``, see the review bank entry appear and
the opinion on the matched entry; the break reminder shows after the configured time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.store.models import BankEntry, Event
from tests.helpers.console import browser_log_in
from tests.web.conftest import banked_case, person
from tests.web.live import chromium, live_console, needs_chromium

pytestmark = needs_chromium
sync_api = pytest.importorskip("playwright.sync_api")


def test_moderator_logs_in_claims_reveals_and_confirms(tmp_path: Path) -> None:
    with live_console(tmp_path, console_break_minutes=0.05) as (base, engine):
        case_id, entry_id = banked_case(engine)
        mia = person(engine, "mia", "moderator")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{base}/console/queue")
            assert page.url.endswith("/console/login")
            browser_log_in(page, base, mia)
            assert page.locator("a.case-link").first.inner_text() == f"#{case_id}"
            page.keyboard.press("j")  # the first case gets the focus
            assert page.evaluate("document.activeElement.textContent") == f"#{case_id}"
            page.keyboard.press("c")  # claim next
            page.wait_for_url(f"**/console/cases/{case_id}")
            assert "user:mia" in page.locator(".facts").inner_text()
            img = page.locator("figure.item img").first
            assert "preview.png" in (img.get_attribute("src") or "")
            page.get_by_label("Reason to reveal").fill("confirm the bank match")
            page.get_by_role("button", name="Reveal").click()
            # (the page's CSP forbids eval, so wait_for_function cannot run: the attribute is polled)
            sync_api.expect(img).to_have_attribute("src", re.compile("^blob:"))
            with engine.db.read() as s:
                reads = list(s.execute(select(Event).where(Event.type == "evidence.read")).scalars())
            assert [(e.actor, e.payload["reason"], e.payload["case_id"]) for e in reads] == [
                ("user:mia", "confirm the bank match", case_id)
            ]
            page.keyboard.press("1")  # outcome: confirmed
            assert page.locator("#outcome-1").is_checked()
            page.get_by_label("Category").select_option("A1")
            page.get_by_label("Notes").fill("matches the bank entry")
            page.get_by_role("button", name="Record decision").click()
            page.wait_for_load_state()
            assert "case.decided" in page.locator("ol.timeline").last.inner_text()
            assert "confirmed by user:mia" in page.locator("td.opinions").first.inner_text()
            # the break reminder (SAFEGUARD_CONSOLE_BREAK_MINUTES, here 3 seconds) appears by itself
            sync_api.expect(page.locator("#break")).to_be_visible(timeout=10_000)
        review = BankService(engine.db).describe("moderator-confirmed")
        assert review.entry_count == 3
        with engine.db.read() as s:
            matched = s.get(BankEntry, entry_id)
            assert matched is not None and matched.opinion == "confirmed"
