"""Which partner keys may read which banks, and the opinions partners send back.

A ``partner`` API key reads only the banks shared with it (``safeguard keys create --role partner
--banks A,B``), and only while each is marked ``shareable``. Opinions a partner sends back are recorded
on the entry as any moderator's would be (``entry.opinion`` event, the entry's change), with the
partner's key as the actor; each carries the partner's own id for it, so an opinion sent twice (a
retry after a lost answer) is recorded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from safeguard import events
from safeguard.banks.service import BankService
from safeguard.errors import InvalidInput
from safeguard.keys import Principal
from safeguard.store import Database
from safeguard.store.models import ApiKey, Bank, BankEntry, ExchangeReceivedOpinion, ExchangeShare, utcnow

__all__ = ["SENT_OPINIONS", "ReceivedOpinion", "check_shareable", "receive_opinions", "share", "shares_of"]

#: the opinions that travel back to an entry's source
SENT_OPINIONS = ("confirmed", "disputed")


@dataclass(frozen=True)
class ReceivedOpinion:
    id: int
    signal_type: str
    value: str
    opinion: str


def check_shareable(db: Database, banks: Sequence[str]) -> None:
    """Raise unless every bank exists and is marked shareable (before a partner key is made for them)."""
    with db.read() as s:
        for name in banks:
            _shareable(BankService.get(s, name))


def _shareable(b: Bank) -> Bank:
    if not b.shareable:
        raise InvalidInput(
            f"bank {b.name!r} is not shareable: `safeguard bank set {b.name} --shareable` first",
            code="bank_not_shareable",
        )
    return b


def share(db: Database, key_id: int, banks: Sequence[str], *, actor: str) -> list[str]:
    """Share ``banks`` with the partner key ``key_id``; each must exist and be marked shareable."""
    names: list[str] = []
    with db.write() as s:
        key = s.get(ApiKey, key_id)
        if key is None or key.role != "partner":
            raise InvalidInput("banks are shared with partner keys only", code="invalid_role")
        for name in banks:
            b = _shareable(BankService.get(s, name))
            got = s.execute(
                select(ExchangeShare).where(ExchangeShare.bank_id == b.id, ExchangeShare.key_id == key_id)
            ).scalar_one_or_none()
            if got is None:
                s.add(ExchangeShare(bank_id=b.id, key_id=key_id, created_at=utcnow()))
            names.append(b.name)
        events.append(
            s, "exchange.shared", actor=actor, subject=("key", key.prefix), payload={"banks": names, "key": key.name}
        )
    return names


def shares_of(db: Database) -> dict[int, list[str]]:
    """Bank names shared with each key id."""
    out: dict[int, list[str]] = {}
    with db.read() as s:
        q = select(ExchangeShare.key_id, Bank.name).join(Bank, Bank.id == ExchangeShare.bank_id).order_by(Bank.name)
        for key_id, name in s.execute(q):
            out.setdefault(int(key_id), []).append(name)
    return out


def receive_opinions(
    db: Database, banks: BankService, who: Principal, bank_id: int, items: Sequence[ReceivedOpinion]
) -> dict[str, Any]:
    """Record a partner's opinions on entries of ``bank_id``, once each, in one transaction."""
    actor = "partner:" + who.actor.removeprefix("key:")
    recorded = duplicates = 0
    unknown: list[int] = []
    with db.write() as s:
        for it in items:
            seen = s.execute(
                select(ExchangeReceivedOpinion.id).where(
                    ExchangeReceivedOpinion.key_id == who.key_id, ExchangeReceivedOpinion.remote_id == it.id
                )
            ).first()
            if seen is not None:
                duplicates += 1
                continue
            entry_id = s.execute(
                select(BankEntry.id).where(
                    BankEntry.bank_id == bank_id, BankEntry.signal_type == it.signal_type, BankEntry.value == it.value
                )
            ).scalar_one_or_none()
            s.add(ExchangeReceivedOpinion(key_id=who.key_id, remote_id=it.id, entry_id=entry_id, created_at=utcnow()))
            if entry_id is None:
                unknown.append(it.id)
                continue
            banks.opinion_in(s, entry_id, it.opinion, actor=actor, note="sent back by a partner")
            recorded += 1
    return {"recorded": recorded, "duplicates": duplicates, "unknown": unknown}
