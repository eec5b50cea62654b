"""The service's state transaction: cache, versioned writes, the careful path, and atomic decisions.

Two engines on one database stand in for two processes: each has its own grooming detector and so its
own cache, so whatever one writes makes the other's cached copy stale, which is what the version check
must catch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pytest
from sqlalchemy import delete, select

from safeguard.config import Settings
from safeguard.detectors.grooming.cache import CachedRow, StateCache
from safeguard.detectors.grooming.service import GroomingService
from safeguard.detectors.grooming.state import ConversationState, UserState
from safeguard.detectors.grooming.store import GroomingConversationRow, GroomingMessageRow, GroomingUserRow
from safeguard.engine import Engine
from safeguard.errors import Conflict, InvalidInput
from safeguard.store.models import DecisionRow, Event
from tests.detectors.grooming.helpers import GROOMING_LINES, msg


@pytest.fixture
def gengine(settings: Settings) -> Iterator[Engine]:
    e = Engine(settings)
    yield e
    e.close()


@pytest.fixture
def other(gengine: Engine) -> Iterator[Engine]:
    """A second "process" on the same database: its own detector, cache, connections and recorder."""
    e = Engine(gengine.settings, db=gengine.db, migrate=False)
    yield e
    e.recorder.close()
    e.quality.close()  # not e.close(): the database is gengine's


def _conv(e: Engine, cid: str) -> GroomingConversationRow:
    with e.db.read() as s:
        row = s.get(GroomingConversationRow, cid)
        assert row is not None
        return row


def _count(e: Engine, model: type) -> int:
    with e.db.read() as s:
        return len(s.execute(select(model)).scalars().all())


def test_second_message_is_served_from_the_cache_and_matches_an_uncached_service(gengine: Engine) -> None:
    cached = GroomingService(gengine)
    uncached = GroomingService(Engine(gengine.settings.with_(grooming_state_cache_entries=0), db=gengine.db))
    a = [cached.post("ca", [msg(i, t)]) for i, t in enumerate(GROOMING_LINES)]
    b = [uncached.post("cb", [msg(i, t)]) for i, t in enumerate(GROOMING_LINES)]
    assert cached.cache.hits >= len(GROOMING_LINES) - 1  # conversation and sender rows after the first post
    assert uncached.cache.hits == 0 and len(uncached.cache) == 0
    for x, y in zip(a, b, strict=True):
        assert x["conversation_risk"] == y["conversation_risk"]
        assert x["stages"] == y["stages"]
        assert x["decision"]["verdict"] == y["decision"]["verdict"]
    assert json.loads(_conv(gengine, "ca").state) == json.loads(_conv(gengine, "cb").state)
    uncached.engine.recorder.close()


def test_two_processes_alternating_on_one_conversation_lose_nothing(gengine: Engine, other: Engine) -> None:
    p1, p2 = GroomingService(gengine), GroomingService(other)
    assert p1.cache is not p2.cache
    for i, t in enumerate(GROOMING_LINES):
        (p1 if i % 2 == 0 else p2).post("shared", [msg(i, t)])
    row = _conv(gengine, "shared")
    assert row.messages == len(GROOMING_LINES)
    state = ConversationState.from_json(row.state)
    assert state.senders["adult1"].n == len(GROOMING_LINES)
    with gengine.db.read() as s:
        user = s.get(GroomingUserRow, "adult1")
        assert user is not None and json.loads(user.state)["convs"]["shared"] == pytest.approx(row.risk, abs=1e-4)
    # each service saw its cached copy go stale at least once and reloaded it
    assert p1.cache.hits + p2.cache.hits >= 1


def test_stale_cache_after_the_row_was_purged_and_created_again(gengine: Engine, other: Engine) -> None:
    p1, p2 = GroomingService(gengine), GroomingService(other)
    p1.post("cp", [msg(1, "how old are you?")])
    with gengine.db.write() as s:  # another process purged it ...
        s.execute(delete(GroomingConversationRow))
        s.execute(delete(GroomingMessageRow))
    p2.post("cp", [msg(2, "hey, you play minecraft?")])  # ... and another started it again
    out = p1.post("cp", [msg(3, "are your parents home right now?")])  # p1's cached copy is stale
    assert _conv(gengine, "cp").messages == 2
    assert [m["message_id"] for m in out["messages"]] == ["m3"]


def test_replay_of_an_earlier_message_is_a_replay_not_out_of_order(gengine: Engine) -> None:
    svc = GroomingService(gengine)
    first = [svc.post("cr", [msg(i, t)]) for i, t in enumerate(GROOMING_LINES[:4])]
    again = svc.post("cr", [msg(1, GROOMING_LINES[1])])  # older than the last: the ledger knows it
    assert again["replayed"] and again["messages"][0]["replayed"]
    assert again["messages"][0]["conversation_risk"] == first[1]["messages"][0]["conversation_risk"]
    with pytest.raises(Conflict) as late:
        svc.post("cr", [msg(50, "an earlier message never sent", t0=0.0)])  # older and unknown: 409 as before
    assert late.value.code == "out_of_order"
    assert _conv(gengine, "cr").messages == 4
    assert _count(gengine, GroomingMessageRow) == 4


def test_state_and_decision_commit_together_or_not_at_all(gengine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = GroomingService(gengine)
    batch = [msg(i, t) for i, t in enumerate(GROOMING_LINES)]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the process dies while recording the decision")

    monkeypatch.setattr(gengine, "decide_in", broken)
    with pytest.raises(RuntimeError):
        svc.post("ca1", batch)
    assert _count(gengine, GroomingConversationRow) == 0  # nothing of it was committed
    assert _count(gengine, GroomingMessageRow) == 0 and _count(gengine, DecisionRow) == 0
    monkeypatch.undo()
    out = svc.post("ca1", batch)  # the platform retries: processed afresh, not a replay
    assert not out["replayed"] and out["decision"]["recorded"]
    with gengine.db.read() as s:
        assert s.get(DecisionRow, out["decision"]["id"]) is not None
        assert any(e.subject_id == out["decision"]["id"] for e in s.execute(select(Event)).scalars())
        ledger = s.execute(select(GroomingMessageRow)).scalars().all()
        assert {r.decision_id for r in ledger} == {out["decision"]["id"]}


def test_refused_batch_on_the_fast_path_leaves_the_cache_usable(gengine: Engine) -> None:
    svc = GroomingService(gengine)
    svc.post("cf", [msg(1, "hi")])
    with pytest.raises(Conflict):
        svc.post("cf", [msg(1, "not what was sent")])  # same id, other content
    out = svc.post("cf", [msg(2, "how old are you?")])
    assert not out["replayed"] and _conv(gengine, "cf").messages == 2


def test_state_cache_is_bounded_lru() -> None:
    from datetime import UTC, datetime

    c = StateCache(2)
    row = CachedRow(1, datetime.now(UTC), "{}")
    c.put("a", row)
    c.put("b", row)
    assert c.get("a") is row  # a is now the most recent
    c.put("c", row)
    assert c.get("b") is None and c.get("a") is row and len(c) == 2
    c.drop("a")
    assert c.get("a") is None
    off = StateCache(0)
    off.put("a", row)
    assert off.get("a") is None and len(off) == 0


def test_state_json_keeps_every_field() -> None:
    """to_json is written out by hand for speed: it must still carry every dataclass field."""
    conv = ConversationState(n=3, last_at=12.5, last_id="m3", alerted_at=2)
    st = conv.sender("a")
    st.hits[1], st.sim[2], st.first[0], st.n, st.band, st.acct = 2, 0.5, 1, 3, "adult", 4
    st.to_minor, st.prior, st.risk = True, True, 0.25
    conv.add_evidence({"message_id": "m1", "sender_id": "a", "indicators": ["secrecy.keep_secret"], "snippet": "x"})
    assert json.loads(conv.to_json()) == asdict(conv)
    assert asdict(ConversationState.from_json(conv.to_json())) == asdict(conv)
    user = UserState()
    user.set_risk("c1", 0.5)
    user.note_minor("kid")
    assert json.loads(user.to_json()) == asdict(user)


def test_two_processes_writing_one_sender_at_once_lose_no_update(gengine: Engine) -> None:
    """Sixteen conversations, two "processes", one sender: the sender row sees every conversation."""
    import threading

    other = Engine(gengine.settings)  # its own connections and recorder, as another process has
    services = [GroomingService(gengine), GroomingService(other)]
    for svc in services:  # warm both caches with the sender row, so that both start from a copy
        svc.post(f"warm-{id(svc)}", [msg(0, "hi")])
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def post(k: int) -> None:
        try:
            barrier.wait()
            for i in range(3):
                services[k % 2].post(f"par-{k}", [msg(i, "how old are you?", to=((f"kid{k}", "child"),))])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with gengine.db.read() as s:
        user = s.get(GroomingUserRow, "adult1")
        assert user is not None
        state = json.loads(user.state)
    assert {f"par-{k}" for k in range(16)} <= set(state["convs"])
    assert len(state["minors"]) == 16
    assert all(_conv(gengine, f"par-{k}").messages == 3 for k in range(16))
    other.close()


def _chat_content(cid: str, lines: list[str], *, sender: str = "adult1") -> Any:
    from safeguard.content import ChatMessage, Content, ContentKind

    messages = tuple(
        ChatMessage(f"{cid}-{i}", sender, t, 1_000.0 + i, "adult", 3, (("kid1", "child"),), territory="FR")
        for i, t in enumerate(lines)
    )
    return Content(kind=ContentKind.MESSAGE, conversation_id=cid, messages=messages, context={"locale": "en"})


def test_a_conversation_goes_through_the_engines_one_path(gengine: Engine) -> None:
    """No service: Engine.findings (the registered detectors, grooming among them) outside, then
    Engine.scan_in in the caller's transaction. A rolled-back transaction leaves the state as it was."""
    from safeguard.detectors.base import ScanContext

    content = _chat_content("e1", GROOMING_LINES)
    with pytest.raises(InvalidInput):  # Engine.scan has no transaction for the state: never a silent allow
        gengine.scan(content)
    ctx = ScanContext(content, [])
    assert gengine.findings([ctx])[0] == []  # the grooming detector analysed; findings need the state
    with pytest.raises(RuntimeError), gengine.db.write() as s:
        gengine.scan_in(s, ctx, [])
        raise RuntimeError("the process dies before the commit")
    assert _count(gengine, GroomingConversationRow) == 0 and _count(gengine, GroomingUserRow) == 0
    assert _count(gengine, DecisionRow) == 0
    ctx = ScanContext(content, [])
    gengine.findings([ctx])
    with gengine.db.write() as s:
        result = gengine.scan_in(s, ctx, [])
    assert result.decision is not None and result.decision.verdict.value == "review"
    assert {f.detector for f in result.findings} == {"grooming"}
    # the decision is about the riskiest sender and the last message, with that sender's territory
    assert (result.decision.user_id, result.decision.content_id) == ("adult1", f"e1-{len(GROOMING_LINES) - 1}")
    assert ctx.content.territory == "FR" and ctx.content.context["minors"] == ["kid1"]
    assert _conv(gengine, "e1").messages == len(GROOMING_LINES)
    with gengine.db.read() as s:
        assert s.get(DecisionRow, result.decision.id) is not None


def test_state_rows_stay_under_4_kb_through_the_engine(gengine: Engine) -> None:
    """A long group chat (more senders than are kept) and one sender in many conversations."""
    svc = GroomingService(gengine)
    for i in range(120):
        line = GROOMING_LINES[i % len(GROOMING_LINES)] + f" ({i})" * 20
        svc.post("long", [msg(i, line, sender=f"s{i % 9}")])
    for k in range(40):
        svc.post(f"many-{k}", [msg(0, "how old are you?", sender="busy", to=((f"kid{k}", "child"),))])
    with gengine.db.read() as s:
        convs = s.execute(select(GroomingConversationRow.state)).scalars().all()
        users = s.execute(select(GroomingUserRow.state)).scalars().all()
    assert len(users) == 10
    assert max(len(x.encode()) for x in convs) <= 4096
    assert max(len(x.encode()) for x in users) <= 4096
