"""Per-process indexes that follow bank changes.

At start an :class:`IndexSet` loads each signal type's snapshot (``DATA_DIR/index/<type>.npz``, with
the change id it covers) or builds it from the database, then applies every ``entry_changes`` row
after that id. :meth:`IndexSet.refresh` applies new change rows: it is cheap (one indexed query) and
is called at most every ``index_refresh_seconds`` by the engine, so an entry added in any process is
findable in every process within that interval, without a rebuild.

The index holds entry ids and values only. Whether an entry still counts (enabled, bank enabled,
thresholds, category, opinions) is read from the database for the few candidates a query returns, so a
disable takes effect at once even before the index catches up.

**Quarantine.** A row the index cannot take (a value not in its signal type's canonical form, written
by an older version or straight into the database; or any value the index itself refuses) is skipped,
never allowed to fail the load: one bad row must not stop every scan or the service's start. It is
kept in :attr:`IndexSet.quarantined` (the ``safeguard_index_quarantined_entries`` metric) and handed
to ``on_quarantine`` once the read is over; the engine's handler disables the entry with an
``index.entry_quarantined`` event (``BankService.quarantine_entries``), so that every other process
skips it too and an operator sees why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from safeguard.errors import SafeguardError
from safeguard.index.base import SignalIndex, index_for
from safeguard.signals import get_signal_type, signal_types
from safeguard.store import Database
from safeguard.store.models import Bank, BankEntry, EntryChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BankMeta:
    id: int
    name: str
    kind: str
    enabled: bool
    dihedral: bool
    thresholds: dict[str, int]
    review_thresholds: dict[str, int]


@dataclass(frozen=True)
class Quarantined:
    """A bank entry the index skipped: its id, signal type, why, and its stored value (``ascii()``,
    at most 100 characters: it may hold anything)."""

    entry_id: int
    signal_type: str
    reason: str
    value: str


class IndexSet:
    def __init__(
        self,
        db: Database,
        snapshot_dir: Path | None = None,
        refresh_seconds: float = 0.5,
        on_quarantine: Callable[[list[Quarantined]], Any] | None = None,
    ) -> None:
        self.db = db
        self.on_quarantine = on_quarantine
        #: entries this process skipped because its index could not take them (since start), by entry id
        self.quarantined: dict[int, Quarantined] = {}
        self._pending: list[Quarantined] = []
        self.snapshot_dir = snapshot_dir
        self.refresh_seconds = refresh_seconds
        self.indexes: dict[str, SignalIndex] = {}
        self.change_id = 0
        self._lock = threading.RLock()
        self._last_check = 0.0
        self.banks: dict[int, BankMeta] = {}

    def get(self, signal_type: str) -> SignalIndex | None:
        return self.indexes.get(signal_type)

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load snapshots where they exist, otherwise build from the database; then catch up."""
        with self._lock:
            with self.db.read() as s:
                head = s.execute(select(func.coalesce(func.max(EntryChange.id), 0))).scalar_one()
            loaded: dict[str, tuple[SignalIndex, int]] = {}
            for st in signal_types():
                path = self._snapshot_path(st.name)
                if path is not None and path.exists():
                    try:
                        idx, meta = type(index_for(st)).load(path)
                        if meta.get("change_id", -1) <= head:
                            loaded[st.name] = (idx, meta["change_id"])
                            continue
                    except (OSError, ValueError, KeyError) as exc:
                        log.warning("ignoring unreadable index snapshot %s: %s", path, exc)
            if loaded and len(loaded) == len(signal_types()) and len({c for _, c in loaded.values()}) == 1:
                self.indexes = {k: v[0] for k, v in loaded.items()}
                self.change_id = next(iter(loaded.values()))[1]
                self.refresh(force=True)
            else:
                self._build(head)
            for name, idx in self.indexes.items():
                idx.warm(self.query_radius(name))
            self._report_quarantined()

    def query_radius(self, signal_type: str) -> int:
        """How far a query of this signal type reaches: the widest review (else match) threshold of
        any enabled bank, so that one index call finds every candidate any bank could count."""
        return max(
            (
                b.review_thresholds.get(signal_type, b.thresholds.get(signal_type, 0))
                for b in self.banks.values()
                if b.enabled
            ),
            default=0,
        )

    def _build(self, head: int) -> None:
        indexes = {st.name: index_for(st) for st in signal_types()}
        with self.db.read() as s:
            last = 0
            while True:
                rows = s.execute(
                    select(BankEntry.id, BankEntry.signal_type, BankEntry.value)
                    .join(Bank, Bank.id == BankEntry.bank_id)
                    .where(BankEntry.id > last, BankEntry.enabled.is_(True), Bank.enabled.is_(True))
                    .order_by(BankEntry.id)
                    .limit(50_000)
                ).all()
                if not rows:
                    break
                by_type: dict[str, tuple[list[int], list[str]]] = {}
                for i, t, v in rows:
                    ids, vals = by_type.setdefault(t, ([], []))
                    ids.append(i)
                    vals.append(v)
                for t, (ids, vals) in by_type.items():
                    if t in indexes:
                        self._add(indexes[t], t, ids, vals)
                last = rows[-1][0]
        for idx in indexes.values():
            idx.settle()
        self.indexes = indexes
        self.change_id = head
        self.refresh(force=True)

    def _snapshot_path(self, name: str) -> Path | None:
        if self.snapshot_dir is None:
            return None
        return self.snapshot_dir / f"{name}{index_for(get_signal_type(name)).snapshot_suffix}"

    def save_snapshots(self) -> None:
        if self.snapshot_dir is None:
            return
        with self._lock:
            for name, idx in self.indexes.items():
                path = self._snapshot_path(name)
                assert path is not None
                idx.save(path, change_id=self.change_id)

    # -- following changes ---------------------------------------------------------------------
    def refresh_due(self) -> bool:
        return time.monotonic() - self._last_check >= self.refresh_seconds

    def maybe_refresh(self) -> None:
        if self.refresh_due():
            self.refresh()

    def refresh(self, force: bool = False) -> int:
        """Apply change-log rows past ``change_id``; return how many were applied."""
        with self._lock:
            self._last_check = time.monotonic()
            applied = 0
            with self.db.read() as s:
                while True:
                    changes = (
                        s.execute(
                            select(EntryChange)
                            .where(EntryChange.id > self.change_id)
                            .order_by(EntryChange.id)
                            .limit(1000)
                        )
                        .scalars()
                        .all()
                    )
                    if not changes:
                        break
                    for ch in changes:
                        if ch.op == "bank":
                            cond = BankEntry.bank_id == ch.bank_id
                        else:
                            cond = BankEntry.id.between(ch.entry_id or 0, ch.last_entry_id or ch.entry_id or 0)
                        rows = s.execute(
                            select(
                                BankEntry.id,
                                BankEntry.signal_type,
                                BankEntry.value,
                                BankEntry.enabled & Bank.enabled,
                            )
                            .join(Bank, Bank.id == BankEntry.bank_id)
                            .where(cond)
                        ).all()
                        self._apply(rows)
                        self.change_id = ch.id
                        applied += 1
                if applied or force:
                    self.banks = {
                        b.id: BankMeta(
                            b.id,
                            b.name,
                            b.kind,
                            b.enabled,
                            b.dihedral,
                            dict(b.thresholds),
                            dict(b.review_thresholds),
                        )
                        for b in s.execute(select(Bank)).scalars()
                    }
            self._report_quarantined()
            return applied

    def _apply(self, rows: Sequence[Any]) -> None:
        adds: dict[str, tuple[list[int], list[str]]] = {}
        removes: dict[str, list[int]] = {}
        for i, t, v, live in rows:
            if t not in self.indexes:
                try:
                    self.indexes[t] = index_for(get_signal_type(t))
                except SafeguardError:  # an entry of a signal type this process does not know
                    continue
            if live:
                ids, vals = adds.setdefault(t, ([], []))
                ids.append(i)
                vals.append(v)
            else:
                removes.setdefault(t, []).append(i)
        for t, rm in removes.items():
            self.indexes[t].remove(rm)
        for t, (ids, vals) in adds.items():
            self._add(self.indexes[t], t, ids, vals)

    # -- quarantine ----------------------------------------------------------------------------
    def _add(self, index: SignalIndex, signal_type: str, ids: list[int], values: list[str]) -> None:
        """``index.add`` for the rows it can take; the others are quarantined (see the module's doc)."""
        try:
            bad = get_signal_type(signal_type).noncanonical(values)
        except Exception:  # a plug-in's check that fails: judge each row by the index alone
            bad = []
        if bad:
            skip = set(bad)
            for k in bad:
                self._quarantine(ids[k], signal_type, values[k], "value not in the signal type's canonical form")
            ids = [i for k, i in enumerate(ids) if k not in skip]
            values = [v for k, v in enumerate(values) if k not in skip]
        try:
            index.add(ids, values)
        except Exception:
            # the index refused the batch: add row by row, quarantining each row it refuses
            for i, v in zip(ids, values, strict=True):
                try:
                    index.add([i], [v])
                except Exception as exc:
                    self._quarantine(i, signal_type, v, f"the index refused it: {exc}"[:200])

    def _quarantine(self, entry_id: int, signal_type: str, value: Any, reason: str) -> None:
        q = Quarantined(int(entry_id), signal_type, reason, ascii(value)[:100])
        if entry_id not in self.quarantined:
            log.warning("bank entry %d (%s) quarantined: %s: %s", entry_id, signal_type, reason, q.value)
        self.quarantined[q.entry_id] = q
        self._pending.append(q)

    def _report_quarantined(self) -> None:
        """Hand newly quarantined entries to ``on_quarantine`` (after the read that found them). A
        failure there is logged, never raised: the index stays usable either way."""
        pending, self._pending = self._pending, []
        if pending and self.on_quarantine is not None:
            try:
                self.on_quarantine(pending)
            except Exception:
                log.exception("could not record %d quarantined bank entries", len(pending))

    def quarantined_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for q in self.quarantined.values():
            out[q.signal_type] = out.get(q.signal_type, 0) + 1
        return out

    def sizes(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.indexes.items()}
