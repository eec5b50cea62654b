"""The review queue over HTTP: ``/v1/cases``. Thin: every rule lives in :class:`~safeguard.cases.CaseService`.

Moderators, leads and admins work cases; auditors read them; all of them by API key or by a login
session (cookie and CSRF header).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from safeguard.accounts import Who
from safeguard.api.deps import Services
from safeguard.api.session import require_who
from safeguard.cases import CaseFilter, CaseService
from safeguard.cases.service import MAX_NOTES

router = APIRouter(prefix="/v1", tags=["cases"])
READ = require_who("moderator", "lead", "auditor")
WORK = require_who("moderator", "lead")
LEAD = require_who("lead")
CaseId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the case's id")]


def cases_of(request: Request) -> CaseService:
    svc: Services = request.app.state.services
    return svc.cases


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="a lead takes the case from whoever holds it")


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(None, max_length=200, description="an actor (user:NAME); null: back to the queue")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["confirmed", "not_violating", "escalated"]
    category: str | None = Field(None, max_length=64, description="A1, A2, B1, B2, grooming, sextortion, ...")
    notes: str = Field("", max_length=MAX_NOTES)
    override: bool = Field(False, description="a lead decides without the claim, or over a decided case")


@router.get("/cases", summary="The review queue, in priority then age order, one keyset page at a time")
def list_cases(
    request: Request,
    queue: str | None = None,
    status: str | None = Query(None, description="open (default), claimed, decided, closed, a comma list, or all"),
    priority: int | None = None,
    assignee: str | None = Query(None, description="an actor, 'me' or 'none'"),
    cursor: str | None = Query(None, max_length=200),
    limit: int = Query(50, ge=1, le=200),
    who: Who = Depends(READ),
) -> dict[str, Any]:
    filt = CaseFilter.parse(queue=queue, status=status, priority=priority, assignee=assignee)
    return cases_of(request).list_cases(who, filt, cursor=cursor, limit=limit).to_dict()


@router.post("/cases/claim-next", summary="Claim the next case of a queue")
def claim_next(request: Request, queue: str | None = None, who: Who = Depends(WORK)) -> dict[str, Any]:
    got = cases_of(request).claim_next(who, queue=queue)
    return {"case": got.to_dict() if got else None}


@router.get("/cases/{case_id}", summary="A case: items, findings, review decisions, evidence, user reports")
def get_case(case_id: CaseId, request: Request, who: Who = Depends(READ)) -> dict[str, Any]:
    return cases_of(request).get(who, case_id).to_dict()


@router.get("/cases/{case_id}/timeline", summary="The events of a case, in order")
def case_timeline(case_id: CaseId, request: Request, who: Who = Depends(READ)) -> dict[str, Any]:
    return {"events": [e.to_dict() for e in cases_of(request).timeline(who, case_id)]}


@router.post("/cases/{case_id}/claim", summary="Claim a case (a lease); 409 if someone else holds it")
def claim_case(
    case_id: CaseId, request: Request, body: ClaimIn | None = None, who: Who = Depends(WORK)
) -> dict[str, Any]:
    return cases_of(request).claim(who, case_id, force=bool(body and body.force)).to_dict()


@router.post("/cases/{case_id}/release", summary="Give a claim back")
def release_case(case_id: CaseId, request: Request, who: Who = Depends(WORK)) -> dict[str, Any]:
    return cases_of(request).release(who, case_id).to_dict()


@router.post("/cases/{case_id}/assign", summary="A lead assigns the case (or returns it to the queue)")
def assign_case(case_id: CaseId, body: AssignIn, request: Request, who: Who = Depends(LEAD)) -> dict[str, Any]:
    return cases_of(request).assign(who, case_id, body.assignee).to_dict()


@router.post("/cases/{case_id}/decision", summary="Decide a claimed case: confirmed, not_violating or escalated")
def decide_case(case_id: CaseId, body: DecisionIn, request: Request, who: Who = Depends(WORK)) -> dict[str, Any]:
    got = cases_of(request).decide(
        who, case_id, outcome=body.outcome, category=body.category, notes=body.notes, override=body.override
    )
    return got.to_dict()
