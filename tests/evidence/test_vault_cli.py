"""``safeguard vault`` as an operator runs it: real subprocesses against a temporary database, and the
end to end: a banked image uploaded → a case with an encrypted evidence item → the item opened with a
reason (the event checked) → ``safeguard vault verify`` and ``safeguard events verify`` pass."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from safeguard.api import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.evidence import FileBlobStore, MasterKey, vault_of
from safeguard.keys import KeyService
from safeguard.store.models import Event, utcnow
from safeguard.store.models import EvidenceItem as EvidenceRow
from tests.helpers.api import auth
from tests.media_factory import image_bytes


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "SAFEGUARD_DATA_DIR": str(tmp_path / "data"),
        "SAFEGUARD_DATABASE_URL": db_url,
        "SAFEGUARD_VAULT_KEY_FILE": str(tmp_path / "secrets" / "vault.key"),
        "SAFEGUARD_LOG_LEVEL": "warning",
        "COLUMNS": "200",
    }


def sg(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "safeguard.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def settings_of(env: dict[str, str]) -> Settings:
    return Settings.from_env(env, run_worker=False, index_refresh_seconds=0.0)


def test_end_to_end_banked_upload_to_verified_vault(env: dict[str, str], tmp_path: Path) -> None:
    out = sg(env, "vault", "init").stdout
    key_file = Path(env["SAFEGUARD_VAULT_KEY_FILE"])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "export SAFEGUARD_VAULT_KEY_FILE=" in out
    r = sg(env, "vault", "init", ok=False)  # never overwrites a key
    assert r.returncode != 0 and "exists already" in r.stderr
    s = settings_of(env)
    engine = Engine(s)
    try:
        ks = KeyService(engine.db)
        keys = {role: ks.create(role, f"e2e-{role}", actor="t")["key"] for role in ("platform", "moderator", "admin")}
        banked = image_bytes(11, "PNG")
        with TestClient(create_app(s, engine=engine)) as c:
            r = c.post("/v1/banks", headers=auth(keys["admin"]), json={"name": "csam", "default_category": "A1"})
            assert r.status_code == 201, r.text
            files = {"file": ("banked.png", banked, "image/png")}
            assert c.post("/v1/banks/csam/entries", headers=auth(keys["moderator"]), files=files).status_code == 201
            files = {"file": ("upload.png", banked, "image/png")}
            d = c.post("/v1/scan", headers=auth(keys["platform"]), files=files, data={"user_id": "e2e"}).json()
            assert d["verdict"] == "block" and d["case_id"]
            case = c.get(f"/v1/cases/{d['case_id']}", headers=auth(keys["moderator"])).json()
            [item] = case["evidence"]
            assert item["sha256"] == hashlib.sha256(banked).hexdigest() and item["size"] == len(banked)
            # encrypted at rest
            blob = FileBlobStore(vault_of(engine).root / "items")
            vault_of(engine).settler.flush()  # the file gets its address just after the answer
            with engine.db.read() as db:
                row = db.get(EvidenceRow, item["id"])
                assert row is not None and banked not in blob.path(row.blob or "").read_bytes()
            r = c.get(
                f"/v1/cases/{d['case_id']}/evidence/{item['id']}",
                params={"reason": "second look before confirming"},
                headers=auth(keys["moderator"]),
            )
            assert r.status_code == 200 and r.content == banked
        with engine.db.read() as db:
            [ev] = db.execute(select(Event).where(Event.type == "evidence.read")).scalars()
            assert (ev.subject_id, ev.payload["reason"]) == (item["id"], "second look before confirming")
            assert ev.actor.endswith("e2e-moderator")
    finally:
        engine.close()
    out = sg(env, "vault", "verify").stdout
    assert "vault intact" in out and "1 items decrypted" in out
    assert "event chain intact" in sg(env, "events", "verify").stdout
    assert item["id"] in sg(env, "vault", "list", "--case", str(d["case_id"])).stdout


def _seed(env: dict[str, str], n: int) -> tuple[Engine, list[str]]:
    """``n`` banked uploads preserved through the engine; returns it and the item ids."""
    from safeguard.banks import BankService
    from safeguard.content import Content, ContentKind

    engine = Engine(settings_of(env))
    data = image_bytes(12, "PNG")
    BankService(engine.db).create("csam", actor="t")
    BankService(engine.db).add_entry("csam", signal_type="sha256", value=hashlib.sha256(data).hexdigest(), actor="t")
    engine.indexes.maybe_refresh()
    for i in range(n):
        engine.scan(Content(kind=ContentKind.IMAGE, data=data, user_id=f"s{i}"))
    vault_of(engine).settler.flush()  # spooled items get their address in the background
    with engine.db.read() as s:
        ids = list(s.execute(select(EvidenceRow.id).order_by(EvidenceRow.preserved_at)).scalars())
    return engine, ids


def test_verify_fails_on_a_tampered_file_and_purge_respects_holds(env: dict[str, str]) -> None:
    sg(env, "vault", "init")
    engine, ids = _seed(env, 3)
    try:
        with engine.db.read() as s:
            blob = s.get(EvidenceRow, ids[0]).blob  # type: ignore[union-attr]
        path = FileBlobStore(vault_of(engine).root / "items").path(blob or "")
        path.write_bytes(path.read_bytes()[:-1] + b"\0")
        r = sg(env, "vault", "verify", ok=False)
        assert r.returncode == 1 and "evidence_tampered" in r.stderr and ids[0] in r.stderr
        # retention: all three are past it; one is on hold, one is the tampered one
        with engine.db.write() as s:
            s.execute(update(EvidenceRow).values(retain_until=utcnow() - timedelta(days=1)))
        sg(env, "vault", "hold", "--item", ids[1], "--reason", "law enforcement preservation request")
        r = sg(env, "vault", "hold", "--reason", "nothing named", ok=False)
        assert r.returncode == 2 and "evidence_not_found" in r.stderr
        r = sg(env, "vault", "hold", "--item", ids[2], "--reason", " ", ok=False)
        assert r.returncode == 2 and "reason_required" in r.stderr
        assert "2 items due" in sg(env, "vault", "purge", "--dry-run").stdout
        assert "purged 2 items" in sg(env, "vault", "purge").stdout
        with engine.db.read() as s:
            got = {r.id: (r.status, r.wrapped_key is None) for r in s.execute(select(EvidenceRow)).scalars()}
            purged = list(s.execute(select(Event).where(Event.type == "evidence.purged")).scalars())
        assert got == {ids[0]: ("purged", True), ids[1]: ("preserved", False), ids[2]: ("purged", True)}
        assert sorted(e.subject_id or "" for e in purged) == sorted([ids[0], ids[2]])
        assert "vault intact" in sg(env, "vault", "verify").stdout  # the tampered item is gone now
        sg(env, "vault", "release", "--item", ids[1], "--reason", "request withdrawn")
        assert "purged 1 items" in sg(env, "vault", "purge").stdout
        assert "event chain intact" in sg(env, "events", "verify").stdout
    finally:
        engine.close()


def test_rotate_key_then_the_old_key_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    sg(env, "vault", "init")
    engine, _ = _seed(env, 2)
    engine.close()
    old = MasterKey.load(Path(env["SAFEGUARD_VAULT_KEY_FILE"]))
    new_file = tmp_path / "secrets" / "vault-2027.key"
    out = sg(env, "vault", "rotate-key", "--new-key-file", str(new_file)).stdout
    new = MasterKey.load(new_file)
    assert f"re-wrapped 2 data keys from ['{old.id}'] to {new.id}" in out
    assert stat.S_IMODE(new_file.stat().st_mode) == 0o600
    assert Path(env["SAFEGUARD_VAULT_KEY_FILE"]).exists()  # the old key is left for the operator to destroy
    # verify with the old key: every item is a key error, exit 1
    r = sg(env, "vault", "verify", ok=False)
    assert r.returncode == 1 and "evidence_key_error" in r.stderr
    env2 = {**env, "SAFEGUARD_VAULT_KEY_FILE": str(new_file)}
    assert "2 items decrypted" in sg(env2, "vault", "verify").stdout
    # run again (as the procedure says, after the restart): nothing left to re-wrap
    out = sg(
        env2, "vault", "rotate-key", "--new-key-file", str(new_file), "--old-key-file", env["SAFEGUARD_VAULT_KEY_FILE"]
    )
    assert "re-wrapped 0 data keys" in out.stdout


def test_serve_refuses_to_start_without_a_readable_key(env: dict[str, str], tmp_path: Path) -> None:
    r = sg(env, "serve", "--port", "9", ok=False)  # SAFEGUARD_VAULT_KEY_FILE names a file that is not there
    assert r.returncode == 2 and "evidence_key_error" in r.stderr and "safeguard vault init" in r.stderr
    assert "event chain intact" in sg(env, "events", "verify").stdout  # record keeping needs no vault key
    sg(env, "vault", "init")
    engine, _ = _seed(env, 1)
    engine.close()
    other = tmp_path / "other.key"
    MasterKey.generate().write_new(other)
    r = sg({**env, "SAFEGUARD_VAULT_KEY_FILE": str(other)}, "serve", "--port", "9", ok=False)
    assert r.returncode == 2 and "not the key that wrapped the stored evidence" in r.stderr


def test_the_service_never_makes_its_own_key_and_refuses_to_start_without_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in env.items() if k != "SAFEGUARD_VAULT_KEY_FILE"}  # the default: DATA_DIR/vault.key
    key = Path(env["SAFEGUARD_DATA_DIR"]) / "vault.key"
    upload = tmp_path / "u.png"
    upload.write_bytes(image_bytes(5, "PNG"))
    r = sg(env, "scan", str(upload), ok=False)
    assert r.returncode == 2 and "evidence_key_error" in r.stderr and "safeguard vault init" in r.stderr
    assert not key.exists()
    # each API process refuses the same way (what `safeguard serve` runs in its workers)
    code = "from safeguard.api.app import create_app_from_env; create_app_from_env()"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "safeguard vault init" in p.stderr and not key.exists()
    # a key too open is refused, not fixed
    sg(env, "vault", "init")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)
    r = sg(env, "scan", str(upload), ok=False)
    assert r.returncode == 2 and "readable by group or others" in r.stderr
    key.chmod(0o600)
    sg(env, "scan", str(upload))  # with the key: scans
    # a policy that preserves nothing needs no key
    policy = tmp_path / "p.yaml"
    policy.write_text("version: x\nrules: []\n")
    bare = env | {"SAFEGUARD_POLICY_FILE": str(policy), "SAFEGUARD_DATA_DIR": str(tmp_path / "other")}
    sg(bare, "scan", str(upload))
    assert not (tmp_path / "other" / "vault.key").exists()
