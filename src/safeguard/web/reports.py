"""The console's law-enforcement reports (``/console/reports``): a list, and a page per report with exactly
what would be sent (the CyberTipline XML, the files, the transcript), its validation against NCMEC's schema,
what is missing, the state and every step; a lead approves or retracts it there (CSRF-checked forms).

Every rule (roles, the second approver, the state machine) is :class:`~safeguard.reports.ReportService`'s;
this module only renders and forwards. Added to the console through :data:`safeguard.web.app.extra_routers`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from safeguard.api.deps import Services
from safeguard.errors import InvalidInput, SafeguardError
from safeguard.reports import STATES, ReportService
from safeguard.reports.model import READER_ROLES, REPORT_ROLES
from safeguard.web.app import PREFIX, Page, _form, _page, extra_routers, guarded, render

router = APIRouter(include_in_schema=False)
#: states a lead may still approve or retract from the console
APPROVABLE = ("draft", "failed")
RETRACTABLE = ("draft", "approved", "submitting", "submitted", "files_uploaded", "failed")


def _reports(request: Request) -> ReportService:
    svc: Services = request.app.state.services
    return svc.reports()


def _report_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) < 2**63:
        raise InvalidInput("report id must be a positive integer", code="invalid_report_id")
    return int(raw)


@router.get("/reports")
@guarded
async def report_list(request: Request) -> Response:
    page = await _page(request, READER_ROLES)
    q = request.query_params
    state = q.get("state", "")[:200] or None
    rows, nxt = await run_in_threadpool(_reports(request).list_reports, page.who, state=state, cursor=q.get("cursor"))
    keep = {"state": state} if state else {}
    return render(
        request,
        "reports/list.html",
        page,
        reports=rows,
        states=STATES,
        f_state=state or "",
        next_link=f"?{urlencode(keep | {'cursor': nxt})}" if nxt else "",
    )


async def _report_page(request: Request, page: Page, rid: int, *, status: int = 200, error: Any = None) -> Response:
    svc = _reports(request)
    view = await run_in_threadpool(svc.get, page.who, rid)
    preview = await run_in_threadpool(svc.preview, page.who, rid)
    steps = await run_in_threadpool(svc.steps, page.who, rid)
    lead = page.who.role in REPORT_ROLES
    own = view.confirmed_by == page.who.actor and not request.app.state.services.settings.reports_self_approve
    return render(
        request,
        "reports/report.html",
        page,
        status=status,
        error=error,
        r=view,
        p=preview,
        steps=steps,
        can_approve=lead and view.state in APPROVABLE,
        own_case=own,
        can_retract=lead and view.state in RETRACTABLE,
    )


@router.get("/reports/{report_id}")
@guarded
async def report_page(report_id: str, request: Request) -> Response:
    page = await _page(request, READER_ROLES)
    return await _report_page(request, page, _report_id(report_id))


async def _act(request: Request, report_id: str, action: str) -> Response:
    page = await _page(request, REPORT_ROLES)
    form = await _form(request, page)  # the session's CSRF token, else 403 csrf_failed
    rid = _report_id(report_id)
    svc = _reports(request)
    try:
        if action == "approve":
            await run_in_threadpool(svc.approve, page.who, rid)
        else:
            await run_in_threadpool(svc.retract, page.who, rid, reason=form.get("reason", "")[:2001])
    except SafeguardError as exc:
        if exc.status == 404:
            raise
        return await _report_page(request, page, rid, status=exc.status, error=exc)
    return RedirectResponse(f"{PREFIX}/reports/{rid}", status_code=303)


@router.post("/reports/{report_id}/approve")
@guarded
async def approve(report_id: str, request: Request) -> Response:
    return await _act(request, report_id, "approve")


@router.post("/reports/{report_id}/retract")
@guarded
async def retract(report_id: str, request: Request) -> Response:
    return await _act(request, report_id, "retract")


extra_routers.append(router)
