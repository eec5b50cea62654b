"""Live streams' states and the dict the API shows of a ``streams`` row (the table is
``safeguard.store.models.StreamRow``, with every other table)."""

from __future__ import annotations

from typing import Any

from safeguard.store.models import StreamRow

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "StreamRow", "stream_to_dict"]

#: watching states, and the final ones a watcher ends in
ACTIVE_STATES = ("starting", "watching", "reconnecting")
FINAL_STATES = ("terminated", "ended", "stopped", "failed")


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
