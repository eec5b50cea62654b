"""GroomingService against a real database and engine: state, decisions, cases, webhooks, idempotency."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from safeguard.config import Settings
from safeguard.detectors.grooming.service import GroomingService
from safeguard.detectors.grooming.store import GroomingConversationRow, GroomingMessageRow, GroomingUserRow
from safeguard.engine import Engine
from safeguard.errors import Conflict, InvalidInput, PayloadTooLarge
from safeguard.store.models import Case, CaseItem, Event, OutboxMessage
from tests.detectors.grooming.helpers import BENIGN_LINES, GROOMING_LINES, msg


@pytest.fixture
def gengine(settings: Settings) -> Iterator[Engine]:
    e = Engine(settings.with_(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s"))
    yield e
    e.close()


@pytest.fixture
def svc(gengine: Engine) -> GroomingService:
    return GroomingService(gengine)


def _count(e: Engine, model: type) -> int:
    with e.db.read() as s:
        return len(s.execute(select(model)).scalars().all())


def test_grooming_conversation_opens_a_case_with_evidence_and_safety_message(svc: GroomingService) -> None:
    out = None
    for i, line in enumerate(GROOMING_LINES):
        out = svc.post("conv1", [msg(i, line)], locale="de")
    assert out is not None
    assert out["conversation_risk"] >= out["threshold"]
    d = out["decision"]
    assert d["verdict"] == "review" and "grooming-risk" in d["reasons"]
    names = [a["name"] for a in d["actions"]]
    assert {"case", "safety_message", "webhook"} <= set(names)
    assert out["safety_message"]["locale"] == "de"
    (finding,) = [f for f in d["findings"] if f["kind"] == "grooming_risk"]
    assert finding["detector"] == "grooming" and finding["confidence"] == "high"
    assert "secrecy" in finding["explanation"] and "m4" in finding["explanation"]
    assert {e["message_id"] for e in finding["evidence"]} >= {"m1", "m4"}
    assert set(out["stages"]) >= {"rapport", "secrecy", "meeting"}
    with svc.engine.db.read() as s:
        case = s.execute(select(Case)).scalar_one()
        assert (case.subject_kind, case.subject_id, case.priority) == ("conversation", "conv1", 1)
        items = s.execute(select(CaseItem)).scalars().all()
        assert any(it.summary["findings"][0].get("evidence") for it in items)
        topics = {m.topic for m in s.execute(select(OutboxMessage)).scalars()}
        assert "grooming.risk" in topics
        types = {e.type for e in s.execute(select(Event)).scalars()}
        assert {"decision.created", "action.safety_message", "action.case"} <= types


def test_sextortion_is_highest_priority_and_restricts_contact(svc: GroomingService) -> None:
    lines = ["send me a pic", "i'll share the pics with everyone unless you send more"]
    out = svc.post("conv2", [msg(i, t) for i, t in enumerate(lines)])
    d = out["decision"]
    assert "grooming-sextortion" in d["reasons"]
    assert any(f["kind"] == "sextortion" for f in d["findings"])
    assert {"restrict_contact", "safety_message"} <= {a["name"] for a in d["actions"]}
    with svc.engine.db.read() as s:
        assert s.execute(select(Case)).scalar_one().priority == 0
        ev = [e for e in s.execute(select(Event)).scalars() if e.type == "action.restrict_contact"]
        assert ev[0].payload["result"]["user_id"] == "adult1"
        assert ev[0].payload["result"]["performed_by"] == "platform"


def test_benign_conversation_is_allowed_and_keeps_no_text(svc: GroomingService) -> None:
    out = svc.post("conv3", [msg(i, t, band="teen", prior=True) for i, t in enumerate(BENIGN_LINES)])
    assert out["decision"]["verdict"] == "allow" and out["safety_message"] is None
    assert _count(svc.engine, Case) == 0
    with svc.engine.db.read() as s:
        state = s.get(GroomingConversationRow, "conv3").state
    assert "homework" not in state


def test_sender_risk_spans_conversations(svc: GroomingService) -> None:
    a = svc.post("ca", [msg(i, t) for i, t in enumerate(GROOMING_LINES)])
    b = svc.post("cb", [msg(i, t, to=(("kid2", "child"),)) for i, t in enumerate(GROOMING_LINES[:3])])
    assert b["sender_risk"]["adult1"] >= a["conversation_risk"]
    with svc.engine.db.read() as s:
        user = s.get(GroomingUserRow, "adult1")
        assert user is not None and user.risk >= a["conversation_risk"]


def test_recorded_decision_lost_in_a_crash_is_recreated_on_retry(svc: GroomingService) -> None:
    batch = [msg(i, t) for i, t in enumerate(GROOMING_LINES)]
    first = svc.post("c7", batch)
    assert first["decision"]["recorded"]
    again = svc.post("c7", batch)
    assert again["replayed"] and again["decision"]["id"] == first["decision"]["id"]
    from safeguard.store.models import DecisionRow

    with svc.engine.db.write() as s:  # as if the process died between the state and the decision commit
        s.execute(DecisionRow.__table__.delete())
    third = svc.post("c7", batch)
    assert third["decision"]["id"] == first["decision"]["id"] and third["decision"]["verdict"] == "review"
    assert svc.engine.get_decision(first["decision"]["id"])["verdict"] == "review"


def test_ordinary_chat_records_no_decision_unless_asked(svc: GroomingService) -> None:
    from safeguard.store.models import DecisionRow

    out = svc.post("c8", [msg(1, "that level was hard", band="teen", prior=True)])
    assert out["decision"] == {**out["decision"], "id": None, "verdict": "allow", "recorded": False}
    assert _count(svc.engine, DecisionRow) == 0
    everything = GroomingService(svc.engine, svc.scorer, record_all=True)
    out = everything.post("c9", [msg(1, "that level was hard", band="teen", prior=True)])
    assert out["decision"]["recorded"] and _count(svc.engine, DecisionRow) == 1


def test_idempotent_replay_and_conflicts(svc: GroomingService) -> None:
    first = svc.post("c4", [msg(1, "how old are you?")])
    again = svc.post("c4", [msg(1, "how old are you?")])
    assert again["replayed"] and again["conversation_risk"] == first["conversation_risk"]
    assert _count(svc.engine, GroomingMessageRow) == 1
    with pytest.raises(Conflict) as dup:
        svc.post("c4", [msg(1, "something else")])
    assert dup.value.code == "duplicate_message_id"
    with pytest.raises(Conflict) as late:
        svc.post("c4", [msg(0, "earlier message")])
    assert late.value.code == "out_of_order"
    with svc.engine.db.read() as s:
        assert s.get(GroomingConversationRow, "c4").messages == 1  # refused input changed nothing


def test_bad_batches_change_no_state(svc: GroomingService) -> None:
    with pytest.raises(PayloadTooLarge):
        svc.post("c5", [msg(1, "hi"), msg(2, "x" * 5000)])
    with pytest.raises(InvalidInput) as enc:
        svc.post("c5", [msg(1, "bad \ud800 text")])
    assert enc.value.code == "invalid_encoding"
    with pytest.raises(Conflict):
        svc.post("c5", [msg(2, "b"), msg(1, "a")])
    with pytest.raises(Conflict):
        svc.post("c5", [msg(1, "a"), msg(1, "a")])
    with pytest.raises(InvalidInput):
        svc.post("c5", [msg(1, "a", band="toddler")])
    with pytest.raises(InvalidInput):
        svc.post("c5", [])
    assert _count(svc.engine, GroomingConversationRow) == 0
    assert _count(svc.engine, GroomingMessageRow) == 0


def test_idle_state_expires(svc: GroomingService) -> None:
    svc.post("c6", [msg(i, t) for i, t in enumerate(GROOMING_LINES[:5])])
    old = datetime.now(UTC) - svc.ttl - timedelta(seconds=5)
    with svc.engine.db.write() as s:  # every writer bumps the version: that is how caches notice
        for model in (GroomingConversationRow, GroomingUserRow):
            s.execute(update(model).values(updated_at=old, version=model.version + 1))
        s.execute(update(GroomingMessageRow).values(created_at=old))
    out = svc.post("c6", [msg(10, "hi")])
    assert out["conversation_risk"] < 0.5  # started afresh
    assert svc.purge_expired() >= 5  # the old ledger rows
    assert _count(svc.engine, GroomingMessageRow) == 1


def test_concurrent_first_messages_from_one_sender(svc: GroomingService) -> None:
    """Eight conversations start at once from one sender: every post succeeds, the sender row is shared."""

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def post(k: int) -> None:
        try:
            barrier.wait()
            svc.post(f"par-{k}", [msg(1, "how old are you?", to=((f"kid{k}", "child"),))])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _count(svc.engine, GroomingConversationRow) == 8
    with svc.engine.db.read() as s:
        user = s.get(GroomingUserRow, "adult1")
        assert user is not None
        assert len(json.loads(user.state)["convs"]) == 8  # no lost update


def test_messages_without_new_evidence_do_not_repeat_actions(svc: GroomingService) -> None:
    first = svc.post("c10", [msg(i, t) for i, t in enumerate(GROOMING_LINES)])
    assert first["decision"]["recorded"] and first["safety_message"] is not None
    quiet = svc.post("c10", [msg(20, "lol ok")])
    d = quiet["decision"]
    assert d["verdict"] == "review" and d["recorded"] is False and d["actions"] == []
    assert "grooming-risk" in d["reasons"] and quiet["safety_message"] is None
    louder = svc.post("c10", [msg(21, "don't tell anyone about this")])
    assert louder["decision"]["recorded"] and louder["decision"]["id"] != first["decision"]["id"]
    with svc.engine.db.read() as s:
        assert len(s.execute(select(CaseItem)).scalars().all()) == 2  # one per recorded decision, one case
        assert len(s.execute(select(Case)).scalars().all()) == 1


def test_batch_mixing_a_replayed_message_and_new_ones(svc: GroomingService) -> None:
    batch = [msg(i, t) for i, t in enumerate(GROOMING_LINES)]
    first = svc.post("c11", batch)
    assert first["decision"]["recorded"]
    mixed = svc.post("c11", [batch[-1], msg(30, "i'll share the pics with everyone unless you answer")])
    assert [m["replayed"] for m in mixed["messages"]] == [True, False]
    assert mixed["decision"]["recorded"] and mixed["decision"]["id"] != first["decision"]["id"]
    assert "grooming-sextortion" in mixed["decision"]["reasons"]


def test_a_threat_seen_only_by_the_threat_head_is_news_and_sextortion_evidence(svc: GroomingService) -> None:
    line = "you have 1 hour. 100 euros or the video goes to your whole friend list"
    (a,) = svc.scorer.analyse([line])
    if svc.scorer.threat_head is None:
        pytest.skip("the packaged model has no threat head")
    assert a.indicators == () and a.threat >= 0.5  # no regex matches it; the learned head does
    first = svc.post("c-threat", [msg(i, t) for i, t in enumerate(GROOMING_LINES)])
    assert first["decision"]["recorded"]
    out = svc.post("c-threat", [msg(40, line)])
    assert out["messages"][0]["indicators"] == []
    d = out["decision"]
    assert d["recorded"] and d["id"] != first["decision"]["id"]  # stage-head evidence is news
    assert "grooming-sextortion" in d["reasons"]
    (sx,) = [f for f in d["findings"] if f["kind"] == "sextortion"]
    assert any("pressure.semantic" in e["indicators"] and e["message_id"] == "m40" for e in sx["evidence"])
    # the same threat reported by the child who received it is not sextortion evidence
    rep = svc.post("c-report", [msg(0, "he said: " + line, sender="kid9", band="child")])
    assert not any(f["kind"] == "sextortion" for f in rep["decision"]["findings"])
