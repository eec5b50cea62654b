"""Open a case for human review, or add the decision to the subject's open case."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.content import Action
from safeguard.store.models import Case, CaseItem, utcnow


class OpenCase(ActionHandler):
    name = "case"

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        s = ctx.session
        kind, sid = ctx.content.subject()
        priority = int(action.params.get("priority", 2))
        case = s.execute(
            select(Case)
            .where(Case.subject_kind == kind, Case.subject_id == sid, Case.status == "open")
            .order_by(Case.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        created = case is None
        if case is None:
            case = Case(
                subject_kind=kind,
                subject_id=sid,
                status="open",
                priority=priority,
                verdict=ctx.decision.verdict.value,
                reason=", ".join(ctx.decision.reasons),
                opened_at=utcnow(),
                updated_at=utcnow(),
            )
            s.add(case)
            s.flush()
        else:
            case.priority = min(case.priority, priority)
            if ctx.decision.verdict.severity > _severity(case.verdict):
                case.verdict = ctx.decision.verdict.value
            case.updated_at = utcnow()
        s.add(
            CaseItem(
                case_id=case.id,
                decision_id=ctx.decision.id,
                summary={
                    "verdict": ctx.decision.verdict.value,
                    "content_id": ctx.content.content_id,
                    "findings": [f.to_dict() for f in ctx.decision.findings],
                },
            )
        )
        return {"case_id": case.id, "created": created, "priority": case.priority}


def _severity(verdict: str) -> int:
    return {"allow": 0, "review": 1, "block": 2}.get(verdict, 0)
