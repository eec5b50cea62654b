"""Cases become work: queues, SLA, claims (409s), decisions, second opinions, the review bank, roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from safeguard import events
from safeguard.accounts import Who
from safeguard.banks import BankService
from safeguard.cases import CaseFilter, CaseService
from safeguard.cases.model import parse_sla, queue_for
from safeguard.cases.service import encode_cursor
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Finding
from safeguard.engine import Engine
from safeguard.errors import ConfigError, Conflict, Forbidden, InvalidInput
from safeguard.keys import KeyService
from safeguard.store.models import BankEntry, Case, EntryOpinion, utcnow
from tests.helpers.api import auth
from tests.helpers.cases import AUDITOR, LEAD, MOD, banked_case
from tests.media_factory import image_bytes

MOD2 = Who("user:max", "moderator", "max", "user", 2)


def service(engine: Engine, **changes: object) -> CaseService:
    return CaseService(engine.db, engine.settings.with_(**changes))


def test_queue_follows_content_and_detector() -> None:
    img = Content(kind=ContentKind.IMAGE, user_id="u")
    assert queue_for(img, [Finding(detector="hash_match", kind="hash_match")]) == "csam"
    assert (
        queue_for(Content(kind=ContentKind.MESSAGE), [Finding(detector="grooming", kind="grooming_risk")]) == "grooming"
    )
    assert queue_for(Content(kind=ContentKind.STREAM, stream_id="s"), []) == "streams"


def test_bad_review_settings_stop_the_start(engine: Engine) -> None:
    for bad in ({"review_sla": "csam=1h"}, {"review_second_opinion": "sometimes"}):
        with pytest.raises(ConfigError):
            service(engine, **bad)


def test_sla_setting_parses_and_refuses_nonsense() -> None:
    sla = parse_sla(Settings().review_sla)
    assert sla["streams"][0] == timedelta(minutes=15) and sla["user_reports"][2] == timedelta(hours=72)
    for bad in ("csam=1h", "nope=1h,grooming=1h", "csam=soon,grooming=1h,streams=1h,user_reports=1h"):
        with pytest.raises(ConfigError):
            parse_sla(bad)


def test_case_opens_in_queue_with_due_time_and_claims_conflict(engine: Engine, banks: BankService) -> None:
    case_id, _ = banked_case(engine, banks)
    cs = service(engine)
    page = cs.list_cases(MOD, CaseFilter())
    assert [c.id for c in page.cases] == [case_id]
    c = page.cases[0]
    assert (c.queue, c.status, c.priority) == ("csam", "open", 0)
    assert c.due_at is not None and timedelta(minutes=59) < c.due_at - c.opened_at <= timedelta(hours=1)
    assert cs.claim(MOD, case_id).status == "claimed"
    with pytest.raises(Conflict) as e:
        cs.claim(MOD2, case_id)
    assert e.value.code == "case_claimed" and e.value.status == 409
    with pytest.raises(Conflict) as e:
        cs.decide(MOD2, case_id, outcome="not_violating")
    assert e.value.code == "claim_required"
    with pytest.raises(Forbidden):
        cs.claim(MOD2, case_id, force=True)  # only a lead forces
    assert cs.claim(LEAD, case_id, force=True).assignee == LEAD.actor
    assert cs.list_cases(MOD, CaseFilter.parse(queue="csam", status="claimed", priority=0, assignee=LEAD.actor)).cases


def test_expired_claim_returns_to_the_queue(engine: Engine, banks: BankService) -> None:
    case_id, _ = banked_case(engine, banks)
    cs = service(engine)
    cs.claim(MOD, case_id)
    with engine.db.write() as s:
        s.execute(update(Case).where(Case.id == case_id).values(claim_expires_at=utcnow() - timedelta(seconds=1)))
    assert [c.id for c in cs.list_cases(MOD2, CaseFilter()).cases] == [case_id]  # back to open
    assert cs.claim(MOD2, case_id).assignee == MOD2.actor
    assert "case.claim_expired" in [e.type for e in cs.timeline(MOD2, case_id)]


def test_confirmed_adds_hashes_to_review_bank_with_provenance_and_opinions(engine: Engine, banks: BankService) -> None:
    case_id, entry_id = banked_case(engine, banks)
    cs = service(engine)
    cs.claim(MOD, case_id)
    got = cs.decide(MOD, case_id, outcome="confirmed", category="A1", notes="clear match")
    assert got.stage == "final" and got.case.status == "decided" and got.case.report_status == "ready"
    assert got.opinions == [entry_id]
    review = banks.describe("moderator-confirmed")
    assert review.entry_count == len(got.bank_entries) == 3  # sha256, md5, pdq of the upload
    with engine.db.read() as s:
        rows = list(s.execute(select(BankEntry).where(BankEntry.bank_id == review.id)).scalars())
        assert {r.signal_type for r in rows} == {"sha256", "md5", "pdq"}
        assert all(r.provenance == {"case_id": case_id, "reviewer": MOD.actor, "queue": "csam"} for r in rows)
        assert all(r.category == "A1" and r.added_by == MOD.actor for r in rows)
        matched = s.get(BankEntry, entry_id)
        assert matched is not None and matched.opinion == "confirmed"
        ops = list(s.execute(select(EntryOpinion).where(EntryOpinion.entry_id == entry_id)).scalars())
        assert [(o.opinion, o.actor) for o in ops] == [("confirmed", MOD.actor)]
        assert events.verify(s).ok
    types = [e.type for e in cs.timeline(AUDITOR, case_id)]
    assert types[:1] == ["decision.created"] and "case.claimed" in types and types[-1] == "case.decided"
    # the next scan of the same image now matches the review bank too
    engine.indexes.maybe_refresh()
    d = engine.scan(Content(kind=ContentKind.IMAGE, data=image_bytes(2), content_id="again"))
    assert "moderator-confirmed" in {f.bank for f in d.findings}
    # decided: a moderator cannot decide again; a lead may override; closed refuses everyone
    with pytest.raises(Conflict) as e:
        cs.decide(MOD, case_id, outcome="not_violating")
    assert e.value.code == "case_decided"
    over = cs.decide(LEAD, case_id, outcome="not_violating", override=True)
    assert over.stage == "override" and over.case.status == "closed"
    # overturned: the matched entry and the hashes the confirmation banked are disputed
    assert over.opinions == [entry_id, *got.bank_entries]
    assert {banks.get_entry(i).opinion for i in over.opinions} == {"disputed"}
    for who in (MOD, LEAD):
        with pytest.raises(Conflict) as e:
            cs.decide(who, case_id, outcome="confirmed", category="A1", override=who is LEAD)
        assert e.value.code == "case_closed"
    with pytest.raises(Conflict):
        cs.claim(LEAD, case_id)


def test_not_violating_disputes_matched_entries_and_closes(engine: Engine, banks: BankService) -> None:
    case_id, entry_id = banked_case(engine, banks)
    cs = service(engine)
    cs.claim(MOD, case_id)
    got = cs.decide(MOD, case_id, outcome="not_violating")
    assert got.case.status == "closed" and got.opinions == [entry_id] and got.bank_entries == []
    assert banks.get_entry(entry_id).opinion == "disputed"


def test_second_opinion_needs_a_different_reviewer_and_disagreement_goes_to_a_lead(
    engine: Engine, banks: BankService
) -> None:
    cs = service(engine, review_second_opinion="all")
    case_id, entry_id = banked_case(engine, banks)
    cs.claim(MOD, case_id)
    first = cs.decide(MOD, case_id, outcome="confirmed", category="A2")
    assert first.stage == "first" and first.case.status == "open" and first.case.awaiting_second_review
    assert first.bank_entries == [] and banks.get_entry(entry_id).opinion == "none"
    with pytest.raises(Conflict) as e:
        cs.claim(MOD, case_id)
    assert e.value.code == "second_reviewer_required"
    cs.claim(MOD2, case_id)
    second = cs.decide(MOD2, case_id, outcome="confirmed", category="A2")
    assert second.stage == "final" and second.case.status == "decided" and second.bank_entries
    # disagreement: escalated to a lead, whom moderators cannot replace
    other, _ = banked_case(engine, banks, seed=5, user="u-2")
    cs.claim(MOD, other)
    cs.decide(MOD, other, outcome="confirmed", category="A1")
    cs.claim(MOD2, other)
    dis = cs.decide(MOD2, other, outcome="not_violating")
    assert dis.stage == "disagreed" and dis.case.escalated and dis.case.status == "open"
    with pytest.raises(Forbidden) as f:
        cs.claim(MOD, other)
    assert f.value.code == "lead_required"
    cs.claim(LEAD, other)
    assert cs.decide(LEAD, other, outcome="not_violating").case.status == "closed"


def test_second_opinion_not_violating_only(engine: Engine, banks: BankService) -> None:
    cs = service(engine, review_second_opinion="not_violating")
    case_id, _ = banked_case(engine, banks)
    cs.claim(MOD, case_id)
    assert cs.decide(MOD, case_id, outcome="not_violating").stage == "first"
    other, _ = banked_case(engine, banks, seed=5, user="u-2")
    cs.claim(MOD, other)
    assert cs.decide(MOD, other, outcome="confirmed", category="B1").stage == "final"


def test_bad_decisions_and_roles(engine: Engine, banks: BankService) -> None:
    case_id, _ = banked_case(engine, banks)
    cs = service(engine)
    cs.claim(MOD, case_id)
    for kw, code in (
        ({"outcome": "maybe"}, "invalid_outcome"),
        ({"outcome": "confirmed"}, "category_required"),
        ({"outcome": "confirmed", "category": "Z9"}, "invalid_category"),
        ({"outcome": "escalated", "notes": "x" * 5000}, "notes_too_long"),
        ({"outcome": "escalated", "notes": "a\x00b"}, "invalid_encoding"),
    ):
        with pytest.raises(InvalidInput) as e:
            cs.decide(MOD, case_id, **kw)  # type: ignore[arg-type]
        assert e.value.code == code
    with pytest.raises(Forbidden):
        cs.claim(AUDITOR, case_id)
    with pytest.raises(Forbidden):
        cs.decide(MOD, case_id, outcome="not_violating", override=True)
    esc = cs.decide(MOD, case_id, outcome="escalated", notes="not sure")
    assert esc.case.escalated and esc.case.assignee is None


def test_keyset_pages_and_filters(engine: Engine) -> None:
    now = utcnow()
    with engine.db.write() as s:
        for i in range(23):
            s.add(
                Case(
                    subject_kind="user",
                    subject_id=f"u{i}",
                    status="open" if i % 5 else "closed",
                    priority=i % 3,
                    verdict="review",
                    queue="grooming" if i % 2 else "csam",
                    opened_at=now,
                    updated_at=now,
                )
            )
    cs = service(engine)
    seen, cursor = [], None
    while True:
        page = cs.list_cases(MOD, CaseFilter(), cursor=cursor, limit=4)
        seen += [(c.priority, c.id) for c in page.cases]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 18
    grooming = cs.list_cases(MOD, CaseFilter.parse(queue="grooming", status="open,closed", priority=1, assignee=None))
    assert grooming.cases and all(c.queue == "grooming" and c.priority == 1 for c in grooming.cases)
    assert (
        len(cs.list_cases(MOD, CaseFilter.parse(queue=None, status="all", priority=None, assignee="none")).cases) == 23
    )
    with pytest.raises(InvalidInput):
        cs.list_cases(MOD, CaseFilter(), cursor="!!!")
    with pytest.raises(InvalidInput):
        CaseFilter.parse(queue="spam", status=None, priority=None, assignee=None)


def test_claim_next_takes_priority_then_age(engine: Engine, banks: BankService) -> None:
    a, _ = banked_case(engine, banks, seed=2, user="u-1")
    b, _ = banked_case(engine, banks, seed=5, user="u-2")
    cs = service(engine)
    assert cs.claim_next(MOD, queue="csam").id == a  # type: ignore[union-attr]
    assert cs.claim_next(MOD2).id == b  # type: ignore[union-attr]
    assert cs.claim_next(MOD) is None


# -- over HTTP ------------------------------------------------------------------------------------
def test_api_claim_decide_and_status_codes(
    app_client: TestClient, engine: Engine, banks: BankService, keys: dict[str, str]
) -> None:
    case_id, _ = banked_case(engine, banks)
    ks = KeyService(engine.db)
    lead = ks.create("lead", "lead", actor="t")["key"]
    mod2 = ks.create("moderator", "m2", actor="t")["key"]
    mod = keys["moderator"]
    listed = app_client.get("/v1/cases?queue=csam&status=open", headers=auth(keys["auditor"]))
    assert listed.status_code == 200 and listed.json()["cases"][0]["id"] == case_id
    for role in ("platform", "auditor"):
        for path, body in (
            (f"/v1/cases/{case_id}/claim", {}),
            (f"/v1/cases/{case_id}/decision", {"outcome": "escalated"}),
        ):
            r = app_client.post(path, json=body, headers=auth(keys[role]))
            assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role", (role, path)
    assert app_client.get("/v1/cases", headers=auth(keys["platform"])).status_code == 403
    r = app_client.post(f"/v1/cases/{case_id}/decision", json={"outcome": "not_violating"}, headers=auth(mod))
    assert r.status_code == 409 and r.json()["error"]["code"] == "claim_required"
    assert app_client.post(f"/v1/cases/{case_id}/claim", headers=auth(mod)).status_code == 200
    r = app_client.post(f"/v1/cases/{case_id}/claim", headers=auth(mod2))
    assert r.status_code == 409 and r.json()["error"]["code"] == "case_claimed"
    r = app_client.post(f"/v1/cases/{case_id}/decision", json={"outcome": "nope"}, headers=auth(mod))
    assert r.status_code == 422
    r = app_client.post(
        f"/v1/cases/{case_id}/decision",
        json={"outcome": "confirmed", "category": "A1", "notes": "ok"},
        headers=auth(mod),
    )
    assert r.status_code == 200 and r.json()["case"]["status"] == "decided", r.text
    detail = app_client.get(f"/v1/cases/{case_id}", headers=auth(mod)).json()
    assert detail["findings"][0]["bank"] == "csam"
    (item,) = detail["evidence"]  # the upload, preserved in the vault by the default policy
    assert item["preserved"] and item["media_type"] == "image/jpeg" and len(item["sha256"]) == 64
    assert [d["outcome"] for d in detail["decisions"]] == ["confirmed"]
    r = app_client.post(f"/v1/cases/{case_id}/decision", json={"outcome": "not_violating"}, headers=auth(mod))
    assert r.status_code == 409 and r.json()["error"]["code"] == "case_decided"
    r = app_client.post(
        f"/v1/cases/{case_id}/decision", json={"outcome": "not_violating", "override": True}, headers=auth(lead)
    )
    assert r.status_code == 200 and r.json()["case"]["status"] == "closed"
    r = app_client.post(f"/v1/cases/{case_id}/claim", headers=auth(mod))
    assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed"
    tl = app_client.get(f"/v1/cases/{case_id}/timeline", headers=auth(keys["auditor"])).json()["events"]
    assert [e["type"] for e in tl if e["type"].startswith("case.")] == [
        "case.claimed",
        "case.decided",
        "case.viewed",
        "case.decided",
    ]
    assert app_client.get("/v1/cases/999/timeline", headers=auth(mod)).status_code == 404
    assert app_client.get("/v1/cases?cursor=@@", headers=auth(mod)).json()["error"]["code"] == "invalid_cursor"


def test_api_lead_assigns(app_client: TestClient, engine: Engine, banks: BankService, keys: dict[str, str]) -> None:
    case_id, _ = banked_case(engine, banks)
    lead = KeyService(engine.db).create("lead", "lead", actor="t")["key"]
    r = app_client.post(f"/v1/cases/{case_id}/assign", json={"assignee": "user:mia"}, headers=auth(keys["moderator"]))
    assert r.status_code == 403
    r = app_client.post(f"/v1/cases/{case_id}/assign", json={"assignee": "user:mia"}, headers=auth(lead))
    assert r.status_code == 200 and r.json()["assignee"] == "user:mia" and r.json()["status"] == "claimed"
    mine = app_client.get("/v1/cases?status=claimed&assignee=user:mia", headers=auth(lead)).json()["cases"]
    assert [c["id"] for c in mine] == [case_id]
    r = app_client.post(f"/v1/cases/{case_id}/release", headers=auth(lead))
    assert r.status_code == 200 and r.json()["status"] == "open"


def test_detections_open_cases_in_their_queues(engine: Engine) -> None:
    groom = engine.decide(
        Content(kind=ContentKind.MESSAGE, conversation_id="conv-1", user_id="adult-1"),
        [Finding(detector="grooming", kind="sextortion", category="pressure", confidence="high")],
    )
    stream = engine.decide(
        Content(kind=ContentKind.STREAM, stream_id="live-1", user_id="adult-1"),
        [Finding(detector="hash_match", kind="hash_match", bank="csam", bank_kind="csam", confidence="high")],
    )
    cs = service(engine)
    got = {c.id: (c.queue, c.priority, c.subject_kind) for c in cs.list_cases(AUDITOR, CaseFilter()).cases}
    assert got == {groom.case_id: ("grooming", 0, "conversation"), stream.case_id: ("streams", 0, "stream")}
    # the same subject in another queue is another case; in the same queue, the same case
    again = engine.decide(
        Content(kind=ContentKind.MESSAGE, conversation_id="conv-1"),
        [Finding(detector="grooming", kind="grooming_risk", score=0.97, confidence="high")],
    )
    assert again.case_id == groom.case_id


def test_concurrent_claims_one_wins(engine: Engine, banks: BankService) -> None:
    from concurrent.futures import ThreadPoolExecutor

    case_id, _ = banked_case(engine, banks)
    cs = service(engine)
    people = [Who(f"user:m{i}", "moderator", f"m{i}", "user", 10 + i) for i in range(6)]

    def claim(who: Who) -> str:
        try:
            cs.claim(who, case_id)
            return "won"
        except Conflict as exc:
            return exc.code

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(claim, people))
    assert sorted(results) == ["case_claimed"] * 5 + ["won"]
    winner = people[results.index("won")]
    assert (
        cs.list_cases(AUDITOR, CaseFilter.parse(queue=None, status="claimed", priority=None, assignee=None))
        .cases[0]
        .assignee
        == winner.actor
    )


def test_api_out_of_range_ids_and_cursors(app_client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["moderator"])
    for path in ("/v1/cases/99999999999999999999", "/v1/cases/0/timeline"):
        assert app_client.get(path, headers=h).status_code == 422
    r = app_client.get("/v1/cases?cursor=" + encode_cursor(1, 2**70), headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
