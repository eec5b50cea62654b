"""The console's Sharing page (leads, admins, auditors; read-only): the subscriptions this instance follows
(cursor, entries, last sync, last error), the banks it shares and with whom, and each bank's list quality.
Over HTTP (roles) and in a real browser, where an auditor logs in, opens it from the navigation and finds
the figures ``GET /v1/banks/{bank}/quality`` and the exchange service give. The instance follows its own
shared bank over loopback (a real signed feed, a real sync). ``SAFEGUARD_SCREENSHOT_DIR=docs/img`` writes
docs/img/console-sharing.png."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from safeguard.banks import BankService
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.exchange.follower import ExchangeService
from safeguard.exchange.overview import shared_banks, subscriptions
from safeguard.exchange.shares import share
from safeguard.keys import KeyService
from tests.helpers.console import browser_log_in
from tests.web.conftest import console_login, person
from tests.web.live import chromium, live_console, needs_chromium

SURGE = hashlib.sha256(b"surging").hexdigest()


def shared_bank(engine: Engine) -> str:
    """A shareable bank with two entries, shared with a partner key; the key."""
    banks = BankService(engine.db)
    banks.create("shared", actor="t", shareable=True)
    for v in ("1" * 32, "2" * 32):
        banks.add_entry("shared", signal_type="md5", value=v, actor="t")
    partner = KeyService(engine.db).create("partner", "partner-b", actor="t")
    share(engine.db, partner["id"], ["shared"], actor="t")
    return str(partner["key"])


def quality_figures(engine: Engine) -> None:
    """A csam bank: one entry from partner-x quarantined after 3 distinct uploads, opinions on two others."""
    banks = BankService(engine.db)
    banks.create("csam", actor="t", default_category="A1")
    banks.add_entry("csam", signal_type="pdq", value=SURGE, actor="t", source="partner-x")
    ids = [
        int(banks.add_entry("csam", signal_type="md5", value=c * 32, actor="t", source="partner-x").id)
        for c in ("a", "b", "c")
    ]
    for i in range(3):
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        engine.scan(
            Content(kind=ContentKind.HASHES, signals=(Signal("sha256", sha), Signal("pdq", SURGE, quality=100)))
        )
    engine.quality.flush()
    for entry, opinion in zip(ids, ("confirmed", "confirmed", "disputed"), strict=True):
        banks.add_opinion(entry, opinion, actor="user:mo")


def test_sharing_page_roles_and_contents_over_http(client: TestClient, cengine: Engine) -> None:
    shared_bank(cengine)
    BankService(cengine.db).create("from-b", actor="t")
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ExchangeService(cengine.db, cengine.settings).add(
        "b",
        url="https://b.example/v1/exchange/banks/theirs",
        key="sg_x_y",
        bank="from-b",
        actor="t",
        public_key=base64.b64encode(pub),
    )
    console_login(client, person(cengine, "mia", "moderator"))
    r = client.get("/console/sharing")
    assert r.status_code == 403 and "wrong_role" in r.text
    assert 'href="/console/sharing"' not in client.get("/console/queue").text
    for name, role in (("ann", "auditor"), ("lea", "lead")):
        client.cookies.clear()
        console_login(client, person(cengine, name, role))
        assert 'href="/console/sharing"' in client.get("/console/queue").text
        r = client.get("/console/sharing")
        assert r.status_code == 200, r.text
        assert "https://b.example" in r.text and "never" in r.text and "(start)" in r.text
        assert "partner-b" in r.text and 'id="quality-shared"' in r.text and 'id="quality-from-b"' in r.text
    [row] = shared_banks(cengine.db)
    assert row["bank"] == "shared" and row["shareable"] and [p["name"] for p in row["partners"]] == ["partner-b"]


def _cells(row: Any) -> list[str]:
    return [c.strip() for c in row.locator("td").all_inner_texts()]


def _pct(p: float | None) -> str:
    return "\u2013" if p is None else f"{p * 100:.1f}%"


@needs_chromium
def test_auditor_sees_subscriptions_shares_and_quality_matching_the_api(tmp_path: Path, db_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with live_console(tmp_path, db_url, surge_distinct=3, egress_allow="127.0.0.1") as (base, engine):
        partner_key = shared_bank(engine)
        quality_figures(engine)
        BankService(engine.db).create("from-self", actor="t")
        ex = ExchangeService(engine.db, engine.settings)
        ex.add("self", url=f"{base}/v1/exchange/banks/shared", key=partner_key, bank="from-self", actor="t")
        got = ex.sync("self")
        assert got.error is None and got.upserts == 2
        [sub] = ex.subscriptions()
        assert sub["entries_applied"] == 2 and sub["cursor"]
        auditor_key = KeyService(engine.db).create("auditor", "audit-api", actor="t")["key"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {auditor_key}"}) as api:
            api_quality = {b: api.get(f"/v1/banks/{b}/quality").json() for b in ("csam", "shared", "from-self")}
        assert api_quality["csam"]["quarantined"] and api_quality["csam"]["precision"] == 0.6667
        ann = person(engine, "ann", "auditor")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            browser_log_in(page, base, ann)
            page.get_by_role("link", name="Sharing").click()
            page.wait_for_url("**/console/sharing")
            sync_api.expect(page.get_by_role("heading", name="Partners' banks we follow")).to_be_visible()

            # the subscription: as the exchange service has it
            cells = _cells(page.locator('#subscriptions tr[data-subscription="self"]'))
            assert cells[0] == "self" and cells[2] == "from-self"
            assert cells[1] == f"{base} bank shared"
            assert cells[3] == sub["last_sync_at"] and cells[4] == sub["cursor"]
            assert cells[5] == str(api_quality["from-self"]["entries"]) == "2"  # entries held
            assert cells[6] == str(sub["entries_applied"]) and cells[7] == ""
            # the shared bank and its partner
            shared = _cells(page.locator('#shared tr[data-bank="shared"]'))
            assert shared[1] == "yes" and shared[2].startswith("partner-b ")

            # each bank's quality: the API's figures, per source
            for bank, q in api_quality.items():
                section = page.locator(f"#quality-{bank}")
                head = section.locator("h3").inner_text()
                assert f"{q['entries']} entries" in head and f"precision {_pct(q['precision'])}" in head
                assert f"{len(q['quarantined'])} quarantined" in head
                for src in q["by_source"]:
                    row = _cells(section.locator(f'table.by-source tr[data-source="{src["source"]}"]'))
                    want = [
                        src["source"] or "(own)",
                        str(src["matched_entries"]),
                        str(src["matches"]),
                        str(src["confirmations"]),
                        str(src["disputes"]),
                        _pct(src["precision"]),
                    ]
                    assert row == want, (bank, row, want)
            quarantined = page.locator("#quality-csam table.quarantined")
            sync_api.expect(quarantined).to_be_visible()
            [entry] = api_quality["csam"]["quarantined"]
            assert f"#{entry['id']}" in quarantined.inner_text() and "partner-x" in quarantined.inner_text()
            shots = Path(os.environ.get("SAFEGUARD_SCREENSHOT_DIR") or tmp_path)
            page.screenshot(path=str(shots / "console-sharing.png"), full_page=True)
        assert subscriptions(engine.db, engine.settings)[0]["entries_held"] == 2
