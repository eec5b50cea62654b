"""Live streams' states and the view the API shows of a ``streams`` row (the table is
``safeguard.store.models.StreamRow``, with every other table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from safeguard.store.models import StreamRow
from safeguard.store.rowview import from_row, iso_dict

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "StreamInfo", "StreamRow"]

#: watching states, and the final ones a watcher ends in
ACTIVE_STATES = ("starting", "watching", "reconnecting")
FINAL_STATES = ("terminated", "ended", "stopped", "failed")


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A watched stream's state: a watcher's live state (no times), or its row (with them)."""

    id: str
    stream_id: str  # the platform's id for the stream
    url: str
    user_id: str | None
    tenant: str
    status: str
    frames_sampled: int
    last_frame_time: float | None
    findings: list[dict[str, Any]]
    decision_id: str | None
    case_id: int | None
    error: str
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, r: StreamRow) -> StreamInfo:
        return from_row(cls, r, stream_id=r.platform_stream_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; the times only where known (a row's)."""
        d = iso_dict(self)
        for k in ("created_at", "updated_at"):
            if d[k] is None:
                del d[k]
        return d
