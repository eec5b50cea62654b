"""What the event log proves: a rewrite with every hash recomputed fails against an earlier signed
checkpoint, forged checkpoints fail, and every decision row is checked against its event."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from typer.testing import CliRunner

from safeguard import events, ledger
from safeguard.banks import BankService
from safeguard.cli import app
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.errors import SafeguardError
from safeguard.store import Database
from safeguard.store.models import DecisionRow, Event, EventChainHead, EventCheckpoint
from safeguard.workers.video_jobs import write_pending

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OTHER = "0" * 63 + "1"


def scan(engine: Engine, value: str, content_id: str) -> str:
    content = Content(kind=ContentKind.HASHES, signals=(Signal("pdq", value, 100),), content_id=content_id)
    return engine.scan(content).id


def decisions(engine: Engine) -> tuple[str, str]:
    """One allow (the bulk path) and one block with a case and a webhook (the action path)."""
    BankService(engine.db).create("csam", actor="t")
    BankService(engine.db).add_entry("csam", signal_type="pdq", value=PDQ, actor="t")
    allow = scan(engine, OTHER, "c-allow")
    block = scan(engine, PDQ, "c-block")
    return allow, block


def rewrite_from(db: Database, seq: int, payload_change: dict[str, object]) -> None:
    """What the red team did: edit one event, then recompute every later hash and the head."""
    with db.write() as s:
        rows = list(s.execute(select(Event).where(Event.seq >= seq).order_by(Event.seq)).scalars())
        prev = rows[0].prev_hash
        for ev in rows:
            if ev.seq == seq:
                ev.payload = {**ev.payload, **payload_change}
            ev.prev_hash = prev
            ev.hash = events.event_hash(
                prev, ev.seq, ev.created_at, ev.type, ev.actor, ev.subject_kind, ev.subject_id, ev.payload
            )
            prev = ev.hash
        s.execute(update(EventChainHead).where(EventChainHead.id == 1).values(hash=prev))


def check(engine: Engine, signer: ledger.Signer | None = None, **kw: object) -> ledger.Report:
    with engine.db.read() as s:
        return ledger.verify(s, trusted=[signer.public] if signer else [], **kw)  # type: ignore[arg-type]


def test_clean_log_verifies_with_checkpoints_and_decisions(engine: Engine) -> None:
    signer = ledger.Signer.from_settings(engine.settings)
    _, block = decisions(engine)
    ledger.checkpoint(engine.db, signer)
    scan(engine, OTHER, "c-later")
    r = check(engine, signer)
    assert r.ok, r.problems
    assert r.checkpoints_checked == 1 and r.decisions_checked == 3 and r.decisions_by_fields == 0
    with engine.db.read() as s:
        row = s.get(DecisionRow, block)
        assert row is not None and row.case_id  # the digest covers the case id the case action set
        ev = s.execute(select(Event).where(Event.type == "decision.created", Event.subject_id == block)).scalar_one()
        assert ev.payload["row_digest"].startswith(f"{ledger.DIGEST_VERSION}:")


def test_rewritten_history_fails_against_an_earlier_checkpoint(engine: Engine, tmp_path: Path) -> None:
    signer = ledger.Signer.from_settings(engine.settings)
    _, block = decisions(engine)
    kept = ledger.checkpoint(engine.db, signer)  # the operator keeps this one elsewhere too
    path = tmp_path / "cp.json"
    path.write_text(json.dumps(kept.to_dict()))
    scan(engine, OTHER, "c-after")
    with engine.db.read() as s:
        seq = s.execute(select(Event.seq).where(Event.subject_id == block, Event.type == "decision.created")).scalar()
    assert seq is not None and seq <= kept.seq
    rewrite_from(engine.db, seq, {"verdict": "allow"})
    with engine.db.read() as s:
        assert events.verify(s).ok  # the chain alone cannot tell: this was the red team's finding
    r = check(engine, signer)
    assert not r.ok
    assert any(f"event seq {kept.seq} does not match stored checkpoint" in p for p in r.problems), r.problems
    # the attacker also deletes the stored checkpoints: the copy kept elsewhere still catches it
    with engine.db.write() as s:
        s.execute(delete(EventCheckpoint))
    r = check(engine, signer, checkpoints=ledger.load_checkpoints(path))
    assert any(f"does not match {path}" in p for p in r.problems), r.problems
    # and the edited event no longer matches the decision row it records
    assert any(f"decision {block}: row does not match its event" in p for p in r.problems)


def test_edited_deleted_and_invented_decision_rows_are_named(engine: Engine) -> None:
    allow, block = decisions(engine)
    with engine.db.write() as s:
        s.execute(update(DecisionRow).where(DecisionRow.id == block).values(verdict="allow"))
        s.execute(delete(DecisionRow).where(DecisionRow.id == allow))
        s.add(
            DecisionRow(
                id="invented",
                verdict="allow",
                status="done",
                content_kind="hashes",
                policy_version="x",
                body={"verdict": "allow"},
            )
        )
    with engine.db.write() as s:  # a second decision event for one decision, appended properly
        ev = s.execute(select(Event).where(Event.subject_id == block, Event.type == "decision.created")).scalar_one()
        events.append(s, "decision.created", actor="x", subject=("decision", block), payload=ev.payload)
    r = check(engine)
    assert not r.ok and r.chain.ok
    text = "\n".join(r.problems)
    assert f"decision {block}: recorded by 2 decision.created events" in text
    assert f"decision {block}: row does not match its event" in text and "(verdict, row_digest differ)" in text
    assert f"decision {allow}: recorded by event seq" in text and "row is missing" in text
    assert "decision invented: row (status done) has no decision.created event" in text


def test_an_edit_inside_the_body_is_caught_by_the_digest(engine: Engine) -> None:
    _, block = decisions(engine)
    with engine.db.write() as s:
        row = s.get(DecisionRow, block)
        assert row is not None
        row.body = {**row.body, "reasons": ["nothing to see"]}
    r = check(engine)
    assert [p for p in r.problems if p.startswith(f"decision {block}: row does not match")], r.problems


def test_decisions_recorded_before_digests_are_checked_field_by_field(engine: Engine) -> None:
    allow, _ = decisions(engine)
    with engine.db.write() as s:  # make the log look like an earlier version wrote it
        for ev in s.execute(select(Event).where(Event.type == "decision.created")).scalars():
            ev.payload = {k: v for k, v in ev.payload.items() if k != "row_digest"}
    rewrite_from(engine.db, 1, {})
    r = check(engine)
    assert r.ok, r.problems
    assert r.decisions_by_fields == 2
    with engine.db.write() as s:
        s.execute(update(DecisionRow).where(DecisionRow.id == allow).values(content_id="someone-else"))
    r = check(engine)
    assert len(r.problems) == 1 and r.problems[0].startswith(f"decision {allow}: row does not match its event")
    assert r.problems[0].endswith("(content_id differ)")


def test_pending_asynchronous_scans_are_not_problems_and_completed_ones_are_checked(engine: Engine) -> None:
    write_pending(engine, "pending-1", Content(kind=ContentKind.VIDEO, content_id="v1"))
    write_pending(engine, "pending-2", Content(kind=ContentKind.VIDEO, content_id="v2"))
    r = check(engine)
    assert r.ok and r.decisions_without_event == 2
    # the background job completes the pending row it wrote (an ORM merge, not the bulk insert)
    engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", OTHER, 100),)), decision_id="pending-1")
    r = check(engine)
    assert r.ok and r.decisions_without_event == 1 and r.decisions_checked == 1 and r.decisions_by_fields == 0
    with engine.db.write() as s:  # hiding a finished decision as "failed" does not pass either
        s.execute(update(DecisionRow).where(DecisionRow.id == "pending-1").values(status="failed"))
    assert "decision pending-1: row does not match its event" in check(engine).problems[0]


def test_forged_checkpoints_fail(engine: Engine, tmp_path: Path) -> None:
    signer = ledger.Signer.from_settings(engine.settings)
    decisions(engine)
    real = ledger.checkpoint(engine.db, signer, store=False)
    # a checkpoint claiming another hash under the real signature
    forged = ledger.Checkpoint(real.seq, "a" * 64, real.time, real.key_id, real.public_key, real.signature, "forged")
    r = check(engine, signer, checkpoints=[forged])
    assert r.problems == ["forged: the signature is not valid: the checkpoint was forged or altered"]
    # a checkpoint signed with an attacker's own key, naming it
    mallory = ledger.Signer.from_settings(Settings(data_dir=str(tmp_path / "mallory")))
    theirs = mallory.sign(real.seq, real.hash, ledger.utcnow())
    r = check(engine, signer, checkpoints=[theirs])
    assert not r.ok and "which is not trusted" in r.problems[0]
    # a stored checkpoint whose signature was altered in the table
    ledger.checkpoint(engine.db, signer)
    with engine.db.write() as s:
        s.execute(update(EventCheckpoint).values(seq=1))
    r = check(engine, signer)
    assert not r.ok and "the signature is not valid" in r.problems[0]
    # no key to check against at all
    assert "no public key given" in check(engine, None).problems[0]


def test_checkpoint_past_the_end_means_events_were_removed(engine: Engine) -> None:
    signer = ledger.Signer.from_settings(engine.settings)
    decisions(engine)
    cp = ledger.checkpoint(engine.db, signer)
    with engine.db.write() as s:  # drop the last event and move the head back: the chain itself is fine
        last = s.execute(select(Event).where(Event.seq == cp.seq)).scalar_one()
        s.execute(update(EventChainHead).where(EventChainHead.id == 1).values(seq=cp.seq - 1, hash=last.prev_hash))
        s.delete(last)
    r = check(engine, signer)
    assert r.chain.ok and not r.ok
    assert f"covers seq {cp.seq}, but the chain ends at seq {cp.seq - 1}" in r.problems[0]


def test_signing_key_file_is_private_and_stable(settings: Settings) -> None:
    a = ledger.Signer.from_settings(settings)
    path = ledger.signing_key_path(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert ledger.Signer.from_settings(settings).key_id == a.key_id
    pem = ledger.public_key_pem(a.public)
    assert ledger.key_id(ledger.load_public_key(pem)) == a.key_id
    with pytest.raises(Exception, match="not an Ed25519 public key"):
        ledger.load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_the_timer_signs_only_when_the_head_moved(engine: Engine) -> None:
    timer = ledger.CheckpointTimer(engine.db, engine.settings.with_(checkpoint_interval_seconds=0.0))
    first = timer.tick()
    assert first is not None and first.seq == 0
    assert timer.tick() is None  # nothing new
    decisions(engine)
    second = timer.tick()
    assert second is not None and second.seq > 0
    with engine.db.read() as s:
        assert s.query(EventCheckpoint).count() == 2
    assert check(engine, ledger.Signer.from_settings(engine.settings)).ok


def test_the_service_signs_checkpoints_in_the_background(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from safeguard.api import create_app

    s = settings.with_(checkpoint_interval_seconds=0.05)
    e = Engine(s)
    try:
        with TestClient(create_app(s, engine=e)):
            deadline = ledger.utcnow().timestamp() + 10
            while ledger.utcnow().timestamp() < deadline:
                with e.db.read() as sess:
                    if sess.query(EventCheckpoint).count():
                        break
        with e.db.read() as sess:
            assert sess.query(EventCheckpoint).count() >= 1
    finally:
        e.close()


runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Path:
    monkeypatch.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SAFEGUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SAFEGUARD_INDEX_REFRESH_SECONDS", "0")
    monkeypatch.setenv("SAFEGUARD_SIGNING_KEY_FILE", str(tmp_path / "secret-mount" / "signing.key"))
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path


def test_cli_checkpoint_export_and_verify(cli_env: Path) -> None:
    e = Engine(Settings.from_env())
    try:
        decisions(e)
    finally:
        e.close()
    out, pub = cli_env / "cp.json", cli_env / "signing.pub"
    r = runner.invoke(app, ["events", "checkpoint", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    cp = json.loads(out.read_text())
    assert json.loads(r.stdout) == cp and cp["format"] == ledger.FORMAT and cp["seq"] > 0
    assert (cli_env / "secret-mount" / "signing.key").exists()  # where the setting said, not DATA_DIR
    r = runner.invoke(app, ["events", "export-public-key", "--out", str(pub)], catch_exceptions=False)
    assert r.exit_code == 0 and pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    args = ["events", "verify", "--checkpoint", str(out), "--public-key", str(pub)]
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "event chain intact" in r.stdout and "checkpoints: 2 matched" in r.stdout

    db = Database(os.environ["SAFEGUARD_DATABASE_URL"])
    try:
        rewrite_from(db, 2, {"actor": "nobody"})
    finally:
        db.dispose()
    r = runner.invoke(app, args, catch_exceptions=False)
    assert r.exit_code == 1 and "the log was rewritten" in r.output
    bad = cli_env / "bad.json"
    bad.write_text('{"format": "something else"}')
    r = runner.invoke(app, ["events", "verify", "--checkpoint", str(bad)])
    assert isinstance(r.exception, SafeguardError) and r.exception.code == "invalid_checkpoint"


def test_the_api_signs_and_verifies(app_client: TestClient, engine: Engine, keys: dict[str, str]) -> None:
    auditor = {"Authorization": f"Bearer {keys['auditor']}"}
    assert (
        app_client.post("/v1/events/checkpoint", headers={"Authorization": f"Bearer {keys['admin']}"}).status_code
        == 403
    )
    _, block = decisions(engine)
    cp = app_client.post("/v1/events/checkpoint", headers=auditor).json()
    pub = app_client.get("/v1/events/public-key", headers=auditor).json()
    checkpoint = ledger.Checkpoint.from_dict(cp)
    assert pub["key_id"] == cp["key_id"] and checkpoint.signed_by(
        ledger.load_public_key(pub["public_key_pem"].encode())
    )
    got = app_client.get("/v1/events/verify", headers=auditor).json()
    assert got["ok"] and got["checkpoints_checked"] == 1 and got["decisions_checked"] == 2
    with engine.db.write() as s:
        s.execute(update(DecisionRow).where(DecisionRow.id == block).values(user_id="u-edited"))
    got = app_client.get("/v1/events/verify", headers=auditor).json()
    assert not got["ok"] and got["problems"] == [got["problem"]] and block in got["problem"]
