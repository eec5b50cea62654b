"""The outbox worker: delivers queued webhooks with retries and exponential backoff.

Rows are claimed by setting ``locked_until`` in a short write transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), delivered outside any transaction, then marked delivered, rescheduled or dead. A worker
killed mid-delivery leaves the row claimed until ``locked_until`` passes, after which any worker retries
it: delivery is at-least-once, and ``Safeguard-Delivery`` lets receivers de-duplicate.

Every connection passes the egress policy (``safeguard/egress.py``) as it is made, redirects are not
followed, and a delivery the policy refuses is not retried: it is marked ``dead`` at once with the
reason (``egress_refused: ...``) and a ``webhook.dead`` event.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from abc import ABC, abstractmethod
from datetime import timedelta

from sqlalchemy import or_, select

from safeguard import events
from safeguard.config import Settings
from safeguard.egress import EgressPolicy, EgressRefused, checked_client, parse_url
from safeguard.errors import InvalidInput, SafeguardError
from safeguard.store import Database
from safeguard.store.models import OutboxMessage, utcnow
from safeguard.webhook_store import Signing, signing_for
from safeguard.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)
CLAIM_SECONDS = 60


class WebhookTransport(ABC):
    """One method: send a body with headers and return the HTTP status (raise on network errors)."""

    @abstractmethod
    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


class HttpxTransport(WebhookTransport):
    """httpx through the egress policy: each connection resolved, checked and pinned; no redirects."""

    def __init__(self, timeout: float = 5.0, policy: EgressPolicy | None = None) -> None:
        self.client = checked_client(policy or EgressPolicy(), timeout)

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            parse_url(url, ("http", "https"))
        except InvalidInput as exc:
            raise EgressRefused(f"webhook URL refused: {exc.message}") from None
        return self.client.post(url, content=body, headers=headers).status_code


class SecretUnavailable(Exception):
    """The endpoint's secret cannot be used now (not sealed yet, or sealed under another key)."""


def backoff_seconds(attempts: int) -> float:
    """1, 2, 4, ... seconds, capped at an hour, with ±20 % jitter."""
    base = min(2 ** max(attempts - 1, 0), 3600)
    return base * random.uniform(0.8, 1.2)


class OutboxWorker:
    def __init__(self, db: Database, settings: Settings, transport: WebhookTransport | None = None) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport or HttpxTransport(
            settings.webhook_timeout_seconds, EgressPolicy.from_settings(settings)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, limit: int = 20) -> list[OutboxMessage]:
        now = utcnow()
        with self.db.write() as s:
            q = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.next_attempt_at <= now,
                    or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
                )
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                q = q.with_for_update(skip_locked=True)
            rows = list(s.execute(q).scalars())
            for r in rows:
                r.locked_until = now + timedelta(seconds=CLAIM_SECONDS)
            return rows

    def signing(self, msg: OutboxMessage) -> Signing:
        """The endpoint's secret, opened just before it signs (the outbox keeps no copy of it)."""
        try:
            with self.db.read() as s:
                return signing_for(s, self.settings, msg.endpoint_id)
        except SafeguardError as exc:  # a secret sealed under another key, or tampered with: retried
            return Signing(None, wait=f"{exc.code}: {exc.message}")

    def cancel(self, msg: OutboxMessage, reason: str) -> None:
        """Never send ``msg``: its endpoint was removed (after the row was claimed, or before sealing existed)."""
        with self.db.write() as s:
            row = s.get(OutboxMessage, msg.id)
            assert row is not None
            row.locked_until = None
            if row.status != "pending":
                return
            row.status = "cancelled"
            row.last_error = reason
            events.append(
                s,
                "webhook.deliveries_cancelled",
                actor="worker",
                subject=("webhook", str(row.endpoint_id)),
                payload={"outbox_ids": [row.id], "count": 1, "reason": reason},
            )

    def deliver(self, msg: OutboxMessage) -> bool:
        signing = self.signing(msg)
        if signing.cancel:
            self.cancel(msg, signing.cancel)
            return False
        body = json.dumps(msg.payload, sort_keys=True, separators=(",", ":")).encode()
        error = ""
        refused = False
        try:
            if signing.secret is None:
                raise SecretUnavailable(signing.wait)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(signing.secret, body),
                EVENT_HEADER: msg.topic,
                DELIVERY_HEADER: str(msg.id),
                "User-Agent": "Safeguard-Webhook/1",
            }
            status = self.transport.send(msg.endpoint_url, body, headers)
            ok = 200 <= status < 300
            if not ok:
                error = f"HTTP {status}"
        except EgressRefused as exc:  # the policy's answer: retrying cannot change it
            ok, refused = False, True
            error = f"egress_refused: {exc.message}"
        except Exception as exc:  # network errors of any kind are retried
            ok = False
            error = f"{type(exc).__name__}: {exc}"
        with self.db.write() as s:
            row = s.get(OutboxMessage, msg.id)
            assert row is not None
            row.attempts += 1
            row.locked_until = None
            if row.status == "cancelled" and not ok:  # its endpoint was removed while this attempt ran
                return ok
            subject = ("outbox", str(row.id))
            if ok:
                row.status = "delivered"
                row.delivered_at = utcnow()
                events.append(
                    s,
                    "webhook.delivered",
                    actor="worker",
                    subject=subject,
                    payload={"topic": row.topic, "url": row.endpoint_url, "attempts": row.attempts},
                )
            else:
                row.last_error = error[:2000]
                if refused or row.attempts >= self.settings.webhook_max_attempts:
                    row.status = "dead"
                    events.append(
                        s,
                        "webhook.dead",
                        actor="worker",
                        subject=subject,
                        payload={"topic": row.topic, "url": row.endpoint_url, "error": row.last_error},
                    )
                else:
                    row.next_attempt_at = utcnow() + timedelta(seconds=backoff_seconds(row.attempts))
        return ok

    def run_once(self) -> int:
        """Deliver what is due now; return how many deliveries were attempted."""
        rows = self.claim()
        for r in rows:
            self.deliver(r)
        return len(rows)

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception:  # keep the worker alive through database hiccups
                log.exception("outbox worker iteration failed")
                n = 0
            if n == 0:
                self._stop.wait(self.settings.outbox_poll_seconds)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="safeguard-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
