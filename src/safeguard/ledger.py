"""What the event log proves: signed checkpoints of its head, and decisions checked against their events.

The hash chain (``safeguard.events``) shows that the log is consistent with itself, but anyone who can
write to the database can edit an event and recompute every later hash and the head. A
**checkpoint** closes that gap: the head (``seq``, ``hash``) and the time, signed with an Ed25519 key
kept outside the database (``SAFEGUARD_SIGNING_KEY_FILE``). A rewrite of any event at or before a
checkpoint's ``seq`` changes the hash at that ``seq``, and nobody without the key can sign a new
checkpoint to match. The service signs one every ``SAFEGUARD_CHECKPOINT_INTERVAL_SECONDS`` (skipped
while the head has not moved) and stores it in ``event_checkpoints``; ``safeguard events checkpoint
--out FILE`` signs one on demand for the operator to keep elsewhere. Signing is per checkpoint, never
per event: the append path is unchanged.

Each ``decision.created`` event carries ``row_digest``: SHA-256 over the canonical JSON of the
``decisions`` row's columns (:data:`DIGEST_COLUMNS`, versioned so that columns can be added without
breaking older digests). :func:`verify` walks the chain once and checks every decision row against
its event: by digest for new decisions, field by field (verdict, reasons, findings, content and user
ids, policy version, status) for decisions recorded before the digest existed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import threading
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Row, Table, func, select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.config import Settings
from safeguard.errors import InvalidInput
from safeguard.secrets import key_file
from safeguard.store import Database
from safeguard.store.models import DecisionRow, Event, EventChainHead, EventCheckpoint, utcnow

__all__ = [
    "DIGEST_COLUMNS",
    "Checkpoint",
    "CheckpointTimer",
    "Report",
    "Signer",
    "checkpoint",
    "decision_digest",
    "load_checkpoints",
    "load_public_key",
    "verify",
]

log = logging.getLogger(__name__)
FORMAT = "safeguard-event-checkpoint/1"
#: the decisions columns each digest version covers; a new column gets a new version, old digests stay valid
_DIGEST_V1 = (
    "id",
    "status",
    "created_at",
    "verdict",
    "content_kind",
    "content_id",
    "user_id",
    "policy_version",
    "case_id",
    "body",
)
DIGEST_COLUMNS: dict[int, tuple[str, ...]] = {
    1: _DIGEST_V1,
    2: (*_DIGEST_V1, "tenant"),  # the tenant of the key that made the decision (migration 0007_tenants)
}
DIGEST_VERSION = 2
MAX_PROBLEMS = 100
FIRST_CHECKPOINT_SECONDS = 60.0
DECISIONS = cast(Table, DecisionRow.__table__)


# -- decision digests -----------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def decision_digest(row: Mapping[str, Any], version: int = DIGEST_VERSION) -> str:
    """``"<version>:<sha256 hex>"`` of a decisions row (a mapping of column name to value): SHA-256 of
    the canonical JSON list of the version's columns' values, in :data:`DIGEST_COLUMNS` order.

    On every recorded decision: a list, not a dict (no key sort at the top), and one encode of the
    body, which is most of the cost (13-15 us per decision on a loaded 2-core machine; docs/security.md).
    """
    body = events.canonical([_plain(row[c]) for c in DIGEST_COLUMNS[version]])
    return f"{version}:{hashlib.sha256(body.encode()).hexdigest()}"


# -- keys and checkpoints -------------------------------------------------------------------------
def signing_key_path(settings: Settings) -> Path:
    return Path(settings.signing_key_file or Path(settings.data_dir) / "keys" / "signing.key")


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def public_key_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """A public key from PEM (``safeguard events export-public-key``) or the base64 of its 32 raw bytes."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput(f"not an Ed25519 public key: {exc}", code="invalid_public_key") from exc


class Signer:
    """The Ed25519 key that signs checkpoints, read from (or created in) its file."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        def generate() -> bytes:
            return Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )

        pem = key_file(signing_key_path(settings), generate)
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput("the signing key file does not hold an Ed25519 key", code="invalid_signing_key")
        return cls(key)

    def sign_bytes(self, message: bytes) -> bytes:
        """An Ed25519 signature over ``message`` (exported packages: safeguard.reports.package)."""
        return self._private.sign(message)

    def signed_zip(self, files: dict[str, bytes]) -> bytes:
        """A zip of ``files`` (sorted by name) with ``manifest.sha256`` (``sha256sum -c`` reads it), its
        Ed25519 signature ``manifest.sig`` and ``signer.pem``: evidence exports and NCA packages, checkable
        without Safeguard (docs/reporting.md)."""
        manifest = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in sorted(files.items())).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, blob in sorted(files.items()):
                z.writestr(name, blob)
            z.writestr("manifest.sha256", manifest)
            z.writestr("manifest.sig", self.sign_bytes(manifest))
            z.writestr("signer.pem", public_key_pem(self.public))
        return buf.getvalue()

    def sign(self, seq: int, hash_: str, time: datetime) -> Checkpoint:
        cp = Checkpoint(
            seq=seq,
            hash=hash_,
            time=_plain(time),
            key_id=self.key_id,
            public_key=base64.b64encode(_raw(self.public)).decode(),
            signature="",
        )
        return cp.with_signature(base64.b64encode(self._private.sign(cp.message())).decode())


@dataclass(frozen=True)
class Checkpoint:
    """A signed head: the chain up to ``seq`` ends in ``hash``. The JSON an operator keeps elsewhere."""

    seq: int
    hash: str
    time: str
    key_id: str
    public_key: str  # informative only: signatures are checked against keys the verifier trusts
    signature: str
    source: str = field(default="", compare=False)  # where it came from (a file, the table), for reports

    def message(self) -> bytes:
        """The bytes signed: the format name and the canonical JSON of what the checkpoint asserts."""
        claim = {"format": FORMAT, "seq": self.seq, "hash": self.hash, "time": self.time, "key_id": self.key_id}
        return events.canonical(claim).encode()

    def with_signature(self, signature: str) -> Checkpoint:
        return Checkpoint(self.seq, self.hash, self.time, self.key_id, self.public_key, signature, self.source)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, d: Any, source: str = "") -> Checkpoint:
        try:
            if not isinstance(d, dict) or d.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} object")
            seq, hash_ = d["seq"], d["hash"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError("seq must be a non-negative integer")
            if not isinstance(hash_, str) or len(hash_) != 64 or not all(c in "0123456789abcdef" for c in hash_):
                raise ValueError("hash must be 64 lowercase hex digits")
            time, kid, public, signature = (d[k] for k in ("time", "key_id", "public_key", "signature"))
            if not all(isinstance(v, str) for v in (time, kid, public, signature)):
                raise ValueError("time, key_id, public_key and signature must be strings")
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"{source or 'checkpoint'}: {exc}", code="invalid_checkpoint") from exc
        return cls(seq, hash_, time, kid, public, signature, source=source)

    @classmethod
    def from_row(cls, row: EventCheckpoint) -> Checkpoint:
        return cls(
            row.seq,
            row.hash,
            _plain(row.created_at),
            row.key_id,
            row.public_key,
            row.signature,
            source=f"stored checkpoint {row.id}",
        )

    def signed_by(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.signature, validate=True), self.message())
        except (InvalidSignature, ValueError, binascii.Error):
            return False
        return True


def load_checkpoints(path: Path) -> list[Checkpoint]:
    """The checkpoints in a file: one JSON object (``events checkpoint --out``) or a JSON list of them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read a checkpoint: {exc}", code="invalid_checkpoint") from exc
    items = data if isinstance(data, list) else [data]
    return [
        Checkpoint.from_dict(d, source=f"{path}[{i}]" if len(items) > 1 else str(path)) for i, d in enumerate(items)
    ]


def current_head(s: Session) -> tuple[int, str]:
    head = s.execute(select(EventChainHead.seq, EventChainHead.hash).where(EventChainHead.id == 1)).first()
    return (int(head.seq), str(head.hash)) if head is not None else (0, events.GENESIS)


def checkpoint(db: Database, signer: Signer, *, store: bool = True) -> Checkpoint:
    """Sign the chain's current head; store it in ``event_checkpoints`` unless ``store`` is False."""
    with db.read() as s:
        seq, hash_ = current_head(s)
    now = utcnow()
    cp = signer.sign(seq, hash_, now)
    if store:
        with db.write() as s:
            s.add(
                EventCheckpoint(
                    seq=seq,
                    hash=hash_,
                    created_at=now,
                    key_id=cp.key_id,
                    public_key=cp.public_key,
                    signature=cp.signature,
                )
            )
    return cp


def checkpoint_if_due(db: Database, signer: Signer, interval: float) -> Checkpoint | None:
    """The timer's checkpoint: skipped when the head has not moved since the newest stored one, or when
    another process stored one within the last half interval (every API process runs a timer)."""
    with db.read() as s:
        seq, hash_ = current_head(s)
        newest = s.execute(select(EventCheckpoint).order_by(EventCheckpoint.id.desc()).limit(1)).scalar_one_or_none()
    if newest is not None:
        if (newest.seq, newest.hash) == (seq, hash_):
            return None
        if newest.created_at > utcnow() - timedelta(seconds=interval / 2):
            return None
    return checkpoint(db, signer)


class CheckpointTimer:
    """Signs the head every ``interval`` seconds in a daemon thread (started beside the outbox worker)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.interval = settings.checkpoint_interval_seconds
        self._signer: Signer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> Checkpoint | None:
        if self._signer is None:
            self._signer = Signer.from_settings(self.settings)
        return checkpoint_if_due(self.db, self._signer, self.interval)

    def run_forever(self) -> None:
        # the first one a minute after start at the latest: a service restarted more often than the
        # interval still signs (checkpoint_if_due skips it if another process signed recently)
        wait = min(self.interval, FIRST_CHECKPOINT_SECONDS)
        while not self._stop.wait(wait):
            wait = self.interval
            try:
                self.tick()
            except Exception:  # a missing key directory or a database hiccup: log, try again next time
                log.exception("signing an event log checkpoint failed")

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self.run_forever, name="safeguard-checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# -- verification ---------------------------------------------------------------------------------
@dataclass
class Report:
    chain: events.VerifyResult
    checkpoints_checked: int = 0
    decisions_checked: int = 0
    decisions_by_fields: int = 0  # recorded before row digests: checked field by field
    decisions_without_event: int = 0  # pending or failed asynchronous scans: no decision event yet
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more_problems += 1


#: what a decision event recorded before ``row_digest`` still says about its row
_LEGACY_FIELDS = ("verdict", "content_kind", "content_id", "user_id", "policy_version")


def _check_decision(report: Report, ev: Event, row: Row[Any] | None) -> None:
    """The row must say what its event says: every field the event carries, and (for decisions
    recorded with one) the digest of the whole row."""
    did = ev.subject_id
    if row is None:
        report.problem(f"decision {did}: recorded by event seq {ev.seq} but its row is missing")
        return
    report.decisions_checked += 1
    payload = ev.payload
    if not isinstance(payload, dict):
        report.problem(f"decision {did}: event seq {ev.seq} has no payload object")
        return
    body = row.body if isinstance(row.body, dict) else {}
    differ = [c for c in _LEGACY_FIELDS if payload.get(c) != getattr(row, c)]
    differ += [f"body.{k}" for k in ("verdict", "reasons", "findings") if payload.get(k) != body.get(k)]
    digest = payload.get("row_digest")
    if digest is None:
        report.decisions_by_fields += 1
        if row.status != "done":
            differ.append("status")
    else:
        version = str(digest).split(":", 1)[0]
        if not version.isdigit() or int(version) not in DIGEST_COLUMNS:
            differ.append(f"row_digest (unknown version {version!r})")
        else:
            columns = {c: getattr(row, c) for c in DIGEST_COLUMNS[int(version)]}
            if decision_digest(columns, int(version)) != digest:
                differ.append("row_digest")
    if differ:
        report.problem(f"decision {did}: row does not match its event seq {ev.seq} ({', '.join(differ)} differ)")


class _Walk:
    """The checks made on the chain's single pass: checkpoints by seq, decision events in batches."""

    BATCH = 1000

    def __init__(self, s: Session, report: Report, by_seq: dict[int, list[Checkpoint]]) -> None:
        self.s = s
        self.report = report
        self.by_seq = by_seq
        self.pending: list[Event] = []

    def __call__(self, ev: Event) -> None:
        for cp in self.by_seq.pop(ev.seq, ()):
            self.report.checkpoints_checked += 1
            if cp.hash != ev.hash:
                self.report.problem(
                    f"event seq {ev.seq} does not match {cp.source} (signed {cp.time}): the log was rewritten at"
                    " or before this event"
                )
        if ev.type == "decision.created" and ev.subject_kind == "decision" and ev.subject_id:
            self.pending.append(ev)
            if len(self.pending) >= self.BATCH:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        ids = [ev.subject_id for ev in self.pending]
        # plain rows, no ORM objects: a third of the time of loading DecisionRow instances
        q = select(*DECISIONS.columns).where(DECISIONS.c.id.in_(ids))
        rows = {r.id: r for r in self.s.execute(q)}
        for ev in self.pending:
            _check_decision(self.report, ev, rows.get(str(ev.subject_id)))
        self.pending.clear()
        self.s.expunge_all()  # bounded memory over millions of decisions


def verify(
    s: Session,
    *,
    checkpoints: Iterable[Checkpoint] = (),
    trusted: Iterable[Ed25519PublicKey] = (),
    stored: bool = True,
) -> Report:
    """Check the chain, the chain against every checkpoint (those given and, if ``stored``, those in the
    table; each one's signature against the ``trusted`` keys), and every decision row against its event."""
    report = Report(chain=events.VerifyResult(True, 0))
    keys = {key_id(k): k for k in trusted}
    given = list(checkpoints)
    if stored:
        given += [Checkpoint.from_row(r) for r in s.scalars(select(EventCheckpoint).order_by(EventCheckpoint.id))]
    by_seq: dict[int, list[Checkpoint]] = {}
    for cp in given:
        key = keys.get(cp.key_id)
        if key is None:
            why = "no public key given to check it" if not keys else f"signed by key {cp.key_id}, which is not trusted"
            report.problem(f"{cp.source}: {why}")
        elif not cp.signed_by(key):
            report.problem(f"{cp.source}: the signature is not valid: the checkpoint was forged or altered")
        elif cp.seq == 0:
            report.checkpoints_checked += 1
            if cp.hash != events.GENESIS:
                report.problem(f"{cp.source}: seq 0 must carry the genesis hash")
        else:
            by_seq.setdefault(cp.seq, []).append(cp)
    walk = _Walk(s, report, by_seq)
    report.chain = events.verify(s, visit=walk)
    walk.flush()
    if report.chain.ok:
        for seq, cps in sorted(walk.by_seq.items()):
            for cp in cps:
                report.problem(
                    f"{cp.source} (signed {cp.time}) covers seq {seq}, but the chain ends at seq "
                    f"{report.chain.checked}: events were removed"
                )
    _rows_without_events(s, report)
    return report


def _rows_without_events(s: Session, report: Report) -> None:
    """Finished rows no event records, and decisions recorded twice: in SQL, not in memory (the log
    may hold many millions of decisions)."""
    recorded = select(Event.subject_id).where(
        Event.type == "decision.created", Event.subject_kind == "decision", Event.subject_id.is_not(None)
    )
    twice = (
        select(Event.subject_id, func.count())
        .where(Event.type == "decision.created", Event.subject_kind == "decision")
        .group_by(Event.subject_id)
        .having(func.count() > 1)
        .order_by(Event.subject_id)
    )
    for did, n in s.execute(twice):
        report.problem(f"decision {did}: recorded by {n} decision.created events")
    q = select(DecisionRow.id, DecisionRow.status).where(DecisionRow.id.not_in(recorded)).order_by(DecisionRow.id)
    for did, status in s.execute(q):
        if status in ("pending", "failed"):  # an asynchronous scan that has not finished (or never will)
            report.decisions_without_event += 1
        else:
            report.problem(f"decision {did}: row (status {status}) has no decision.created event")
