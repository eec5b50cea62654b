"""Notify the platform by webhook: one outbox row per endpoint, delivered by the outbox worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.content import Action
from safeguard.store.models import OutboxMessage, WebhookEndpoint


def endpoints_for(ctx: ActionContext, topic: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if ctx.settings.webhook_url:
        out.append((ctx.settings.webhook_url, ctx.settings.webhook_secret))
    for ep in ctx.session.execute(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))).scalars():
        if not ep.events or topic in ep.events:
            out.append((ep.url, ep.secret))
    return out


def enqueue(ctx: ActionContext, topic: str, payload: dict[str, Any]) -> list[int]:
    ids = []
    for url, secret in endpoints_for(ctx, topic):
        msg = OutboxMessage(topic=topic, endpoint_url=url, endpoint_secret=secret, payload=payload)
        ctx.session.add(msg)
        ctx.session.flush()
        ids.append(msg.id)
    return ids


class NotifyWebhook(ActionHandler):
    name = "webhook"

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        topic = str(action.params.get("topic", "decision." + ctx.decision.verdict.value))
        decision = ctx.decision.to_dict()
        if "case" in ctx.results:
            decision["case_id"] = ctx.results["case"].get("case_id")
        ids = enqueue(ctx, topic, {"type": topic, "decision": decision})
        return {"topic": topic, "outbox_ids": ids}
