"""The console's Banks page (leads and admins): precision by source, the entries matched most, and the
release of a surge-quarantined entry; over HTTP (roles, CSRF) and in a real browser."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.banks import BankService, quality
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from tests.helpers.console import browser_log_in
from tests.web.conftest import console_login, csrf_of, person
from tests.web.live import chromium, live_console, needs_chromium

PDQ = hashlib.sha256(b"banked").hexdigest()


def quarantined_entry(engine: Engine, uploads: int) -> int:
    """A csam bank whose one entry matched ``uploads`` distinct uploads, figures written."""
    banks = BankService(engine.db)
    banks.create("csam", actor="t", default_category="A1")
    entry = int(banks.add_entry("csam", signal_type="pdq", value=PDQ, actor="t", source="partner-x").id)
    for i in range(uploads):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        signals = (Signal("sha256", sha), Signal("pdq", PDQ, quality=100))
        engine.scan(Content(kind=ContentKind.HASHES, signals=signals, content_id=f"c-{i}"))
    engine.quality.flush()
    return entry


def verdict(engine: Engine) -> str:
    content = Content(kind=ContentKind.HASHES, signals=(Signal("pdq", PDQ, quality=100),))
    return engine.scan(content).verdict.value


@pytest.fixture
def surge_client(csettings: Settings) -> Iterator[tuple[TestClient, Engine]]:
    settings = csettings.with_(surge_distinct=3)
    engine = Engine(settings)
    try:
        with TestClient(create_app(settings, engine=engine)) as c:
            yield c, engine
    finally:
        engine.close()


def test_banks_page_roles_and_release_over_http(surge_client: tuple[TestClient, Engine]) -> None:
    client, cengine = surge_client
    entry = quarantined_entry(cengine, 3)
    mia = person(cengine, "mia", "moderator")
    console_login(client, mia)
    r = client.get("/console/banks")
    assert r.status_code == 403 and "wrong_role" in r.text
    client.cookies.clear()
    lea = person(cengine, "lea", "lead")
    console_login(client, lea)
    r = client.get("/console/banks")
    assert r.status_code == 200 and "partner-x" in r.text and f"Release #{entry}" in r.text
    url = f"/console/banks/csam/entries/{entry}/release"
    assert client.post(url, data={"csrf": "wrong"}).status_code == 403  # CSRF
    r = client.post(url, data={"csrf": csrf_of(r.text), "note": "checked"})
    assert r.status_code == 200 and r.url.path == "/console/banks" and f"Release #{entry}" not in r.text
    assert quality.entry_quality(cengine.db, "csam", entry)["released_by"] == "user:lea"
    r = client.post("/console/banks/csam/entries/x1/release", data={"csrf": csrf_of(r.text)})
    assert r.status_code == 422


@needs_chromium
def test_lead_sees_bank_quality_and_releases_in_the_browser(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_console(tmp_path, surge_distinct=3) as (base, engine):
        entry = quarantined_entry(engine, 3)
        assert verdict(engine) == "review"
        lea = person(engine, "lea", "lead")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            browser_log_in(page, base, lea)
            page.get_by_role("link", name="Banks").click()
            page.wait_for_url("**/console/banks")
            section = page.locator("#bank-csam")
            sync_api.expect(section.get_by_role("heading", name="Quarantined after a surge")).to_be_visible()
            assert "3 distinct uploads matched" in section.locator("table.quarantined").inner_text()
            assert "partner-x" in section.locator("table").first.inner_text()
            page.get_by_label("Note").fill("one viral image, checked")
            page.get_by_role("button", name=f"Release #{entry}").click()
            page.wait_for_url("**/console/banks")
            sync_api.expect(page.get_by_role("heading", name="Quarantined after a surge")).to_have_count(0)
            sync_api.expect(page.get_by_role("heading", name="Entries matched most")).to_be_visible()
        assert verdict(engine) == "block"
