"""Webhook endpoints (admin), health, readiness and metrics."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl
from sqlalchemy import func, select, text

from safeguard.api import metrics
from safeguard.api.deps import Services, require, services
from safeguard.api.params import PathId
from safeguard.keys import Principal
from safeguard.store.models import OutboxMessage, WebhookEndpoint
from safeguard.webhook_store import add_endpoint, remove_endpoint

router = APIRouter(tags=["admin"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    events: list[str] = Field(default_factory=list, description="topics to send; empty: all")


@router.get("/v1/webhooks")
def list_webhooks(svc: Services = Depends(services), _: Principal = Depends(require())) -> dict[str, Any]:
    with svc.engine.db.read() as s:
        rows = s.execute(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars()
        return {"webhooks": [{"id": w.id, "url": w.url, "events": w.events, "enabled": w.enabled} for w in rows]}


@router.post("/v1/webhooks", status_code=201)
def add_webhook(
    body: WebhookIn, svc: Services = Depends(services), who: Principal = Depends(require())
) -> dict[str, Any]:
    secret = body.secret or secrets.token_urlsafe(32)
    with svc.engine.db.write() as s:
        w = add_endpoint(s, svc.engine.settings, url=str(body.url), secret=secret, topics=body.events, actor=who.actor)
        return {"id": w.id, "url": w.url, "events": w.events, "secret": secret}


@router.delete("/v1/webhooks/{webhook_id}", status_code=204)
def remove_webhook(
    webhook_id: PathId, svc: Services = Depends(services), who: Principal = Depends(require())
) -> Response:
    """Disable the endpoint and cancel its pending deliveries (event ``webhook.deliveries_cancelled``)."""
    with svc.engine.db.write() as s:
        remove_endpoint(s, webhook_id, actor=who.actor)
    return Response(status_code=204)


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
def readyz(svc: Services = Depends(services)) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with svc.engine.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, don't raise: this is a probe
        checks["database"] = f"error: {type(exc).__name__}"
    svc.engine.indexes.maybe_refresh()  # follow bank changes first: a probe reports what a scan would see
    checks["index"] = svc.engine.indexes.sizes()
    ok = checks["database"] == "ok"
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", tags=["ops"])
def prometheus(svc: Services = Depends(services)) -> Response:
    svc.engine.indexes.maybe_refresh()
    quarantined = svc.engine.indexes.quarantined_counts()
    for t, n in svc.engine.indexes.sizes().items():
        metrics.INDEX_ENTRIES.labels(signal_type=t).set(n)
        metrics.INDEX_QUARANTINED.labels(signal_type=t).set(quarantined.get(t, 0))
    with svc.engine.db.read() as s:
        pending = s.execute(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        ).scalar_one()
    metrics.OUTBOX_PENDING.set(pending)
    from safeguard.reports.timeliness import summary

    got = summary(svc.engine.db)
    for state, n in got["counts"].items():
        metrics.REPORTS.labels(state=state).set(n)
    for interval in ("match_to_confirmation_seconds", "confirmation_to_submission_seconds"):
        for q, v in got[interval].items():
            metrics.REPORT_SECONDS.labels(interval=interval.removesuffix("_seconds"), quantile=q).set(v)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
