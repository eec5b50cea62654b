"""Reports to law enforcement over HTTP: ``/v1/reports``. Thin: every rule lives in
:class:`~safeguard.reports.ReportService` (docs/reporting.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from safeguard.accounts import Who
from safeguard.api.deps import Services
from safeguard.api.session import require_who
from safeguard.reports import ReportService

router = APIRouter(prefix="/v1", tags=["reports"])
READ = require_who("moderator", "lead", "auditor")
LEAD = require_who("lead")
ReportId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the report's id")]


def reports_of(request: Request) -> ReportService:
    svc: Services = request.app.state.services
    return svc.reports()


class RetractIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


@router.get("/reports", summary="Reports, oldest first, one keyset page at a time")
def list_reports(
    request: Request,
    state: str | None = Query(None, description="a state, or a comma list (draft, approved, ..., finished)"),
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=200),
    who: Who = Depends(READ),
) -> dict[str, Any]:
    rows, nxt = reports_of(request).list_reports(who, state=state, cursor=cursor, limit=limit)
    return {"reports": [r.to_dict() for r in rows], "next_cursor": nxt}


@router.get("/reports/{report_id}", summary="A report: state, steps, NCMEC ids, errors, the XML and its validation")
def get_report(report_id: ReportId, request: Request, who: Who = Depends(READ)) -> dict[str, Any]:
    svc = reports_of(request)
    out = svc.get(who, report_id).to_dict()
    out["steps"] = svc.steps(who, report_id)
    out["preview"] = svc.preview(who, report_id)
    return out


@router.post("/reports/{report_id}/approve", summary="A lead approves a draft (not the reviewer who confirmed)")
def approve_report(report_id: ReportId, request: Request, who: Who = Depends(LEAD)) -> dict[str, Any]:
    return reports_of(request).approve(who, report_id).to_dict()


@router.post("/reports/{report_id}/retract", summary="Withdraw a report before it is finished (once)")
def retract_report(
    report_id: ReportId, request: Request, body: RetractIn | None = None, who: Who = Depends(LEAD)
) -> dict[str, Any]:
    return reports_of(request).retract(who, report_id, reason=body.reason if body else "").to_dict()
