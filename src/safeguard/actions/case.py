"""Open a case for human review, or add the decision to the subject's active case in the same queue.

The queue follows the content and the detector (cases/model.py: live streams, grooming, else hash
matches in ``csam``); a rule may name one (``{name: case, params: {queue: ..., priority: ...}}``), and
content a user reported (``context.user_report``, set by ``POST /v1/user-reports``) goes to
``user_reports`` with the report. The
write itself (cases/store.py) is Core statements on the transaction's connection, not ORM objects:
this runs inside the decision's write for every match (bench/results/2026-12-06-performance-history.md, section 5).
"""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.cases.model import QUEUES, queue_for
from safeguard.cases.store import add_item, open_or_join
from safeguard.content import Action
from safeguard.errors import ConfigError
from safeguard.store.db import connection_of
from safeguard.store.models import utcnow


class OpenCase(ActionHandler):
    name = "case"
    rerunnable = True  # database writes only

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        conn = connection_of(ctx.session)
        if ctx.content.context.get("user_report"):  # POST /v1/user-reports: the report's case
            queue = "user_reports"
        else:
            queue = action.params.get("queue") or queue_for(ctx.content, ctx.decision.findings)
        if queue not in QUEUES:
            raise ConfigError(f"policy: case queue must be one of {QUEUES}, not {queue!r}", code="invalid_policy")
        now = utcnow()
        joined = open_or_join(
            conn,
            subject=ctx.content.subject(),
            queue=queue,
            priority=int(action.params.get("priority", 2)),
            verdict=ctx.decision.verdict.value,
            reason=", ".join(ctx.decision.reasons),
            now=now,
            sla=ctx.settings.review_sla,
        )
        summary = {
            "verdict": ctx.decision.verdict.value,
            "content_id": ctx.content.content_id,
            "findings": [f.to_dict() for f in ctx.decision.findings],
        }
        add_item(conn, joined.case_id, ctx.decision.id, summary, now)
        return {"case_id": joined.case_id, "created": joined.created, "priority": joined.priority, "queue": queue}
