"""``/v1/streams``: register a live stream to watch, see its state, stop watching.

The process that receives ``POST`` watches the stream (``workers/streams.py``); state is in the
database, so ``GET`` works from any process, and ``DELETE`` from another process marks the row
stopped (the watching process notices at its next persist).

A stream belongs to the tenant of the key that registered it: a platform key sees, and stops, only its
own tenant's streams; another tenant's id answers ``404 stream_not_found``, as an unknown one does.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safeguard.api.deps import Services, require, services
from safeguard.keys import Principal
from safeguard.workers.streams import StreamMonitor

router = APIRouter(prefix="/v1", tags=["streams"])


class StreamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="HLS (.m3u8) or other HTTP(S) video, or RTMP(S); checked by the egress policy",
    )
    stream_id: str = Field(min_length=1, max_length=200, description="the platform's own id for the stream")
    user_id: str | None = Field(default=None, max_length=200, description="the platform's id for the streamer")


def monitor(request: Request, svc: Services = Depends(services)) -> StreamMonitor:
    """The process's monitor (``Services.stream_monitor``: built on first use, when it adopts orphans)."""
    return svc.stream_monitor()


@router.post("/streams", status_code=201, summary="Watch a live stream")
def create_stream(
    body: StreamIn, mon: StreamMonitor = Depends(monitor), who: Principal = Depends(require("platform"))
) -> dict[str, Any]:
    return mon.watch(
        body.url, platform_stream_id=body.stream_id, user_id=body.user_id, tenant=who.tenant, key_id=who.key_id
    ).to_dict()


@router.get("/streams/{stream_id}", summary="A watched stream's state")
def get_stream(
    stream_id: str,
    mon: StreamMonitor = Depends(monitor),
    who: Principal = Depends(require("platform", "moderator", "auditor")),
) -> dict[str, Any]:
    return mon.get(stream_id, tenant=who.tenant_scope).to_dict()


@router.get("/streams", summary="Watched streams, newest first")
def list_streams(
    active: bool = False,
    limit: int = Query(100, ge=1, le=1000),
    mon: StreamMonitor = Depends(monitor),
    who: Principal = Depends(require("platform", "moderator", "auditor")),
) -> dict[str, Any]:
    return {"streams": [s.to_dict() for s in mon.streams(active_only=active, limit=limit, tenant=who.tenant_scope)]}


@router.delete("/streams/{stream_id}", summary="Stop watching a stream")
async def delete_stream(
    stream_id: str, mon: StreamMonitor = Depends(monitor), who: Principal = Depends(require("platform"))
) -> dict[str, Any]:
    stopped = await run_in_threadpool(partial(mon.stop, stream_id, tenant=who.tenant_scope))
    return stopped.to_dict()
