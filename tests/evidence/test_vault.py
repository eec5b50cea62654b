"""The evidence vault in process: sealing, the preserve action, reads through the API (each one an event),
tampering, wrong and missing keys, retention with legal holds, key rotation. SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safeguard import events
from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal, Verdict
from safeguard.engine import Engine
from safeguard.errors import ConfigError
from safeguard.evidence import (
    EvidenceKeyError,
    EvidenceTampered,
    EvidenceVault,
    FileBlobStore,
    MasterKey,
    vault_of,
)
from safeguard.evidence.keys import open_item, seal_item
from safeguard.keys import KeyService
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store.models import Event, utcnow
from safeguard.store.models import EvidenceItem as EvidenceRow
from tests.helpers.api import auth
from tests.media_factory import encode, image_bytes, make_image


def new_key(path: Path) -> MasterKey:
    return MasterKey.generate().write_new(path)


@pytest.fixture
def vsettings(settings: Settings, tmp_path: Path) -> Settings:
    new_key(tmp_path / "keys" / "vault.key")
    return settings.with_(vault_key_file=str(tmp_path / "keys" / "vault.key"))


@pytest.fixture
def vengine(vsettings: Settings) -> Iterator[Engine]:
    e = Engine(vsettings)
    yield e
    e.close()


@pytest.fixture
def banked(vengine: Engine) -> bytes:
    """A benign generated image in a CSAM-kind bank (the policy's ``known-csam`` rule fires on it)."""
    data = image_bytes(7, "PNG")
    banks = BankService(vengine.db)
    banks.create("csam", actor="t", default_category="A1")
    pdq = PDQSignal().compute(Media.from_bytes(data))[0]
    banks.add_entry("csam", signal_type="pdq", value=pdq.value, actor="t")
    return data


@pytest.fixture
def client(vsettings: Settings, vengine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(vsettings, engine=vengine)) as c:
        yield c


@pytest.fixture
def vkeys(vengine: Engine) -> dict[str, str]:
    ks = KeyService(vengine.db)
    return {r: ks.create(r, f"t-{r}", actor="test")["key"] for r in ("platform", "moderator", "admin", "auditor")}


def upload(client: TestClient, key: str, data: bytes, **fields: str) -> dict:  # type: ignore[type-arg]
    r = client.post("/v1/scan", headers=auth(key), files={"file": ("upload.png", data, "image/png")}, data=fields)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def events_of(engine: Engine, type_: str) -> list[Event]:
    with engine.db.read() as s:
        return list(s.execute(select(Event).where(Event.type == type_).order_by(Event.seq)).scalars())


def rows(engine: Engine) -> list[EvidenceRow]:
    vault_of(engine).settler.flush()  # spooled items get their address in the background
    with engine.db.read() as s:
        return list(s.execute(select(EvidenceRow).order_by(EvidenceRow.preserved_at)).scalars())


# -- the envelope --------------------------------------------------------------------------------------
def test_seal_open_and_the_item_id_is_bound_to_both_seals() -> None:
    data = b"\x89PNG benign test bytes" * 100
    sealed, dk = seal_item(data, "ev_a")
    assert data not in sealed and open_item(sealed, dk, "ev_a") == data
    with pytest.raises(EvidenceTampered):
        open_item(sealed, dk, "ev_b")  # a file moved to another row does not open
    flipped = bytearray(sealed)
    flipped[-20] ^= 1
    with pytest.raises(EvidenceTampered):
        open_item(bytes(flipped), dk, "ev_a")
    k1, k2 = MasterKey.generate(), MasterKey.generate()
    wrapped = k1.wrap(dk, "ev_a")
    assert len(wrapped) == 60 and k1.unwrap(wrapped, "ev_a") == dk
    with pytest.raises(EvidenceKeyError):
        k2.unwrap(wrapped, "ev_a")
    with pytest.raises(EvidenceKeyError):
        k1.unwrap(wrapped, "ev_b")
    assert k1.id != k2.id and len(k1.id) == 16
    # sealing reuses a few buffers: threads sealing at once each get their own
    from concurrent.futures import ThreadPoolExecutor

    blobs = [bytes([i]) * (1000 + 997 * i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        sealed_all = list(pool.map(lambda b: seal_item(b, "ev_t"), blobs))
    assert [open_item(s, k, "ev_t") for s, k in sealed_all] == blobs


def test_key_files_are_0600_never_overwritten_and_checked(tmp_path: Path) -> None:
    k = new_key(tmp_path / "k")
    assert stat.S_IMODE(os.stat(tmp_path / "k").st_mode) == 0o600
    assert MasterKey.load(tmp_path / "k").key == k.key
    with pytest.raises(ConfigError, match="exists already"):
        new_key(tmp_path / "k")
    cases = {
        "missing": (tmp_path / "nope", "does not exist"),
        "malformed": (tmp_path / "bad", "malformed"),
        "short": (tmp_path / "short", "holds 16 bytes"),
    }
    (tmp_path / "bad").write_text("not base64 !!\n")
    (tmp_path / "short").write_text("AAAAAAAAAAAAAAAAAAAAAA==\n")
    for path, msg in cases.values():
        if path.exists():
            path.chmod(0o600)
        with pytest.raises(ConfigError, match=msg) as exc:
            MasterKey.load(path)
        assert exc.value.code == "evidence_key_error"
    (tmp_path / "k").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        MasterKey.load(tmp_path / "k")


def test_blob_store_is_content_addressed(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "items")
    a = store.put(b"sealed bytes")
    assert a == hashlib.sha256(b"sealed bytes").hexdigest() and store.put(b"sealed bytes") == a
    assert store.get(a) == b"sealed bytes" and store.path(a).relative_to(tmp_path / "items").parts[:2] == (
        a[:2],
        a[2:4],
    )
    store.delete(a)
    store.delete(a)  # idempotent
    with pytest.raises(ValueError):
        store.path("../etc/passwd")
    synced = FileBlobStore(tmp_path / "synced", fsync="request")  # SAFEGUARD_VAULT_FSYNC=request
    b = synced.put(b"other sealed bytes")
    assert synced.get(b) == b"other sealed bytes" and stat.S_IMODE(synced.path(b).stat().st_mode) == 0o600
    from safeguard.evidence.storage import _SYNCER

    store.put(b"pending")
    _SYNCER.flush()  # the background fsync of files written without it
    assert not _SYNCER._pending
    with pytest.raises(ConfigError, match="SAFEGUARD_VAULT_FSYNC"):
        FileBlobStore(tmp_path, fsync="sometimes")


# -- preserving ----------------------------------------------------------------------------------------
def test_a_banked_upload_is_preserved_encrypted_in_the_decisions_transaction(vengine: Engine, banked: bytes) -> None:
    copy = encode(make_image(7).resize((300, 225)), "PNG")  # different bytes, the same picture
    d = vengine.scan(
        Content(kind=ContentKind.IMAGE, data=copy, user_id="u1", filename="holiday.png", media_type="image/png")
    )
    assert d.verdict is Verdict.BLOCK and [a.name for a in d.actions] == ["block", "case", "preserve", "webhook"]
    [row] = rows(vengine)
    assert (row.case_id, row.decision_id, row.status) == (d.case_id, d.id, "preserved")
    assert row.sha256 == hashlib.sha256(copy).hexdigest() and row.size == len(copy)
    assert (row.media_type, row.file_name, row.legal_hold) == ("image/png", "holiday.png", False)
    assert timedelta(days=364) < row.retain_until - row.preserved_at <= timedelta(days=365)
    vault = vault_of(vengine)
    file = FileBlobStore(vault.root / "items").path(row.blob or "")
    on_disk = file.read_bytes()
    assert copy not in on_disk and copy[:64] not in on_disk and hashlib.sha256(on_disk).hexdigest() == row.blob
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    # the preservation is in the hash chain, with the item's SHA-256
    [ev] = events_of(vengine, "action.preserve")
    assert ev.payload["result"]["item_id"] == row.id and ev.payload["result"]["sha256"] == row.sha256
    [item] = vault.items_for_case(d.case_id or 0)
    assert (item.id, item.sha256, item.size, item.media_type) == (row.id, row.sha256, len(copy), "image/png")
    report = vault.verify(actor="t")
    assert (report.checked, report.ok, report.failures, report.orphans) == (1, 1, [], 0)


def test_a_hash_only_match_preserves_nothing_and_the_case_says_so(
    vengine: Engine, banked: bytes, client: TestClient, vkeys: dict[str, str]
) -> None:
    pdq = PDQSignal().compute(Media.from_bytes(banked))[0]
    sha = hashlib.sha256(banked).hexdigest()
    d = vengine.scan(Content(kind=ContentKind.HASHES, signals=(pdq, Signal("sha256", sha)), user_id="e2ee"))
    assert d.verdict is Verdict.BLOCK
    [row] = rows(vengine)
    assert (row.status, row.note, row.sha256, row.wrapped_key, row.blob) == (
        "hash_only",
        "no bytes preserved: hash-only scan",
        sha,
        None,
        None,
    )
    case = client.get(f"/v1/cases/{d.case_id}", headers=auth(vkeys["moderator"])).json()
    [ev] = case["evidence"]
    assert (ev["preserved"], ev["note"], ev["size"]) == (False, "no bytes preserved: hash-only scan", None)
    r = client.get(f"/v1/cases/{d.case_id}/evidence/{row.id}?reason=check", headers=auth(vkeys["moderator"]))
    assert r.status_code == 410 and r.json()["error"]["code"] == "evidence_gone"
    assert vault_of(vengine).verify(actor="t").skipped == 1


def test_a_live_stream_match_says_its_frames_are_not_kept(vengine: Engine) -> None:
    from safeguard.content import Finding

    found = Finding(detector="video_match", kind="video_match", bank="csam", bank_kind="csam", confidence="high")
    d = vengine.decide(Content(kind=ContentKind.STREAM, stream_id="live-1", user_id="streamer"), [found])
    assert "preserve" in [a.name for a in d.actions]
    [row] = rows(vengine)
    assert (row.status, row.note) == ("hash_only", "no bytes preserved: a live-stream frame is hashed, not kept")


# -- reading -------------------------------------------------------------------------------------------
def test_every_read_is_an_event_with_who_and_why(
    vengine: Engine, banked: bytes, client: TestClient, vkeys: dict[str, str]
) -> None:
    d = upload(client, vkeys["platform"], banked, user_id="u2", content_id="c2")
    case = client.get(f"/v1/cases/{d['case_id']}", headers=auth(vkeys["moderator"])).json()
    [item] = case["evidence"]
    assert item["sha256"] == hashlib.sha256(banked).hexdigest() and item["media_type"] == "image/png"
    listed = client.get(f"/v1/cases/{d['case_id']}/evidence", headers=auth(vkeys["auditor"])).json()["evidence"]
    assert [i["id"] for i in listed] == [item["id"]]
    url = f"/v1/cases/{d['case_id']}/evidence/{item['id']}"
    r = client.get(url, params={"reason": "confirming the match"}, headers=auth(vkeys["moderator"]))
    assert r.status_code == 200 and r.content == banked
    assert r.headers["cache-control"] == "no-store" and r.headers["content-type"] == "image/png"
    [ev] = events_of(vengine, "evidence.read")
    assert (ev.subject_kind, ev.subject_id) == ("evidence", item["id"])
    assert ev.actor.endswith("t-moderator") and ev.payload["reason"] == "confirming the match"
    assert ev.payload["case_id"] == d["case_id"]
    # no reason: refused, nothing handed out
    r = client.get(url, headers=auth(vkeys["moderator"]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required"
    # auditors audit records, not media; platforms neither: refused, and the attempt is an event
    for role in ("auditor", "platform"):
        r = client.get(url, params={"reason": "curious"}, headers=auth(vkeys[role]))
        assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_role"
    denied = events_of(vengine, "evidence.read_denied")
    assert [e.payload["role"] for e in denied] == ["auditor", "platform"]
    # the item is not in another case
    r = client.get(f"/v1/cases/999/evidence/{item['id']}?reason=x", headers=auth(vkeys["admin"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "evidence_not_found"
    r = client.get(f"/v1/cases/{d['case_id']}/evidence/{'x' * 400}?reason=x", headers=auth(vkeys["auditor"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "evidence_not_found"
    assert len(events_of(vengine, "evidence.read")) == 1
    assert client.get("/v1/events/verify", headers=auth(vkeys["auditor"])).json()["ok"] is True


def test_a_tampered_file_is_a_clear_error_and_an_event(
    vengine: Engine, banked: bytes, client: TestClient, vkeys: dict[str, str]
) -> None:
    d = upload(client, vkeys["platform"], banked, user_id="u3")
    upload(client, vkeys["platform"], encode(make_image(7), "JPEG"), user_id="u4")
    first, second = rows(vengine)
    store = FileBlobStore(vault_of(vengine).root / "items")
    path = store.path(first.blob or "")
    data = bytearray(path.read_bytes())
    data[40] ^= 0xFF
    path.write_bytes(bytes(data))
    url = f"/v1/cases/{d['case_id']}/evidence/{first.id}"
    r = client.get(url, params={"reason": "review"}, headers=auth(vkeys["moderator"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "evidence_tampered"
    [failed] = events_of(vengine, "evidence.read_failed")
    assert failed.payload["error"] == "evidence_tampered" and failed.subject_id == first.id
    # a file swapped for another item's (a valid sealed file, but not this item's)
    store.path(second.blob or "").replace(path)
    with vengine.db.write() as s:  # an attacker who can write the database points the row at it
        s.get(EvidenceRow, first.id).blob = second.blob  # type: ignore[union-attr]
    r = client.get(url, params={"reason": "review"}, headers=auth(vkeys["moderator"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "evidence_tampered"
    report = vault_of(vengine).verify(actor="t")
    assert report.ok == 0 and {f["code"] for f in report.failures} == {"evidence_tampered"}
    assert len(events_of(vengine, "evidence.tampered")) == 2
    # a row whose file address is garbage, or whose wrapped key is cut short: clear errors, no crash
    third = upload(client, vkeys["platform"], banked, user_id="u5")
    third_id = rows(vengine)[-1].id
    with vengine.db.write() as s:
        s.get(EvidenceRow, first.id).blob = "../../etc/passwd"  # type: ignore[union-attr]
        s.get(EvidenceRow, third_id).wrapped_key = b"short"  # type: ignore[union-attr]
    r = client.get(url, params={"reason": "review"}, headers=auth(vkeys["moderator"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "evidence_tampered"
    url2 = f"/v1/cases/{third['case_id']}/evidence/{third_id}"
    r = client.get(url2, params={"reason": "review"}, headers=auth(vkeys["moderator"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "evidence_key_error"
    codes = sorted(f["code"] for f in vault_of(vengine).verify(actor="t").failures)
    assert codes == ["evidence_key_error", "evidence_tampered", "evidence_tampered"]
    assert len(events_of(vengine, "evidence.key_error")) == 1


def test_a_row_rewritten_to_match_a_swapped_file_is_caught_by_the_chain(vengine: Engine, banked: bytes) -> None:
    """Someone who can write the database and the disk replaces an item entirely: new bytes, new key, new
    row values. Everything decrypts and hashes, but the SHA-256 no longer matches the preservation event."""
    vengine.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u5"))
    [row] = rows(vengine)
    vault = vault_of(vengine)
    fake = vault.seal(b"something else entirely", item_id=row.id)
    with vengine.db.write() as s:
        r = s.get(EvidenceRow, row.id)
        assert r is not None
        r.sha256, r.size, r.blob, r.wrapped_key = fake.sha256, fake.size, fake.blob, fake.wrapped_key
    report = vault.verify(actor="t")
    [failure] = report.failures
    assert failure["code"] == "evidence_tampered" and "preservation event" in failure["message"]


# -- keys ----------------------------------------------------------------------------------------------
def test_the_service_refuses_to_start_without_the_right_key(vsettings: Settings, banked: bytes, tmp_path: Path) -> None:
    e = Engine(vsettings)
    e.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id="u6"))
    e.close()
    # missing
    with pytest.raises(ConfigError, match="does not exist") as exc:
        Engine(vsettings.with_(vault_key_file=str(tmp_path / "missing.key")))
    assert exc.value.code == "evidence_key_error"
    # unreadable
    bad = tmp_path / "keys" / "vault.key"
    bad.chmod(0o000)
    try:
        if os.geteuid() != 0:  # root reads any file
            with pytest.raises(ConfigError, match="not readable"):
                Engine(vsettings)
    finally:
        bad.chmod(0o600)
    # another key: a well-formed key that wrapped none of the stored items
    with pytest.raises(ConfigError, match="not the key that wrapped") as exc:
        Engine(vsettings.with_(vault_key_file=str(new_key(tmp_path / "other.key").path)))
    assert exc.value.code == "evidence_key_error"
    # and create_app goes through the same engine start
    with pytest.raises(ConfigError):
        create_app(vsettings.with_(vault_key_file=str(tmp_path / "missing.key")))
    # a policy without ``preserve`` does not need the key
    policy = tmp_path / "p.yaml"
    policy.write_text("version: x\nrules: []\n")
    Engine(vsettings.with_(vault_key_file=str(tmp_path / "missing.key"), policy_file=str(policy))).close()


def test_unconfigured_key_is_made_once_in_the_data_dir_and_never_replaced(settings: Settings, tmp_path: Path) -> None:
    e = Engine(settings)
    key_path = Path(settings.data_dir) / "vault.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    data = image_bytes(8, "PNG")
    BankService(e.db).create("csam", actor="t")
    BankService(e.db).add_entry("csam", signal_type="sha256", value=hashlib.sha256(data).hexdigest(), actor="t")
    e.indexes.maybe_refresh()
    assert e.scan(Content(kind=ContentKind.IMAGE, data=data, user_id="u7")).verdict is Verdict.BLOCK
    e.close()
    Engine(settings).close()  # same key again
    key_path.unlink()  # the key is lost: a new one would orphan the stored item, so refuse
    with pytest.raises(ConfigError, match="is missing"):
        Engine(settings)
    assert not key_path.exists()


def test_rotate_rewraps_every_item_and_the_old_key_stops_working(
    vsettings: Settings, vengine: Engine, banked: bytes, tmp_path: Path
) -> None:
    for i in range(3):
        vengine.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id=f"r{i}"))
    vault = vault_of(vengine)
    old = vault.key
    new = new_key(tmp_path / "keys" / "new.key")
    done, failures = vault.rotate(new, [old], actor="t")
    assert (done, failures) == (3, [])
    assert {r.key_id for r in rows(vengine)} == {new.id}
    assert vault.rotate(new, [old], actor="t") == (0, [])  # resumable: nothing left
    fresh = EvidenceVault(vsettings.with_(vault_key_file=new.path), vengine.db)
    assert fresh.verify(actor="t").ok == 3
    assert vault.verify(actor="t").ok == 0  # the old key opens nothing now
    with pytest.raises(ConfigError, match="not the key that wrapped"):
        Engine(vsettings)
    Engine(vsettings.with_(vault_key_file=new.path)).close()
    first, again = events_of(vengine, "evidence.key_rotated")
    assert first.payload == {"to": new.id, "from": [old.id], "rewrapped": 3, "failed": 0}
    assert again.payload["rewrapped"] == 0


# -- retention -----------------------------------------------------------------------------------------
def test_purge_shreds_expired_items_except_those_on_legal_hold(vengine: Engine, banked: bytes) -> None:
    for u in ("p1", "p2"):
        vengine.scan(Content(kind=ContentKind.IMAGE, data=banked, user_id=u))
    held, free = rows(vengine)
    vault = vault_of(vengine)
    assert vault.purge(actor="t") == []  # nothing is due for a year
    assert vault.set_hold([held.id], hold=True, actor="t", reason="preservation request 2026-17") == 1
    later = utcnow() + timedelta(days=366)
    assert [i.id for i in vault.due(later)] == [free.id]
    assert vault.purge(actor="t", now=later) == [free.id]
    with vengine.db.read() as s:
        gone, kept = s.get(EvidenceRow, free.id), s.get(EvidenceRow, held.id)
        assert gone is not None and kept is not None
        assert (gone.status, gone.wrapped_key, gone.purged_at is not None) == ("purged", None, True)
        assert (kept.status, kept.legal_hold, kept.wrapped_key is not None) == ("preserved", True, True)
    store = FileBlobStore(vault.root / "items")
    assert not store.path(free.blob or "").exists() and store.path(held.blob or "").exists()
    [ev] = events_of(vengine, "evidence.purged")
    assert ev.subject_id == free.id and ev.payload["sha256"] == free.sha256
    [h] = events_of(vengine, "evidence.hold")
    assert h.payload["reason"] == "preservation request 2026-17"
    report = vault.verify(actor="t")
    assert (report.ok, report.skipped, report.failures) == (1, 1, [])
    vault.set_hold([held.id], hold=False, actor="t", reason="released by counsel")
    assert vault.purge(actor="t", now=later) == [held.id]
    with vengine.db.read() as s:
        assert events.verify(s).ok
