"""Publishing: a shared bank's changes as signed pages, for the partner keys it is shared with.

The feed is the bank's own change log (``entry_changes``, which every index already follows): each
change names a run of entry ids, and the feed answers each entry's state *now* — ``upsert`` when it is
enabled, ``remove`` when it is not. Removal in Safeguard disables an entry and keeps its row, so the
row is the tombstone and the change log already says when it happened; no second log is kept.
An opinion recorded on an entry is a change too (``BankService.opinion_in``), so opinions reach
partners the same way.

A cursor is the position ``(change id, entry id)`` of the last entry served, with an HMAC under a key
derived from this instance's signing key and the bank's id: a cursor from another instance or another
bank, or one edited by hand, is refused (``invalid_cursor``) instead of silently restarting the feed.
On PostgreSQL the change log is locked while a change is written (``banks/service.py``), so change ids
become visible in order and a cursor never skips a change that commits late.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from safeguard.errors import Forbidden, InvalidInput
from safeguard.exchange.wire import VERSION, EntryLines, summary
from safeguard.keys import Principal
from safeguard.ledger import Signer, public_key_pem
from safeguard.store import Database
from safeguard.store.models import Bank, ExchangeShare

__all__ = ["MAX_PAGE", "Feed", "FeedRequest"]

#: the most entries one page may hold, whatever the request asks
MAX_PAGE = 50_000
#: entries read per query while a page streams (each query is its own short read transaction)
CHUNK = 5_000

_CHANGES = text(
    "SELECT id, entry_id, last_entry_id FROM entry_changes "
    "WHERE bank_id = :bank AND id > :after AND op = 'range' ORDER BY id LIMIT :n"
)
_ENTRIES = (
    "SELECT id, signal_type, value, category, source, CAST(provenance AS TEXT), opinion, added_at, enabled "
    "FROM bank_entries WHERE bank_id = {p} AND id > {p} AND id <= {p} ORDER BY id LIMIT {p}"
)


def _fetch(s: Session, params: tuple[int, int, int, int]) -> list[tuple[Any, ...]]:
    """A run of entries ``(bank, after id, up to id, how many)`` on the driver's own cursor: plain tuples,
    none of SQLAlchemy's per-row result handling (a fifth of the feed's time). The raw values are those
    ``text()`` gave: no column types apply to either."""
    conn = s.connection()
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(_ENTRIES.format(p="?" if conn.dialect.paramstyle == "qmark" else "%s"), params)
        return list(cur.fetchall())
    finally:
        cur.close()


@dataclass(frozen=True)
class FeedRequest:
    bank_id: int
    bank: str
    cursor: str
    change: int
    entry: int
    limit: int


def _iso(v: object) -> str:
    """A stored time as ISO 8601 in UTC with its offset (SQLite's raw rows give ``2026-12-06 18:25:18.5``;
    every stored time is UTC)."""
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return str(v)
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    return str(v)


class Feed:
    def __init__(self, db: Database, signer: Signer, *, max_page: int = MAX_PAGE) -> None:
        self.db = db
        self.signer = signer
        self.max_page = max_page
        self._cursor_key = hashlib.sha256(signer.sign_bytes(b"safeguard exchange cursor key v1")).digest()

    # -- the key ----------------------------------------------------------------------------------
    def public_key(self) -> dict[str, str]:
        raw = self.signer.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "algorithm": "Ed25519",
            "key_id": self.signer.key_id,
            "public_key": base64.b64encode(raw).decode(),
            "pem": public_key_pem(self.signer.public).decode(),
        }

    # -- cursors ----------------------------------------------------------------------------------
    def _tag(self, bank_id: int, change: int, entry: int) -> str:
        return hmac.new(self._cursor_key, f"{bank_id}.{change}.{entry}".encode(), "sha256").hexdigest()[:24]

    def make_cursor(self, bank_id: int, change: int, entry: int) -> str:
        return f"{change}.{entry}.{self._tag(bank_id, change, entry)}"

    def parse_cursor(self, bank_id: int, cursor: str) -> tuple[int, int]:
        if not cursor:
            return 0, 0
        parts = cursor.split(".")
        ok = len(parts) == 3 and all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts[:2])
        if ok:
            change, entry = int(parts[0]), int(parts[1])
            if hmac.compare_digest(parts[2], self._tag(bank_id, change, entry)):
                return change, entry
        raise InvalidInput(
            "cursor was not issued by this instance for this bank: start from an empty cursor", code="invalid_cursor"
        )

    # -- access -----------------------------------------------------------------------------------
    def open(self, who: Principal, bank: str, cursor: str, limit: int) -> FeedRequest:
        """Check the partner may read ``bank`` and the cursor is ours; raises before anything streams."""
        if not 1 <= limit <= self.max_page:
            raise InvalidInput(f"limit must be 1..{self.max_page}", code="invalid_limit")
        bank_id = self.check_access(who, bank)
        change, entry = self.parse_cursor(bank_id, cursor)
        return FeedRequest(bank_id, bank, cursor, change, entry, limit)

    def check_access(self, who: Principal, bank: str) -> int:
        """The bank's id when ``who`` may read its feed; one answer for unknown and unshared banks."""
        refused = Forbidden(f"bank {bank!r} is not shared with this key", code="bank_not_shared")
        with self.db.read() as s:
            b = s.execute(select(Bank).where(Bank.name == bank)).scalar_one_or_none()
            if b is None or not b.shareable:
                raise refused
            if who.role != "admin":
                shared = s.execute(
                    select(ExchangeShare.id).where(ExchangeShare.bank_id == b.id, ExchangeShare.key_id == who.key_id)
                ).first()
                if shared is None:
                    raise refused
            return b.id

    # -- the page ---------------------------------------------------------------------------------
    def stream(self, req: FeedRequest) -> Iterator[bytes]:
        """The page's bytes, a chunk of lines at a time; memory is bounded by :data:`CHUNK` entries."""
        h = hashlib.sha256()
        header = {
            "type": "page",
            "version": VERSION,
            "bank": req.bank,
            "cursor": req.cursor,
            "key_id": self.signer.key_id,
            "limit": req.limit,
        }
        first = (json.dumps(header, separators=(",", ":"), sort_keys=True) + "\n").encode()
        h.update(first)
        yield first
        count = 0
        lines = EntryLines(_iso)  # the entry lines, as wire.entry_line writes them
        change, entry = req.change, req.entry
        more = False
        after = change - 1  # change ids are read from here on (the cursor's own change again: it may be partly served)
        while not more:
            with self.db.read() as s:
                changes = s.connection().execute(_CHANGES, {"bank": req.bank_id, "after": after, "n": 200}).all()
            for cid, lo, hi in changes:
                hi = hi if hi is not None else lo
                start = max(entry, lo - 1) if cid == change else lo - 1
                while start < hi and not more:
                    want = min(CHUNK, req.limit - count)
                    with self.db.read() as s:
                        rows = _fetch(s, (req.bank_id, start, hi, want))
                    if not rows:
                        break
                    chunk = lines.chunk(rows)
                    h.update(chunk)
                    yield chunk
                    count += len(rows)
                    start = rows[-1][0]
                    change, entry = cid, start
                    more = count >= req.limit
                if more:
                    break
                change, entry = cid, hi
            if more or len(changes) < 200:
                break
            after = changes[-1][0]
        next_cursor = self.make_cursor(req.bank_id, change, entry) if (change, entry) != (0, 0) else ""
        digest = h.hexdigest()
        sig = base64.b64encode(self.signer.sign_bytes(summary(digest, count, next_cursor, more))).decode()
        end = {"type": "end", "count": count, "next_cursor": next_cursor, "more": more, "sha256": digest}
        end["signature"] = sig
        yield (json.dumps(end, separators=(",", ":"), sort_keys=True) + "\n").encode()
