"""Open a case, or join the subject's active case in the same queue: the one write that detections
(the ``case`` action) and user reports share.

Core statements built once and run on the transaction's connection (store/driver.py): this runs
inside the decision's write for every match, where ORM units of work cost several times the SQL.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, or_, select

from safeguard.cases.model import parse_sla, sla_for
from safeguard.store.driver import Prepared
from safeguard.store.models import Case, CaseItem

CASES = cast(Table, Case.__table__)
CASE_ITEMS = cast(Table, CaseItem.__table__)

_ACTIVE_CASE = (
    select(CASES.c.id, CASES.c.priority, CASES.c.verdict)
    .where(
        CASES.c.subject_kind == bindparam("kind"),
        CASES.c.subject_id == bindparam("sid"),
        or_(CASES.c.status == "open", CASES.c.status == "claimed"),
        CASES.c.queue == bindparam("queue"),
    )
    .order_by(CASES.c.id.desc())
    .limit(1)
)
_INSERT_CASE = CASES.insert().returning(CASES.c.id)
_UPDATE_CASE = (
    CASES.update()
    .where(CASES.c.id == bindparam("case_id"))
    .values(
        priority=bindparam("new_priority"),
        verdict=bindparam("new_verdict"),
        due_at=bindparam("new_due"),
        updated_at=bindparam("now"),
    )
)
_UPDATE_KEEP_DUE = (
    CASES.update()
    .where(CASES.c.id == bindparam("case_id"))
    .values(
        priority=bindparam("new_priority"),
        verdict=bindparam("new_verdict"),
        updated_at=bindparam("now"),
    )
)
_INSERT_ITEM = CASE_ITEMS.insert()
_UPDATE_KEEP_DUE_D = Prepared(_UPDATE_KEEP_DUE)
_ACTIVE_CASE_D, _INSERT_CASE_D, _UPDATE_CASE_D, _INSERT_ITEM_D = map(
    Prepared, (_ACTIVE_CASE, _INSERT_CASE, _UPDATE_CASE, _INSERT_ITEM)
)

_SEVERITY = {"allow": 0, "review": 1, "block": 2}


@functools.lru_cache(maxsize=8)
def _sla(text: str) -> dict[str, tuple[timedelta, ...]]:
    return parse_sla(text)


@dataclass(frozen=True)
class Joined:
    case_id: int
    created: bool
    priority: int
    queue: str


def open_or_join(
    conn: Connection,
    *,
    subject: tuple[str, str],
    queue: str,
    priority: int,
    verdict: str,
    reason: str,
    now: datetime,
    sla: str,
    reports: int = 0,
) -> Joined:
    """The subject's active case in ``queue`` (its priority raised to ``priority`` if higher, its due time
    brought forward to match), or a new one. ``reports`` user reports are added to its count."""
    kind, sid = subject
    table = _sla(sla)
    found = _ACTIVE_CASE_D.first(conn, {"kind": kind, "sid": sid, "queue": queue})
    if found is None:
        row = {
            "subject_kind": kind,
            "subject_id": sid,
            "status": "open",
            "priority": priority,
            "verdict": verdict,
            "reason": reason,
            "opened_at": now,
            "updated_at": now,
            "queue": queue,
            "assignee": None,
            "claim_expires_at": None,
            "due_at": now + sla_for(table, queue, priority),
            "report_count": reports,
            "escalated": False,
            "pending_outcome": None,
            "pending_category": None,
            "pending_by": None,
            "outcome": None,
            "category": None,
            "decided_by": None,
            "decided_at": None,
            "report_status": "none",
        }
        got = _INSERT_CASE_D.first(conn, row)
        if got is None:
            raise RuntimeError("INSERT ... RETURNING gave no row")
        return Joined(int(got[0]), True, priority, queue)
    case_id, old_priority, old_verdict = found
    due = None
    if priority < old_priority:  # raised: the due time of the new priority, counted from the opening
        opened_at, due_at = conn.execute(select(CASES.c.opened_at, CASES.c.due_at).where(CASES.c.id == case_id)).one()
        due = opened_at + sla_for(table, queue, priority)
        if due_at is not None:
            due = min(due, due_at)
    priority = min(old_priority, priority)
    if _SEVERITY.get(verdict, 0) <= _SEVERITY.get(old_verdict, 0):
        verdict = old_verdict
    stmt = _UPDATE_CASE_D if due is not None else _UPDATE_KEEP_DUE_D
    row = {"case_id": case_id, "new_priority": priority, "new_verdict": verdict, "now": now}
    if due is not None:
        row["new_due"] = due
    stmt.executemany(conn, [row])
    if reports:  # user reports only: off the detections' hot path (an SQL expression is no Prepared statement)
        conn.execute(CASES.update().where(CASES.c.id == case_id).values(report_count=CASES.c.report_count + reports))
    return Joined(int(case_id), False, priority, queue)


def add_item(conn: Connection, case_id: int, decision_id: str, summary: dict[str, Any], now: datetime) -> None:
    _INSERT_ITEM_D.executemany(
        conn, [{"case_id": case_id, "decision_id": decision_id, "summary": summary, "created_at": now}]
    )
