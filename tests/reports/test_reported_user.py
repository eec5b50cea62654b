"""The optional ``user`` details (with ``linked_accounts``) on conversation messages, scans and user reports:
validated strictly, kept with the decision, carried into the CyberTipline XML and the NCA package."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.engine import Engine
from safeguard.evidence.vault import EvidenceVault
from safeguard.ledger import Signer
from safeguard.media import Media
from safeguard.reports import ReportService, package
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Case, DecisionRow, Report
from tests.detectors.grooming.helpers import GROOMING_LINES
from tests.helpers.api import auth
from tests.helpers.cases import MOD
from tests.helpers.reports import LEAD2, REPORTER
from tests.media_factory import image_bytes

USER = {
    "ip": "2001:db8::7",
    "port": 40100,
    "screen_name": "night_owl",
    "email": "owl@example.org",
    "display_name": "Owl",
    "account_created_at": "2026-11-01T08:00:00Z",
    "linked_accounts": [
        {"platform": "OtherChat", "user_id": "oc-991", "screen_name": "owl2"},
        {"user_id": "alt-3"},
    ],
}
URL = "/v1/conversations/conv-r/messages"


def message(i: int, text: str, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "message_id": f"m{i}",
        "sender": {"id": "adult1", "age_band": "adult", "account_age_days": 2},
        "recipients": [{"id": "kid1", "age_band": "child"}],
        "text": text,
        "sent_at": 1_000 + 10 * i,
    }
    d.update(kw)
    return d


def confirm(engine: Engine, case_id: int, category: str) -> Report:
    cs = CaseService(engine.db, engine.settings)
    cs.claim(MOD, case_id)
    cs.decide(MOD, case_id, outcome="confirmed", category=category)
    with engine.db.read() as s:
        r = s.execute(select(Report).where(Report.case_id == case_id)).scalar_one()
        s.expunge(r)
        return r


def nca_doc(engine: Engine, rid: int) -> dict[str, Any]:
    s = engine.settings.with_(**REPORTER)
    with engine.db.read() as db:
        r = db.get(Report, rid)
        assert r is not None
        blob = package.build(db, r, s, EvidenceVault(s, engine.db), Signer.from_settings(s), actor="t")
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        doc: dict[str, Any] = json.loads(z.read("report.json"))
        return doc


def linked_of(xml: str) -> list[dict[str, str | None]]:
    root = etree.fromstring(xml.encode())
    return [
        {
            "type": a.get("type"),
            "platform": a.findtext("platform"),
            "id": a.findtext("espIdentifier"),
            "screen_name": a.findtext("screenName"),
        }
        for a in root.iter("associatedAccount")
    ]


def test_conversation_message_user_reaches_the_grooming_report(
    app_client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    msgs = [message(i, t) for i, t in enumerate(GROOMING_LINES)]
    msgs[-1]["user"] = USER  # the sender's details, sent with one message of the batch
    r = app_client.post(URL, json={"messages": msgs}, headers=auth(keys["platform"]))
    assert r.status_code == 200, r.text
    decision = r.json()["decision"]
    assert decision["recorded"] is True
    with engine.db.read() as s:
        row = s.get(DecisionRow, decision["id"])
        assert row is not None and row.user_id == "adult1"
        assert row.body["user"]["screen_name"] == "night_owl" and row.body["user"]["ip"] == "2001:db8::7"
        assert row.body["user"]["linked_accounts"][1] == {"user_id": "alt-3"}
        case_id = s.execute(select(Case.id).where(Case.subject_id == "conv-r")).scalar_one()
    report = confirm(engine, case_id, "grooming")
    assert report.reported_user == "adult1"
    p = ReportService(engine.db, engine.settings.with_(**REPORTER)).preview(LEAD2, report.id)
    assert p["validation"] == [], p["validation"]
    xml = p["xml"]
    assert "<chatImIncident>" in xml and "<espIdentifier>adult1</espIdentifier>" in xml
    assert "<screenName>night_owl</screenName>" in xml and "<displayName>Owl</displayName>" in xml
    assert "<ipAddress>2001:db8::7</ipAddress>" in xml and "<port>40100</port>" in xml
    assert "<email>owl@example.org</email>" in xml and "Account created 2026-11-01T08:00:00Z" in xml
    assert linked_of(xml) == [
        {"type": "Linked", "platform": "OtherChat", "id": "oc-991", "screen_name": "owl2"},
        {"type": "Linked", "platform": None, "id": "alt-3", "screen_name": None},
    ]
    doc = nca_doc(engine, report.id)
    acc = doc["account"]
    assert acc["screen_name"] == "night_owl" and acc["email"] == "owl@example.org"
    assert acc["ip_addresses"][0]["ip"] == "2001:db8::7" and acc["ip_addresses"][0]["port"] == 40100
    assert acc["linked_accounts"] == [
        {"platform": "OtherChat", "user_id": "oc-991", "screen_name": "owl2"},
        {"platform": None, "user_id": "alt-3", "screen_name": None},
    ]
    status = {(x["schedule"], x["item"].split(" ")[0]): x["status"] for x in doc["regulations"]}
    assert status[("4", "connections")] == "included" and status[("4", "IP")] == "included"
    assert status[("5", "identity")] == "missing" and status[("7", "a")] == "missing"


@pytest.mark.parametrize(
    ("user", "loc"),
    [
        ({"ip": "999.1.1.1"}, "ip"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"email": "a" * 321}, "email"),
        ({"screen_name": "a\x00b"}, "screen_name"),
        ({"account_created_at": "2026-11-01T08:00:00"}, "account_created_at"),  # no time zone
        ({"nickname": "x"}, "nickname"),  # unknown field
        ({"linked_accounts": [{"platform": "x"}]}, "user_id"),  # a linked account needs its id
        ({"linked_accounts": [{"user_id": "a", "role": "alt"}]}, "role"),
        ({"linked_accounts": [{"user_id": ""}]}, "user_id"),
        ({"linked_accounts": [{"user_id": str(i)} for i in range(51)]}, "linked_accounts"),
        ({"linked_accounts": "alt-3"}, "linked_accounts"),
        ("adult1", "user"),
    ],
)
def test_bad_user_on_a_message_is_a_422_and_stores_nothing(
    app_client: TestClient, keys: dict[str, str], engine: Engine, user: Any, loc: str
) -> None:
    r = app_client.post(URL, json=message(0, GROOMING_LINES[0], user=user), headers=auth(keys["platform"]))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert any(loc in [str(x) for x in d["loc"]] for d in err["details"]), err["details"]
    got = app_client.get("/v1/conversations/conv-r/grooming", headers=auth(keys["platform"]))
    assert got.json().get("messages", 0) == 0, got.text
    with engine.db.read() as s:
        assert s.execute(select(DecisionRow.id)).first() is None


def test_linked_accounts_on_scan_and_user_reports(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(11)
    banks.add_entry("csam", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="t")
    user = {"screen_name": "sn", "linked_accounts": [{"platform": "Pics", "user_id": "p-1"}]}
    r = app_client.post(
        "/v1/scan",
        headers=auth(keys["platform"]),
        files={"file": ("a.png", data, "image/png")},
        data={"user_id": "u-11", "user": json.dumps(user)},
    )
    assert r.status_code == 200, r.text
    report = confirm(engine, r.json()["case_id"], "B1")
    p = ReportService(engine.db, engine.settings.with_(**REPORTER)).preview(LEAD2, report.id)
    assert p["validation"] == [] and linked_of(p["xml"]) == [
        {"type": "Linked", "platform": "Pics", "id": "p-1", "screen_name": None}
    ]
    assert nca_doc(engine, report.id)["account"]["linked_accounts"] == [
        {"platform": "Pics", "user_id": "p-1", "screen_name": None}
    ]
    bad = app_client.post(
        "/v1/scan",
        headers=auth(keys["platform"]),
        files={"file": ("a.png", data, "image/png")},
        data={"user_id": "u-11", "user": json.dumps({"linked_accounts": [{"screen_name": "no id"}]})},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_user"
    ok = app_client.post(
        "/v1/user-reports",
        headers=auth(keys["platform"]),
        json={
            "reporter_id": "kid-9",
            "reason": "other",
            "reported_user_id": "u-12",
            "user": {"linked_accounts": [{"user_id": "alt-12"}]},
        },
    )
    assert ok.status_code == 201, ok.text
    refused = app_client.post(
        "/v1/user-reports",
        headers=auth(keys["platform"]),
        json={"reporter_id": "kid-9", "reason": "other", "reported_user_id": "u-12", "user": {"linked_accounts": [1]}},
    )
    assert refused.status_code == 422, refused.text
