"""DSA statements of reasons over HTTP: ``GET /v1/statements`` (auditor, admin), oldest first, one keyset
page at a time (docs/dsa.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import Who
from safeguard.api.session import require_who
from safeguard.dsa.service import list_statements

router = APIRouter(prefix="/v1", tags=["statements"])
READ = require_who("auditor")


@router.get("/statements", summary="DSA statements of reasons, oldest first, with their submission state")
async def get_statements(
    request: Request,
    since: datetime | None = Query(None, description="only statements created at or after (ISO 8601; UTC if no zone)"),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    state: str | None = Query(None, max_length=100, description="pending, sending, submitted, invalid (comma list)"),
    limit: int = Query(100, ge=1, le=1000),
    _: Who = Depends(READ),
) -> dict[str, Any]:
    db = request.app.state.services.engine.db
    rows, nxt = await run_in_threadpool(list_statements, db, since=since, cursor=cursor, state=state, limit=limit)
    return {"statements": rows, "next_cursor": nxt}
