"""Moderators' opinions sent back to the exchanges read through python-threatexchange.

An opinion (``confirmed`` or ``disputed``) on an entry that came from StopNCII, ThreatExchange or NCMEC
is queued in the opinion's own transaction (:func:`safeguard.exchange.outbox.queue_opinion`, queue
``pytx:<exchange>``); ``safeguard bank pull`` sends the bank's queue with the credentials it pulls with,
before it fetches (these exchanges' credentials are given to each pull, not stored). Each opinion is one
feedback request (:meth:`safeguard.banks.sources.pytx.PytxSource.send_opinion`); the first that fails
stops the round and the rest stay queued, tried again on the next pull; one that can never be sent is
dropped with the reason. Every round that sends or drops is an ``exchange.opinions_sent`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from safeguard.banks.service import BankService
from safeguard.banks.sources.pytx import OpinionNotSendable, PytxSource
from safeguard.errors import SafeguardError
from safeguard.exchange.outbox import PYTX_PREFIX, Outcome, Queued, drain
from safeguard.store import Database
from safeguard.store.models import BankEntry

__all__ = ["OpinionsResult", "send_opinions"]


@dataclass
class OpinionsResult:
    sent: int = 0
    error: SafeguardError | None = None


def send_opinions(db: Database, bank: str, source: PytxSource, *, actor: str) -> OpinionsResult:
    """Send the opinions queued on ``bank``'s entries from ``source``'s exchange."""
    with db.read() as s:
        bank_id = BankService.get(s, bank).id

    def send(items: list[Queued]) -> Outcome:
        with db.read() as s:
            prov: dict[int, Any] = dict(
                s.execute(
                    select(BankEntry.id, BankEntry.provenance).where(BankEntry.id.in_([i.entry_id for i in items]))
                ).all()
            )
        out = Outcome()
        for item in items:
            try:
                source.send_opinion(item.signal_type, item.value, item.opinion, dict(prov.get(item.entry_id) or {}))
            except OpinionNotSendable as exc:
                out.dropped[item.id] = exc.message
                continue
            except SafeguardError as exc:
                out.error = exc
                return out
            out.sent.append(item.id)
        return out

    sent, error = drain(db, PYTX_PREFIX + source.exchange, send, batch=100, bank_id=bank_id, actor=actor)
    return OpinionsResult(sent, error)
