"""Reading statements of reasons: one keyset page at a time, oldest first (``GET /v1/statements``,
``safeguard statements list``)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from safeguard.errors import InvalidInput
from safeguard.store import Database
from safeguard.store.models import Statement

__all__ = ["STATES", "list_statements", "statement_dict"]

STATES = ("pending", "sending", "submitted", "invalid")


def _encode(statement_id: int) -> str:
    return base64.urlsafe_b64encode(f"s:{statement_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, num = raw.partition(":")
        i = int(num)
        if tag != "s" or not 0 <= i < 2**63:
            raise ValueError(raw)
        return i
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this API gave out", code="invalid_cursor") from exc


def statement_dict(r: Statement) -> dict[str, Any]:
    return {
        "id": r.id,
        "puid": r.puid,
        "decision_id": r.decision_id,
        "tenant": r.tenant,
        "territory": r.territory,
        "created_at": r.created_at.isoformat(),
        "state": r.state,
        "attempts": r.attempts,
        "uuid": r.uuid,
        "errors": r.errors,
        "submitted_at": r.submitted_at.isoformat() if r.submitted_at else None,
        "statement": r.body,
    }


def list_statements(
    db: Database,
    *,
    since: datetime | None = None,
    cursor: str | None = None,
    state: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """Statements created at or after ``since``, in id order after ``cursor``; and the next page's cursor."""
    q = select(Statement).order_by(Statement.id).limit(limit + 1)
    if since is not None:
        q = q.where(Statement.created_at >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
    if cursor:
        q = q.where(Statement.id > _decode(cursor))
    if state:
        states = [x.strip() for x in state.split(",") if x.strip()]
        bad = [x for x in states if x not in STATES]
        if bad or not states:
            raise InvalidInput(
                f"unknown state {bad[0] if bad else state!r}; use {', '.join(STATES)}", code="invalid_state"
            )
        q = q.where(Statement.state.in_(states))
    with db.read() as s:
        rows = list(s.execute(q).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return [statement_dict(r) for r in rows], (_encode(rows[-1].id) if more and rows else None)
