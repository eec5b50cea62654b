"""Least privilege (issue 15, finding 8): a platform key sees only its own tenant's decisions and streams;
other tenants' ids answer 404 as unknown ones do. Runs on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from safeguard.api import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, NotFound
from safeguard.keys import KeyService
from safeguard.store import Database
from safeguard.store.db import MIGRATIONS_DIR
from safeguard.store.models import DecisionRow
from safeguard.workers.streams import StreamConfig, StreamMonitor
from safeguard.workers.streams_store import StreamRow
from tests.detectors.grooming.helpers import GROOMING_LINES
from tests.helpers.api import auth
from tests.media_factory import image_bytes
from tests.videogen import make_video


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine)
    app.state.services.provide("stream_monitor", StreamMonitor(engine, StreamConfig(allow_files=True, give_up_after=2)))
    with TestClient(app) as c:
        yield c
    app.state.services.stream_monitor().shutdown()


@pytest.fixture
def tkeys(engine: Engine) -> dict[str, str]:
    ks = KeyService(engine.db)
    return {
        "a": ks.create("platform", "a", actor="t", tenant="acme")["key"],
        "b": ks.create("platform", "b", actor="t", tenant="bolt")["key"],
        "default": ks.create("platform", "d", actor="t")["key"],
        **{role: ks.create(role, role, actor="t", tenant="acme")["key"] for role in ("moderator", "admin", "auditor")},
    }


def _scan(c: TestClient, key: str, content_id: str) -> str:
    r = c.post(
        "/v1/scan", json={"signals": [{"type": "md5", "value": "0" * 32}], "content_id": content_id}, headers=auth(key)
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_decisions_are_their_tenants(client: TestClient, engine: Engine, tkeys: dict[str, str]) -> None:
    a1 = _scan(client, tkeys["a"], "a-1")
    b1 = _scan(client, tkeys["b"], "b-1")
    d1 = _scan(client, tkeys["default"], "d-1")
    r = client.post(
        "/v1/scan/batch", json={"items": [{"signals": [{"type": "md5", "value": "1" * 32}]}]}, headers=auth(tkeys["b"])
    )
    b2 = r.json()["decisions"][0]["id"]
    r = client.post("/v1/scan", files={"file": ("x.png", image_bytes(3, "PNG"), "image/png")}, headers=auth(tkeys["a"]))
    a2 = r.json()["id"]
    with engine.db.read() as s:
        tenants = dict(s.execute(select(DecisionRow.id, DecisionRow.tenant)).all())  # type: ignore[arg-type]
    assert tenants == {a1: "acme", a2: "acme", b1: "bolt", b2: "bolt", d1: "default"}

    def listed(key: str, **params: str) -> set[str]:
        r = client.get("/v1/decisions", params=params, headers=auth(key))
        assert r.status_code == 200, r.text
        return {d["id"] for d in r.json()["decisions"]}

    assert listed(tkeys["a"]) == {a1, a2}
    assert listed(tkeys["b"]) == {b1, b2}
    assert listed(tkeys["default"]) == {d1}
    assert listed(tkeys["b"], content_id="a-1") == set()  # filters do not reach past the tenant
    for role in ("moderator", "admin", "auditor"):  # the operator's staff see every tenant
        assert listed(tkeys[role]) == {a1, a2, b1, b2, d1}
    assert client.get(f"/v1/decisions/{a1}", headers=auth(tkeys["a"])).status_code == 200
    for other in (b1, d1):
        r = client.get(f"/v1/decisions/{other}", headers=auth(tkeys["a"]))
        unknown = client.get("/v1/decisions/dec_nope", headers=auth(tkeys["a"]))
        assert r.status_code == unknown.status_code == 404  # not 403: no oracle for other tenants' ids
        assert r.json()["error"]["code"] == unknown.json()["error"]["code"] == "decision_not_found"
    assert client.get(f"/v1/decisions/{b1}", headers=auth(tkeys["auditor"])).status_code == 200


def _wait(c: TestClient, sid: str, key: str, status: str) -> dict:  # type: ignore[type-arg]
    for _ in range(200):
        state = c.get(f"/v1/streams/{sid}", headers=auth(key)).json()
        if state["status"] == status:
            return state  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"stream {sid} never reached {status}: {state}")


def test_streams_are_their_tenants(tmp_path: Path, client: TestClient, engine: Engine, tkeys: dict[str, str]) -> None:
    path = tmp_path / "long.mp4"
    make_video(path, seconds=20, fps=5)
    r = client.post("/v1/streams", json={"url": str(path), "stream_id": "a-live"}, headers=auth(tkeys["a"]))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["tenant"] == "acme"
    _wait(client, sid, tkeys["a"], "watching")
    for verb in ("get", "delete"):  # B can neither read (and learn the URL) nor stop A's stream
        r = client.request(verb.upper(), f"/v1/streams/{sid}", headers=auth(tkeys["b"]))
        assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"
        assert "url" not in r.text
    assert client.get("/v1/streams", headers=auth(tkeys["b"])).json()["streams"] == []
    assert [s["id"] for s in client.get("/v1/streams", headers=auth(tkeys["a"])).json()["streams"]] == [sid]
    assert [s["id"] for s in client.get("/v1/streams", headers=auth(tkeys["auditor"])).json()["streams"]] == [sid]
    assert client.get(f"/v1/streams/{sid}", headers=auth(tkeys["a"])).json()["status"] == "watching"
    with engine.db.read() as s:
        row = s.get(StreamRow, sid)
        assert row is not None and row.tenant == "acme"
    # the row path (the stream watched by "another process"): B still gets 404, and it stays watched
    mon: StreamMonitor = client.app.state.services.stream_monitor()  # type: ignore[attr-defined]
    with pytest.raises(NotFound, match="not found"):
        mon.stop(sid, tenant="bolt")
    watcher = mon.watchers.pop(sid)
    try:
        with pytest.raises(NotFound, match="not found"):
            mon.stop(sid, tenant="bolt")
        with pytest.raises(NotFound, match="not found"):
            mon.get(sid, tenant="bolt")
        assert mon.get(sid, tenant="acme").id == sid
    finally:
        mon.watchers[sid] = watcher
    r = client.delete(f"/v1/streams/{sid}", headers=auth(tkeys["a"]))
    assert r.status_code == 200 and r.json()["status"] == "stopped"


def test_keys_have_a_tenant(engine: Engine) -> None:
    ks = KeyService(engine.db)
    made = ks.create("platform", "x", actor="t", tenant="acme.eu-1")
    assert made["tenant"] == "acme.eu-1"
    p = ks.authenticate(made["key"])
    assert p.tenant == "acme.eu-1" and p.tenant_scope == "acme.eu-1"
    admin = ks.authenticate(ks.create("admin", actor="t")["key"])
    assert admin.tenant == "default" and admin.tenant_scope is None
    assert {k["name"]: k["tenant"] for k in ks.list()} == {"x": "acme.eu-1", "admin": "default"}
    for bad in ("", "Acme", "-x", "a" * 65, "a b", "ünï"):
        with pytest.raises(InvalidInput) as e:
            ks.create("platform", actor="t", tenant=bad)
        assert e.value.code == "invalid_tenant"


def test_migration_puts_existing_keys_and_records_in_the_default_tenant(db_url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    db = Database(db_url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006_entry_value_ix")
    key = "sg_00112233aabb_secret"
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (name, role, prefix, key_hash, created_at) "
                "VALUES ('old', 'platform', '00112233aabb', :h, CURRENT_TIMESTAMP)"
            ),
            {"h": hashlib.sha256(key.encode()).hexdigest()},
        )
        conn.execute(
            text(
                "INSERT INTO decisions (id, created_at, verdict, status, content_kind, policy_version, body) "
                "VALUES ('dec_old', CURRENT_TIMESTAMP, 'allow', 'done', 'hashes', 'v1', '{}')"
            )
        )
    db.migrate()
    p = KeyService(db).authenticate(key)
    assert p.name == "old" and p.tenant == "default"
    with db.read() as s:
        row = s.get(DecisionRow, "dec_old")
        assert row is not None and row.tenant == "default"
    db.dispose()


def test_chat_decisions_are_their_tenants(client: TestClient, engine: Engine, tkeys: dict[str, str]) -> None:
    messages = [
        {
            "message_id": f"m{i}",
            "sender": {"id": "adult1", "age_band": "adult", "account_age_days": 2},
            "recipients": [{"id": "kid1", "age_band": "child"}],
            "text": line,
            "sent_at": 1_000 + 10 * i,
            "prior_contact": False,
        }
        for i, line in enumerate(GROOMING_LINES)
    ]
    r = client.post("/v1/conversations/conv-a/messages", json={"messages": messages}, headers=auth(tkeys["a"]))
    assert r.status_code == 200, r.text
    did = r.json()["decision"]["id"]
    assert r.json()["decision"]["recorded"] is True
    assert client.get(f"/v1/decisions/{did}", headers=auth(tkeys["a"])).status_code == 200
    assert client.get(f"/v1/decisions/{did}", headers=auth(tkeys["b"])).status_code == 404
    with engine.db.read() as s:
        row = s.get(DecisionRow, did)
        assert row is not None and row.tenant == "acme"
