"""``POST /v1/user-reports`` and ``GET /v1/user-reports/{id}`` (platform role): see safeguard.user_reports.

A report is JSON, or multipart/form-data with the same fields (``signals`` as a JSON array) and the
reported file in ``file``. (``/v1/reports`` is kept for law-enforcement reports.)
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from safeguard.accounts import Who
from safeguard.api.deps import Services, services
from safeguard.api.multipart import read_upload
from safeguard.api.session import require_who
from safeguard.content import Signal
from safeguard.errors import InvalidInput, UnsupportedMedia
from safeguard.reported_user import UserIn, user_from_form
from safeguard.user_reports import ReportInput, UserReportService

router = APIRouter(prefix="/v1", tags=["user reports"])
PLATFORM = require_who("platform")


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(max_length=32)
    value: str = Field(max_length=100_000)


class UserReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reporter_id: str = Field(min_length=1, max_length=200, description="the platform's id of the reporting user")
    reason: str = Field(description="csam, grooming, sextortion, self_generated_minor or other")
    reported_user_id: str | None = Field(None, min_length=1, max_length=200)
    content_id: str | None = Field(None, min_length=1, max_length=200)
    conversation_id: str | None = Field(None, min_length=1, max_length=200)
    signals: list[SignalIn] = Field(default_factory=list, max_length=100, description="hashes of the content")
    text: str = Field("", description="what the reporter wrote (SAFEGUARD_USER_REPORT_MAX_TEXT_CHARS)")
    locale: str = Field("en", max_length=35, description="the reporter's language: en, es, fr, de (others: en)")
    country: str | None = Field(None, max_length=2, description="ISO 3166 code; GB or US narrows the advice")
    user: UserIn | None = Field(None, description="details of the reported account (docs/reporting.md)")


FIELDS = tuple(n for n in UserReportIn.model_fields if n not in ("signals", "user"))


def service_of(request: Request, svc: Services) -> UserReportService:
    return svc.user_reports()


def _parse(obj: Any) -> UserReportIn:
    try:
        return UserReportIn.model_validate(obj)
    except ValidationError as exc:
        raise InvalidInput(
            "invalid user report", code="invalid_request", details=json.loads(exc.json(include_url=False))
        ) from exc


async def _read(request: Request, limit: int) -> ReportInput:
    ctype = request.headers.get("content-type", "")
    data = None
    media_type = filename = None
    if ctype.startswith("application/json"):
        try:
            raw = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"invalid JSON: {exc.msg}", code="invalid_json") from exc
        body = _parse(raw)
    elif ctype.startswith("multipart/form-data"):
        upload = await read_upload(request, limit=limit)
        fields: dict[str, Any] = {k: v for k in FIELDS if (v := upload.text(k))}
        sigs = upload.text("signals")
        if sigs:
            try:
                fields["signals"] = json.loads(sigs)
            except json.JSONDecodeError as exc:
                raise InvalidInput("signals must be a JSON array", code="invalid_json") from exc
        user = upload.text("user")
        if user:
            fields["user"] = user_from_form(user)
        body = _parse(fields)
        data, media_type, filename = upload.data, upload.content_type, upload.filename
    else:
        raise UnsupportedMedia("send application/json or multipart/form-data", code="unsupported_content_type")
    return ReportInput(
        reporter_id=body.reporter_id,
        reason=body.reason,
        locale=body.locale,
        country=body.country,
        reported_user_id=body.reported_user_id,
        content_id=body.content_id,
        conversation_id=body.conversation_id,
        text=body.text,
        signals=tuple(Signal(s.type, s.value) for s in body.signals),
        data=data,
        media_type=media_type,
        filename=filename,
        user_info=body.user.stored() if body.user else None,
    )


@router.post("/user-reports", status_code=201, summary="Relay a user's report: scanned, queued, answered with advice")
async def create_user_report(
    request: Request, svc: Services = Depends(services), who: Who = Depends(PLATFORM)
) -> dict[str, Any]:
    report = await _read(request, svc.engine.settings.max_upload_bytes)
    result = await run_in_threadpool(service_of(request, svc).submit, who, report)
    return result.to_dict()


@router.get("/user-reports/{report_id}", summary="A user report's status and the reporter's advice")
def get_user_report(
    report_id: str,
    request: Request,
    country: str | None = None,
    svc: Services = Depends(services),
    who: Who = Depends(PLATFORM),
) -> dict[str, Any]:
    return service_of(request, svc).get(who, report_id, country=country).to_dict()
