"""Hash-list quality: per-entry figures, the surge quarantine, precision by source, and opinion hooks.

Why it is shaped like this
--------------------------
Users of every hash exchange report the same three faults: entries that are not what they claim,
entries that match far too much (a near-blank image, a logo), and floods. Each bank entry therefore
keeps figures (``entry_stats``): matches, distinct uploads matched, reviewers' confirmations and
disputes; and an entry that suddenly matches many *distinct* uploads is quarantined until a person
looks: its matches get ``low`` confidence (the default policy sends those to review instead of block).

The match path must not slow down, so the engine only appends ``(entry, upload, time)`` to an
in-process buffer (:meth:`QualityRecorder.observe`, a deque append per matched entry; nothing at all
for a scan that matched nothing). A background thread writes the buffer every
``SAFEGUARD_QUALITY_FLUSH_SECONDS`` in one transaction per flush, merging with what other processes
wrote (the figures are sums and sketch merges, so any number of processes may flush). A process
killed between flushes loses at most that interval's figures; decisions are unaffected.

Distinct uploads are counted by the content's SHA-256 (a hash-only scan without one: by the hash that
matched). The lifetime figure is a HyperLogLog sketch (2^10 one-byte registers per matched entry,
about 3% standard error, exact-ish below a few hundred by linear counting), so memory per entry is
bounded whatever the traffic. The surge window is exact but capped: the distinct uploads of the last
``SAFEGUARD_SURGE_WINDOW_SECONDS`` are rows in ``entry_surge``, pruned as the window slides and
dropped when the entry is quarantined, so an entry never holds more than ``SAFEGUARD_SURGE_DISTINCT``
of them. An entry a person has released is not quarantined again: someone looked.

Opinions (a moderator's case decision, or ``POST /v1/entries/{id}/opinions``) count confirmations and
disputes in the same transaction, and call the hooks registered with :func:`on_opinion` (the exchange
sends a partner's entries' opinions back to it that way).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
from prometheus_client import Counter
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.banks.negative import NEGATIVE
from safeguard.config import Settings
from safeguard.content import Content, Finding, Signal
from safeguard.errors import Conflict, NotFound
from safeguard.metrics import REGISTRY
from safeguard.store import Database
from safeguard.store.models import Bank, BankEntry, EntryStats, EntrySurge, utcnow

__all__ = [
    "DISTINCT_METHOD",
    "OpinionEvent",
    "QualityRecorder",
    "bank_quality",
    "clear_opinion_hooks",
    "entry_quality",
    "on_opinion",
    "record_opinion",
    "release",
    "sketch_add",
    "sketch_count",
    "upload_key",
]

log = logging.getLogger(__name__)
SURGE_EVENT = "entry.surge_quarantined"
RELEASE_EVENT = "entry.surge_released"
#: HyperLogLog precision: 2^P registers of one byte each
P = 10
M = 1 << P
DISTINCT_METHOD = f"HyperLogLog, {M} registers per entry (about {104 / math.sqrt(M):.1f}% standard error)"
#: the most observations a process buffers between flushes; beyond it the oldest are dropped (and counted)
MAX_PENDING = 1_000_000
_CHUNK = 500
STATS = cast(Table, EntryStats.__table__)
SURGE = cast(Table, EntrySurge.__table__)
_UPDATE_FIGURES = (
    STATS.update()
    .where(STATS.c.entry_id == bindparam("id_"))
    .values(
        matches=bindparam("matches"),
        sketch=bindparam("sketch"),
        distinct_uploads=bindparam("distinct_uploads"),
        first_match_at=bindparam("first_match_at"),
        last_match_at=bindparam("last_match_at"),
    )
)
SURGES = Counter(
    "safeguard_entries_surge_quarantined",
    "Bank entries this process's figures quarantined after a surge of distinct uploads (entry.surge_quarantined)",
    registry=REGISTRY,
)
DROPPED = Counter(
    "safeguard_quality_observations_dropped",
    "Matches left out of the per-entry figures because this process's buffer was full",
    registry=REGISTRY,
)


# -- distinct counting ---------------------------------------------------------------------------
def sketch_add(registers: bytearray, key: str) -> None:
    """Add ``key`` (64 hex digits) to a HyperLogLog sketch of :data:`M` registers."""
    h = int(key[:16], 16)
    idx = h >> (64 - P)
    rest = h & ((1 << (64 - P)) - 1)
    rank = (64 - P) - rest.bit_length() + 1
    if rank > registers[idx]:
        registers[idx] = rank


_POW = np.array([2.0**-r for r in range(256)])


def sketch_count(registers: bytes | bytearray) -> int:
    """The sketch's estimate of the number of distinct keys added (linear counting while small)."""
    zeros = registers.count(0)
    if zeros == M:
        return 0
    alpha = 0.7213 / (1 + 1.079 / M)
    est = alpha * M * M / float(_POW[np.frombuffer(bytes(registers), dtype=np.uint8)].sum())
    if est <= 2.5 * M and zeros:
        est = M * math.log(M / zeros)
    return round(est)


def upload_key(content: Content, signals: Iterable[Signal], finding: Finding) -> str:
    """What makes an upload distinct (64 hex digits): its SHA-256; without one (a hash-only scan, a
    stream's frames), the platform's stream id, then its content id, then the hash that matched. A live
    stream is one upload however many of its frames match."""
    for sig in signals:
        if sig.type == "sha256":
            return sig.value
    if content.stream_id:
        name = f"stream:{content.tenant}:{content.stream_id}"
    elif content.content_id:
        name = f"content:{content.tenant}:{content.content_id}"
    else:
        name = f"{finding.signal_type}:{finding.signal_value}"
    return hashlib.sha256(name.encode()).hexdigest()


# -- opinions ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpinionEvent:
    """A confirmed or disputed opinion on an entry, as the hooks see it."""

    entry_id: int
    bank: str
    signal_type: str
    value: str
    source: str
    provenance: dict[str, Any]
    opinion: str  # "confirmed" or "disputed"
    actor: str
    note: str


OpinionHook = Callable[[Session, OpinionEvent], None]
_HOOKS: list[OpinionHook] = []


def on_opinion(hook: OpinionHook) -> OpinionHook:
    """Register ``hook(session, event)``, called for every confirmed or disputed opinion on an entry,
    inside the transaction that records it (usable as a decorator; returns ``hook``).

    The contract: write only through ``session`` (an outbox row that a worker sends later), never do
    network IO here; an exception rolls the opinion back with it. ``event.source`` and
    ``event.provenance`` say where the entry came from (a subscribed partner's entries carry its
    provenance), so a hook can ignore entries that are not its own."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)
    return hook


def clear_opinion_hooks(hook: OpinionHook | None = None) -> None:
    """Unregister ``hook`` (all hooks when None): for tests and plug-ins that unload."""
    if hook is None:
        _HOOKS.clear()
    elif hook in _HOOKS:
        _HOOKS.remove(hook)


def record_opinion(s: Session, entry: BankEntry, bank: Bank, opinion: str, *, actor: str, note: str) -> None:
    """Count a confirmation or dispute in the entry's figures and call the hooks (the caller's transaction)."""
    if opinion not in ("confirmed", "disputed"):
        return
    stats = _stats_row(s, entry.id, bank.id)
    if opinion == "confirmed":
        stats.confirmations += 1
    else:
        stats.disputes += 1
    ev = OpinionEvent(
        entry.id,
        bank.name,
        entry.signal_type,
        entry.value,
        entry.source,
        dict(entry.provenance or {}),
        opinion,
        actor,
        note,
    )
    for hook in list(_HOOKS):
        hook(s, ev)


def _stats_row(s: Session, entry_id: int, bank_id: int) -> EntryStats:
    _insert_missing(s, [(entry_id, bank_id)])
    row = s.execute(select(EntryStats).where(EntryStats.entry_id == entry_id).with_for_update()).scalar_one()
    return row


def _insert_missing(s: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """Insert zero figures for entries that have none yet; a row another process inserted first stays."""
    if not pairs:
        return
    dialect = s.get_bind().dialect.name
    ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(STATS)
    s.connection().execute(
        ins.on_conflict_do_nothing(index_elements=["entry_id"]),
        [
            {"entry_id": e, "bank_id": b, "matches": 0, "distinct_uploads": 0, "confirmations": 0, "disputes": 0}
            for e, b in pairs
        ],
    )


# -- the match path ------------------------------------------------------------------------------
@dataclass
class FlushResult:
    entries: int = 0
    matches: int = 0
    quarantined: list[int] = field(default_factory=list)


class QualityRecorder:
    """Buffers matched entries on the match path; a background thread writes them in batches."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._pending: deque[tuple[int, str, float]] = deque(maxlen=MAX_PENDING)
        self._lock = threading.Lock()  # one flush at a time in this process
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0

    def observe(self, content: Content, signals: Iterable[Signal], findings: Iterable[Finding]) -> None:
        """Note the entries a decision's findings matched, once each (cheap: appends to a buffer)."""
        key: str | None = None
        seen: set[int] = set()
        now = time.time()
        for f in findings:
            if f.entry_id is None or f.entry_id in seen:
                continue
            seen.add(f.entry_id)
            if key is None:
                key = upload_key(content, signals, f)
            if len(self._pending) == MAX_PENDING:
                self.dropped += 1
                DROPPED.inc()
            self._pending.append((f.entry_id, key, now))
        if key is not None and self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="safeguard-quality", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        interval = max(self.settings.quality_flush_seconds, 0.05)
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # a flush that fails (database away) keeps nothing; the next one goes on
                log.exception("writing entry quality figures failed")

    def close(self) -> None:
        """Stop the thread and write what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            log.exception("writing entry quality figures at close failed")

    def flush(self, now: datetime | None = None) -> FlushResult:
        """Write the buffered observations: figures, surge window, quarantines (one transaction)."""
        with self._lock:
            items: list[tuple[int, str, float]] = []
            while self._pending:
                try:
                    items.append(self._pending.popleft())
                except IndexError:
                    break
            if not items:
                return FlushResult()
            return self._write(items, now or utcnow())

    def _write(self, items: list[tuple[int, str, float]], now: datetime) -> FlushResult:
        agg: dict[int, dict[str, float]] = {}  # entry -> upload -> last seen (unix seconds)
        counts: dict[int, int] = {}
        for entry_id, key, t in items:
            ups = agg.setdefault(entry_id, {})
            ups[key] = max(t, ups.get(key, t))
            counts[entry_id] = counts.get(entry_id, 0) + 1
        result = FlushResult(matches=len(items))
        with self.db.write() as s:
            ids = sorted(agg)
            meta: dict[int, tuple[int, bool, str, str]] = {}  # entry -> bank id, quarantined, bank, kind
            for a in range(0, len(ids), _CHUNK):
                chunk = ids[a : a + _CHUNK]
                for eid, bid, quarantined, bname, kind in s.execute(
                    select(BankEntry.id, BankEntry.bank_id, BankEntry.surge_quarantined, Bank.name, Bank.kind)
                    .join(Bank, Bank.id == BankEntry.bank_id)
                    .where(BankEntry.id.in_(chunk))
                ):
                    meta[int(eid)] = (int(bid), bool(quarantined), str(bname), str(kind))
            ids = [i for i in ids if i in meta]  # an entry deleted since: nothing to count
            conn = s.connection()  # Core statements: the ORM's per-object work was most of a flush
            stats = self._lock_stats(conn, ids)
            missing = [i for i in ids if i not in stats]
            if missing:  # first matches: zero rows (another process may insert them first), then lock them
                _insert_missing(s, [(i, meta[i][0]) for i in missing])
                stats.update(self._lock_stats(conn, missing))
            changes = []
            for i in ids:
                matches, sketch, first_at, last_at, _released = stats[i]
                reg = bytearray(sketch or bytes(M))
                for key in agg[i]:
                    sketch_add(reg, key)
                first = datetime.fromtimestamp(min(agg[i].values()), UTC)
                last = datetime.fromtimestamp(max(agg[i].values()), UTC)
                changes.append(
                    {
                        "id_": i,
                        "matches": matches + counts[i],
                        "sketch": bytes(reg),
                        "distinct_uploads": sketch_count(reg),
                        "first_match_at": min(first_at, first) if first_at else first,
                        "last_match_at": max(last_at, last) if last_at else last,
                    }
                )
            if changes:
                conn.execute(_UPDATE_FIGURES, changes)
            result.entries = len(ids)
            threshold = self.settings.surge_distinct
            if threshold > 0:
                # a negative bank's entries match popular benign content by design: never quarantined
                watched = [i for i in ids if not meta[i][1] and stats[i][4] is None and meta[i][3] != NEGATIVE]
                result.quarantined = self._surge(s, watched, agg, meta, now)
        return result

    @staticmethod
    def _lock_stats(conn: Any, ids: list[int]) -> dict[int, tuple[int, bytes | None, Any, Any, Any]]:
        """(matches, sketch, first, last, released) of the entries that have figures, locked (PostgreSQL)."""
        out: dict[int, tuple[int, bytes | None, Any, Any, Any]] = {}
        cols = (STATS.c.matches, STATS.c.sketch, STATS.c.first_match_at, STATS.c.last_match_at, STATS.c.released_at)
        for a in range(0, len(ids), _CHUNK):
            q = select(STATS.c.entry_id, *cols).where(STATS.c.entry_id.in_(ids[a : a + _CHUNK])).with_for_update()
            for row in conn.execute(q):
                out[int(row[0])] = (int(row[1]), row[2], row[3], row[4], row[5])
        return out

    def _surge(
        self,
        s: Session,
        ids: list[int],
        agg: dict[int, dict[str, float]],
        meta: dict[int, tuple[int, bool, str, str]],
        now: datetime,
    ) -> list[int]:
        window = timedelta(seconds=self.settings.surge_window_seconds)
        threshold = self.settings.surge_distinct
        s.execute(delete(EntrySurge).where(EntrySurge.seen_at < now - window))
        if not ids:
            return []
        dialect = s.get_bind().dialect.name
        ins = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(SURGE)
        rows = [  # in key order: two processes upserting the same rows take their locks in one order
            {"entry_id": i, "upload": key, "seen_at": datetime.fromtimestamp(t, UTC)}
            for i in ids
            for key, t in sorted(agg[i].items())
            if datetime.fromtimestamp(t, UTC) >= now - window
        ]
        if rows:
            s.connection().execute(
                ins.on_conflict_do_update(
                    index_elements=["entry_id", "upload"], set_={"seen_at": ins.excluded.seen_at}
                ),
                rows,
            )
        found: dict[int, int] = {}
        for a in range(0, len(ids), _CHUNK):
            q = (
                select(EntrySurge.entry_id, func.count())
                .where(EntrySurge.entry_id.in_(ids[a : a + _CHUNK]))
                .group_by(EntrySurge.entry_id)
            )
            found.update((int(e), int(n)) for e, n in s.execute(q))
        out = []
        for i in ids:
            n = found.get(i, 0)
            if n >= threshold:
                self._quarantine(s, i, meta[i][2], n, now)
                out.append(i)
        return out

    def _quarantine(self, s: Session, entry_id: int, bank: str, n: int, now: datetime) -> None:
        from safeguard.actions.base import ActionContext
        from safeguard.actions.webhook import enqueue

        window = self.settings.surge_window_seconds
        reason = f"{n} distinct uploads matched within {window:g} s (threshold {self.settings.surge_distinct})"
        s.execute(update(BankEntry).where(BankEntry.id == entry_id).values(surge_quarantined=True))
        s.execute(delete(EntrySurge).where(EntrySurge.entry_id == entry_id))
        s.execute(
            update(EntryStats)
            .where(EntryStats.entry_id == entry_id)
            .values(quarantined_at=now, quarantine_reason=reason)
        )
        payload = {
            "entry_id": entry_id,
            "bank": bank,
            "distinct_uploads": n,
            "window_seconds": window,
            "reason": reason,
        }
        events.append(s, SURGE_EVENT, actor="system:quality", subject=("entry", str(entry_id)), payload=payload)
        ctx = cast(ActionContext, SimpleNamespace(session=s, settings=self.settings))
        enqueue(ctx, SURGE_EVENT, {"type": SURGE_EVENT, "entry": payload})
        SURGES.inc()
        log.warning("bank entry %s in %r quarantined: %s", entry_id, bank, reason)


# -- people --------------------------------------------------------------------------------------
def release(db: Database, bank: str | int, entry_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
    """A person looked: the entry's matches block again (an ``entry.surge_released`` event). A released
    entry is not quarantined by a surge again."""
    from safeguard.banks.service import BankService

    with db.write() as s:
        b = BankService.get(s, bank)
        e = s.get(BankEntry, entry_id)
        if e is None or e.bank_id != b.id:
            raise NotFound(f"entry {entry_id} not found in bank {b.name!r}", code="entry_not_found")
        if not e.surge_quarantined:
            raise Conflict(f"entry {entry_id} is not quarantined", code="entry_not_quarantined")
        e.surge_quarantined = False
        st = _stats_row(s, e.id, b.id)
        st.released_at, st.released_by = utcnow(), actor
        events.append(
            s,
            RELEASE_EVENT,
            actor=actor,
            subject=("entry", str(e.id)),
            payload={"bank": b.name, "note": note, "quarantine_reason": st.quarantine_reason},
        )
        return _entry_figures(e, st)


def _precision(confirmed: int, disputed: int) -> float | None:
    total = confirmed + disputed
    return round(confirmed / total, 4) if total else None


def _entry_figures(e: BankEntry, st: EntryStats | None) -> dict[str, Any]:
    return {
        "id": e.id,
        "signal_type": e.signal_type,
        "value": e.value,
        "category": e.category,
        "source": e.source,
        "enabled": e.enabled,
        "opinion": e.opinion,
        "surge_quarantined": e.surge_quarantined,
        "matches": st.matches if st else 0,
        "distinct_uploads": st.distinct_uploads if st else 0,
        "confirmations": st.confirmations if st else 0,
        "disputes": st.disputes if st else 0,
        "precision": _precision(st.confirmations, st.disputes) if st else None,
        "first_match_at": st.first_match_at.isoformat() if st and st.first_match_at else None,
        "last_match_at": st.last_match_at.isoformat() if st and st.last_match_at else None,
        "quarantined_at": st.quarantined_at.isoformat() if st and st.quarantined_at else None,
        "quarantine_reason": st.quarantine_reason if st else None,
        "released_at": st.released_at.isoformat() if st and st.released_at else None,
        "released_by": st.released_by if st else None,
    }


def entry_quality(db: Database, bank: str | int, entry_id: int) -> dict[str, Any]:
    from safeguard.banks.service import BankService

    with db.read() as s:
        b = BankService.get(s, bank)
        e = s.get(BankEntry, entry_id)
        if e is None or e.bank_id != b.id:
            raise NotFound(f"entry {entry_id} not found in bank {b.name!r}", code="entry_not_found")
        return _entry_figures(e, s.get(EntryStats, entry_id)) | {"bank": b.name}


def bank_quality(db: Database, bank: str | int, *, top: int = 20) -> dict[str, Any]:
    """A bank's figures: precision overall and per source (confirmations / (confirmations + disputes)),
    the entries matched most, and the quarantined ones."""
    from safeguard.banks.service import BankService

    with db.read() as s:
        b = BankService.get(s, bank)
        entries = s.execute(select(func.count()).select_from(BankEntry).where(BankEntry.bank_id == b.id)).scalar_one()
        by_source = []
        totals = {"matched_entries": 0, "matches": 0, "confirmations": 0, "disputes": 0}
        q = (
            select(
                BankEntry.source,
                func.count(EntryStats.entry_id),
                func.coalesce(func.sum(EntryStats.matches), 0),
                func.coalesce(func.sum(EntryStats.confirmations), 0),
                func.coalesce(func.sum(EntryStats.disputes), 0),
            )
            .join(BankEntry, BankEntry.id == EntryStats.entry_id)
            .where(EntryStats.bank_id == b.id)
            .group_by(BankEntry.source)
            .order_by(BankEntry.source)
        )
        for source, n, matches, conf, disp in s.execute(q):
            row: dict[str, Any] = {
                "source": source,
                "matched_entries": int(n),
                "matches": int(matches),
                "confirmations": int(conf),
                "disputes": int(disp),
            }
            for k in totals:
                totals[k] += row[k]
            by_source.append(row | {"precision": _precision(int(conf), int(disp))})
        top_rows = s.execute(
            select(BankEntry, EntryStats)
            .join(EntryStats, EntryStats.entry_id == BankEntry.id)
            .where(EntryStats.bank_id == b.id, EntryStats.matches > 0)
            .order_by(EntryStats.matches.desc(), BankEntry.id)
            .limit(top)
        ).all()
        quarantined = s.execute(
            select(BankEntry, EntryStats)
            .outerjoin(EntryStats, EntryStats.entry_id == BankEntry.id)
            .where(BankEntry.bank_id == b.id, BankEntry.surge_quarantined.is_(True))
            .order_by(BankEntry.id)
            .limit(1000)
        ).all()
        return {
            "bank": b.name,
            "kind": b.kind,
            "entries": int(entries),
            **totals,
            "precision": _precision(totals["confirmations"], totals["disputes"]),
            "by_source": by_source,
            "top_entries": [_entry_figures(e, st) for e, st in top_rows],
            "quarantined": [_entry_figures(e, st) for e, st in quarantined],
            "distinct_uploads_method": DISTINCT_METHOD,
        }
