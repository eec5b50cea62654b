"""``POST /v1/conversations/{id}/messages``: score chat messages as they arrive (grooming detection).

One message, or ``{"messages": [...]}`` (a batch, in order). The answer carries the conversation's
calibrated risk, each sender's risk across all their conversations, per-stage scores, the evidence
(message ids and the indicators they hit), and the policy's decision, with the child-facing safety
message when the policy asks for one. Idempotent on the platform's message id: the same message
posted again gets the same answer; the same id with other content, or a message older than the
conversation's last, is a 409; oversized text is a 413; unknown fields and invalid text are 422.
Nothing is stored when a request is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from safeguard.api.deps import Services, require, services
from safeguard.api.jsonbody import inline_schema, json_body
from safeguard.detectors.grooming.detector import MAX_BATCH
from safeguard.detectors.grooming.scorer import Message
from safeguard.detectors.grooming.service import GroomingService
from safeguard.dsa.territory import parse_territory
from safeguard.errors import InvalidInput
from safeguard.keys import Principal
from safeguard.reported_user import UserIn

router = APIRouter(prefix="/v1", tags=["conversations"])

AgeBand = Literal["child", "teen", "adult", "unknown"]


class SenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    age_band: AgeBand = "unknown"
    account_age_days: int | None = Field(default=None, ge=0)


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    age_band: AgeBand = "unknown"


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(min_length=1, max_length=200, description="the platform's message id (idempotency key)")
    sender: SenderIn
    recipients: list[RecipientIn] = Field(default_factory=list, max_length=100)
    text: str
    sent_at: float | datetime = Field(description="epoch seconds or ISO 8601")
    prior_contact: bool = Field(default=False, description="whether sender and recipients had talked before")
    territory: str | None = Field(
        default=None, max_length=16, description="where the sender is: ISO 3166-1 alpha-2 or EU (docs/dsa.md)"
    )
    user: UserIn | None = Field(
        default=None, description="details of the sender's account, kept with a decision about them (docs/reporting.md)"
    )

    @field_validator("sent_at")
    @classmethod
    def _epoch(cls, v: float | datetime) -> float:
        if isinstance(v, datetime):
            if v.tzinfo is None:
                raise ValueError("give a time zone (e.g. 2026-11-23T10:00:00Z)")
            return v.timestamp()
        return float(v)

    def to_message(self) -> Message:
        assert isinstance(self.sent_at, float)
        return Message(
            message_id=self.message_id,
            sender_id=self.sender.id,
            text=self.text,
            sent_at=self.sent_at,
            sender_band=self.sender.age_band,
            account_age_days=self.sender.account_age_days,
            recipients=tuple((r.id, r.age_band) for r in self.recipients),
            prior_contact=self.prior_contact,
        )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn] = Field(min_length=1, description=f"at most {MAX_BATCH} (413 above)")
    locale: str = Field(default="en", max_length=16, description="locale for the child-facing safety message")
    territory: str | None = Field(
        default=None, max_length=16, description="where the senders are, for messages that do not say (docs/dsa.md)"
    )


def territories_of(batch: BatchIn) -> dict[str, str]:
    """Each sender's territory (a message's own, else the batch's; the last message's wins), strictly parsed."""
    default = parse_territory(batch.territory)
    out: dict[str, str] = {}
    for i, m in enumerate(batch.messages):
        t = parse_territory(m.territory, field=f"messages[{i}].territory") or default
        if t is not None:
            out[m.sender.id] = t
    return out


def grooming_service(request: Request, svc: Services = Depends(services)) -> GroomingService:
    """One GroomingService per app (it holds the loaded model), built on first use."""
    return svc.grooming()


def parse_body(data: Any) -> BatchIn:
    """Validate a strictly parsed JSON body (``api/jsonbody.json_body``: UTF-8, no NaN, bounded depth)."""
    if not isinstance(data, dict):
        raise InvalidInput("send a message object or {'messages': [...]}", code="invalid_request")
    try:
        return (
            BatchIn.model_validate(data) if "messages" in data else BatchIn(messages=[MessageIn.model_validate(data)])
        )
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise InvalidInput("request failed validation", code="invalid_request", details=details) from exc


BODY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [inline_schema(MessageIn), inline_schema(BatchIn)]}}},
    }
}


@router.post(
    "/conversations/{conversation_id}/messages",
    openapi_extra=BODY_OPENAPI,
    summary="Score chat messages for grooming risk and get the policy's decision",
)
async def post_messages(
    request: Request,
    conversation_id: str = Path(min_length=1, max_length=200),
    locale: str | None = Query(None, max_length=16, description="safety-message locale (overrides the body's)"),
    g: GroomingService = Depends(grooming_service),
    who: Principal = Depends(require("platform")),
) -> dict[str, Any]:
    batch = parse_body(await json_body(request))
    msgs = [m.to_message() for m in batch.messages]
    # the sender's account details (the last given in the batch per sender), kept with the decision
    accounts = {m.sender.id: u for m in batch.messages if m.user is not None and (u := m.user.stored())}
    return await run_in_threadpool(
        g.post,
        conversation_id,
        msgs,
        actor=who.actor,
        locale=locale or batch.locale,
        tenant=who.tenant,
        territories=territories_of(batch),
        accounts=accounts,
    )


@router.get("/conversations/{conversation_id}/grooming", summary="The grooming state kept for a conversation")
async def get_state(
    conversation_id: str = Path(min_length=1, max_length=200),
    g: GroomingService = Depends(grooming_service),
    _: Principal = Depends(require("platform", "moderator")),
) -> dict[str, Any]:
    return await run_in_threadpool(g.conversation, conversation_id)
