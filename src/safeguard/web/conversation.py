"""The conversation around grooming evidence, for the case page.

The grooming detector keeps no message text beyond each finding's evidence snippets (see
``detectors/grooming/state.py``), but its per-message ledger (``grooming_messages``) records, for every
message it scored, the sender, the time, the indicators it hit and the stage they belong to. So a
reviewer sees, around each evidence message, the messages before and after it: who wrote when, with
their stage labels; the text only where it was kept (the evidence snippets). Ledger rows idle past
``SAFEGUARD_GROOMING_TTL_DAYS`` are gone, and so is the context they gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from safeguard.detectors.grooming.store import GroomingMessageRow
from safeguard.store import Database

__all__ = ["AROUND", "ContextMessage", "conversation_context"]

AROUND = 3  # messages shown before and after each evidence message
MAX_EVIDENCE = 12  # evidence messages given context per case page (the detector keeps at most 12 per finding)


@dataclass(frozen=True)
class ContextMessage:
    message_id: str
    sender_id: str
    sent_at: datetime
    indicators: tuple[str, ...]
    top_stage: str | None
    risk: float | None
    text: str | None  # the snippet, where the detector kept one (evidence messages only)
    evidence: bool  # this is the evidence message itself


def conversation_context(
    db: Database, conversation_id: str, evidence: list[dict[str, Any]], around: int = AROUND
) -> dict[str, list[ContextMessage]]:
    """For each evidence message (``{"message_id", "snippet", ...}``), the ledger's messages from ``around``
    before it to ``around`` after it, oldest first; messages the ledger no longer holds are left out."""
    snippets = {str(e["message_id"]): str(e.get("snippet") or "") for e in evidence if e.get("message_id")}
    wanted = list(snippets)[:MAX_EVIDENCE]
    out: dict[str, list[ContextMessage]] = {}
    if not wanted:
        return out
    msg = GroomingMessageRow
    with db.read() as s:
        for mid in wanted:
            row = s.get(msg, (conversation_id, mid))
            if row is None:
                continue
            conv = msg.conversation_id == conversation_id
            before = s.execute(
                select(msg)
                .where(conv, (msg.sent_at < row.sent_at) | ((msg.sent_at == row.sent_at) & (msg.message_id < mid)))
                .order_by(msg.sent_at.desc(), msg.message_id.desc())
                .limit(around)
            ).scalars()
            after = s.execute(
                select(msg)
                .where(conv, (msg.sent_at > row.sent_at) | ((msg.sent_at == row.sent_at) & (msg.message_id > mid)))
                .order_by(msg.sent_at, msg.message_id)
                .limit(around)
            ).scalars()
            rows = [*reversed(list(before)), row, *after]
            out[mid] = [_message(r, snippets, r.message_id == mid) for r in rows]
    return out


def _message(r: GroomingMessageRow, snippets: dict[str, str], is_evidence: bool) -> ContextMessage:
    result = r.result or {}
    risk = result.get("conversation_risk")
    return ContextMessage(
        message_id=r.message_id,
        sender_id=str(result.get("sender_id") or "?"),
        sent_at=datetime.fromtimestamp(r.sent_at, UTC),
        indicators=tuple(str(i) for i in result.get("indicators") or ()),
        top_stage=result.get("top_stage"),
        risk=float(risk) if isinstance(risk, int | float) else None,
        text=snippets.get(r.message_id) or None,
        evidence=is_evidence,
    )
