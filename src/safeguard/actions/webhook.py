"""Notify the platform by webhook: one outbox row per endpoint, delivered by the outbox worker.

Core statements on the transaction's connection (no ORM objects): see actions/case.py for why.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnDefault, Table, select

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.content import Action
from safeguard.store.db import connection_of
from safeguard.store.driver import Prepared, json_column
from safeguard.store.models import OutboxMessage, WebhookEndpoint, utcnow

OUTBOX = cast(Table, OutboxMessage.__table__)
ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
# read on every matching decision: on the DBAPI cursor (store/driver.py), ~9% of a hit's recording
# time through Core
_ENABLED = Prepared(select(ENDPOINTS.c.id, ENDPOINTS.c.url, ENDPOINTS.c.events).where(ENDPOINTS.c.enabled.is_(True)))


def endpoints_for(ctx: ActionContext, topic: str) -> list[tuple[int | None, str]]:
    """``(endpoint id, url)`` of every endpoint that takes ``topic``; id None: the settings' default one.

    Outbox rows name the endpoint, never copy its secret: the worker opens the sealed secret when it
    signs (safeguard/webhook_store.py)."""
    out: list[tuple[int | None, str]] = []
    if ctx.settings.webhook_url:
        out.append((None, ctx.settings.webhook_url))
    for endpoint_id, url, topics_json in _ENABLED.all(connection_of(ctx.session)):
        topics = json_column(topics_json)
        if not topics or topic in topics:
            out.append((int(endpoint_id), url))
    return out


_INSERT_OUTBOX = OUTBOX.insert().returning(OUTBOX.c.id)
_INSERT_OUTBOX_D = Prepared(_INSERT_OUTBOX)  # on the DBAPI cursor (store/driver.py)
# The model's scalar column defaults (status, attempts, last_error), sent with every row with the
# timestamps: the driver runs an INSERT only as compiled, with no default computed at execution time.
_SCALAR_DEFAULTS = {
    c.key: c.default.arg for c in OUTBOX.columns if isinstance(c.default, ColumnDefault) and c.default.is_scalar
}


def enqueue(ctx: ActionContext, topic: str, payload: dict[str, Any]) -> list[int]:
    conn = connection_of(ctx.session)
    ids = []
    now = utcnow()
    for endpoint_id, url in endpoints_for(ctx, topic):
        row = {
            "topic": topic,
            "endpoint_url": url,
            "endpoint_id": endpoint_id,
            "payload": payload,
            **_SCALAR_DEFAULTS,
            "next_attempt_at": now,
            "created_at": now,
        }
        got = _INSERT_OUTBOX_D.first(conn, row)
        if got is None:
            raise RuntimeError("INSERT ... RETURNING gave no row")
        ids.append(int(got[0]))
    return ids


class NotifyWebhook(ActionHandler):
    name = "webhook"
    rerunnable = True  # database writes only

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        topic = str(action.params.get("topic", "decision." + ctx.decision.verdict.value))
        decision = ctx.decision.to_dict()
        if "case" in ctx.results:
            decision["case_id"] = ctx.results["case"].get("case_id")
        ids = enqueue(ctx, topic, {"type": topic, "decision": decision})
        return {"topic": topic, "outbox_ids": ids}
