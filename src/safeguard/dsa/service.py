"""Reading statements of reasons: one keyset page at a time, oldest first (``GET /v1/statements``,
``safeguard statements list``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from safeguard.errors import InvalidInput
from safeguard.store import Database, pagination
from safeguard.store.models import Statement

__all__ = ["STATES", "list_statements", "statement_dict"]

STATES = ("pending", "sending", "submitted", "invalid")


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
        q = q.where(Statement.id > pagination.id_after(cursor, "s"))
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
    page, nxt = pagination.cut(rows, limit, lambda r: ("s", r.id))
    return [statement_dict(r) for r in page], nxt
