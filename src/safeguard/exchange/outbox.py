"""Opinions on subscribed entries, queued for their source in the transaction that records them.

``BankService.opinion_in`` calls :func:`queue_opinion` for every opinion; it queues one only for an
entry that came from somewhere that takes opinions back, and only a ``confirmed`` or ``disputed`` one:

- a partner instance's subscription (``source`` = ``exchange:<name>``), queued as ``<name>``;
- another exchange read through python-threatexchange (``source`` = ``stopncii``, ``threatexchange``
  or ``ncmec``, :data:`PYTX_SOURCES`, and ``provenance.exchange`` the same: fetched from it, not a list
  file naming it), queued as ``pytx:<exchange>`` (a name no subscription can have).

The queue row is written with the opinion, so an opinion is never recorded without being queued.
:func:`drain` sends a queue's pending rows in batches through a sender and records the outcome on each
row (sent, dropped with the reason, or still pending with the attempt counted and the error kept: it is
tried again on the next round) and as one ``exchange.opinions_sent`` event per batch. Partners get the
row's id with it, which they use to record it once however often it is sent
(:meth:`safeguard.exchange.follower.ExchangeService.send_opinions`); the other exchanges get it through
their own feedback calls (:mod:`safeguard.exchange.pytx_opinions`). Moderators' notes stay local: only
the opinion travels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.banks.sources.partner import SOURCE_PREFIX
from safeguard.errors import SafeguardError
from safeguard.exchange.shares import SENT_OPINIONS
from safeguard.store import Database
from safeguard.store.models import BankEntry, ExchangeOpinionOut, utcnow

__all__ = ["PYTX_PREFIX", "PYTX_SOURCES", "Outcome", "Queued", "drain", "queue_opinion"]

#: bank entry sources (python-threatexchange exchanges) that take opinions back
PYTX_SOURCES = ("stopncii", "threatexchange", "ncmec")
PYTX_PREFIX = "pytx:"


def _queue_name(entry: BankEntry) -> str | None:
    source = entry.source or ""
    if source.startswith(SOURCE_PREFIX):
        return source[len(SOURCE_PREFIX) :][:64]
    # fetched from the exchange itself (a list file that merely names it as its source is not)
    if source in PYTX_SOURCES and (entry.provenance or {}).get("exchange") == source:
        return PYTX_PREFIX + source
    return None


def queue_opinion(s: Session, entry: BankEntry, opinion: str) -> bool:
    """Queue ``opinion`` on ``entry`` for the exchange it came from; False when it is not sent anywhere."""
    name = _queue_name(entry)
    if opinion not in SENT_OPINIONS or name is None:
        return False
    s.add(
        ExchangeOpinionOut(
            subscription=name,
            entry_id=entry.id,
            signal_type=entry.signal_type,
            value=entry.value,
            opinion=opinion,
            note="",
            status="pending",
            attempts=0,
            created_at=utcnow(),
        )
    )
    return True


@dataclass(frozen=True, slots=True)
class Queued:
    """One queued opinion, as a sender sees it."""

    id: int
    entry_id: int
    signal_type: str
    value: str
    opinion: str


@dataclass
class Outcome:
    """What a sender did with a batch: the ids sent, those dropped (with why: they can never be sent),
    and the error that stopped it (the rest stay pending, retried on the next round)."""

    sent: list[int] = field(default_factory=list)
    dropped: dict[int, str] = field(default_factory=dict)
    error: SafeguardError | None = None


def drain(
    db: Database,
    queue: str,
    send: Callable[[list[Queued]], Outcome],
    *,
    batch: int = 500,
    bank_id: int | None = None,
    actor: str = "system:exchange",
) -> tuple[int, SafeguardError | None]:
    """Send ``queue``'s pending opinions (only those on ``bank_id``'s entries when given) until none is
    left or a batch stops on an error; returns (how many were sent, that error)."""
    total = 0
    while True:
        with db.read() as s:
            q = select(ExchangeOpinionOut).where(
                ExchangeOpinionOut.subscription == queue, ExchangeOpinionOut.status == "pending"
            )
            if bank_id is not None:
                q = q.join(BankEntry, BankEntry.id == ExchangeOpinionOut.entry_id).where(BankEntry.bank_id == bank_id)
            rows = s.execute(q.order_by(ExchangeOpinionOut.id).limit(batch)).scalars().all()
            items = [Queued(o.id, o.entry_id, o.signal_type, o.value, o.opinion) for o in rows]
        if not items:
            return total, None
        out = send(items)
        done = set(out.sent) | set(out.dropped)
        with db.write() as s:
            now = utcnow()
            for o in s.execute(
                select(ExchangeOpinionOut).where(ExchangeOpinionOut.id.in_([i.id for i in items]))
            ).scalars():
                if o.id in done or out.error is not None:
                    o.attempts += 1
                if o.id in out.sent:
                    o.status, o.sent_at, o.last_error = "sent", now, None
                elif o.id in out.dropped:
                    o.status, o.last_error = "dropped", out.dropped[o.id][:2000]
                elif out.error is not None:
                    o.last_error = f"{out.error.code}: {out.error.message}"[:2000]
            if done:
                by_id = {i.id: i for i in items}
                events.append(
                    s,
                    "exchange.opinions_sent",
                    actor=actor,
                    subject=("exchange", queue),
                    payload={
                        "sent": [{"entry": by_id[i].entry_id, "opinion": by_id[i].opinion} for i in out.sent],
                        "dropped": [{"entry": by_id[i].entry_id, "reason": r} for i, r in out.dropped.items()],
                    },
                )
        total += len(out.sent)
        if out.error is not None:
            return total, out.error
        if not done:  # a sender that neither sent, dropped nor failed: stop rather than loop
            return total, None
