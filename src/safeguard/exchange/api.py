"""The exchange's HTTP API: the instance's public key, a shared bank's signed feed, opinions sent back."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from safeguard.api.deps import Services, require, services
from safeguard.exchange.feed import MAX_PAGE, Feed
from safeguard.exchange.shares import ReceivedOpinion, receive_opinions
from safeguard.keys import Principal

__all__ = ["feed_of", "router"]

router = APIRouter(prefix="/v1/exchange", tags=["exchange"])
#: the most opinions one request may carry
MAX_OPINIONS = 1000


class OpinionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=1, le=2**63 - 1, description="the sender's own id for this opinion (deduplication)")
    signal_type: str = Field(max_length=32)
    value: str = Field(max_length=512)
    opinion: Literal["confirmed", "disputed"]


class OpinionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    opinions: list[OpinionItem] = Field(max_length=MAX_OPINIONS)


def feed_of(request: Request) -> Feed:
    """The app's :class:`Feed` (made on first use: it reads, or creates, the instance's signing key)."""
    svc: Services = request.app.state.services
    return svc.exchange_feed()


@router.get("/key")
def public_key(
    request: Request,
    _: Principal = Depends(require("partner", "platform", "moderator", "auditor", "lead")),
) -> dict[str, str]:
    """The Ed25519 public key this instance signs its feed pages with."""
    return feed_of(request).public_key()


@router.get("/banks/{bank}/changes", response_class=StreamingResponse)
def changes(
    request: Request,
    bank: str,
    cursor: str = Query("", max_length=200),
    limit: int = Query(10_000, ge=1, le=MAX_PAGE),
    who: Principal = Depends(require("partner")),
) -> StreamingResponse:
    """Added, updated and removed entries of a shared bank since ``cursor``, as one signed JSON Lines page
    (docs/sharing.md). Ask again with the page's ``next_cursor`` while ``more`` is true."""
    feed = feed_of(request)
    req = feed.open(who, bank, cursor, limit)
    return StreamingResponse(feed.stream(req), media_type="application/x-ndjson")


@router.post("/banks/{bank}/opinions")
def opinions(
    request: Request,
    bank: str,
    body: OpinionsIn,
    svc: Services = Depends(services),
    who: Principal = Depends(require("partner")),
) -> dict[str, Any]:
    """A partner's confirmed or disputed opinions on entries of a bank shared with it, recorded once each."""
    bank_id = feed_of(request).check_access(who, bank)
    items = [ReceivedOpinion(o.id, o.signal_type, o.value, o.opinion) for o in body.opinions]
    return receive_opinions(svc.engine.db, svc.banks, who, bank_id, items)
