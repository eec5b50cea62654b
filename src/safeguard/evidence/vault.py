"""The evidence vault: preserved uploads, encrypted, sealed into the event log, kept for a year.

Why it is shaped like this:

- **Beside the commit, not after it.** :meth:`EvidenceVault.spool` (the ``preserve`` action's
  ``prepare`` step) wraps a fresh data key at once and hands the bytes to a thread that seals them
  (AES-256-GCM) and writes them once, under the item's id, in ``vault/spool/``, while the decision's
  transaction commits with the item's row. The platform is answered only when both are done (the
  recorder waits for the write: ``store.recorder.AfterCommit``), so a process killed after answering
  loses nothing. After the commit a settler thread hashes the file, links it to its content address,
  records the address in the row and drops the spool name; :meth:`recover` finishes that at start for
  a process killed half-way. Until then a read finds the item by its id in the spool. The file's
  SHA-256 (the slowest part of sealing, 1.3 ms for 2 MB) is off the request path. Uploads under
  :data:`SPOOL_ABOVE` are sealed at once instead (:meth:`seal`, before the transaction, address and
  all): for them the thread hop and the settler's extra transaction cost more than they save.
- **Each item has its own data key**, wrapped by the master key and stored only in the row, never in
  the file: erasing it from the row (``purge``) makes the ciphertext unreadable in every backup.
- **The preservation is in the hash chain.** The ``action.preserve`` event of the decision carries the
  item's id and SHA-256; ``verify`` compares the row, the file and the decrypted bytes with it, so a
  file or a row changed after the fact is found even by someone who can write the database.
- **Every read is an event** (who, which item, the stated reason), and so is every failed read.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.config import Settings
from safeguard.errors import ConfigError, InvalidInput, NotFound, SafeguardError
from safeguard.evidence.keys import EvidenceKeyError, EvidenceTampered, MasterKey, open_item, sealing
from safeguard.evidence.storage import BlobMissing, BlobStore, FileBlobStore
from safeguard.store import Database
from safeguard.store.models import CaseItem, Event, utcnow
from safeguard.store.models import EvidenceItem as EvidenceRow
from safeguard.store.recorder import AfterCommit

__all__ = ["EvidenceItem", "EvidenceVault", "Sealed", "VerifyReport", "case_items", "key_path", "require_key"]

log = logging.getLogger(__name__)
ITEMS = cast(Table, EvidenceRow.__table__)
HASH_ONLY_NOTE = "no bytes preserved: hash-only scan"
#: uploads at least this large are sealed beside the decision's commit (the spool); smaller ones before it
SPOOL_ABOVE = 1024 * 1024
#: how long the settler gathers spooled items before one transaction records their addresses
SETTLE_GATHER_SECONDS = 0.5
STREAM_NOTE = "no bytes preserved: a live-stream frame is hashed, not kept"
MAX_REASON = 500


@dataclass(frozen=True)
class EvidenceItem:
    """What a case shows of an item (no key material)."""

    id: str
    case_id: int | None
    decision_id: str
    status: str  # preserved / hash_only / purged
    sha256: str | None
    size: int | None
    media_type: str | None
    file_name: str | None
    note: str
    preserved_at: datetime
    retain_until: datetime
    legal_hold: bool
    purged_at: datetime | None

    @property
    def has_bytes(self) -> bool:
        return self.status == "preserved"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "file_name": self.file_name,
            "status": self.status,
            "preserved": self.has_bytes,
            "note": self.note,
            "decision_id": self.decision_id,
            "preserved_at": self.preserved_at.isoformat(),
            "retain_until": self.retain_until.isoformat(),
            "legal_hold": self.legal_hold,
            "purged_at": self.purged_at.isoformat() if self.purged_at else None,
        }

    @classmethod
    def of(cls, r: EvidenceRow) -> EvidenceItem:
        return cls(
            r.id,
            r.case_id,
            r.decision_id,
            r.status,
            r.sha256,
            r.size,
            r.media_type,
            r.file_name,
            r.note,
            r.preserved_at,
            r.retain_until,
            r.legal_hold,
            r.purged_at,
        )


@dataclass(frozen=True)
class Sealed:
    """An item encrypted and stored (or being stored: ``after``), waiting for its row (written in the
    decision's transaction). ``blob`` is None while the item is in the spool."""

    item_id: str
    sha256: str
    size: int
    blob: str | None
    key_id: str
    wrapped_key: bytes
    after: AfterCommit | None = None


class EvidenceWriteFailed(SafeguardError):
    """The sealed bytes of a preserved item could not be written (disk full, say)."""

    code = "evidence_write_failed"
    status = 503


class SpoolWrite(AfterCommit):
    """The sealed file being written while the decision commits (see the module's docstring)."""

    def __init__(self, future: Future[Any], vault: EvidenceVault, item_id: str) -> None:
        super().__init__(future)
        self.vault = vault
        self.item_id = item_id

    def wait(self) -> None:
        try:
            self.future.result()
        except Exception as exc:
            self.vault.lost(self.item_id, exc)
            raise EvidenceWriteFailed(
                f"evidence item {self.item_id}: the sealed file could not be written: {exc}",
                details={"item_id": self.item_id},
            ) from exc

    def committed(self) -> None:
        self.vault.settler.add(self.item_id)

    def abandoned(self) -> None:
        store = self.vault.file_store
        if store is not None:
            self.future.add_done_callback(lambda _: store.unspool(self.item_id))


class _Settler:
    """Gives spooled items their content address after their rows committed, in batches, off the request."""

    def __init__(self, vault: EvidenceVault) -> None:
        self._vault = weakref.ref(vault)
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0  # queued or being settled
        atexit.register(self.flush)  # a clean exit settles what is queued; a killed one, ``recover``

    def add(self, item_id: str) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(item_id)
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(target=self._run, name="vault-settle", daemon=True)
                    self._thread.start()

    def _drain(self, first: str | None = None) -> list[str]:
        ids = [first] if first else []
        while len(ids) < 256:
            try:
                ids.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return ids

    def _settle(self, ids: list[str]) -> None:
        vault = self._vault()
        try:
            if vault is not None and ids:
                vault.settle(ids)
        except Exception:
            log.exception("settling spooled evidence failed; the next start finishes it")
        finally:
            with self._idle:
                self._pending -= len(ids)
                self._idle.notify_all()

    def flush(self, timeout: float = 30.0) -> None:
        """Settle everything queued, and wait for a batch the thread is settling."""
        self._settle(self._drain())
        with self._idle:
            self._idle.wait_for(lambda: self._pending <= 0, timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            time.sleep(SETTLE_GATHER_SECONDS)  # let a burst gather: one transaction for its rows
            self._settle(self._drain(first))


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: int = 0  # rows with no bytes (hash-only, purged)
    orphans: int = 0  # files no row names


def new_item_id() -> str:
    return "ev_" + uuid.uuid4().hex


def key_path(settings: Settings) -> Path:
    """The master key file: ``SAFEGUARD_VAULT_KEY_FILE``, else ``DATA_DIR/vault.key``."""
    return Path(settings.vault_key_file) if settings.vault_key_file else Path(settings.data_dir) / "vault.key"


def require_key(settings: Settings) -> None:
    """Refuse to start a service whose policy preserves evidence without a readable vault key.

    Run by ``safeguard serve`` (before it starts its API processes), by each API process
    (``create_app_from_env``) and by ``safeguard scan``. Never creates a key: ``safeguard vault init``
    does (``scripts/serve`` runs it, visibly, on a first start with the default key location)."""
    from safeguard.policy import load_policy

    policy = load_policy(settings.policy_file or None)
    if not any(spec.name == "preserve" for rule in policy.rules for spec in rule.actions):
        return
    path = key_path(settings)
    if not settings.vault_key_file and not path.exists():
        raise ConfigError(
            f"the policy preserves evidence but there is no vault key at {path}: make one with "
            "`safeguard vault init` (mode 0600; keep a copy offline), or set SAFEGUARD_VAULT_KEY_FILE",
            code="evidence_key_error",
        )
    MasterKey.load(path)  # missing, unreadable, malformed or too open: a ConfigError that says which


class EvidenceVault:
    def __init__(self, settings: Settings, db: Database, store: BlobStore | None = None) -> None:
        self.settings = settings
        self.db = db
        self.root = Path(settings.data_dir) / "vault"
        self.store: BlobStore = store or FileBlobStore(self.root / "items", fsync=settings.vault_fsync)
        self._key: MasterKey | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self.settler = _Settler(self)

    @property
    def file_store(self) -> FileBlobStore | None:
        """The store when it is the filesystem's (which has the spool), else None."""
        return self.store if isinstance(self.store, FileBlobStore) else None

    # -- the master key ----------------------------------------------------------------------------
    @property
    def key_path(self) -> Path:
        return key_path(self.settings)

    @property
    def key(self) -> MasterKey:
        if self._key is None:
            self._key = MasterKey.load(self.key_path)
        return self._key

    def start(self) -> None:
        """Check the master key before an engine that preserves evidence starts; raise ConfigError to refuse.

        A key that is configured must be readable and well formed. Without ``SAFEGUARD_VAULT_KEY_FILE``
        the key is ``DATA_DIR/vault.key``; an engine embedded in another program (and the tests) gets it
        created here (logged) only while the vault holds no item: never a new key over items the old one
        wrapped. The service's own entry points (``safeguard serve``, its API processes, ``safeguard
        scan``) never create one: they run :func:`require_key` first. Either way, when the vault holds
        items and the key wrapped none of them, it is the wrong key: refuse."""
        stored = self.stored_key_ids()
        if not self.settings.vault_key_file and not self.key_path.exists():
            if stored:
                raise ConfigError(
                    f"the evidence vault holds items wrapped by key {sorted(stored)} but its key file {self.key_path} "
                    "is missing; restore it or set SAFEGUARD_VAULT_KEY_FILE",
                    code="evidence_key_error",
                )
            try:
                self._key = MasterKey.generate().write_new(self.key_path)
                log.warning(
                    "created the evidence vault key %s (no SAFEGUARD_VAULT_KEY_FILE set); for production keep it "
                    "off the data directory's disk and backups (docs/vault.md)",
                    self.key_path,
                )
            except ConfigError:  # another process created it meanwhile
                pass
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the vault key {self.key_path}: {exc}", code="evidence_key_error"
                ) from None
        key = self.key
        if stored and key.id not in stored:
            raise ConfigError(
                f"the vault key {key.path} (id {key.id}) is not the key that wrapped the stored evidence "
                f"(ids {sorted(stored)}); refusing to start",
                code="evidence_key_error",
            )
        if len(stored) > 1:
            log.warning(
                "evidence items are wrapped by several keys %s: finish `safeguard vault rotate-key`", sorted(stored)
            )
        self.recover()

    def stored_key_ids(self) -> set[str]:
        with self.db.read() as s:
            q = select(ITEMS.c.key_id).where(ITEMS.c.wrapped_key.is_not(None)).distinct()
            return {str(k) for k in s.execute(q).scalars() if k}

    # -- preserving --------------------------------------------------------------------------------
    def spool(self, data: bytes, *, sha256: str | None = None) -> Sealed:
        """Start sealing ``data`` into the spool in a thread and return at once; the recorder waits for the
        write (``Sealed.after``) before it answers. Items under :data:`SPOOL_ABOVE` bytes, and stores without
        a spool, are sealed here at once (:meth:`seal`): for them the thread hop and the later transaction
        that records the address cost more than the hash they move off the request."""
        store = self.file_store
        if store is None or len(data) < SPOOL_ABOVE:
            return self.seal(data, sha256=sha256)
        item_id = new_item_id()
        key = self.key
        data_key = AESGCM.generate_key(bit_length=256)
        wrapped = key.wrap(data_key, item_id)

        def write() -> None:
            with sealing(data, item_id, data_key) as (sealed, _):
                store.spool(item_id, sealed)

        if self._pool is None or self._pool_pid != os.getpid():  # a forked child makes its own
            self._pool, self._pool_pid = ThreadPoolExecutor(4, thread_name_prefix="vault-seal"), os.getpid()
        future = self._pool.submit(write)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        return Sealed(item_id, digest, len(data), None, key.id, wrapped, SpoolWrite(future, self, item_id))

    def settle(self, item_ids: list[str]) -> int:
        """Give spooled items (whose rows committed) their content address; returns how many were settled.
        Safe to repeat: an item already settled, or not spooled, is skipped."""
        store = self.file_store
        if store is None or not item_ids:
            return 0
        linked = []
        for item_id in item_ids:
            try:
                linked.append((item_id, store.link_spooled(item_id)))
            except FileNotFoundError:
                continue  # settled meanwhile (by another process's ``recover``), or never written
        if not linked:
            return 0
        done, gone = [], []
        with self.db.write() as s:
            for item_id, address in linked:
                s.execute(
                    update(EvidenceRow)
                    .where(EvidenceRow.id == item_id, EvidenceRow.blob.is_(None), EvidenceRow.status == "preserved")
                    .values(blob=address)
                )
            rows = {
                r.id: (r.status, r.blob)
                for r in s.execute(
                    select(EvidenceRow.id, EvidenceRow.status, EvidenceRow.blob).where(
                        EvidenceRow.id.in_([i for i, _ in linked])
                    )
                )
            }
        for item_id, address in linked:
            status, blob = rows.get(item_id, (None, None))
            if status is None:  # no row (yet): the write did not commit; ``recover`` decides later
                continue
            if status == "preserved" and blob == address:
                done.append(item_id)
            elif status != "preserved":  # purged (or lost) while spooled: nothing to keep
                gone.append(address)
            store.unspool(item_id)
        for address in gone:
            store.delete(address)
        return len(done)

    def recover(self, *, grace_seconds: float = 600.0) -> dict[str, int]:
        """At start: settle what a killed process left in the spool. A spooled file whose row never
        committed (that upload was never answered) is removed once it is older than ``grace_seconds``
        (another process may still be committing it)."""
        store = self.file_store
        out = {"settled": 0, "removed": 0}
        if store is None:
            return out
        files = store.spooled()
        if not files:
            return out
        with self.db.read() as s:
            known = set(s.execute(select(EvidenceRow.id).where(EvidenceRow.id.in_([p.name for p in files]))).scalars())
        out["settled"] = self.settle([p.name for p in files if p.name in known])
        now = time.time()
        for p in files:
            if p.name in known:
                continue
            try:
                old = now - p.stat().st_mtime > grace_seconds
            except FileNotFoundError:
                continue
            if old:
                store.unspool(p.name)
                out["removed"] += 1
        if out["settled"] or out["removed"]:
            log.warning("evidence spool recovered: %(settled)d items settled, %(removed)d unanswered removed", out)
        return out

    def lost(self, item_id: str, exc: BaseException) -> None:
        """The sealed file of a committed row could not be written: say so in the row and the event log."""
        note = f"the sealed file could not be written: {exc}"[:500]
        log.error("evidence item %s: %s", item_id, note)
        try:
            with self.db.write() as s:
                s.execute(
                    update(EvidenceRow)
                    .where(EvidenceRow.id == item_id, EvidenceRow.blob.is_(None))
                    .values(status="lost", note=note, wrapped_key=None)
                )
                events.append(
                    s, "evidence.write_failed", actor="system", subject=("evidence", item_id), payload={"error": note}
                )
        except Exception:
            log.exception("recording the lost evidence item %s failed", item_id)
        store = self.file_store
        if store is not None:
            store.unspool(item_id)

    def seal(self, data: bytes, item_id: str | None = None, *, sha256: str | None = None) -> Sealed:
        """Encrypt ``data`` under a fresh data key and store it; the row comes later (:meth:`row`). ``sha256``:
        the hex SHA-256 of ``data`` when the caller computed it already (the scan's own ``sha256`` signal)."""
        item_id = item_id or new_item_id()
        key = self.key
        with sealing(data, item_id) as (sealed, data_key):
            blob = self.store.put(sealed)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        return Sealed(item_id, digest, len(data), blob, key.id, key.wrap(data_key, item_id))

    def row(
        self,
        sealed: Sealed | None,
        *,
        decision_id: str,
        case_id: int | None,
        media_type: str | None,
        file_name: str | None,
        sha256: str | None = None,
        note: str = HASH_ONLY_NOTE,
    ) -> dict[str, Any]:
        """The ``evidence_items`` row for a sealed item, or for a scan without bytes (``sealed`` None; ``note``
        says why)."""
        now = utcnow()
        base = {
            "case_id": case_id,
            "decision_id": decision_id,
            "media_type": media_type,
            "file_name": file_name[:500] if file_name else None,
            "preserved_at": now,
            "retain_until": now + timedelta(days=self.settings.vault_retention_days),
            "legal_hold": False,
            "purged_at": None,
        }
        if sealed is None:
            return base | {
                "id": new_item_id(),
                "status": "hash_only",
                "sha256": sha256,
                "size": None,
                "blob": None,
                "key_id": None,
                "wrapped_key": None,
                "note": note,
            }
        return base | {
            "id": sealed.item_id,
            "status": "preserved",
            "sha256": sealed.sha256,
            "size": sealed.size,
            "blob": sealed.blob,
            "key_id": sealed.key_id,
            "wrapped_key": sealed.wrapped_key,
            "note": "",
        }

    # -- listing -----------------------------------------------------------------------------------
    def items_for_case(self, case_id: int, session: Session | None = None) -> list[EvidenceItem]:
        """A case's items: those preserved for it and those of its decisions (oldest first)."""
        if session is None:
            with self.db.read() as s:
                return case_items(s, case_id)
        return case_items(session, case_id)

    def get(self, item_id: str) -> EvidenceItem:
        with self.db.read() as s:
            r = s.get(EvidenceRow, item_id)
            if r is None:
                raise NotFound(f"evidence item {item_id!r} not found", code="evidence_not_found")
            return EvidenceItem.of(r)

    # -- reading -----------------------------------------------------------------------------------
    def read(
        self, item_id: str, *, actor: str, reason: str, case_id: int | None = None, event: str = "evidence.read"
    ) -> tuple[EvidenceItem, bytes]:
        """The decrypted bytes of an item, for a person who said why. Every call is an event: ``evidence.read``
        when the bytes are handed out, ``evidence.read_failed`` (with the error code) when not."""
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("say why you open this item: a reason is required", code="reason_required")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"the reason is longer than {MAX_REASON} characters", code="reason_required")
        with self.db.read() as s:
            r = s.get(EvidenceRow, item_id)
            in_case = r is not None and (case_id is None or self._in_case(s, r, case_id))
            if r is None or not in_case:
                where = f" in case {case_id}" if case_id is not None else ""
                raise NotFound(f"evidence item {item_id!r} not found{where}", code="evidence_not_found")
            item = EvidenceItem.of(r)
            failure: SafeguardError | None = None
            try:
                data = self._open(r)
            except SafeguardError as exc:
                data, failure = b"", exc
        payload = {"reason": reason, "case_id": case_id if case_id is not None else item.case_id, "sha256": item.sha256}
        if failure is not None:
            self.record(
                "evidence.read_failed", actor, item_id, payload | {"error": failure.code, "message": failure.message}
            )
            raise failure
        # ``event``: the console's blurred previews are ``evidence.previewed``, so a reveal count stays a count of reveals
        self.record(event, actor, item_id, payload | {"size": item.size})
        return item, data

    def record(self, type_: str, actor: str, item_id: str, payload: dict[str, Any]) -> None:
        with self.db.write() as s:
            events.append(s, type_, actor=actor, subject=("evidence", item_id), payload=payload)

    @staticmethod
    def _in_case(s: Session, r: EvidenceRow, case_id: int) -> bool:
        if r.case_id == case_id:
            return True
        q = select(CaseItem.id).where(CaseItem.case_id == case_id, CaseItem.decision_id == r.decision_id).limit(1)
        return s.execute(q).first() is not None

    def _open(self, r: EvidenceRow, key: MasterKey | None = None) -> bytes:
        """Decrypt and check one row's item; raises EvidenceTampered / EvidenceKeyError / Conflict."""
        if r.status != "preserved" or r.wrapped_key is None:
            why = "it was purged" if r.status == "purged" else (r.note or "it holds no bytes")
            raise EvidenceGone(
                f"evidence item {r.id} has no bytes: {why}", details={"item_id": r.id, "status": r.status}
            )
        blob = r.blob
        try:
            if blob is None:  # still in the spool (or settled a moment ago: then the row has its address now)
                try:
                    sealed = self._spooled(r.id)
                except BlobMissing:
                    with self.db.read() as s:
                        blob = s.execute(select(EvidenceRow.blob).where(EvidenceRow.id == r.id)).scalar_one_or_none()
                    if blob is None:
                        raise
            if blob is not None:
                sealed = self.store.get(blob)
        except BlobMissing:
            raise EvidenceTampered(f"evidence item {r.id}: its file is missing", details={"item_id": r.id}) from None
        except (OSError, ValueError) as exc:  # unreadable, or a row whose address is not one
            raise EvidenceTampered(
                f"evidence item {r.id}: its file cannot be read: {exc}", details={"item_id": r.id}
            ) from None
        if blob is not None and hashlib.sha256(sealed).hexdigest() != blob:
            raise EvidenceTampered(
                f"evidence item {r.id}: its file changed since it was preserved", details={"item_id": r.id}
            )
        try:
            key = key or self.key
        except ConfigError as exc:
            raise EvidenceKeyError(
                f"evidence item {r.id}: no vault key: {exc.message}", details={"item_id": r.id}
            ) from None
        if r.key_id and r.key_id != key.id:
            raise EvidenceKeyError(
                f"evidence item {r.id} is wrapped by key {r.key_id}, not by the configured key {key.id}",
                details={"item_id": r.id, "key_id": r.key_id},
            )
        data = open_item(sealed, key.unwrap(r.wrapped_key, r.id), r.id)
        if hashlib.sha256(data).hexdigest() != r.sha256 or len(data) != r.size:
            raise EvidenceTampered(
                f"evidence item {r.id}: its bytes do not hash to the preserved SHA-256", details={"item_id": r.id}
            )
        return data

    def _spooled(self, item_id: str) -> bytes:
        store = self.file_store
        if store is None:
            raise BlobMissing(item_id)
        return store.get_spooled(item_id)

    # -- verifying ---------------------------------------------------------------------------------
    def verify(self, *, actor: str, on_item: Callable[[], None] | None = None) -> VerifyReport:
        """Decrypt and re-hash every preserved item and compare it with its preservation event in the chain.

        Each failure is an event (``evidence.tampered`` or ``evidence.key_error``); the run ends with one
        ``evidence.verified`` event holding the counts."""
        report = VerifyReport()
        chained = self._chained()
        key: MasterKey | None
        key_problem = ""
        try:
            key = self.key
        except ConfigError as exc:
            key, key_problem = None, exc.message
        named: set[str] = set()
        for batch in self._batches(select(EvidenceRow)):
            for r in batch:
                report.checked += 1
                if r.blob:
                    named.add(r.blob)
                if r.status != "preserved":
                    report.skipped += 1
                else:
                    problem: SafeguardError | None = None
                    if chained.get(r.id) != r.sha256:
                        problem = EvidenceTampered(
                            f"evidence item {r.id}: its row does not match its preservation event in the event log"
                        )
                    elif key is None:
                        problem = EvidenceKeyError(f"evidence item {r.id}: no vault key: {key_problem}")
                    else:
                        try:
                            self._open(r, key)
                        except SafeguardError as exc:
                            problem = exc
                    if problem is None:
                        report.ok += 1
                    else:
                        report.failures.append({"item_id": r.id, "code": problem.code, "message": problem.message})
                        self.record(
                            "evidence.key_error" if problem.code == EvidenceKeyError.code else "evidence.tampered",
                            actor,
                            r.id,
                            {"code": problem.code, "message": problem.message, "sha256": r.sha256, "blob": r.blob},
                        )
                if on_item is not None:
                    on_item()
        if isinstance(self.store, FileBlobStore) and self.store.root.is_dir():
            report.orphans = sum(
                1 for p in self.store.root.glob("*/*/*") if p.name not in named and not p.name.startswith(".")
            )
        with self.db.write() as s:
            events.append(
                s,
                "evidence.verified",
                actor=actor,
                payload={
                    "checked": report.checked,
                    "ok": report.ok,
                    "failed": len(report.failures),
                    "skipped": report.skipped,
                    "orphans": report.orphans,
                },
            )
        return report

    def count(self) -> int:
        from sqlalchemy import func

        with self.db.read() as s:
            return int(s.execute(select(func.count()).select_from(EvidenceRow)).scalar_one())

    def _chained(self) -> dict[str, str | None]:
        """item id → SHA-256, as the ``action.preserve`` events in the hash chain recorded them."""
        out: dict[str, str | None] = {}
        with self.db.read() as s:
            for payload in s.execute(select(Event.payload).where(Event.type == "action.preserve")).scalars():
                result = (payload or {}).get("result") or {}
                if result.get("item_id"):
                    out[str(result["item_id"])] = result.get("sha256")
        return out

    def _batches(self, q: Any, size: int = 500) -> Iterable[list[EvidenceRow]]:
        last = ""
        while True:
            with self.db.read() as s:
                rows = list(s.execute(q.where(EvidenceRow.id > last).order_by(EvidenceRow.id).limit(size)).scalars())
                for r in rows:
                    s.expunge(r)
            if not rows:
                return
            yield rows
            last = rows[-1].id

    # -- retention ---------------------------------------------------------------------------------
    def due(self, now: datetime | None = None) -> list[EvidenceItem]:
        now = now or utcnow()
        q = (
            select(EvidenceRow)
            .where(
                EvidenceRow.status == "preserved", EvidenceRow.retain_until <= now, EvidenceRow.legal_hold.is_(False)
            )
            .order_by(EvidenceRow.retain_until)
        )
        with self.db.read() as s:
            return [EvidenceItem.of(r) for r in s.execute(q).scalars()]

    def purge(self, *, actor: str, now: datetime | None = None, on_item: Callable[[], None] | None = None) -> list[str]:
        """Delete every item past ``retain_until`` and not on legal hold: erase its wrapped data key from the
        row (crypto-shredding; committed with an ``evidence.purged`` event), then remove its file."""
        now = now or utcnow()
        purged = []
        for item in self.due(now):
            with self.db.write() as s:
                r = s.get(EvidenceRow, item.id)
                # checked again inside the write: a hold placed meanwhile wins
                if r is None or r.status != "preserved" or r.legal_hold or r.retain_until > now:
                    continue
                blob = r.blob
                r.wrapped_key = None
                r.status = "purged"
                r.purged_at = utcnow()
                events.append(
                    s,
                    "evidence.purged",
                    actor=actor,
                    subject=("evidence", r.id),
                    payload={
                        "sha256": r.sha256,
                        "blob": blob,
                        "retain_until": r.retain_until.isoformat(),
                        "case_id": r.case_id,
                    },
                )
            if blob:
                self.store.delete(blob)
            elif self.file_store is not None:
                self.file_store.unspool(item.id)
            purged.append(item.id)
            if on_item is not None:
                on_item()
        return purged

    def set_hold(self, item_ids: list[str], *, hold: bool, actor: str, reason: str) -> int:
        """Place (or release) a legal hold on items: a held item is never purged. An event per item."""
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("a legal hold needs a reason", code="reason_required")
        n = 0
        with self.db.write() as s:
            for item_id in item_ids:
                r = s.get(EvidenceRow, item_id)
                if r is None:
                    raise NotFound(f"evidence item {item_id!r} not found", code="evidence_not_found")
                if r.legal_hold != hold:
                    r.legal_hold = hold
                    n += 1
                    events.append(
                        s,
                        "evidence.hold" if hold else "evidence.hold_released",
                        actor=actor,
                        subject=("evidence", r.id),
                        payload={"reason": reason, "case_id": r.case_id},
                    )
        return n

    # -- key rotation ------------------------------------------------------------------------------
    def rotate(
        self, new: MasterKey, old: list[MasterKey], *, actor: str, on_item: Callable[[], None] | None = None
    ) -> tuple[int, list[dict[str, str]]]:
        """Re-wrap every data key under ``new`` (files are untouched: only the 60-byte wrapped keys change).

        Items already wrapped by ``new`` are skipped, so an interrupted run is resumed by running it again.
        Returns (re-wrapped, failures)."""
        by_id = {k.id: k for k in old}
        done, failures = 0, []
        q = select(EvidenceRow).where(
            EvidenceRow.wrapped_key.is_not(None), or_(EvidenceRow.key_id != new.id, EvidenceRow.key_id.is_(None))
        )
        for batch in self._batches(q):
            changes = []
            for r in batch:
                k = by_id.get(r.key_id or "")
                try:
                    if k is None:
                        raise EvidenceKeyError(
                            f"evidence item {r.id} is wrapped by key {r.key_id}, which was not given"
                        )
                    changes.append((r.id, new.wrap(k.unwrap(cast(bytes, r.wrapped_key), r.id), r.id)))
                except EvidenceKeyError as exc:
                    failures.append({"item_id": r.id, "code": exc.code, "message": exc.message})
                if on_item is not None:
                    on_item()
            with self.db.write() as s:
                for item_id, wrapped in changes:
                    s.execute(
                        update(EvidenceRow)
                        .where(EvidenceRow.id == item_id, EvidenceRow.wrapped_key.is_not(None))
                        .values(wrapped_key=wrapped, key_id=new.id)
                    )
            done += len(changes)
        with self.db.write() as s:
            events.append(
                s,
                "evidence.key_rotated",
                actor=actor,
                payload={"to": new.id, "from": sorted(by_id), "rewrapped": done, "failed": len(failures)},
            )
            for f in failures:
                events.append(s, "evidence.key_error", actor=actor, subject=("evidence", f["item_id"]), payload=f)
        return done, failures


class EvidenceGone(SafeguardError):
    """The item holds no bytes (a hash-only scan's, or purged)."""

    code = "evidence_gone"
    status = 410


def case_items(session: Session, case_id: int) -> list[EvidenceItem]:
    """A case's items: those preserved for it and those of its decisions (oldest first). Needs no key."""
    of_case = select(CaseItem.decision_id).where(CaseItem.case_id == case_id)
    q = (
        select(EvidenceRow)
        .where(or_(EvidenceRow.case_id == case_id, EvidenceRow.decision_id.in_(of_case)))
        .order_by(EvidenceRow.preserved_at, EvidenceRow.id)
    )
    return [EvidenceItem.of(r) for r in session.execute(q).scalars()]
