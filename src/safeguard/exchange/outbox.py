"""Opinions on subscribed entries, queued for their source in the transaction that records them.

``BankService.opinion_in`` calls :func:`queue_opinion` for every opinion; it queues one only for an
entry that came from a subscription (``source`` = ``exchange:<name>``) and only a ``confirmed`` or
``disputed`` one. The queue row is written with the opinion, so an opinion is never recorded without
being queued; the follower sends it (:meth:`safeguard.exchange.follower.ExchangeService.send_opinions`)
with the row's id, which the partner uses to record it once however often it is sent. Moderators'
notes stay local: only the opinion travels.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from safeguard.banks.sources.partner import SOURCE_PREFIX
from safeguard.exchange.shares import SENT_OPINIONS
from safeguard.store.models import BankEntry, ExchangeOpinionOut, utcnow

__all__ = ["queue_opinion"]


def queue_opinion(s: Session, entry: BankEntry, opinion: str) -> bool:
    """Queue ``opinion`` on ``entry`` for the partner it came from; False when it is not sent anywhere."""
    if opinion not in SENT_OPINIONS or not (entry.source or "").startswith(SOURCE_PREFIX):
        return False
    s.add(
        ExchangeOpinionOut(
            subscription=entry.source[len(SOURCE_PREFIX) :][:64],
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
