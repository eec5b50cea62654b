"""Bank operations shared by the API and the CLI.

Every change to entries writes ``entry_changes`` rows (runs of entry ids, or a whole bank) in the same
transaction, bumps the bank's ``version`` and appends an event; each process's index follows the
change log (``index/manager.py``). On PostgreSQL the change log is locked for the length of the
writing transaction so that change ids become visible in order and no follower skips one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.banks import quality
from safeguard.banks.sources.base import Row, RowError
from safeguard.errors import Conflict, InvalidInput, NotFound
from safeguard.signals import get_signal_type
from safeguard.store import Database
from safeguard.store.models import Bank, BankEntry, EntryChange, EntryOpinion, utcnow
from safeguard.store.rowview import from_row, iso_dict

if TYPE_CHECKING:
    from safeguard.index.manager import Quarantined

#: ``negative``: known-benign hashes; a match there suppresses the other banks' matches (banks/negative.py)
BANK_KINDS = ("csam", "ncii", "terror", "other", "negative")
OPINIONS = ("confirmed", "disputed", "none")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DEFAULT_THRESHOLDS = {"pdq": 31}
DEFAULT_REVIEW_THRESHOLDS = {"pdq": 40}
#: vPDQ's match percentages (detectors/video_match.py), set per bank beside the distance thresholds
PERCENT_THRESHOLDS = ("vpdq_query_percent", "vpdq_target_percent")


# The upsert of a bank entry, as the SQL paths (SQLite's multi-row VALUES, PostgreSQL's COPY staging)
# write it; the generic path builds the same with SQLAlchemy's on_conflict_do_update.
_UPSERT_TAIL = (
    "ON CONFLICT (bank_id, signal_type, value) DO UPDATE SET category = excluded.category, "
    "source = excluded.source, provenance = excluded.provenance, enabled = true RETURNING id"
)


@dataclass
class ImportResult:
    added_or_updated: int = 0
    deleted: int = 0
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0

    def to_dict(self, max_errors: int = 100) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "added_or_updated": self.added_or_updated,
            "deleted": self.deleted,
            "rejected": len(self.errors),
            "errors": [{"line": e.line, "code": e.code, "message": e.message} for e in self.errors[:max_errors]],
        }


@dataclass(frozen=True, slots=True)
class BankInfo:
    """A bank's settings, as the API and the CLI show them; ``entry_count`` where it was counted."""

    id: int
    name: str
    description: str
    kind: str
    default_category: str | None
    enabled: bool
    shareable: bool
    dihedral: bool
    thresholds: dict[str, int]
    review_thresholds: dict[str, int]
    version: int
    created_at: datetime
    updated_at: datetime
    entry_count: int | None = None

    @classmethod
    def of(cls, b: Bank, entry_count: int | None = None) -> BankInfo:
        return from_row(
            cls, b, thresholds=dict(b.thresholds), review_thresholds=dict(b.review_thresholds), entry_count=entry_count
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``entry_count`` only where it was counted)."""
        d = iso_dict(self)
        if self.entry_count is None:
            del d["entry_count"]
        return d


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """One bank entry, with its bank's name."""

    id: int
    bank_id: int
    bank: str | None
    signal_type: str
    value: str
    category: str | None
    source: str
    provenance: dict[str, Any]
    added_by: str
    added_at: datetime
    enabled: bool
    opinion: str

    @classmethod
    def of(cls, e: BankEntry, bank_name: str | None = None) -> EntryInfo:
        return from_row(cls, e, bank=bank_name, provenance=dict(e.provenance or {}))

    def to_dict(self) -> dict[str, Any]:
        return iso_dict(self)


def _runs(ids: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i in sorted(set(ids)):
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


class BankService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- helpers -------------------------------------------------------------------------------
    def _lock_changes(self, s: Session) -> None:
        if not self.db.is_sqlite:
            s.execute(text("LOCK TABLE entry_changes IN SHARE ROW EXCLUSIVE MODE"))

    def _record_changes(self, s: Session, bank: Bank, ids: Sequence[int]) -> None:
        for a, b in _runs(ids):
            s.add(EntryChange(bank_id=bank.id, entry_id=a, last_entry_id=b, op="range"))
        bank.version += 1
        bank.updated_at = utcnow()

    @staticmethod
    def get(s: Session, bank: str | int) -> Bank:
        if isinstance(bank, int) or (bank.isascii() and bank.isdigit() and len(bank) <= 18):
            row = s.get(Bank, int(bank))
        else:
            row = s.execute(select(Bank).where(Bank.name == bank)).scalar_one_or_none()
        if row is None:
            raise NotFound(f"bank {bank!r} not found", code="bank_not_found")
        return row

    # -- banks ---------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        actor: str,
        kind: str = "csam",
        description: str = "",
        default_category: str | None = None,
        thresholds: dict[str, int] | None = None,
        review_thresholds: dict[str, int] | None = None,
        dihedral: bool = False,
        shareable: bool = False,
    ) -> BankInfo:
        if not NAME_RE.match(name):
            raise InvalidInput("bank name must be 1-100 letters, digits, '_', '.', '-'", code="invalid_bank_name")
        if kind not in BANK_KINDS:
            raise InvalidInput(f"bank kind must be one of {BANK_KINDS}", code="invalid_bank_kind")
        th = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        rth = {**DEFAULT_REVIEW_THRESHOLDS, **(review_thresholds or {})}
        self._check_thresholds(th, rth)
        with self.db.write() as s:
            if s.execute(select(Bank.id).where(Bank.name == name)).first():
                raise Conflict(f"bank {name!r} already exists", code="bank_exists")
            b = Bank(
                name=name,
                kind=kind,
                description=description,
                default_category=default_category,
                thresholds=th,
                review_thresholds=rth,
                dihedral=dihedral,
                shareable=shareable,
                enabled=True,
                version=1,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            s.add(b)
            s.flush()
            info = BankInfo.of(b, 0)
            events.append(s, "bank.created", actor=actor, subject=("bank", str(b.id)), payload=BankInfo.of(b).to_dict())
            return info

    @staticmethod
    def _check_thresholds(th: dict[str, int], rth: dict[str, int]) -> None:
        # each dict on its own: a merged view let the review value hide a bad match value (a
        # negative match threshold was accepted when a review threshold for the type existed)
        for k, v in [*th.items(), *rth.items()]:
            if k in PERCENT_THRESHOLDS:
                if type(v) is not int or not 0 <= v <= 100:
                    raise InvalidInput(f"{k} must be an integer 0..100", code="invalid_threshold")
                continue
            st = get_signal_type(k)
            # a distance: 0..bits for Hamming types; 0 or 1 for exact ones (their only distances)
            top = st.bits if st.metric == "hamming" else 1
            if type(v) is not int or not 0 <= v <= top:
                raise InvalidInput(f"threshold for {k} must be an integer 0..{top}", code="invalid_threshold")
        for k, v in th.items():
            if k not in PERCENT_THRESHOLDS and rth.get(k, v) < v:
                raise InvalidInput(f"review threshold for {k} must be >= its match threshold", code="invalid_threshold")

    def update(self, bank: str | int, *, actor: str, **changes: Any) -> BankInfo:
        allowed = {
            "description",
            "default_category",
            "enabled",
            "shareable",
            "dihedral",
            "thresholds",
            "review_thresholds",
            "kind",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidInput(f"cannot change {sorted(unknown)}", code="invalid_field")
        with self.db.write() as s:
            self._lock_changes(s)
            b = self.get(s, bank)
            if "kind" in changes and changes["kind"] not in BANK_KINDS:
                raise InvalidInput(f"bank kind must be one of {BANK_KINDS}", code="invalid_bank_kind")
            th = {**b.thresholds, **(changes.get("thresholds") or {})}
            rth = {**b.review_thresholds, **(changes.get("review_thresholds") or {})}
            self._check_thresholds(th, rth)
            for k, v in changes.items():
                if v is None:
                    continue
                setattr(b, k, {"thresholds": th, "review_thresholds": rth}.get(k, v))
            b.version += 1
            b.updated_at = utcnow()
            s.add(EntryChange(bank_id=b.id, op="bank"))
            events.append(s, "bank.updated", actor=actor, subject=("bank", str(b.id)), payload={"changes": changes})
            return BankInfo.of(b)

    def list_banks(self) -> list[BankInfo]:
        with self.db.read() as s:
            counts = dict(s.execute(select(BankEntry.bank_id, func.count()).group_by(BankEntry.bank_id)).all())
            return [BankInfo.of(b, counts.get(b.id, 0)) for b in s.execute(select(Bank).order_by(Bank.id)).scalars()]

    def describe(self, bank: str | int) -> BankInfo:
        with self.db.read() as s:
            b = self.get(s, bank)
            n = s.execute(select(func.count()).select_from(BankEntry).where(BankEntry.bank_id == b.id)).scalar_one()
            return BankInfo.of(b, n)

    # -- entries -------------------------------------------------------------------------------
    def import_rows(
        self,
        bank: str | int,
        rows: Iterable[Row | RowError],
        *,
        actor: str,
        source: str = "",
        batch_size: int = 5000,
        progress: Callable[[int], None] | None = None,
    ) -> ImportResult:
        """Upsert (and delete) rows in batches; rejected rows are collected with their line numbers."""
        result = ImportResult()
        with self.db.read() as s:
            bank_id = self.get(s, bank).id
        batch: list[Row] = []
        for r in rows:
            result.rows_read += 1
            if isinstance(r, RowError):
                result.errors.append(r)
            else:
                batch.append(r)
            if len(batch) >= batch_size:
                self._write_batch(bank_id, batch, actor, source, result)
                if progress:
                    progress(len(batch))
                batch = []
        # the last batch and the import's audit event share one transaction: an entry added through
        # the API is one write, not two (bench/results/2026-12-06-performance-history.md, section 5)
        self._write_batch(bank_id, batch, actor, source, result, summary=True)
        if progress and batch:
            progress(len(batch))
        return result

    def _insert(self, s: Session) -> Any:
        return (sqlite.insert if self.db.is_sqlite else postgresql.insert)(BankEntry)

    def _write_batch(
        self, bank_id: int, batch: list[Row], actor: str, source: str, result: ImportResult, *, summary: bool = False
    ) -> None:
        """Write one batch in a transaction; with ``summary``, the import's ``bank.imported`` event too
        (``batch`` may then be empty: the event alone)."""
        with self.db.write() as s:
            if batch:
                self._write_rows(s, bank_id, batch, actor, source, result)
            if summary:
                events.append(
                    s,
                    "bank.imported",
                    actor=actor,
                    subject=("bank", str(bank_id)),
                    payload=result.to_dict(max_errors=20),
                )

    def _write_rows(
        self,
        s: Session,
        bank_id: int,
        batch: list[Row],
        actor: str,
        source: str,
        result: ImportResult,
    ) -> None:
        """Upserts and deletes of one batch, and their change-log ranges, in the caller's transaction."""
        upserts = {(r.signal_type, r.value): r for r in batch if not r.delete}  # last row wins
        deletes = [r for r in batch if r.delete]
        self._lock_changes(s)
        bank = s.get(Bank, bank_id)
        assert bank is not None
        ids: list[int] = []
        if upserts:
            now = utcnow()
            cat = bank.default_category
            # one tuple of the columns that vary per row; the rest (bank, actor, time, enabled, opinion)
            # are the same for the whole batch and go through their bind processors once (no per-row dict)
            items = [(st, v, r.category or cat, r.source or source, r.provenance) for (st, v), r in upserts.items()]
            if self.db.is_sqlite:
                ids.extend(self._sqlite_upsert(s, bank_id, actor, now, items))
            elif (
                len(items) >= self.COPY_FROM
                and (copied := self._pg_copy_upsert(s, bank_id, actor, now, items)) is not None
            ):
                ids.extend(copied)
            else:
                # executemany with one compiled statement (SQLAlchemy's "insertmanyvalues" batches
                # it into multi-row INSERT ... RETURNING)
                values = [
                    {
                        "bank_id": bank_id,
                        "signal_type": st,
                        "value": v,
                        "category": c,
                        "source": src,
                        "provenance": prov,
                        "added_by": actor,
                        "added_at": now,
                        "enabled": True,
                        "opinion": "none",
                    }
                    for st, v, c, src, prov in items
                ]
                ins = self._insert(s)
                stmt = ins.on_conflict_do_update(
                    index_elements=["bank_id", "signal_type", "value"],
                    set_={
                        "category": ins.excluded.category,
                        "source": ins.excluded.source,
                        "provenance": ins.excluded.provenance,
                        "enabled": True,
                    },
                ).returning(BankEntry.id)
                ids.extend(s.execute(stmt, values).scalars().all())
            result.added_or_updated += len(items)
        for r in deletes:
            got = (
                s.execute(
                    update(BankEntry)
                    .where(
                        BankEntry.bank_id == bank_id,
                        BankEntry.signal_type == r.signal_type,
                        BankEntry.value == r.value,
                    )
                    .values(enabled=False)
                    .returning(BankEntry.id)
                )
                .scalars()
                .all()
            )
            ids.extend(got)
            result.deleted += len(got)
        self._record_changes(s, bank, ids)

    #: the columns shared by a batch (processed once), then those given per row (``_write_rows``' tuples)
    _CONST_COLS = ("bank_id", "added_by", "added_at", "enabled", "opinion")
    _ROW_COLS = ("signal_type", "value", "category", "source", "provenance")
    #: rows per SQLite statement: 10 parameters each, under SQLite's 32,766
    _SQLITE_CHUNK = 3000

    def _sqlite_upsert(self, s: Session, bank_id: int, actor: str, now: datetime, items: list[_Item]) -> list[int]:
        """The same upsert as the generic path, as plain multi-row SQL on the driver.

        SQLAlchemy's per-row parameter handling cost ~10x the database's own work on bulk imports.
        Here the columns shared by the batch (bank, actor, time, enabled, opinion) go through their
        bind processors once per batch, and each row adds its own five values, the provenance as JSON
        text (:func:`_json_text`); the statement text is built once per chunk size. SQLite takes at
        most 32,766 parameters per statement, hence chunks of 3,000 rows. (Numbered parameters, the
        shared ones bound once as ``?1``..``?5``, were slower: SQLite's parser looks each ``?NNN`` up
        in a list, quadratic in the statement's length.)
        """
        table = BankEntry.__table__
        dialect = s.get_bind().dialect
        shared: list[Any] = [bank_id, actor, now, True, "none"]
        for k, c in enumerate(self._CONST_COLS):
            proc = table.c[c].type._cached_bind_processor(dialect)
            if proc is not None:
                shared[k] = proc(shared[k])
        consts = tuple(shared)
        conn = s.connection()
        ids: list[int] = []
        # rows in index order: the unique and lookup indexes are keyed by (…, signal_type, value), so
        # sorted inserts walk their B-trees forward instead of touching a random leaf page per row
        # (with random hashes and SQLite's small page cache that was ~80% of a 1M-row import)
        items = sorted(items, key=_index_order)
        chunk = self._SQLITE_CHUNK
        for a in range(0, len(items), chunk):
            part = items[a : a + chunk]
            params: list[Any] = []
            for st, v, cat, src, prov in part:
                params += consts
                params += (st, v, cat, src, _json_text(prov))
            ids.extend(int(i) for (i,) in conn.exec_driver_sql(_sqlite_upsert_sql(len(part)), tuple(params)).all())
        return ids

    _STAGING = "sg_entry_import"
    #: batches from this many rows up go through COPY on PostgreSQL; a few rows (an entry added through
    #: the API) take the single statement, one round trip instead of four
    COPY_FROM = 64

    def _pg_copy_upsert(
        self, s: Session, bank_id: int, actor: str, now: datetime, items: list[_Item]
    ) -> list[int] | None:
        """The upsert on PostgreSQL through psycopg's COPY: the batch's own columns go into a
        session-local staging table, then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ...
        RETURNING id`` moves them, with the columns shared by the batch as parameters.

        SQLAlchemy's executemany spent ~80% of a 1M-row import in the client (111 s in all, against
        the 60 s target). Same semantics as the other paths: the caller has already kept the last
        row per value, an upsert re-enables, and the ids come back for the change log. ``None`` where
        the driver is not psycopg 3 (the caller then uses the generic statement).
        """
        raw = s.connection().connection.driver_connection
        if raw is None or type(raw).__module__.split(".")[0] != "psycopg":
            return None
        row_cols = ", ".join(self._ROW_COLS)
        cols = ", ".join(self._CONST_COLS + self._ROW_COLS)
        with raw.cursor() as cur:
            # a temporary table lives as long as the connection; ON COMMIT DELETE ROWS empties it per batch
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {self._STAGING} (bank_id bigint, signal_type varchar(32), "
                "value varchar(512), category varchar(64), source varchar(200), provenance json, "
                "added_by varchar(200), added_at timestamptz, enabled boolean, opinion varchar(16)) "
                "ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY {self._STAGING} ({row_cols}) FROM STDIN") as copy:
                write = copy.write_row
                for st, v, cat, src, prov in items:
                    write((st, v, cat, src, _json_text(prov)))
            # in index order, as on SQLite: the unique index's B-tree is walked forward
            cur.execute(
                f"INSERT INTO {BankEntry.__tablename__} ({cols}) SELECT %s, %s, %s, true, 'none', {row_cols} "
                f"FROM {self._STAGING} ORDER BY signal_type, value " + _UPSERT_TAIL,
                (bank_id, actor, now),
            )
            ids = [int(i) for (i,) in cur.fetchall()]
            cur.execute(f"TRUNCATE {self._STAGING}")  # a second batch in the same transaction starts empty
        return ids

    def add_entry(
        self,
        bank: str | int,
        *,
        signal_type: str,
        value: str,
        actor: str,
        category: str | None = None,
        source: str = "",
        provenance: dict[str, Any] | None = None,
    ) -> EntryInfo:
        st = get_signal_type(signal_type)
        for name, limit, v in (("category", 64, category), ("source", 200, source)):
            if v is not None and len(v) > limit:
                raise InvalidInput(f"{name} longer than {limit} characters", code="invalid_field")
        row = Row(
            line=1,
            signal_type=st.name,
            value=st.validate(value),
            category=category,
            source=source,
            provenance=provenance or {},
        )
        res = self.import_rows(bank, [row], actor=actor, source=source)
        assert not res.errors
        with self.db.read() as s:
            b = self.get(s, bank)
            e = s.execute(
                select(BankEntry).where(
                    BankEntry.bank_id == b.id,
                    BankEntry.signal_type == row.signal_type,
                    BankEntry.value == row.value,
                )
            ).scalar_one()
            return EntryInfo.of(e, b.name)

    def get_entry(self, entry_id: int) -> EntryInfo:
        with self.db.read() as s:
            e = s.get(BankEntry, entry_id)
            if e is None:
                raise NotFound(f"entry {entry_id} not found", code="entry_not_found")
            b = s.get(Bank, e.bank_id)
            return EntryInfo.of(e, b.name if b else None)

    def list_entries(self, bank: str | int, *, limit: int = 100, after_id: int = 0) -> list[EntryInfo]:
        with self.db.read() as s:
            b = self.get(s, bank)
            rows = s.execute(
                select(BankEntry)
                .where(BankEntry.bank_id == b.id, BankEntry.id > after_id)
                .order_by(BankEntry.id)
                .limit(limit)
            ).scalars()
            return [EntryInfo.of(e, b.name) for e in rows]

    def set_enabled(self, entry_id: int, enabled: bool, *, actor: str, reason: str = "") -> EntryInfo:
        with self.db.write() as s:
            self._lock_changes(s)
            e = s.get(BankEntry, entry_id)
            if e is None:
                raise NotFound(f"entry {entry_id} not found", code="entry_not_found")
            bank = s.get(Bank, e.bank_id)
            assert bank is not None
            e.enabled = enabled
            self._record_changes(s, bank, [e.id])
            events.append(
                s,
                "entry.enabled" if enabled else "entry.disabled",
                actor=actor,
                subject=("entry", str(e.id)),
                payload={"bank": bank.name, "reason": reason},
            )
            return EntryInfo.of(e, bank.name)

    def quarantine_entries(self, items: Sequence[Quarantined], *, actor: str = "system") -> int:
        """Disable entries the index could not load, each with an ``index.entry_quarantined`` event.

        Only an entry still enabled is disabled (and gets the event), so when several processes find
        the same bad row at start-up one of them records it. The disable goes through the change log
        like any other, so every process's index skips the entry. Returns how many were disabled.
        """
        done = 0
        with self.db.write() as s:
            self._lock_changes(s)
            for q in items:
                got = s.execute(
                    update(BankEntry)
                    .where(BankEntry.id == q.entry_id, BankEntry.enabled.is_(True))
                    .values(enabled=False)
                    .returning(BankEntry.bank_id)
                ).first()
                if got is None:
                    continue
                bank = s.get(Bank, got[0])
                assert bank is not None
                self._record_changes(s, bank, [q.entry_id])
                events.append(
                    s,
                    "index.entry_quarantined",
                    actor=actor,
                    subject=("entry", str(q.entry_id)),
                    payload={"bank": bank.name, "signal_type": q.signal_type, "reason": q.reason, "value": q.value},
                )
                done += 1
        return done

    def add_opinion(self, entry_id: int, opinion: str, *, actor: str, note: str = "") -> EntryInfo:
        with self.db.write() as s:
            return self.opinion_in(s, entry_id, opinion, actor=actor, note=note)

    def opinion_in(self, s: Session, entry_id: int, opinion: str, *, actor: str, note: str = "") -> EntryInfo:
        """:meth:`add_opinion` inside the caller's write transaction (a moderator's case decision)."""
        if opinion not in OPINIONS:
            raise InvalidInput(f"opinion must be one of {OPINIONS}", code="invalid_opinion")
        e = s.get(BankEntry, entry_id)
        if e is None:
            raise NotFound(f"entry {entry_id} not found", code="entry_not_found")
        bank = s.get(Bank, e.bank_id)
        assert bank is not None
        from safeguard.exchange.outbox import queue_opinion  # the exchange builds on banks: imported late

        self._lock_changes(s)
        s.add(EntryOpinion(entry_id=e.id, opinion=opinion, actor=actor, note=note))
        e.opinion = opinion
        self._record_changes(s, bank, [e.id])  # partners' feeds carry opinions (safeguard/exchange/feed.py)
        queue_opinion(s, e, opinion)  # an opinion on a partner's entry goes back to it
        quality.record_opinion(s, e, bank, opinion, actor=actor, note=note)  # figures, and the hooks
        events.append(
            s,
            "entry.opinion",
            actor=actor,
            subject=("entry", str(e.id)),
            payload={"bank": bank.name, "opinion": opinion, "note": note},
        )
        return EntryInfo.of(e, bank.name)

    def upsert_in(self, s: Session, bank_id: int, rows: list[Row], *, actor: str, source: str) -> list[int]:
        """Upsert ``rows`` into a bank inside the caller's write transaction, with their change-log
        ranges (the index follows) and a ``bank.imported`` event; returns the entries' ids."""
        result = ImportResult(rows_read=len(rows))
        self._write_rows(s, bank_id, rows, actor, source, result)
        events.append(s, "bank.imported", actor=actor, subject=("bank", str(bank_id)), payload=result.to_dict())
        ids = s.execute(
            select(BankEntry.id).where(
                BankEntry.bank_id == bank_id,
                tuple_(BankEntry.signal_type, BankEntry.value).in_([(r.signal_type, r.value) for r in rows]),
            )
        )
        return sorted(int(i) for i in ids.scalars())

    def export(self, bank: str | int, *, include_disabled: bool = False) -> Iterator[dict[str, Any]]:
        with self.db.read() as s:
            b = self.get(s, bank)
            q = select(BankEntry).where(BankEntry.bank_id == b.id).order_by(BankEntry.id)
            if not include_disabled:
                q = q.where(BankEntry.enabled.is_(True))
            for e in s.execute(q.execution_options(yield_per=5000)).scalars():
                yield {
                    "signal_type": e.signal_type,
                    "value": e.value,
                    "category": e.category,
                    "source": e.source,
                    "added_at": e.added_at.isoformat(),
                    "opinion": e.opinion,
                    "enabled": e.enabled,
                    "provenance": e.provenance,
                }


#: one row of an upsert batch: signal type, value, category, source, provenance
_Item = tuple[str, str, str | None, str, dict[str, Any]]


def _index_order(item: _Item) -> tuple[str, str]:
    return item[0], item[1]


try:  # the C encoder json.dumps builds per call, built once (json.dumps(x) gives the same text)
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    _c_make_encoder = None


def _json_default(obj: object) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _c_make_encoder is not None:
    _encode_c = _c_make_encoder(
        None, _json_default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def _json_text(obj: dict[str, Any]) -> str:
        """A provenance as stored JSON text (what SQLAlchemy's JSON type writes: ``json.dumps``)."""
        return "".join(_encode_c(obj, 0)) if obj else "{}"

else:  # pragma: no cover

    def _json_text(obj: dict[str, Any]) -> str:
        return json.dumps(obj) if obj else "{}"


@functools.lru_cache(maxsize=8)
def _sqlite_upsert_sql(n: int) -> str:
    """The multi-row upsert of ``n`` rows, the shared columns first in each."""
    cols = ", ".join(BankService._CONST_COLS + BankService._ROW_COLS)
    one = "(" + ", ".join("?" * (len(BankService._CONST_COLS) + len(BankService._ROW_COLS))) + ")"
    return f"INSERT INTO {BankEntry.__tablename__} ({cols}) VALUES {', '.join([one] * n)} " + _UPSERT_TAIL
