"""What this instance shares and follows, read-only, for ``safeguard exchange list`` and the console's
Sharing page: each subscription with the entries it holds now in its local bank, and each shared bank
with the partner keys it is shared with. Nothing here writes; the apply path is the follower's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from safeguard.banks.sources.partner import SOURCE_PREFIX
from safeguard.config import Settings
from safeguard.store import Database
from safeguard.store.models import ApiKey, Bank, BankEntry, ExchangeShare

__all__ = ["shared_banks", "subscriptions"]


def subscriptions(db: Database, settings: Settings) -> list[dict[str, Any]]:
    """The subscriptions (as ``ExchangeService.subscriptions``), each with ``entries_held``: the entries
    from that partner in its local bank now (enabled or not). ``entries_applied`` counts every change a
    page applied (an entry added, updated or removed, each time); ``entries_held`` counts entries."""
    from safeguard.exchange.follower import ExchangeService

    subs = ExchangeService(db, settings).subscriptions()
    sources = [SOURCE_PREFIX + d["name"] for d in subs]
    with db.read() as s:
        held = dict(
            s.execute(
                select(BankEntry.source, func.count()).where(BankEntry.source.in_(sources)).group_by(BankEntry.source)
            ).all()
        )
    return [d | {"entries_held": int(held.get(SOURCE_PREFIX + d["name"], 0))} for d in subs]


def shared_banks(db: Database) -> list[dict[str, Any]]:
    """Each bank marked shareable or shared with a partner key: whether it is shareable now, and its partners
    (key name, prefix, when it was shared, whether the key is revoked)."""
    with db.read() as s:
        rows = s.execute(
            select(Bank.name, Bank.shareable, ApiKey.name, ApiKey.prefix, ApiKey.revoked_at, ExchangeShare.created_at)
            .join(ExchangeShare, ExchangeShare.bank_id == Bank.id)
            .join(ApiKey, ApiKey.id == ExchangeShare.key_id)
            .order_by(Bank.name, ApiKey.name, ApiKey.prefix)
        ).all()
        shareable = list(s.execute(select(Bank.name).where(Bank.shareable.is_(True)).order_by(Bank.name)).scalars())
    out: dict[str, dict[str, Any]] = {name: {"bank": name, "shareable": True, "partners": []} for name in shareable}
    for bank, is_shareable, key_name, prefix, revoked_at, shared_at in rows:
        b = out.setdefault(bank, {"bank": bank, "shareable": bool(is_shareable), "partners": []})
        b["partners"].append(
            {
                "name": key_name,
                "prefix": prefix,
                "shared_at": shared_at.isoformat() if shared_at else None,
                "revoked": revoked_at is not None,
            }
        )
    return [out[k] for k in sorted(out)]
