"""Webhook endpoints as stored: secrets sealed at rest, and what removing an endpoint does.

An endpoint's signing secret is kept sealed (``safeguard.secrets``, purpose ``webhook``); outbox rows
name their endpoint (``outbox.endpoint_id``) instead of carrying a copy of its secret, and the
delivery worker opens the secret just before it signs. Removing an endpoint disables it, cancels its
pending deliveries (``webhook.deliveries_cancelled``) and the worker never sends them: a delivery
whose endpoint is disabled or gone is cancelled instead of sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safeguard import events, secrets
from safeguard.config import Settings
from safeguard.egress import check_webhook_url
from safeguard.errors import NotFound
from safeguard.store import Database
from safeguard.store.models import OutboxMessage, WebhookEndpoint

log = logging.getLogger(__name__)
PURPOSE = "webhook"
MAX_IDS_IN_EVENT = 1000


def add_endpoint(
    s: Session, settings: Settings, *, url: str, secret: str, topics: list[str], actor: str
) -> WebhookEndpoint:
    """Store a new endpoint with its secret sealed, and record it (the secret never enters the event).

    The URL must pass the egress policy now (``egress_refused``); it is checked again at every delivery."""
    check_webhook_url(url, settings)
    w = WebhookEndpoint(url=url, secret=secrets.seal(settings, secret, purpose=PURPOSE), events=topics, enabled=True)
    s.add(w)
    s.flush()
    events.append(
        s, "webhook.endpoint_added", actor=actor, subject=("webhook", str(w.id)), payload={"url": url, "events": topics}
    )
    return w


def remove_endpoint(s: Session, endpoint_id: int, *, actor: str) -> int:
    """Disable the endpoint and cancel its pending deliveries; returns how many were cancelled."""
    w = s.get(WebhookEndpoint, endpoint_id)
    if w is None:
        raise NotFound(f"webhook {endpoint_id} not found", code="webhook_not_found")
    w.enabled = False
    events.append(s, "webhook.endpoint_removed", actor=actor, subject=("webhook", str(w.id)), payload={})
    cancelled = cancel_pending(s, endpoint_id, reason="endpoint removed")
    if cancelled:
        events.append(
            s,
            "webhook.deliveries_cancelled",
            actor=actor,
            subject=("webhook", str(w.id)),
            # the ids in full up to a bound: an endpoint down for days may have very many
            payload={
                "outbox_ids": cancelled[:MAX_IDS_IN_EVENT],
                "count": len(cancelled),
                "first_id": cancelled[0],
                "last_id": cancelled[-1],
                "reason": "endpoint removed",
            },
        )
    return len(cancelled)


def cancel_pending(s: Session, endpoint_id: int, *, reason: str) -> list[int]:
    """Mark ``endpoint_id``'s pending deliveries cancelled (claimed ones included); returns their ids."""
    ids = list(
        s.execute(
            select(OutboxMessage.id)
            .where(OutboxMessage.endpoint_id == endpoint_id, OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)
        ).scalars()
    )
    if ids:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
            .values(status="cancelled", last_error=reason, locked_until=None)
        )
    return ids


@dataclass(frozen=True)
class Signing:
    """What the worker needs to send one delivery: the secret, or why it must not be sent."""

    secret: str | None
    cancel: str = ""  # non-empty: cancel the delivery with this reason
    wait: str = ""  # non-empty: the secret cannot be used yet (retry later) for this reason


def signing_for(s: Session, settings: Settings, endpoint_id: int | None) -> Signing:
    """The secret that signs a delivery to ``endpoint_id`` (None: the settings' default endpoint)."""
    if endpoint_id is None:
        return Signing(settings.webhook_secret)
    row = s.execute(
        select(WebhookEndpoint.secret, WebhookEndpoint.enabled).where(WebhookEndpoint.id == endpoint_id)
    ).first()
    if row is None or not row.enabled:
        return Signing(None, cancel="endpoint removed")
    if not secrets.is_sealed(row.secret):
        return Signing(None, wait="the endpoint's secret is not sealed yet: run `safeguard secrets migrate`")
    return Signing(secrets.open_(settings, row.secret, purpose=PURPOSE))


def seal_plaintext_secrets(s: Session, settings: Settings, *, actor: str) -> int:
    """Seal every endpoint secret still stored in the clear (from before sealing existed); returns how many.

    Run by the service and ``safeguard worker`` at start and by ``safeguard secrets migrate``; the
    key file is created only if there is something to seal. Records ``secrets.sealed``.
    """
    q = select(WebhookEndpoint).where(~WebhookEndpoint.secret.startswith(secrets.PREFIX, autoescape=True))
    if s.get_bind().dialect.name != "sqlite":
        q = q.with_for_update()
    rows = list(s.execute(q).scalars())
    for w in rows:
        w.secret = secrets.seal(settings, w.secret, purpose=PURPOSE)
    if rows:
        events.append(
            s,
            "secrets.sealed",
            actor=actor,
            subject=None,
            payload={"webhook_endpoints": [w.id for w in rows], "key_id": secrets.box(settings).key_id},
        )
    return len(rows)


def seal_at_start(db: Database, settings: Settings, *, actor: str) -> None:
    """:func:`seal_plaintext_secrets` as a process starts: a failure (the key file cannot be written,
    say) is logged, not raised, so the API still serves; deliveries to those endpoints wait."""
    try:
        with db.write() as s:
            n = seal_plaintext_secrets(s, settings, actor=actor)
    except Exception:
        log.exception("sealing plaintext webhook secrets failed; run `safeguard secrets migrate`")
        return
    if n:
        log.warning("sealed %d webhook secrets stored in the clear by an earlier version", n)
