"""Contracts every plug-in of each kind keeps, run over the whole registry, plus an outside plug-in.

- A detector's ``detect_many`` gives, item for item, what ``detect`` gives for each (the batch API and
  the stream monitor rely on it).
- A stateful detector (grooming) gives, item for item, the same findings from ``detect_in`` whether its
  contents went through ``detect_many`` together and ``detect_in`` in one transaction, or through
  ``detect`` and ``detect_in`` one at a time, each in its own; its state is only what the session
  holds: rolled back, the transaction leaves no row behind and the same contents, run again, give the
  same findings (its state did not advance).
- A ``rerunnable`` action's ``run`` writes only through the decision's session: rolled back with a
  savepoint it leaves nothing, and run again it writes the same rows and answers the same (the recorder
  reruns a group's actions one decision at a time when a shared savepoint fails).
- A detector and an action that no Safeguard module names, registered with ``Registry.register`` as an
  outside package's entry points would be, run end to end through a policy file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from sqlalchemy import func, select

from safeguard import registry
from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Action, ChatMessage, Content, ContentKind, Decision, Finding, Signal, Verdict
from safeguard.detectors.base import Detector, ScanContext
from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.policy import load_policy
from safeguard.signals import compute_signals
from safeguard.store.models import Base, Event
from tests.media_factory import encode, image_bytes, make_image
from tests.videogen import make_video

DETECTORS = registry.detectors.names()
ACTIONS = registry.actions.names()
#: result fields a database or a fresh random id fills in (PostgreSQL sequences do not roll back)
GENERATED = re.compile(r"(^|_)(id|ids|blob)$")


def _contexts(engine: Engine, banks: BankService) -> list[ScanContext]:
    """Images (one banked, one a re-encoded copy, one unrelated), hash-only scans, and a short video."""
    banks.create("contract", actor="t", default_category="A1")
    banked = image_bytes(11)
    pdq = next(s for s in compute_signals(Media.from_bytes(banked)) if s.type == "pdq")
    banks.add_entry("contract", signal_type="pdq", value=pdq.value, actor="t")
    engine.indexes.refresh(force=True)
    ctxs = []
    for data, kind in [
        (banked, ContentKind.IMAGE),
        (encode(make_image(11).resize((280, 210)), "PNG"), ContentKind.IMAGE),
        (image_bytes(12), ContentKind.IMAGE),
        (make_video(seconds=1.0), ContentKind.VIDEO),
    ]:
        media = Media.from_bytes(data)
        ctxs.append(ScanContext(Content(kind=kind, data=data), compute_signals(media), media))
    for signals in ([pdq], [Signal("pdq", "0" * 64)], [Signal("sha256", "ab" * 32)]):
        ctxs.append(ScanContext(Content(kind=ContentKind.HASHES, signals=tuple(signals)), list(signals)))
    ctxs.extend(ScanContext(c, []) for c in _conversations())
    return ctxs


#: non-explicit chat: an adult's grooming tactics to a child (two conversations, one sender), and teens
LINES = {
    "k1": ["hey, you play minecraft?", "how old are you?", "this is our little secret ok", "add me on snapchat"],
    "k2": ["you're so mature for your age", "are your parents home right now?", "we should meet in person"],
    "k3": ["that level was hard", "gg", "i have homework"],
}


def _conversations() -> list[Content]:
    out = []
    for cid, lines in LINES.items():
        sender, band, to = ("adult1", "adult", ("kid1", "child")) if cid != "k3" else ("teen1", "teen", ("t2", "teen"))
        messages = tuple(
            ChatMessage(f"{cid}-m{i}", sender, text, 1_000.0 + 10 * i, band, 3, (to,)) for i, text in enumerate(lines)
        )
        out.append(Content(kind=ContentKind.MESSAGE, conversation_id=cid, messages=messages))
    return out


@pytest.mark.parametrize("name", DETECTORS)
def test_detect_many_equals_detect_item_by_item(name: str, engine: Engine, banks: BankService) -> None:
    [det] = [d for d in engine.detectors if d.name == name]
    ctxs = [c for c in _contexts(engine, banks) if det.applies(c)]
    assert ctxs or name == "unhashable", f"no test content applies to {name}"
    assert det.detect_many(ctxs) == [det.detect(c) for c in ctxs]
    if name == "hash_match":  # the contract was tested on a real match, not on empty lists only
        assert any(det.detect(c) for c in ctxs)
    if det.stateful:
        _stateful_contract(det, engine, [c.content for c in ctxs])


def _stateful_contract(det: Detector, engine: Engine, contents: list[Content]) -> None:
    def fresh(c: Content) -> ScanContext:
        return ScanContext(c, [], decision_id=Decision.new_id())

    with engine.db.write() as s:  # together, then rolled back
        before = _row_counts(engine, s)
        point = s.begin_nested()
        ctxs = [fresh(c) for c in contents]
        det.detect_many(ctxs)
        together = [det.detect_in(s, ctx) for ctx in ctxs]
        s.flush()
        assert _row_counts(engine, s) != before, f"{det.name} keeps no state in the database"
        point.rollback()
        assert _row_counts(engine, s) == before, f"{det.name} wrote outside the decision's session"
    alone = []
    for c in contents:  # one at a time, each committed: the same findings, so the rollback undid everything
        ctx = fresh(c)
        det.detect(ctx)
        with engine.db.write() as s:
            alone.append(det.detect_in(s, ctx))
    assert together == alone
    assert any(alone), f"no test content gave {det.name} a finding"


def _row_counts(engine: Engine, s: Any) -> dict[str, int]:
    return {t.name: s.execute(select(func.count()).select_from(t)).scalar_one() for t in Base.metadata.sorted_tables}


def _stable(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not GENERATED.search(k)}


@pytest.mark.parametrize("name", ACTIONS)
def test_rerunnable_action_reruns_after_savepoint_rollback(name: str, engine: Engine) -> None:
    handler = engine.action_handlers[name]
    if not handler.rerunnable:
        pytest.skip(f"{name} is not rerunnable: the recorder never reruns it")
    if name not in {spec.name for rule in engine.policy.rules for spec in rule.actions}:
        handler.start(engine.settings, engine.db, engine.resources.extra)
    data = image_bytes(21)
    content = Content(
        kind=ContentKind.IMAGE,
        data=data,
        content_id="c-1",
        user_id="u-1",
        stream_id="s-1",
        conversation_id="conv-1",
        context={"locale": "fr", "minors": ["u-2"]},
    )
    finding = Finding(detector="hash_match", kind="hash_match", bank="b", bank_kind="csam", category="A1")
    decision = engine._new_decision(content, [finding], list(compute_signals(Media.from_bytes(data))), None)
    action = Action(name, {"priority": 0} if name == "case" else {})
    prepared = handler.prepare(action, content, decision)
    with engine.db.write() as s:
        before = _row_counts(engine, s)
        point = s.begin_nested()
        first = handler.run(action, _ctx(s, engine.settings, content, decision, name, prepared))
        s.flush()
        after_first = _row_counts(engine, s)
        point.rollback()
        assert _row_counts(engine, s) == before, f"{name} wrote outside the decision's session"
        second = handler.run(action, _ctx(s, engine.settings, content, decision, name, prepared))
        s.flush()
        assert _row_counts(engine, s) == after_first
    assert _stable(second) == _stable(first)


def _ctx(s: Any, settings: Settings, content: Content, decision: Any, name: str, prepared: Any) -> ActionContext:
    return ActionContext(
        session=s,
        settings=settings,
        content=content,
        decision=decision,
        actor="t",
        prepared={} if prepared is None else {name: prepared},
    )


# -- an outside plug-in: a detector and an action no Safeguard module names ------------------------


class RedFrameDetector(Detector):
    """Finds images whose mean red level is above a threshold (a stand-in for any outside model)."""

    name = "red_frame"

    def applies(self, ctx: ScanContext) -> bool:
        return ctx.media is not None and ctx.media.is_image

    def detect(self, ctx: ScanContext) -> list[Finding]:
        assert ctx.media is not None
        red = float(np.asarray(ctx.media.image().convert("RGB"))[..., 0].mean())
        if red < 200:
            return []
        return [Finding(detector=self.name, kind="colour", score=red / 255, explanation=f"mean red {red:.0f}")]


class TagAction(ActionHandler):
    name = "tag_for_partner"
    rerunnable = True
    calls: ClassVar[int] = 0

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        TagAction.calls += 1
        return {"tag": str(action.params.get("tag", "")), "content_id": ctx.content.content_id}


@pytest.fixture
def outside_plugin() -> Iterator[None]:
    registry.detectors.register(RedFrameDetector.name, RedFrameDetector)
    registry.actions.register(TagAction.name, TagAction)
    yield
    registry.detectors.unregister(RedFrameDetector.name)
    registry.actions.unregister(TagAction.name)


def test_an_outside_detector_and_action_run_end_to_end(
    outside_plugin: None, settings: Settings, tmp_path: Path
) -> None:
    from PIL import Image

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: outside-1\ndefault_verdict: allow\nrules:\n"
        "  - name: red-frames\n    when: {detector: red_frame}\n    verdict: review\n"
        "    actions:\n      - {name: tag_for_partner, params: {tag: red}}\n      - case\n",
        encoding="utf-8",
    )
    engine = Engine(settings, policy=load_policy(policy))
    try:
        red = encode(Image.new("RGB", (64, 64), (240, 10, 10)), "PNG")
        d = engine.scan(Content(kind=ContentKind.IMAGE, data=red, content_id="red-1", user_id="u-9"), actor="svc")
        assert d.verdict is Verdict.REVIEW
        assert [f.detector for f in d.findings] == ["red_frame"]
        assert [a.name for a in d.actions] == ["tag_for_partner", "case"] and d.case_id is not None
        plain = engine.scan(Content(kind=ContentKind.IMAGE, data=image_bytes(3), content_id="c-2"), actor="svc")
        assert plain.verdict is Verdict.ALLOW and plain.findings == ()
        with engine.db.read() as s:
            [ev] = s.execute(select(Event).where(Event.type == "action.tag_for_partner")).scalars().all()
            assert ev.payload["result"] == {"tag": "red", "content_id": "red-1"}
        assert engine.get_decision(d.id)["findings"][0]["detector"] == "red_frame"
    finally:
        engine.close()
