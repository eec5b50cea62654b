"""Grooming tables: conversation state, sender state, and the per-message ledger for idempotency.

State rows hold the small JSON documents from :mod:`.state` (no message text beyond evidence
snippets). The ledger keeps, per platform message id, a digest of what was sent and the answer we
gave, so a retried request gets the same answer (idempotency) and a reused id with different content
is refused. Rows idle past the TTL are treated as absent and removed by :func:`purge_expired`.

State rows carry a ``version``: every write is ``UPDATE ... WHERE version = <the version read>``, so a
process that wrote from a stale copy (its in-process cache, or a read another process overtook)
changes nothing, notices, and reloads. A new row starts at a random version, so a row purged and
created again never repeats a version that a cache may still hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.models import Base, UTCDateTime, utcnow


class GroomingConversationRow(Base):
    __tablename__ = "grooming_conversations"
    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    risk: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class GroomingUserRow(Base):
    __tablename__ = "grooming_users"
    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    risk: Mapped[float] = mapped_column(Float, default=0.0, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class GroomingMessageRow(Base):
    __tablename__ = "grooming_messages"
    __table_args__ = (Index("ix_grooming_messages_created", "created_at"),)
    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[float] = mapped_column(Float)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
