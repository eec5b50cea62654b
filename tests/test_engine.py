"""The pipeline end to end: verdicts, findings, confidence, dihedral matching, hash-only scans, records."""

from __future__ import annotations

import pytest
from PIL import Image
from sqlalchemy import func, select

from safeguard.banks import BankService
from safeguard.content import Content, ContentKind, Signal, Verdict
from safeguard.engine import Engine
from safeguard.errors import InvalidInput
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Case, CaseItem, DecisionRow, Event, OutboxMessage, WebhookEndpoint
from tests.helpers.hashes import flip_bits
from tests.media_factory import encode, image_bytes, make_image


def pdq_of(data: bytes) -> Signal:
    return PDQSignal().compute(Media.from_bytes(data))[0]


def image(data: bytes, **kw: str) -> Content:
    return Content(kind=ContentKind.IMAGE, data=data, **kw)  # type: ignore[arg-type]


def test_allow_when_nothing_matches(engine: Engine) -> None:
    d = engine.scan(image(image_bytes(1), content_id="c1"))
    assert d.verdict is Verdict.ALLOW and d.findings == () and d.actions == ()
    assert {s.type for s in d.signals} == {"sha256", "md5", "pdq"}
    assert engine.get_decision(d.id)["verdict"] == "allow"


def test_block_on_banked_image_with_case_webhook_and_events(engine: Engine, banks: BankService) -> None:
    banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(2)
    banks.add_entry("csam", signal_type="pdq", value=pdq_of(data).value, actor="t")
    with engine.db.write() as s:
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/hook", secret="s" * 20, events=[], enabled=True))
        # subscribed to another topic, and a disabled one: neither gets this decision
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/other", secret="s" * 20, events=["decision.review"]))
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/off", secret="s" * 20, events=[], enabled=False))
    # a re-encoded, resized copy: different bytes, near-identical PDQ
    copy = encode(make_image(2).resize((300, 225)), "PNG")
    d = engine.scan(image(copy, content_id="up-1", user_id="u-1"), actor="svc")
    assert d.verdict is Verdict.BLOCK
    [f] = d.findings
    assert (f.bank, f.signal_type, f.category, f.confidence) == ("csam", "pdq", "A1", "high")
    assert f.distance is not None and f.distance <= 31
    assert [a.name for a in d.actions] == ["block", "case", "preserve", "webhook"]
    assert d.case_id is not None
    with engine.db.read() as s:
        assert s.get(DecisionRow, d.id).case_id == d.case_id  # type: ignore[union-attr]
        case = s.get(Case, d.case_id)
        assert case is not None and (case.subject_kind, case.subject_id, case.priority) == ("user", "u-1", 0)
        assert s.execute(select(func.count()).select_from(CaseItem)).scalar_one() == 1
        [msg] = s.execute(select(OutboxMessage)).scalars().all()
        assert msg.topic == "decision.block" and msg.payload["decision"]["id"] == d.id
        assert msg.endpoint_url == "http://127.0.0.1:9/hook"
        types = [e.type for e in s.execute(select(Event).order_by(Event.seq)).scalars()]
    assert types[-5:] == ["decision.created", "action.block", "action.case", "action.preserve", "action.webhook"]
    # a second decision about the same user joins the open case
    d2 = engine.scan(image(data, content_id="up-2", user_id="u-1"))
    assert d2.case_id == d.case_id
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(OutboxMessage)).scalar_one() == 2
        msg = s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().first()
        assert msg is not None and (msg.status, msg.attempts, msg.last_error) == ("pending", 0, "")
        assert msg.next_attempt_at is not None and msg.created_at is not None
    # every statement of this write ran on the DBAPI cursor, none fell back to Core (store/driver.py)
    from safeguard import events
    from safeguard.actions import webhook
    from safeguard.cases import store as case
    from safeguard.evidence import action as preserve
    from safeguard.store import driver

    dialect = engine.db.engine.dialect.name
    hot = [
        case._ACTIVE_CASE_D,
        case._INSERT_CASE_D,
        case._UPDATE_KEEP_DUE_D,
        case._INSERT_ITEM_D,
        webhook._INSERT_OUTBOX_D,
    ]
    hot += [webhook._ENABLED, preserve._INSERT_ITEM]
    hot += [events._SELECT_HEAD_DRIVER, events._SET_HEAD_DRIVER, events._INSERT_EVENTS]
    hot.append(driver.inserter(DecisionRow.__table__))  # type: ignore[arg-type]
    for prepared in hot:
        used = {k: v for k, v in prepared._compiled.items() if k[0] == dialect}
        assert used and all(v is not None for v in used.values()), prepared.stmt


def test_exact_hash_match(engine: Engine, banks: BankService) -> None:
    banks.create("md5s", actor="t", kind="other")
    data = image_bytes(3, "PNG")
    import hashlib

    banks.add_entry("md5s", signal_type="md5", value=hashlib.md5(data).hexdigest(), actor="t")
    d = engine.scan(image(data))
    assert d.verdict is Verdict.REVIEW and d.reasons == ("other-bank-match",)
    assert [f.signal_type for f in d.findings] == ["md5"]


@pytest.mark.parametrize(
    ("flips", "verdict", "confidence"),
    [(0, "block", "high"), (31, "block", "high"), (35, "review", "low"), (41, "allow", None)],
)
def test_thresholds(engine: Engine, banks: BankService, flips: int, verdict: str, confidence: str | None) -> None:
    banks.create("csam", actor="t")
    sig = pdq_of(image_bytes(4))
    banks.add_entry("csam", signal_type="pdq", value=flip_bits(sig.value, flips, seed=flips), actor="t")
    d = engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", sig.value, 100),)))
    assert d.verdict.value == verdict
    assert [f.confidence for f in d.findings] == ([confidence] if confidence else [])
    if d.findings:
        assert d.findings[0].distance == flips


def test_per_bank_threshold(engine: Engine, banks: BankService) -> None:
    banks.create("strict", actor="t", thresholds={"pdq": 10}, review_thresholds={"pdq": 10})
    sig = pdq_of(image_bytes(5))
    banks.add_entry("strict", signal_type="pdq", value=flip_bits(sig.value, 20, seed=1), actor="t")
    d = engine.scan(Content(kind=ContentKind.HASHES, signals=(sig,)))
    assert d.verdict is Verdict.ALLOW


def test_disputed_entry_and_low_quality_go_to_review(engine: Engine, banks: BankService) -> None:
    banks.create("csam", actor="t")
    sig = pdq_of(image_bytes(6))
    e = banks.add_entry("csam", signal_type="pdq", value=sig.value, actor="t")
    low_q = engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", sig.value, 30),)))
    assert low_q.verdict is Verdict.REVIEW and "quality 30" in low_q.findings[0].explanation
    banks.add_opinion(e.id, "disputed", actor="mod")
    d = engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", sig.value, 100),)))
    assert d.verdict is Verdict.REVIEW and "disputed" in d.findings[0].explanation


def test_disabled_entry_stops_matching_at_once(engine: Engine, banks: BankService) -> None:
    banks.create("csam", actor="t")
    sig = Signal("pdq", pdq_of(image_bytes(7)).value, 100)
    e = banks.add_entry("csam", signal_type="pdq", value=sig.value, actor="t")
    assert engine.scan(Content(kind=ContentKind.HASHES, signals=(sig,))).verdict is Verdict.BLOCK
    banks.set_enabled(e.id, False, actor="t")
    engine.indexes.refresh_seconds = 3600  # even before the index catches up
    assert engine.scan(Content(kind=ContentKind.HASHES, signals=(sig,))).verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    "transpose", [Image.Transpose.ROTATE_90, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180]
)
def test_dihedral_matching_per_bank(engine: Engine, banks: BankService, transpose: Image.Transpose) -> None:
    im = make_image(8, (400, 300))
    banks.create("plain", actor="t")
    banks.add_entry("plain", signal_type="pdq", value=pdq_of(encode(im, "PNG")).value, actor="t")
    turned = encode(im.transpose(transpose), "PNG")
    assert engine.scan(image(turned)).verdict is Verdict.ALLOW
    banks.update("plain", actor="t", dihedral=True)
    engine.indexes.refresh()
    d = engine.scan(image(turned))
    assert d.verdict is Verdict.BLOCK
    assert "variant" in d.findings[0].explanation


def test_hash_only_validation(engine: Engine) -> None:
    with pytest.raises(InvalidInput):
        engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", "xyz"),)))
    with pytest.raises(InvalidInput):
        engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("nope", "00"),)))
    with pytest.raises(InvalidInput):
        engine.scan(Content(kind=ContentKind.HASHES))
    with engine.db.read() as s:  # bad input changed nothing
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 0


def test_which_scans_may_run_on_the_event_loop(engine: Engine) -> None:
    """Only a few hashes for quick detectors (index lookups) are matched inline by Engine.scan_async."""
    md5 = Signal("md5", "0" * 32)
    assert engine.inline_ok(Content(kind=ContentKind.HASHES, signals=(md5,)))
    assert not engine.inline_ok(Content(kind=ContentKind.HASHES, signals=(md5,) * 9))  # too many
    assert not engine.inline_ok(Content(kind=ContentKind.IMAGE, data=b"bytes"))  # decoding: a thread
    vpdq = Signal("vpdq", "0" * 64, 100, 0.0)  # frames go to video_match, which is not marked quick
    assert not engine.inline_ok(Content(kind=ContentKind.HASHES, signals=(vpdq,)))


def test_decision_ids_are_time_ordered() -> None:
    import time as _time

    from safeguard.content import Decision

    first = Decision.new_id()
    _time.sleep(0.002)
    ids = [Decision.new_id() for _ in range(100)]
    assert all(len(i) == 36 and i.startswith("dec_") for i in [first, *ids])
    assert all(first < i for i in ids)  # later ids sort after earlier ones: appends to the key index
    assert len(set(ids)) == 100
