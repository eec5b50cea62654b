"""Hash-list quality over HTTP: a bank's figures, one entry's, and the release of a surge quarantine.
Thin: everything lives in :mod:`safeguard.banks.quality` (docs/quality.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import Who
from safeguard.api.deps import Services, services
from safeguard.api.params import PathId
from safeguard.api.session import require_who
from safeguard.banks import quality

router = APIRouter(prefix="/v1", tags=["banks"])
READ = require_who("lead", "auditor")
LEAD = require_who("lead")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2000)


@router.get("/banks/{bank}/quality", summary="Precision by source, top entries by matches, quarantined entries")
async def bank_quality(
    bank: str,
    top: int = Query(20, ge=1, le=200),
    svc: Services = Depends(services),
    _: Who = Depends(READ),
) -> dict[str, Any]:
    out: dict[str, Any] = await run_in_threadpool(quality.bank_quality, svc.engine.db, bank, top=top)
    return out


@router.get("/banks/{bank}/entries/{entry_id}/quality", summary="One entry's figures")
async def entry_quality(
    bank: str, entry_id: PathId, svc: Services = Depends(services), _: Who = Depends(READ)
) -> dict[str, Any]:
    out: dict[str, Any] = await run_in_threadpool(quality.entry_quality, svc.engine.db, bank, entry_id)
    return out


@router.post("/banks/{bank}/entries/{entry_id}/release", summary="A lead releases a surge-quarantined entry")
async def release_entry(
    bank: str,
    entry_id: PathId,
    body: ReleaseIn | None = None,
    svc: Services = Depends(services),
    who: Who = Depends(LEAD),
) -> dict[str, Any]:
    note = body.note if body is not None else ""
    out: dict[str, Any] = await run_in_threadpool(
        quality.release, svc.engine.db, bank, entry_id, actor=who.actor, note=note
    )
    return out
