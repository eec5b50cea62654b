"""Reports: drafted from a confirmed case (one per reported user), approved by a second lead, retracted once."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.engine import Engine
from safeguard.errors import Conflict, Forbidden, InvalidInput
from safeguard.media import Media
from safeguard.reports import ReportService
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Event, Report
from tests.helpers.api import auth
from tests.helpers.cases import AUDITOR, LEAD, MOD
from tests.helpers.reports import LEAD2, REPORTER, confirmed_case
from tests.media_factory import image_bytes


def test_confirmed_case_gets_one_draft_per_user_with_its_items(engine: Engine, banks: BankService) -> None:
    case_id = confirmed_case(engine, banks)
    rs = ReportService(engine.db, engine.settings)
    reports, nxt = rs.list_reports(AUDITOR)
    assert nxt is None and len(reports) == 1
    r = reports[0]
    assert (r.case_id, r.reported_user, r.state, r.category) == (case_id, "u-1", "draft", "A1")
    assert r.confirmed_by == MOD.actor and r.confirmed_at is not None and r.matched_at is not None
    assert len(r.decision_ids) == 1
    assert [s["type"] for s in rs.steps(AUDITOR, r.id)] == ["report.drafted"]


def test_auto_draft_off_drafts_nothing_until_a_lead_asks(engine: Engine, banks: BankService) -> None:
    case_id = confirmed_case(engine, banks, reports_auto_draft=False)
    rs = ReportService(engine.db, engine.settings)
    assert rs.list_reports(LEAD)[0] == []
    ids = rs.draft(LEAD, case_id)
    assert len(ids) == 1 and rs.draft(LEAD, case_id) == ids  # drafting again refreshes, never duplicates
    assert [s["type"] for s in rs.steps(LEAD, ids[0])] == ["report.drafted", "report.redrafted"]


def test_approval_needs_a_second_lead_and_retraction_happens_once(engine: Engine, banks: BankService) -> None:
    confirmed_case(engine, banks, who=LEAD)
    rs = ReportService(engine.db, engine.settings)
    rid = rs.list_reports(LEAD)[0][0].id
    with pytest.raises(Forbidden) as e:
        rs.approve(LEAD, rid)
    assert e.value.code == "second_approver_required"
    with pytest.raises(Forbidden):
        rs.approve(MOD, rid)  # a moderator approves nothing
    assert ReportService(engine.db, engine.settings.with_(reports_self_approve=True)).approve(LEAD, rid).state == (
        "approved"
    )
    r = rs.retract(LEAD2, rid, reason="duplicate")
    assert r.state == "retracted" and r.step == ""  # never sent: nothing to retract at NCMEC
    with pytest.raises(Conflict) as e2:
        rs.retract(LEAD2, rid)
    assert e2.value.code == "report_state"
    with engine.db.read() as s:
        types = list(s.execute(select(Event.type).where(Event.subject_kind == "report").order_by(Event.seq)).scalars())
    assert types == ["report.drafted", "report.approved", "report.retracted"]


def test_second_lead_approves_and_bad_input_is_clear(engine: Engine, banks: BankService) -> None:
    confirmed_case(engine, banks, who=LEAD)
    rs = ReportService(engine.db, engine.settings)
    rid = rs.list_reports(LEAD)[0][0].id
    got = rs.approve(LEAD2, rid)
    assert got.state == "approved" and got.approved_by == LEAD2.actor
    with pytest.raises(Conflict):
        rs.approve(LEAD2, rid)  # approved already
    with pytest.raises(InvalidInput) as e:
        rs.list_reports(LEAD, state="nope")
    assert e.value.code == "invalid_state"
    with pytest.raises(InvalidInput):
        rs.list_reports(LEAD, cursor="!!")
    assert rs.list_reports(LEAD, state="approved")[0][0].id == rid
    with engine.db.read() as s:
        assert s.execute(select(Report.state)).scalar() == "approved"


def test_preview_is_valid_cybertipline_xml_with_the_reporter_and_user(engine: Engine, banks: BankService) -> None:
    confirmed_case(engine, banks)
    rid = ReportService(engine.db, engine.settings).list_reports(LEAD)[0][0].id
    bare = ReportService(engine.db, engine.settings).preview(LEAD, rid)
    assert bare["validation"] == []  # the schema needs no reporter fields; Safeguard does
    assert "SAFEGUARD_REPORTER_ORGANISATION is not set" in bare["missing"]
    rs = ReportService(engine.db, engine.settings.with_(**REPORTER))
    p = rs.preview(LEAD, rid)
    assert p["validation"] == [] and p["missing"] == []
    assert "<espIdentifier>u-1</espIdentifier>" in p["xml"] and "<platform>Example Platform</platform>" in p["xml"]
    assert "Child Pornography" in p["xml"]
    assert len(p["files"]) == 1 and p["files"][0]["sent"] and len(p["files"][0]["hashes"]["sha256"]) == 64


def test_user_details_sent_with_a_scan_are_kept_and_reported(
    app_client: TestClient, keys: dict[str, str], engine: Engine, banks: BankService
) -> None:
    banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(5)
    banks.add_entry("csam", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="t")
    user = {"ip": "192.0.2.10", "port": 50123, "screen_name": "sn", "email": "u@example.org"}

    r = app_client.post(
        "/v1/scan",
        headers=auth(keys["platform"]),
        files={"file": ("a.png", data, "image/png")},
        data={"user_id": "u-5", "user": json.dumps(user)},
    )
    assert r.status_code == 200, r.text
    case_id = r.json()["case_id"]
    bad = app_client.post(
        "/v1/scan",
        headers=auth(keys["platform"]),
        json={"signals": [{"type": "md5", "value": "0" * 32}], "user": {"ip": "not-an-ip"}},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    cs = CaseService(engine.db, engine.settings)
    cs.claim(MOD, case_id)
    cs.decide(MOD, case_id, outcome="confirmed", category="B1")
    rs = ReportService(engine.db, engine.settings.with_(**REPORTER))
    p = rs.preview(LEAD, rs.list_reports(LEAD)[0][0].id)
    assert p["validation"] == []
    assert "<ipAddress>192.0.2.10</ipAddress>" in p["xml"] and "<port>50123</port>" in p["xml"]
    assert "<screenName>sn</screenName>" in p["xml"] and "<email>u@example.org</email>" in p["xml"]
