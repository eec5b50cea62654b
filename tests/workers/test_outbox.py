"""Webhooks: signed, delivered to a real loopback server, retried with backoff, never lost."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from safeguard.banks import BankService
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.store.models import OutboxMessage, utcnow
from safeguard.webhook_store import add_endpoint
from safeguard.webhooks import sign, verify_signature
from safeguard.workers.outbox import OutboxWorker, backoff_seconds
from tests.webhook_receiver import webhook_receiver

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def blocked_decision(engine: Engine, url: str, secret: str = "s3cret-s3cret-s3cret") -> str:
    BankService(engine.db).create("csam", actor="t")
    BankService(engine.db).add_entry("csam", signal_type="pdq", value=PDQ, actor="t")
    with engine.db.write() as s:
        add_endpoint(s, engine.settings, url=url, secret=secret, topics=[], actor="t")
    d = engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", PDQ, 100),), content_id="c1"))
    return d.id


def test_signature_round_trip() -> None:
    body = b'{"a":1}'
    header = sign("k" * 20, body, timestamp=1_700_000_000)
    assert verify_signature("k" * 20, header, body, now=1_700_000_010)
    assert not verify_signature("k" * 20, header, body + b" ", now=1_700_000_010)
    assert not verify_signature("x" * 20, header, body, now=1_700_000_010)
    assert not verify_signature("k" * 20, header, body, now=1_700_009_999)  # too old: replay refused
    assert not verify_signature("k" * 20, "garbage", body)


def test_delivery_is_signed_and_recorded(engine: Engine) -> None:
    with webhook_receiver() as rx:
        decision_id = blocked_decision(engine, rx.url)
        worker = OutboxWorker(engine.db, engine.settings)
        assert worker.run_once() == 1
        [(headers, body)] = rx.deliveries
    assert verify_signature("s3cret-s3cret-s3cret", headers["safeguard-signature"], body)
    assert headers["safeguard-event"] == "decision.block"
    payload = json.loads(body)
    assert payload["decision"]["id"] == decision_id and payload["decision"]["case_id"]
    with engine.db.read() as s:
        msg = s.execute(select(OutboxMessage)).scalar_one()
        assert (msg.status, msg.attempts) == ("delivered", 1)


def test_failures_retry_with_backoff_then_succeed(engine: Engine) -> None:
    with webhook_receiver() as rx:
        rx.fail_next = 2
        blocked_decision(engine, rx.url)
        worker = OutboxWorker(engine.db, engine.settings)
        for expected_attempts in (1, 2):
            worker.run_once()
            with engine.db.write() as s:
                msg = s.execute(select(OutboxMessage)).scalar_one()
                assert (msg.status, msg.attempts) == ("pending", expected_attempts)
                assert msg.last_error == "HTTP 500"
                assert msg.next_attempt_at > utcnow()  # backed off
                msg.next_attempt_at = utcnow() - timedelta(seconds=1)  # let the test skip the wait
        worker.run_once()
        assert len(rx.deliveries) == 1
        first = rx.deliveries[0][0]["safeguard-delivery"]
    assert first == "1"


def test_dead_after_max_attempts(engine: Engine) -> None:
    engine.settings = engine.settings.with_(webhook_max_attempts=2)
    blocked_decision(engine, "http://127.0.0.1:9/unreachable")
    worker = OutboxWorker(engine.db, engine.settings)
    for _ in range(2):
        worker.run_once()
        with engine.db.write() as s:
            s.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    with engine.db.read() as s:
        msg = s.execute(select(OutboxMessage)).scalar_one()
        assert msg.status == "dead" and "ConnectError" in msg.last_error


def test_claimed_but_undelivered_message_is_retried_after_a_crash(engine: Engine) -> None:
    """A worker that claims a message and dies leaves it for another worker once the claim expires."""
    with webhook_receiver() as rx:
        blocked_decision(engine, rx.url)
        crashed = OutboxWorker(engine.db, engine.settings)
        assert len(crashed.claim()) == 1  # ... and then the process is killed before delivering
        survivor = OutboxWorker(engine.db, engine.settings)
        assert survivor.run_once() == 0  # still claimed
        with engine.db.write() as s:
            s.execute(update(OutboxMessage).values(locked_until=utcnow() - timedelta(seconds=1)))
        assert survivor.run_once() == 1
        assert len(rx.deliveries) == 1


def test_worker_thread_delivers_in_background(engine: Engine) -> None:
    engine.settings = engine.settings.with_(outbox_poll_seconds=0.05)
    with webhook_receiver() as rx:
        worker = OutboxWorker(engine.db, engine.settings)
        worker.start()
        try:
            blocked_decision(engine, rx.url)
            assert rx.event.wait(10)
        finally:
            worker.stop()


def test_backoff_grows_and_caps() -> None:
    assert 0.8 <= backoff_seconds(1) <= 1.2
    assert 6.4 <= backoff_seconds(4) <= 9.6
    assert backoff_seconds(50) <= 3600 * 1.2
