"""Webhook endpoints: secrets sealed at rest and never copied into the outbox; a removed endpoint's
pending deliveries are cancelled with an event and never sent; secrets stored in the clear by an
earlier version are sealed at start (migration 0008_ledger cannot reach the key)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from safeguard import secrets
from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.cli import app as cli_app
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.store import Database
from safeguard.store.db import MIGRATIONS_DIR
from safeguard.store.models import Event, OutboxMessage, WebhookEndpoint
from safeguard.webhook_store import add_endpoint, remove_endpoint, seal_plaintext_secrets
from safeguard.webhooks import verify_signature
from safeguard.workers.outbox import OutboxWorker
from tests.helpers.api import auth
from tests.webhook_receiver import webhook_receiver

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
SECRET = "s3cret-s3cret-s3cret"


def block(engine: Engine, content_id: str = "c1") -> None:
    banks = BankService(engine.db)
    if not banks.list_banks():
        banks.create("csam", actor="t")
        banks.add_entry("csam", signal_type="pdq", value=PDQ, actor="t")
    engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", PDQ, 100),), content_id=content_id))


def outbox(engine: Engine) -> list[OutboxMessage]:
    with engine.db.read() as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_secret_is_sealed_and_the_outbox_names_the_endpoint(
    app_client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    with webhook_receiver() as rx:
        r = app_client.post("/v1/webhooks", headers=auth(keys["admin"]), json={"url": rx.url, "secret": SECRET})
        assert r.status_code == 201 and r.json()["secret"] == SECRET
        with engine.db.read() as s:
            stored = s.execute(select(WebhookEndpoint.secret)).scalar_one()
            added = s.execute(select(Event).where(Event.type == "webhook.endpoint_added")).scalar_one()
        assert secrets.is_sealed(stored) and SECRET not in stored
        assert SECRET not in str(added.payload)
        block(engine)
        [msg] = outbox(engine)
        assert msg.endpoint_id == r.json()["id"]
        assert "endpoint_secret" not in {c["name"] for c in inspect(engine.db.engine).get_columns("outbox")}
        assert OutboxWorker(engine.db, engine.settings).run_once() == 1
        [(headers, body)] = rx.deliveries
    assert verify_signature(SECRET, headers["safeguard-signature"], body)


def test_the_settings_default_endpoint_signs_with_the_settings_secret(engine: Engine) -> None:
    with webhook_receiver() as rx:
        engine.settings = engine.settings.with_(webhook_url=rx.url, webhook_secret="d" * 24)
        block(engine)
        [msg] = outbox(engine)
        assert msg.endpoint_id is None
        OutboxWorker(engine.db, engine.settings).run_once()
        [(headers, body)] = rx.deliveries
    assert verify_signature("d" * 24, headers["safeguard-signature"], body)


def test_removing_an_endpoint_cancels_its_pending_deliveries(
    app_client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    with webhook_receiver() as rx:
        a = app_client.post("/v1/webhooks", headers=auth(keys["admin"]), json={"url": rx.url}).json()["id"]
        b = app_client.post("/v1/webhooks", headers=auth(keys["admin"]), json={"url": rx.url + "b"}).json()["id"]
        block(engine, "c1")
        block(engine, "c2")
        assert len(outbox(engine)) == 4
        assert app_client.delete(f"/v1/webhooks/{a}", headers=auth(keys["admin"])).status_code == 204
        with engine.db.read() as s:
            ev = s.execute(select(Event).where(Event.type == "webhook.deliveries_cancelled")).scalar_one()
        cancelled = [m.id for m in outbox(engine) if m.endpoint_id == a]
        assert ev.payload["outbox_ids"] == cancelled and ev.payload["count"] == 2
        assert (ev.subject_kind, ev.subject_id) == ("webhook", str(a))
        assert {m.endpoint_id: m.status for m in outbox(engine)} == {a: "cancelled", b: "pending"}
        worker = OutboxWorker(engine.db, engine.settings)
        assert worker.run_once() == 2  # only b's
        assert {h["safeguard-delivery"] for h, _ in rx.deliveries} == {
            str(m.id) for m in outbox(engine) if m.endpoint_id == b
        }
        assert worker.run_once() == 0
        assert app_client.delete("/v1/webhooks/999", headers=auth(keys["admin"])).status_code == 404


def test_a_delivery_claimed_before_removal_is_not_sent(engine: Engine) -> None:
    with webhook_receiver() as rx:
        with engine.db.write() as s:
            endpoint = add_endpoint(s, engine.settings, url=rx.url, secret=SECRET, topics=[], actor="t").id
        block(engine)
        worker = OutboxWorker(engine.db, engine.settings)
        [claimed] = worker.claim()
        with engine.db.write() as s:
            assert remove_endpoint(s, endpoint, actor="t") == 1
        assert worker.deliver(claimed) is False
        assert rx.deliveries == []
    [msg] = outbox(engine)
    assert (msg.status, msg.attempts, msg.locked_until) == ("cancelled", 0, None)


def test_a_pending_delivery_to_an_endpoint_disabled_earlier_is_cancelled_by_the_worker(engine: Engine) -> None:
    """Rows left pending for an endpoint removed before cancellation existed: the worker cancels them."""
    with webhook_receiver() as rx:
        with engine.db.write() as s:
            w = add_endpoint(s, engine.settings, url=rx.url, secret=SECRET, topics=[], actor="t")
        block(engine)
        with engine.db.write() as s:
            row = s.get(WebhookEndpoint, w.id)
            assert row is not None
            row.enabled = False  # what DELETE /v1/webhooks did before
        assert OutboxWorker(engine.db, engine.settings).run_once() == 1
        assert rx.deliveries == []
    [msg] = outbox(engine)
    assert msg.status == "cancelled"
    with engine.db.read() as s:
        ev = s.execute(select(Event).where(Event.type == "webhook.deliveries_cancelled")).scalar_one()
    assert ev.actor == "worker" and ev.payload["outbox_ids"] == [msg.id]


def test_plaintext_secrets_wait_until_sealed_at_start(settings: Settings, engine: Engine) -> None:
    with webhook_receiver() as rx:
        with engine.db.write() as s:  # as an earlier version stored it
            s.add(WebhookEndpoint(url=rx.url, secret=SECRET, events=[], enabled=True))
        block(engine)
        worker = OutboxWorker(engine.db, engine.settings)
        worker.run_once()
        [msg] = outbox(engine)
        assert msg.status == "pending" and msg.attempts == 1 and "not sealed" in msg.last_error
        assert rx.deliveries == []
        with TestClient(create_app(settings, engine=engine)):  # the service seals them as it starts
            pass
        with engine.db.read() as s:
            stored = s.execute(select(WebhookEndpoint.secret)).scalar_one()
            ev = s.execute(select(Event).where(Event.type == "secrets.sealed")).scalar_one()
        assert secrets.is_sealed(stored) and ev.payload["key_id"] == secrets.box(settings).key_id
        with engine.db.write() as s:
            assert seal_plaintext_secrets(s, settings, actor="t") == 0  # idempotent
            s.get(OutboxMessage, msg.id).next_attempt_at = msg.created_at  # type: ignore[union-attr]
        assert worker.run_once() == 1
        [(headers, body)] = rx.deliveries
    assert verify_signature(SECRET, headers["safeguard-signature"], body)


def test_a_secret_sealed_under_another_key_is_retried_not_sent(settings: Settings, engine: Engine) -> None:
    with webhook_receiver() as rx:
        with engine.db.write() as s:
            add_endpoint(s, settings, url=rx.url, secret=SECRET, topics=[], actor="t")
        block(engine)
        other = settings.with_(secrets_key_file=str(Path(settings.data_dir) / "other.key"))
        OutboxWorker(engine.db, other).run_once()
        assert rx.deliveries == []
    [msg] = outbox(engine)
    assert msg.status == "pending" and "secret_unreadable" in msg.last_error


def test_migration_links_old_outbox_rows_to_their_endpoint(db_url: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    before = ScriptDirectory.from_config(cfg).get_revision("0008_ledger").down_revision
    assert isinstance(before, str)
    db = Database(db_url)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, before)
        with db.engine.begin() as conn:
            for i, (url, secret, enabled) in enumerate(
                [("http://a/h", "a" * 20, True), ("http://b/h", "b" * 20, False)], 1
            ):
                conn.execute(
                    text(
                        "INSERT INTO webhook_endpoints (id, url, secret, events, enabled, created_at)"
                        " VALUES (:i, :u, :s, '[]', :e, CURRENT_TIMESTAMP)"
                    ),
                    {"i": i, "u": url, "s": secret, "e": enabled},
                )
            for url, secret in [("http://a/h", "a" * 20), ("http://b/h", "b" * 20), ("http://default/h", "d" * 20)]:
                conn.execute(
                    text(
                        "INSERT INTO outbox (topic, endpoint_url, endpoint_secret, payload, status, attempts,"
                        " next_attempt_at, last_error, created_at) VALUES ('t', :u, :s, '{}', 'pending', 0,"
                        " CURRENT_TIMESTAMP, '', CURRENT_TIMESTAMP)"
                    ),
                    {"u": url, "s": secret},
                )
        db.migrate()
        with db.read() as s:
            got = [
                (m.endpoint_url, m.endpoint_id)
                for m in s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
            ]
        assert got == [("http://a/h", 1), ("http://b/h", 2), ("http://default/h", None)]
    finally:
        db.dispose()


runner = CliRunner()


def test_cli_add_remove_and_migrate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> None:
    mp = monkeypatch
    mp.setenv("SAFEGUARD_DATA_DIR", str(tmp_path / "data"))
    mp.setenv("SAFEGUARD_DATABASE_URL", db_url)
    mp.setenv("SAFEGUARD_INDEX_REFRESH_SECONDS", "0")
    mp.setenv("SAFEGUARD_SECRETS_KEY_FILE", str(tmp_path / "mounted" / "secrets.key"))
    mp.setenv("SAFEGUARD_EGRESS_ALLOW", "127.0.0.1")
    r = runner.invoke(cli_app, ["webhooks", "add", "http://127.0.0.1:9/h", "--secret", SECRET], catch_exceptions=False)
    assert r.exit_code == 0 and r.stdout.strip() == SECRET
    assert (tmp_path / "mounted" / "secrets.key").exists()
    e = Engine(Settings.from_env())
    try:
        with e.db.write() as s:
            s.add(WebhookEndpoint(url="http://127.0.0.1:9/old", secret="o" * 20, events=[], enabled=True))
        block(e)
    finally:
        e.close()
    r = runner.invoke(cli_app, ["secrets", "migrate"], catch_exceptions=False)
    assert r.exit_code == 0 and "1 webhook secrets sealed" in r.stdout
    r = runner.invoke(cli_app, ["webhooks", "remove", "1"], catch_exceptions=False)
    assert r.exit_code == 0 and "1 pending deliveries cancelled" in r.stdout
    r = runner.invoke(cli_app, ["webhooks", "list"], catch_exceptions=False)
    assert "1 pending" in r.stdout and "1 cancelled" in r.stdout


def test_the_service_starts_when_it_cannot_seal(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    broken = settings.with_(secrets_key_file=str(tmp_path / "a-file" / "secrets.key"))  # cannot be created
    with engine.db.write() as s:
        s.add(WebhookEndpoint(url="http://127.0.0.1:9/h", secret=SECRET, events=[], enabled=True))
    with TestClient(create_app(broken, engine=engine)) as c:
        assert c.get("/healthz").status_code == 200
    with engine.db.read() as s:
        assert s.execute(select(WebhookEndpoint.secret)).scalar_one() == SECRET  # left for `secrets migrate`
