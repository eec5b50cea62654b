"""Drafting reports from a confirmed case, in the decision's own transaction (CaseService calls this).

One report per reported user (as NCMEC asks), bundling all of that user's decisions and vault items from
the case. A decision without a user id is reported under the case's subject when the subject is a user,
else under ``unknown``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.evidence.vault import case_items
from safeguard.store.models import Case, CaseItem, DecisionRow, Report, utcnow

UNKNOWN_USER = "unknown"


def draft_for_case(s: Session, c: Case, *, actor: str) -> list[int]:
    """Create (or refresh, while still a draft) a report per reported user of a confirmed case; the ids."""
    if c.outcome != "confirmed" or not c.category:
        return []
    rows = s.execute(
        select(CaseItem.decision_id, CaseItem.created_at, DecisionRow.user_id)
        .outerjoin(DecisionRow, DecisionRow.id == CaseItem.decision_id)
        .where(CaseItem.case_id == c.id)
        .order_by(CaseItem.id)
    ).all()
    fallback = c.subject_id if c.subject_kind == "user" else UNKNOWN_USER
    users: dict[str, list[str]] = defaultdict(list)
    first_seen: dict[str, datetime] = {}
    for decision_id, created_at, user_id in rows:
        user = user_id or fallback
        users[user].append(decision_id)
        first_seen[user] = min(first_seen.get(user, created_at), created_at)
    if not users:
        users[fallback] = []
    items = case_items(s, c.id)
    now = utcnow()
    out: list[int] = []
    for user, decision_ids in users.items():
        item_ids = [i.id for i in items if i.decision_id in decision_ids or (i.case_id == c.id and len(users) == 1)]
        r = s.execute(select(Report).where(Report.case_id == c.id, Report.reported_user == user)).scalar()
        if r is not None and r.state != "draft":
            out.append(r.id)  # already approved or sent: a re-decision does not change what was approved
            continue
        fresh = r is None
        if r is None:
            r = Report(
                case_id=c.id, reported_user=user, state="draft", step="", created_at=now, files={}, validation=[]
            )
            s.add(r)
        r.category = c.category
        r.decision_ids = decision_ids
        r.item_ids = item_ids
        r.confirmed_by = c.decided_by
        r.confirmed_at = c.decided_at
        r.matched_at = first_seen.get(user, c.opened_at)
        r.updated_at = now
        s.flush()
        events.append(
            s,
            "report.drafted" if fresh else "report.redrafted",
            actor=actor,
            subject=("report", str(r.id)),
            payload={"case_id": c.id, "reported_user": user, "category": c.category, "items": item_ids},
        )
        out.append(r.id)
    return out
