"""Hash-list quality: per-entry figures, the surge quarantine and its release, negative banks, opinion
figures and hooks, and GET /v1/banks/{bank}/quality."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from safeguard.accounts import Who
from safeguard.api import create_app
from safeguard.banks import BankService, quality
from safeguard.banks.quality import OpinionEvent, sketch_add, sketch_count
from safeguard.cases import CaseService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Decision, Signal
from safeguard.engine import Engine
from safeguard.keys import KeyService
from safeguard.metrics import REGISTRY
from safeguard.store.models import Case, EntrySurge, Event, OutboxMessage, utcnow
from tests.helpers.api import auth

PDQ = "f" * 32 + "0" * 32
MOD = Who("user:mia", "moderator", "mia", "user", 1)


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def scan(engine: Engine, upload: int | str, pdq: str = PDQ) -> Decision:
    """A hash-only scan of one upload: its SHA-256 (never banked here) and the PDQ that may match."""
    signals = (Signal("sha256", sha(upload)), Signal("pdq", pdq, quality=100))
    return engine.scan(Content(kind=ContentKind.HASHES, signals=signals, content_id=f"c-{upload}"))


@pytest.fixture
def qsettings(settings: Settings) -> Settings:
    # a webhook endpoint (never contacted: no worker runs) so that the surge's outbox row is visible
    return settings.with_(surge_distinct=5, surge_window_seconds=600.0, webhook_url="http://127.0.0.1:9/hook")


@pytest.fixture
def qengine(qsettings: Settings) -> Iterator[Engine]:
    e = Engine(qsettings)
    yield e
    e.close()


def banked(engine: Engine, name: str = "csam", kind: str = "csam", pdq: str = PDQ, source: str = "") -> int:
    banks = BankService(engine.db)
    banks.create(name, actor="t", kind=kind, default_category="A1")
    return int(banks.add_entry(name, signal_type="pdq", value=pdq, actor="t", source=source).id)


def test_sketch_counts_small_sets_exactly_and_large_ones_closely() -> None:
    reg = bytearray(quality.M)
    assert sketch_count(reg) == 0
    for i in range(7):
        sketch_add(reg, sha(i))
        sketch_add(reg, sha(i))  # the same upload twice counts once
    assert sketch_count(reg) == 7
    for i in range(7, 20_000):
        sketch_add(reg, sha(i))
    assert abs(sketch_count(reg) - 20_000) / 20_000 < 0.1
    assert len(reg) == 1024  # bounded, whatever the count


def test_matches_and_distinct_uploads_are_counted_by_sha256(qengine: Engine) -> None:
    entry = banked(qengine)
    for upload in (1, 2, 1, 3):
        assert scan(qengine, upload).verdict == "block"
    scan(qengine, "unrelated", pdq="0" * 64)  # matched nothing: no figures
    got = qengine.quality.flush()
    assert (got.entries, got.matches, got.quarantined) == (1, 4, [])
    figures = quality.entry_quality(qengine.db, "csam", entry)
    assert figures["matches"] == 4 and figures["distinct_uploads"] == 3
    assert figures["first_match_at"] is not None and figures["last_match_at"] >= figures["first_match_at"]
    assert figures["surge_quarantined"] is False
    # a second process's buffer adds to the same figures
    other = Engine(qengine.settings, db=qengine.db, migrate=False)
    try:
        scan(other, 4)
        scan(other, 1)
        other.quality.flush()
    finally:
        other.quality.close()
    figures = quality.entry_quality(qengine.db, "csam", entry)
    assert figures["matches"] == 6 and figures["distinct_uploads"] == 4


def test_a_surge_of_distinct_uploads_quarantines_until_a_lead_releases(qengine: Engine, qsettings: Settings) -> None:
    entry = banked(qengine)
    for upload in range(4):
        scan(qengine, upload)
        scan(qengine, upload)  # repeats of one upload are not a surge
    assert qengine.quality.flush().quarantined == []
    assert scan(qengine, 4).verdict == "block"  # the fifth distinct upload is still blocked: figures lag a flush
    before = REGISTRY.get_sample_value("safeguard_entries_surge_quarantined_total") or 0.0
    assert qengine.quality.flush().quarantined == [entry]
    assert REGISTRY.get_sample_value("safeguard_entries_surge_quarantined_total") == before + 1

    d = scan(qengine, 5)
    assert d.verdict == "review"
    assert d.findings[0].confidence == "low" and "quarantined after a surge" in d.findings[0].explanation
    with qengine.db.read() as s:
        ev = s.execute(select(Event).where(Event.type == "entry.surge_quarantined")).scalar_one()
        assert ev.subject_id == str(entry) and ev.payload["distinct_uploads"] == 5
        hooks = s.execute(select(OutboxMessage).where(OutboxMessage.topic == "entry.surge_quarantined")).scalars()
        assert [h.payload["entry"]["entry_id"] for h in hooks] == [entry]
        assert s.execute(select(EntrySurge)).first() is None  # the window is dropped with the quarantine
    figures = quality.entry_quality(qengine.db, "csam", entry)
    assert figures["surge_quarantined"] and figures["quarantine_reason"].startswith("5 distinct uploads")

    lead = KeyService(qengine.db).create("lead", "lea", actor="t")["key"]
    mod = KeyService(qengine.db).create("moderator", "mo", actor="t")["key"]
    with TestClient(create_app(qsettings, engine=qengine)) as c:
        url = f"/v1/banks/csam/entries/{entry}/release"
        r = c.post(url, headers=auth(mod), json={"note": "looked"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
        r = c.post("/v1/banks/csam/entries/999999/release", headers=auth(lead))
        assert r.status_code == 404 and r.json()["error"]["code"] == "entry_not_found"
        r = c.post(url, headers=auth(lead), json={"note": "a real flood of one image: checked"})
        assert r.status_code == 200, r.text
        assert r.json()["surge_quarantined"] is False and r.json()["released_by"].startswith("key:")
        r = c.post(url, headers=auth(lead))
        assert r.status_code == 409 and r.json()["error"]["code"] == "entry_not_quarantined"
    assert scan(qengine, 6).verdict == "block"
    # a person looked: a released entry is not quarantined again
    for upload in range(100, 110):
        scan(qengine, upload)
    assert qengine.quality.flush().quarantined == []
    assert scan(qengine, 7).verdict == "block"
    with qengine.db.read() as s:
        assert s.execute(select(Event.type).where(Event.type == "entry.surge_released")).scalar_one()


def test_uploads_spread_beyond_the_window_are_no_surge(qengine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = banked(qengine)
    start = utcnow()
    clock = [start.timestamp() - 2000]  # long ago: these matches fall out of the window
    monkeypatch.setattr(quality.time, "time", lambda: clock[0])
    for upload in range(4):
        scan(qengine, upload)
    assert qengine.quality.flush(now=start - timedelta(seconds=2000)).quarantined == []
    clock[0] = start.timestamp()
    for upload in range(4, 8):  # 8 distinct in all, only 4 within the window
        scan(qengine, upload)
    assert qengine.quality.flush(now=start).quarantined == []
    with qengine.db.read() as s:
        assert len(s.execute(select(EntrySurge).where(EntrySurge.entry_id == entry)).all()) == 4
    scan(qengine, 8)
    assert qengine.quality.flush(now=start).quarantined == [entry]


def test_surge_quarantine_off_with_zero(settings: Settings) -> None:
    e = Engine(settings.with_(surge_distinct=0))
    try:
        banked(e)
        for upload in range(60):
            scan(e, upload)
        assert e.quality.flush().quarantined == []
        assert scan(e, 61).verdict == "block"
    finally:
        e.close()


def test_a_negative_bank_suppresses_other_banks_matches(qengine: Engine) -> None:
    csam = banked(qengine)
    assert scan(qengine, 1).verdict == "block"
    benign = banked(qengine, "benign", kind="negative")
    d = scan(qengine, 2)
    assert d.verdict == "allow" and d.actions == () and "negative-bank" in d.reasons
    by_bank = {f.bank: f for f in d.findings}
    assert by_bank["csam"].suppressed_by == benign and by_bank["benign"].suppressed_by is None
    assert "suppressed by negative bank 'benign'" in by_bank["csam"].explanation
    recorded = qengine.get_decision(d.id)
    assert {f["bank"]: f.get("suppressed_by") for f in recorded["findings"]} == {"csam": benign, "benign": None}
    with qengine.db.read() as s:
        assert s.execute(select(Case)).first() is None or d.case_id is None
    # a negative match alone is recorded, and decides nothing
    other = scan(qengine, 3, pdq="0" * 32 + "f" * 32)
    assert other.verdict == "allow" and other.findings == ()
    # figures count the suppressed match too
    qengine.quality.flush()
    assert quality.entry_quality(qengine.db, "csam", csam)["matches"] == 2
    assert quality.entry_quality(qengine.db, "benign", benign)["matches"] == 1


def test_a_negative_entry_is_never_surge_quarantined(qengine: Engine) -> None:
    csam = banked(qengine)
    benign = banked(qengine, "benign", kind="negative")
    for upload in range(10):  # twice the surge threshold: a popular benign image
        assert scan(qengine, upload).verdict == "allow"
    # the csam entry's suppressed matches are a surge too (it matches a popular benign image); not the negative one
    assert qengine.quality.flush().quarantined == [csam]
    assert quality.entry_quality(qengine.db, "benign", benign)["surge_quarantined"] is False
    assert scan(qengine, 99).verdict == "allow"


def test_a_disputed_negative_entry_suppresses_nothing(qengine: Engine) -> None:
    banked(qengine)
    benign = banked(qengine, "benign", kind="negative")
    BankService(qengine.db).add_opinion(benign, "disputed", actor="t")
    assert scan(qengine, 1).verdict == "block"


def test_review_opinions_count_and_reach_the_hooks(engine: Engine) -> None:
    seen: list[OpinionEvent] = []

    def hook(s: object, ev: OpinionEvent) -> None:
        seen.append(ev)

    quality.on_opinion(hook)
    try:
        entry = banked(engine, source="partner-a")
        cs = CaseService(engine.db, engine.settings)
        for upload, outcome in ((1, "not_violating"), (2, "confirmed"), (3, "not_violating")):
            d = scan(engine, upload)
            assert d.case_id is not None
            cs.claim(MOD, d.case_id)
            cs.decide(MOD, d.case_id, outcome=outcome, category="A1" if outcome == "confirmed" else None)
        BankService(engine.db).add_opinion(entry, "none", actor="t")  # "none" is no opinion: not counted
    finally:
        quality.clear_opinion_hooks(hook)
    # the confirmed case banked the upload's hashes in the review bank; the third case disputes that entry too
    assert [(e.bank, e.opinion) for e in seen] == [
        ("csam", "disputed"),
        ("csam", "confirmed"),
        ("csam", "disputed"),
        ("moderator-confirmed", "disputed"),
    ]
    assert seen[0].entry_id == entry and seen[0].source == "partner-a" and seen[0].value == PDQ
    assert seen[0].note.startswith("case ")
    engine.quality.flush()
    got = quality.bank_quality(engine.db, "csam")
    assert (got["confirmations"], got["disputes"], got["precision"]) == (1, 2, 0.3333)
    assert got["by_source"] == [
        {
            "source": "partner-a",
            "matched_entries": 1,
            "matches": 3,
            "confirmations": 1,
            "disputes": 2,
            "precision": 0.3333,
        }
    ]
    assert got["top_entries"][0]["id"] == entry and got["top_entries"][0]["matches"] == 3


def test_a_failing_hook_rolls_the_opinion_back(engine: Engine) -> None:
    entry = banked(engine)

    def broken(s: object, ev: OpinionEvent) -> None:
        raise RuntimeError("exchange outbox unavailable")

    quality.on_opinion(broken)
    try:
        with pytest.raises(RuntimeError):
            BankService(engine.db).add_opinion(entry, "disputed", actor="t")
    finally:
        quality.clear_opinion_hooks(broken)
    assert BankService(engine.db).get_entry(entry).opinion == "none"
    assert quality.entry_quality(engine.db, "csam", entry)["disputes"] == 0


def test_quality_endpoint_roles_and_shape(app_client: TestClient, engine: Engine, keys: dict[str, str]) -> None:
    r = app_client.post("/v1/banks", headers=auth(keys["admin"]), json={"name": "benign", "kind": "negative"})
    assert r.status_code == 201 and r.json()["kind"] == "negative"
    entry = banked(engine, source="ncmec")
    for upload in range(3):
        scan(engine, upload)
    engine.quality.flush()
    r = app_client.get("/v1/banks/csam/quality", headers=auth(keys["platform"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    r = app_client.get("/v1/banks/nope/quality", headers=auth(keys["auditor"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "bank_not_found"
    r = app_client.get("/v1/banks/csam/quality?top=0", headers=auth(keys["auditor"]))
    assert r.status_code == 422
    r = app_client.get("/v1/banks/csam/quality", headers=auth(keys["auditor"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["entries"] == 1 and body["matches"] == 3 and body["precision"] is None
    assert body["quarantined"] == [] and body["distinct_uploads_method"].startswith("HyperLogLog")
    assert [(e["id"], e["matches"], e["distinct_uploads"]) for e in body["top_entries"]] == [(entry, 3, 3)]
    r = app_client.get(f"/v1/banks/csam/entries/{entry}/quality", headers=auth(keys["admin"]))
    assert r.status_code == 200 and r.json()["matches"] == 3
    r = app_client.get(f"/v1/banks/benign/entries/{entry}/quality", headers=auth(keys["admin"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "entry_not_found"


def test_cli_quality_and_release(qengine: Engine, qsettings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from safeguard.cli import app

    entry = banked(qengine)
    for upload in range(5):
        scan(qengine, upload)
    assert qengine.quality.flush().quarantined == [entry]
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", qsettings.database_url)
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", qsettings.data_dir)
    runner = CliRunner()
    got = runner.invoke(app, ["bank", "quality", "csam"])
    assert got.exit_code == 0, got.output
    assert '"surge_quarantined": true' in got.output
    got = runner.invoke(app, ["bank", "release", "csam", str(entry), "--note", "checked"])
    assert got.exit_code == 0 and f"entry {entry} in bank csam released" in got.output
    assert scan(qengine, secrets.token_hex(4)).verdict == "block"


def test_processes_flushing_at_once_add_up(qengine: Engine, qsettings: Settings) -> None:
    import threading

    entries = [banked(qengine, f"bank{k}", pdq=hashlib.sha256(f"e{k}".encode()).hexdigest()) for k in range(3)]
    others = [Engine(qsettings.with_(surge_distinct=0), migrate=False) for _ in range(2)]
    try:
        for n, e in enumerate(others):
            for k in range(len(entries)):
                for upload in range(20):
                    scan(e, f"{n}-{upload}", pdq=hashlib.sha256(f"e{k}".encode()).hexdigest())
        barrier = threading.Barrier(len(others))
        errors: list[BaseException] = []

        def flush(e: Engine) -> None:
            barrier.wait()
            try:
                e.quality.flush()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=flush, args=(e,)) for e in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        for e in others:
            e.close()
    for entry in entries:
        figures = quality.entry_quality(qengine.db, f"bank{entries.index(entry)}", entry)
        assert figures["matches"] == 40 and abs(figures["distinct_uploads"] - 40) <= 2  # the sketch's estimate


def test_a_live_stream_is_one_upload_however_many_frames_match(qengine: Engine) -> None:
    entry = banked(qengine)
    for frame in range(12):  # more matching frames than the surge threshold (5), no SHA-256
        frame_pdq = PDQ[:-2] + f"{frame:02x}"  # each frame's hash a few bits from the banked one
        content = Content(kind=ContentKind.STREAM, signals=(Signal("pdq", frame_pdq, quality=100),), stream_id="live-1")
        assert qengine.scan(content).verdict == "block"
    # a hash-only scan without SHA-256: the platform's content id tells uploads apart
    for upload in range(2):
        signals = (Signal("pdq", PDQ, quality=100),)
        qengine.scan(Content(kind=ContentKind.HASHES, signals=signals, content_id=f"post-{upload}"))
    assert qengine.quality.flush().quarantined == []
    figures = quality.entry_quality(qengine.db, "csam", entry)
    assert figures["matches"] == 14 and figures["distinct_uploads"] == 3
