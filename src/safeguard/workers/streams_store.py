"""The ``streams`` table: one row per watched live stream, so state survives the watching thread and is
visible to every API process (``GET /v1/streams/{id}`` may land on a process that is not watching)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.models import DEFAULT_TENANT, Base, UTCDateTime, utcnow

#: watching states, and the final ones a watcher ends in
ACTIVE_STATES = ("starting", "watching", "reconnecting")
FINAL_STATES = ("terminated", "ended", "stopped", "failed")


class StreamRow(Base):
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


def stream_to_dict(r: StreamRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "stream_id": r.platform_stream_id,
        "url": r.url,
        "user_id": r.user_id,
        "tenant": r.tenant,
        "status": r.status,
        "frames_sampled": r.frames_sampled,
        "last_frame_time": r.last_frame_time,
        "findings": r.findings,
        "decision_id": r.decision_id,
        "case_id": r.case_id,
        "error": r.error,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }
