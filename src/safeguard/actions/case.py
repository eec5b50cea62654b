"""Open a case for human review, or add the decision to the subject's open case.

Written with Core statements on the transaction's connection, not ORM objects: this runs inside the
decision's write for every match, and the unit of work (autoflushes, identity map, flush ordering)
cost several times the SQL itself (docs/performance.md, section 5). The statements are built once and
executed with parameters: one built per call with ``.values(...)`` pays for its cache key every time.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, select

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.content import Action
from safeguard.store.db import connection_of
from safeguard.store.driver import Prepared
from safeguard.store.models import Case, CaseItem, utcnow

CASES = cast(Table, Case.__table__)
CASE_ITEMS = cast(Table, CaseItem.__table__)

_OPEN_CASE = (
    select(CASES.c.id, CASES.c.priority, CASES.c.verdict)
    .where(
        CASES.c.subject_kind == bindparam("kind"),
        CASES.c.subject_id == bindparam("sid"),
        CASES.c.status == "open",
    )
    .order_by(CASES.c.id.desc())
    .limit(1)
)
_INSERT_CASE = CASES.insert().returning(CASES.c.id)
_UPDATE_CASE = (
    CASES.update()
    .where(CASES.c.id == bindparam("case_id"))
    .values(priority=bindparam("new_priority"), verdict=bindparam("new_verdict"), updated_at=bindparam("now"))
)
_INSERT_ITEM = CASE_ITEMS.insert()
# run on the DBAPI cursor with SQLAlchemy's SQL and bind processing (store/driver.py)
_OPEN_CASE_D, _INSERT_CASE_D, _UPDATE_CASE_D, _INSERT_ITEM_D = map(
    Prepared, (_OPEN_CASE, _INSERT_CASE, _UPDATE_CASE, _INSERT_ITEM)
)


class OpenCase(ActionHandler):
    name = "case"
    rerunnable = True  # database writes only

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        conn = connection_of(ctx.session)
        kind, sid = ctx.content.subject()
        priority = int(action.params.get("priority", 2))
        verdict = ctx.decision.verdict.value
        now = utcnow()
        found = _OPEN_CASE_D.first(conn, {"kind": kind, "sid": sid})
        if found is None:
            row = {
                "subject_kind": kind,
                "subject_id": sid,
                "status": "open",
                "priority": priority,
                "verdict": verdict,
                "reason": ", ".join(ctx.decision.reasons),
                "opened_at": now,
                "updated_at": now,
            }
            got = _INSERT_CASE_D.first(conn, row)
            if got is None:
                raise RuntimeError("INSERT ... RETURNING gave no row")
            case_id = got[0]
        else:
            case_id, old_priority, old_verdict = found
            priority = min(old_priority, priority)
            if ctx.decision.verdict.severity <= _severity(old_verdict):
                verdict = old_verdict
            _UPDATE_CASE_D.executemany(
                conn, [{"case_id": case_id, "new_priority": priority, "new_verdict": verdict, "now": now}]
            )
        summary = {
            "verdict": ctx.decision.verdict.value,
            "content_id": ctx.content.content_id,
            "findings": [f.to_dict() for f in ctx.decision.findings],
        }
        _INSERT_ITEM_D.executemany(
            conn, [{"case_id": case_id, "decision_id": ctx.decision.id, "summary": summary, "created_at": now}]
        )
        return {"case_id": int(case_id), "created": found is None, "priority": priority}


def _severity(verdict: str) -> int:
    return {"allow": 0, "review": 1, "block": 2}.get(verdict, 0)
