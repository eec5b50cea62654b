"""The event log: append-only and hash-chained.

Each event's hash is SHA-256 over the previous event's hash and the event's canonical JSON (sorted
keys, no whitespace). Writers lock the single ``event_chain_head`` row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so appends from many processes form
one chain. :func:`verify` recomputes the chain and reports the first event whose stored hash, link
or sequence number disagrees: any edit, insertion or deletion of a past event shows up there.
A database writer could recompute every later hash too: signed checkpoints of the head
(``safeguard.ledger``) are what show the log was not rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, event, select
from sqlalchemy.orm import Session, SessionTransaction

from safeguard.store import driver
from safeguard.store.db import connection_of
from safeguard.store.models import Event, EventChainHead, utcnow

GENESIS = "0" * 64
EVENTS = cast(Table, Event.__table__)
HEAD = cast(Table, EventChainHead.__table__)


#: built once: ``json.dumps`` with these options builds a new encoder on every call, and every
#: recorded event is encoded twice
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(obj: Any) -> str:
    return _CANONICAL.encode(obj)


def event_hash(
    prev_hash: str,
    seq: int,
    created_at: datetime,
    type_: str,
    actor: str,
    subject_kind: str | None,
    subject_id: str | None,
    payload: dict[str, Any],
) -> str:
    body = canonical(
        {
            "seq": seq,
            "created_at": created_at.isoformat(),
            "type": type_,
            "actor": actor,
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "payload": payload,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


_HEAD_KEY = "event_chain_head"
_SELECT_HEAD = select(HEAD.c.seq, HEAD.c.hash).where(HEAD.c.id == 1).with_for_update()


def _lock_head_core(conn: Connection) -> tuple[int, str]:
    """Lock the chain head row for this transaction and return (seq, hash); create it on first use."""
    got = _SELECT_HEAD_DRIVER.first(conn)
    if got is None:
        conn.execute(HEAD.insert().values(id=1, seq=0, hash=GENESIS))
        return 0, GENESIS
    return int(got[0]), str(got[1])


def _head(session: Session) -> list[Any]:
    """The chain head ``[seq, hash]``, locked for this transaction; cached in ``session.info``.

    Plain Core statements, no ORM object: the head is read and locked once per transaction and written
    back with one UPDATE per append. The cache is dropped when the transaction ends or any
    rollback happens, a savepoint's included (see :func:`_forget_head`), so a savepoint rolled back
    after an append, or the next transaction on the same session, reads the head again instead of
    chaining onto a stale one.
    """
    head: list[Any] | None = session.info.get(_HEAD_KEY)
    if head is None:
        head = list(_lock_head_core(connection_of(session)))
        session.info[_HEAD_KEY] = head
    return head


_SET_HEAD = HEAD.update().where(HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
# the chain's hot statements, run on the DBAPI cursor (store/driver.py)
_SELECT_HEAD_DRIVER = driver.Prepared(_SELECT_HEAD)
_SET_HEAD_DRIVER = driver.Prepared(_SET_HEAD)
_INSERT_EVENTS = driver.Prepared(EVENTS.insert())


def _set_head(session: Session, head: list[Any], seq: int, last: str) -> None:
    _SET_HEAD_DRIVER.executemany(connection_of(session), [{"new_seq": seq, "new_hash": last}])
    head[0], head[1] = seq, last


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself ended: the next one must lock and read again
        session.info.pop(_HEAD_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_head_on_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    # Any rollback, a savepoint's included: its appends and head UPDATE are undone (and PostgreSQL
    # releases the row lock taken inside it). A released savepoint keeps the cache: its writes stay.
    session.info.pop(_HEAD_KEY, None)


def append(
    session: Session,
    type_: str,
    *,
    actor: str,
    subject: tuple[str, str] | None = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Append one event inside the caller's write transaction."""
    payload = json.loads(canonical(payload or {}))  # what the database will give back
    head = _head(session)
    seq = head[0] + 1
    created_at = utcnow()
    sk, sid = subject if subject else (None, None)
    h = event_hash(head[1], seq, created_at, type_, actor, sk, sid, payload)
    ev = Event(
        seq=seq,
        created_at=created_at,
        type=type_,
        actor=actor,
        subject_kind=sk,
        subject_id=sid,
        payload=payload,
        prev_hash=head[1],
        hash=h,
    )
    session.add(ev)
    _set_head(session, head, seq, h)
    return ev


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event to append later, in bulk (see :func:`append_many`)."""

    type: str
    actor: str
    subject: tuple[str, str] | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _rows(seq: int, prev: str, drafts: Sequence[EventDraft]) -> tuple[list[dict[str, Any]], int, str]:
    """Chain ``drafts`` after (``seq``, ``prev``): the rows to insert and the new head."""
    created_at = utcnow()
    rows: list[dict[str, Any]] = []
    for d in drafts:
        payload = json.loads(canonical(d.payload))
        seq += 1
        sk, sid = d.subject if d.subject else (None, None)
        h = event_hash(prev, seq, created_at, d.type, d.actor, sk, sid, payload)
        rows.append(
            {
                "seq": seq,
                "created_at": created_at,
                "type": d.type,
                "actor": d.actor,
                "subject_kind": sk,
                "subject_id": sid,
                "payload": payload,
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    return rows, seq, prev


def append_many(session: Session, drafts: Sequence[EventDraft]) -> int:
    """Append events with one multi-row INSERT inside the caller's write transaction; returns the last seq.

    The same chain as :func:`append` (and freely mixed with it in one transaction), without an ORM
    object per event.
    """
    head = _head(session)
    if not drafts:
        return int(head[0])
    rows, seq, last = _rows(head[0], head[1], drafts)
    _INSERT_EVENTS.executemany(connection_of(session), rows)
    _set_head(session, head, seq, last)
    return seq


def append_many_core(conn: Connection, drafts: Sequence[EventDraft]) -> int:
    """:func:`append_many` on a plain Core connection inside a write transaction, for callers that use
    no ORM session at all (the recorder's batches of plain rows); locks the head row the same way."""
    seq, prev = _lock_head_core(conn)
    if not drafts:
        return seq
    rows, seq, last = _rows(seq, prev, drafts)
    _INSERT_EVENTS.executemany(conn, rows)
    _SET_HEAD_DRIVER.executemany(conn, [{"new_seq": seq, "new_hash": last}])
    return seq


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def iter_events(session: Session, batch: int = 5000) -> Iterator[Event]:
    last = 0
    while True:
        rows = session.execute(select(Event).where(Event.seq > last).order_by(Event.seq).limit(batch)).scalars().all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(session: Session, visit: Callable[[Event], None] | None = None) -> VerifyResult:
    """Recompute the chain from the first event; ``visit`` sees each event whose link and hash held
    (``safeguard.ledger`` checks checkpoints and decisions on the same single pass)."""
    prev = GENESIS
    expected_seq = 1
    n = 0
    for ev in iter_events(session):
        if ev.seq != expected_seq:
            return VerifyResult(False, n, ev.seq, f"sequence gap: expected {expected_seq}, found {ev.seq}")
        if ev.prev_hash != prev:
            return VerifyResult(False, n, ev.seq, "link broken: prev_hash does not match the previous event")
        h = event_hash(prev, ev.seq, ev.created_at, ev.type, ev.actor, ev.subject_kind, ev.subject_id, ev.payload)
        if h != ev.hash:
            return VerifyResult(False, n, ev.seq, "content changed: hash does not match the event")
        if visit is not None:
            visit(ev)
        prev = ev.hash
        expected_seq += 1
        n += 1
    head = session.get(EventChainHead, 1)
    if head is not None and (head.seq != n or head.hash != prev):
        return VerifyResult(False, n, n + 1, f"chain truncated: head says seq {head.seq}, found {n} events")
    return VerifyResult(True, n)
