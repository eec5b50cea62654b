"""SQLAlchemy 2 models. Every schema change is an Alembic migration in ``store/migrations``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# BIGINT primary keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


#: the tenant of keys, decisions and streams made before tenants existed, and of keys made without one
DEFAULT_TENANT = "default"


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the platform the key acts for; its decisions and streams are that tenant's (migration 0007)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)


class Bank(Base):
    __tablename__ = "banks"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(32), default="csam")
    default_category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    shareable: Mapped[bool] = mapped_column(Boolean, default=False)
    dihedral: Mapped[bool] = mapped_column(Boolean, default=False)
    thresholds: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    review_thresholds: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BankEntry(Base):
    __tablename__ = "bank_entries"
    __table_args__ = (
        # its index answers every lookup by value (they all name the bank); a second index on
        # (signal_type, value) cost a third of a bulk import and served no query (migration 0006)
        UniqueConstraint("bank_id", "signal_type", "value", name="uq_entry_bank_signal_value"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(512))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    added_by: Mapped[str] = mapped_column(String(200), default="")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    opinion: Mapped[str] = mapped_column(String(16), default="none")  # latest: none/confirmed/disputed
    # a sudden flood of distinct uploads matched it (banks/quality.py): review, not block, until released
    surge_quarantined: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class EntryOpinion(Base):
    __tablename__ = "entry_opinions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("bank_entries.id", ondelete="CASCADE"), index=True)
    opinion: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EntryStats(Base):
    """Per-entry quality figures (banks/quality.py): written in batches off the match path."""

    __tablename__ = "entry_stats"
    __table_args__ = (Index("ix_entry_stats_bank", "bank_id", "matches"),)
    entry_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bank_entries.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    bank_id: Mapped[int] = mapped_column(BigInteger)
    matches: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    distinct_uploads: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # HyperLogLog estimate
    sketch: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # the HyperLogLog registers
    confirmations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disputes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    first_match_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_match_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    quarantined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    quarantine_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class EntrySurge(Base):
    """The distinct uploads (by SHA-256) an entry matched within the surge window; pruned as it slides."""

    __tablename__ = "entry_surge"
    __table_args__ = (Index("ix_entry_surge_seen", "seen_at"),)
    entry_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    upload: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EntryChange(Base):
    """Append-only log of bank changes; every process's index follows it by ``id``."""

    __tablename__ = "entry_changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_id: Mapped[int] = mapped_column(BigInteger, index=True)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    op: Mapped[str] = mapped_column(String(16))  # range (new entries first..last) / entry / bank
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DecisionRow(Base):
    __tablename__ = "decisions"
    # a platform key lists its own tenant's decisions, newest first (GET /v1/decisions)
    __table_args__ = (Index("ix_decisions_tenant_created", "tenant", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    verdict: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="done")  # pending (async) / done / failed
    content_kind: Mapped[str] = mapped_column(String(16))
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    policy_version: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT)


class Case(Base):
    """The unit of human work (cases/service.py). The ``ix_case_list_*`` indexes end with (priority, id),
    the keyset order of ``GET /v1/cases`` (migration 0010)."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_case_subject", "subject_kind", "subject_id", "status"),
        Index("ix_case_list_status", "status", "priority", "id"),
        Index("ix_case_list_queue", "queue", "status", "priority", "id"),
        Index("ix_case_list_assignee", "assignee", "status", "priority", "id"),
        Index("ix_case_list_all", "priority", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[int] = mapped_column(Integer, default=2)  # 0 highest
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    queue: Mapped[str] = mapped_column(String(16), default="csam", server_default="csam")
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    report_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # a first decision waiting for a second, different reviewer (SAFEGUARD_REVIEW_SECOND_OPINION)
    pending_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pending_category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pending_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    report_status: Mapped[str] = mapped_column(String(16), default="none", server_default="none")  # none / ready


class CaseDecision(Base):
    """Every review decision on a case, the superseded ones included (first of two, escalations, overrides)."""

    __tablename__ = "case_decisions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    stage: Mapped[str] = mapped_column(String(16))  # final / first / disagreed / escalated / override
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who logs in (moderator, lead, auditor, admin): argon2id password and TOTP (accounts/)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(200))
    password_temporary: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[str] = mapped_column(String(200))  # sealed (safeguard.secrets, purpose "totp:<name>")
    totp_last_step: Mapped[int] = mapped_column(BigInteger, default=0)  # a TOTP code is accepted once
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserSession(Base):
    """A login session; ``id`` is the SHA-256 of the cookie's token (the token itself is never stored)."""

    __tablename__ = "user_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UserReport(Base):
    """What a platform's user reported (``POST /v1/user-reports``), and the case it joined."""

    __tablename__ = "user_reports"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reporter_id: Mapped[str] = mapped_column(String(200))
    reported_user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text, default="")
    signals: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reported_by: Mapped[str] = mapped_column(String(200))


class CaseItem(Base):
    __tablename__ = "case_items"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(Text)  # sealed (safeguard.secrets), never the plain secret
    events: Mapped[list[str]] = mapped_column(JSON, default=list)  # empty: all
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """Durable outbox: written in the same transaction as the decision, delivered by a worker."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_endpoint", "endpoint_id", "status"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str] = mapped_column(String(64))
    endpoint_url: Mapped[str] = mapped_column(String(2000))
    # the webhook_endpoints row whose (sealed) secret signs the delivery; None: the default endpoint
    # of the settings (SAFEGUARD_WEBHOOK_URL / SAFEGUARD_WEBHOOK_SECRET)
    endpoint_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending / delivered / dead / cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Event(Base):
    """Append-only, hash-chained record of every decision, action and human access."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_event_subject", "subject_kind", "subject_id", "seq"),)
    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subject_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class EventChainHead(Base):
    """One row: the chain's head, locked by writers so that appends are serialised across processes."""

    __tablename__ = "event_chain_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class EventCheckpoint(Base):
    """A signed head of the event log (``safeguard.ledger``): the chain up to ``seq`` ends in ``hash``."""

    __tablename__ = "event_checkpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(100))  # base64 of the raw Ed25519 key, for reading only
    signature: Mapped[str] = mapped_column(String(200))  # base64


class EvidenceItem(Base):
    """One preserved piece of evidence (``safeguard.evidence``): the upload's bytes, encrypted under their own
    data key, stored by the SHA-256 of the ciphertext (``blob``); the data key is kept here wrapped by the
    master key, and erased at purge (crypto-shredding)."""

    __tablename__ = "evidence_items"
    __table_args__ = (Index("ix_evidence_due", "status", "retain_until"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # preserved / hash_only / purged
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    blob: Mapped[str | None] = mapped_column(String(64), nullable=True)  # storage address: SHA-256 of the file
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the master key that wraps it
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    preserved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Report(Base):
    """A report to law enforcement (``safeguard.reports``): one per reported user of a confirmed case, moving
    draft → approved → submitting → submitted → files_uploaded → finished (or retracted / failed). ``step`` is
    the last step NCMEC acknowledged, so a restarted submitter resumes there (migration 0011)."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("case_id", "reported_user", name="uq_report_case_user"),
        Index("ix_report_state", "state", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger, index=True)
    reported_user: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="draft")
    step: Mapped[str] = mapped_column(String(120), default="")
    category: Mapped[str] = mapped_column(String(64))
    transport: Mapped[str] = mapped_column(String(32), default="ncmec")
    decision_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    item_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    ncmec_report_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # item id -> {file_id, fileinfo}
    validation: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_step: Mapped[str | None] = mapped_column(String(32), nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StreamRow(Base):
    """One row per watched live stream, so state survives the watching thread and is visible to every
    API process (``GET /v1/streams/{id}`` may land on a process that is not watching). Its states and
    the dict the API shows are in ``safeguard.workers.streams_store``."""

    __tablename__ = "streams"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform_stream_id: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    user_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    frames_sampled: Mapped[int] = mapped_column(Integer, default=0)
    last_frame_time: Mapped[float | None] = mapped_column(Float, nullable=True)  # seconds into the stream
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    case_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the tenant of the key that registered it: only that tenant's platform keys see it (migration 0007)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT, index=True)
    key_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the API key that registered it


class Statement(Base):
    """A DSA statement of reasons (``safeguard.dsa``), written in the decision's transaction for a restrictive
    decision on a user in the EU/EEA; ``body`` is the Transparency Database's JSON as sent. The submitter moves
    it pending → sending → submitted (or invalid, left for a person); ``batch`` names the attempt in flight,
    so a restart resends it and the database's duplicate-``puid`` answer counts as done (migration 0012)."""

    __tablename__ = "dsa_statements"
    __table_args__ = (
        UniqueConstraint("puid", name="uq_dsa_statements_puid"),
        Index("ix_statement_state", "state", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    puid: Mapped[str] = mapped_column(String(500))
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    territory: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending / sending / submitted / invalid
    batch: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    uuid: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the Transparency Database's id
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeShare(Base):
    """A bank shared with a ``partner`` API key: the key may read the bank's feed (migration 0012)."""

    __tablename__ = "exchange_shares"
    __table_args__ = (UniqueConstraint("bank_id", "key_id", name="uq_exchange_share"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("banks.id", ondelete="CASCADE"))
    key_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeSubscription(Base):
    """A partner's feed followed into a local bank; ``cursor`` moves only in the transaction that applies
    the page it ends (``safeguard.exchange.follower``)."""

    __tablename__ = "exchange_subscriptions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    remote_bank: Mapped[str] = mapped_column(String(200))
    key_sealed: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(String(200))  # base64 of the partner's raw Ed25519 key
    bank_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("banks.id", ondelete="CASCADE"))
    cursor: Mapped[str] = mapped_column(String(200), default="", server_default="")
    entries_applied: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    pages_applied: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeOpinionOut(Base):
    """A moderator's opinion on a subscribed entry, queued (in the opinion's transaction) for its source."""

    __tablename__ = "exchange_opinion_outbox"
    __table_args__ = (Index("ix_exchange_outbox_status", "status", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[int] = mapped_column(BigInteger)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(512))
    opinion: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending / sent / dropped
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ExchangeReceivedOpinion(Base):
    """An opinion a partner sent back, by the partner's own id for it: received once, however often sent."""

    __tablename__ = "exchange_received_opinions"
    __table_args__ = (UniqueConstraint("key_id", "remote_id", name="uq_exchange_received_opinion"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[int] = mapped_column(BigInteger)
    remote_id: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
