"""Ask the platform to end a live stream: a signed ``stream.terminate`` webhook, queued in the outbox.

The platform carries the termination out (Safeguard cannot end a stream it only watches); the
engine's part is to say so quickly and verifiably. The payload names the platform's own stream id
and user, the decision and case, and the matching frames' times, so the platform can act without a
second request. The stream monitor delivers the queued message at once instead of waiting for the
outbox worker's next poll.
"""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.actions.webhook import enqueue
from safeguard.content import Action

TOPIC = "stream.terminate"


def terminate_payload(ctx: ActionContext) -> dict[str, Any]:
    d = ctx.decision
    case_id = (ctx.results.get("case") or {}).get("case_id", d.case_id)
    return {
        "type": TOPIC,
        "stream_id": ctx.content.stream_id,
        "safeguard_stream_id": ctx.content.context.get("safeguard_stream_id"),
        "user_id": ctx.content.user_id,
        "decision_id": d.id,
        "case_id": case_id,
        "verdict": d.verdict.value,
        "reasons": list(d.reasons),
        "matches": [
            {
                "time_range": list(f.time_range) if f.time_range else None,
                "bank": f.bank,
                "bank_kind": f.bank_kind,
                "category": f.category,
                "entry_id": f.entry_id,
                "distance": f.distance,
                "confidence": f.confidence,
            }
            for f in d.findings
        ],
        "created_at": d.created_at.isoformat(),
    }


class TerminateStream(ActionHandler):
    name = "terminate_stream"
    rerunnable = True  # database writes only
    performed_by = "platform"

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        if not ctx.content.stream_id:
            return {"skipped": "content is not a stream"}
        ids = enqueue(ctx, TOPIC, terminate_payload(ctx))
        return {"topic": TOPIC, "outbox_ids": ids, "stream_id": ctx.content.stream_id}
