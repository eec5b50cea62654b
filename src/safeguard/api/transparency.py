"""``GET /v1/transparency/report``: a transparency report for a period (auditor, admin), computed from the
event log on request (docs/transparency.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import Who
from safeguard.api.session import require_who
from safeguard.transparency import MEDIA_TYPES, generate, parse_period, parse_scope
from safeguard.transparency.period import check_format

router = APIRouter(prefix="/v1", tags=["transparency"])
READ = require_who("auditor")


@router.get("/transparency/report", summary="A transparency report for a period, as JSON, HTML or CSV")
async def transparency_report(
    request: Request,
    start: str = Query(..., alias="from", max_length=40, description="first day (YYYY-MM-DD) or ISO 8601 time"),
    end: str = Query(..., alias="to", max_length=40, description="last day, inclusive, or an exclusive ISO time"),
    format: str = Query("json", max_length=10, description="json, html or csv"),
    territory: str | None = Query(
        None, max_length=8, description="only decisions on users in this territory (ISO 3166-1 alpha-2 or EU)"
    ),
    tenant: str | None = Query(None, max_length=64, description="only decisions made for this tenant"),
    _: Who = Depends(READ),
) -> Response:
    period = parse_period(start, end)
    scope = parse_scope(territory, tenant)
    fmt = check_format(format)
    svc = request.app.state.services
    text = await run_in_threadpool(generate, svc.engine.db, svc.settings, period, fmt, scope)
    headers = {"Cache-Control": "no-store"}
    suffix = "".join(f"-{x}" for x in (scope.territory, scope.tenant) if x)
    if fmt != "json":
        headers["Content-Disposition"] = (
            f'attachment; filename="transparency-{period.start:%Y-%m-%d}-{period.end:%Y-%m-%d}{suffix}.{fmt}"'
        )
    return Response(text, media_type=MEDIA_TYPES[fmt], headers=headers)
