"""``POST /v1/scan``: bytes (multipart) or hashes only (JSON) in, a decision out, synchronously."""

from __future__ import annotations

import json
import time
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from safeguard.api import metrics
from safeguard.api.deps import Services, require, services
from safeguard.content import Content, ContentKind, Signal
from safeguard.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from safeguard.keys import Principal

router = APIRouter(prefix="/v1", tags=["scan"])

CONTEXT_FIELDS = ("content_id", "user_id", "conversation_id", "stream_id")


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="signal type: sha256, md5, pdq, ...")
    value: str
    quality: int | None = Field(default=None, ge=0, le=100)
    timestamp: float | None = None


class HashScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signals: list[SignalIn] = Field(min_length=1, max_length=1000)
    content_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    stream_id: str | None = Field(default=None, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)


#: items in one ``POST /v1/scan/batch`` (each is a full hash-only scan with its own decision)
MAX_BATCH_ITEMS = 1000


class HashBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[HashScanIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


SCAN_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{f: {"type": "string"} for f in CONTEXT_FIELDS},
                    },
                }
            },
            "application/json": {"schema": HashScanIn.model_json_schema(ref_template="#/components/schemas/{model}")},
        },
    }
}


@router.post("/scan", openapi_extra=SCAN_OPENAPI, summary="Scan an upload (bytes or hashes) and get a decision")
async def scan(
    request: Request, svc: Services = Depends(services), who: Principal = Depends(require("platform"))
) -> Any:
    t0 = time.perf_counter()
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        content = await _from_form(request, svc)
    elif ctype.startswith("application/json"):
        content = await _from_json(request)
    else:
        raise UnsupportedMedia(
            "send multipart/form-data with a 'file' field, or application/json with 'signals'",
            code="unsupported_content_type",
        )
    if content.kind == ContentKind.VIDEO and _defer(request, content):
        from safeguard.workers.video_jobs import VideoScanJobs

        jobs = getattr(request.app.state, "video_jobs", None) or VideoScanJobs(svc.engine)
        request.app.state.video_jobs = jobs
        decision_id = await run_in_threadpool(jobs.submit, content, actor=who.actor)
        return JSONResponse(
            {"id": decision_id, "status": "pending", "href": f"/v1/decisions/{decision_id}"}, status_code=202
        )
    engine = svc.engine
    if content.data is None:  # hash-only: a few hashes are matched on the loop, no thread hop
        decision = await engine.scan_async(content, actor=who.actor)
    else:  # decoding and hashing run in a thread; the wait for the commit does not hold one
        work = await run_in_threadpool(engine.prepare, content, actor=who.actor)
        decision = await engine.recorder.submit_async(work)
    elapsed = time.perf_counter() - t0
    metrics.observe_scan(decision.verdict.value, content.kind.value, elapsed)
    body = decision.to_dict()
    body["timing_ms"] = round(elapsed * 1000, 3)
    return JSONResponse(body)  # plain JSON types already: skip FastAPI's jsonable_encoder walk


@router.post("/scan/batch", summary="Scan up to 1,000 hash-only items in one request: one recorded decision each")
async def scan_batch(
    request: Request, svc: Services = Depends(services), who: Principal = Depends(require("platform"))
) -> Any:
    """For callers that check many hashes at once (a backfill, a client that batches on-device hashes):
    the same decision per item as ``POST /v1/scan`` with its JSON body, recorded the same way, with
    the HTTP and index work shared. Items are validated first; one bad item fails the request (its
    position in ``details.item``) and nothing is written."""
    t0 = time.perf_counter()
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMedia("send application/json with 'items'", code="unsupported_content_type")
    body = _parse(HashBatchIn, await request.body(), "invalid hash-batch request")
    contents = [_hash_content(item) for item in body.items]
    decisions = await svc.engine.scan_many_async(contents, actor=who.actor)
    elapsed = time.perf_counter() - t0
    for d in decisions:
        metrics.observe_scan(d.verdict.value, ContentKind.HASHES.value, elapsed / len(decisions))
    return JSONResponse({"decisions": [d.to_dict() for d in decisions], "timing_ms": round(elapsed * 1000, 3)})


def _defer(request: Request, content: Content) -> bool:
    """Large or long videos (or any, with ``?async=true``) are scanned in the background: 202 now, webhook later."""
    from safeguard.workers.video_jobs import should_defer

    requested = request.query_params.get("async", "").lower() in ("1", "true", "yes")
    return should_defer(content.data or b"", requested=requested)


async def _from_form(request: Request, svc: Services) -> Content:
    limit = svc.engine.settings.max_upload_bytes
    form = await request.form(max_files=1, max_fields=20)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("multipart body needs a 'file' field with the media", code="missing_file")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"file over the limit of {limit} bytes", details={"max_bytes": limit})
    fields: dict[str, str | None] = {f: (str(form[f]) if form.get(f) else None) for f in CONTEXT_FIELDS}
    for k, v in fields.items():
        if v is not None and len(v) > 200:
            raise InvalidInput(f"{k} longer than 200 characters", code="invalid_field")
    media = svc.engine.media_for(data, upload.content_type)
    kind = ContentKind.VIDEO if media.is_video else ContentKind.IMAGE
    return Content(
        kind=kind,
        data=data,
        filename=upload.filename,
        media_type=media.media_type,
        content_id=fields["content_id"],
        user_id=fields["user_id"],
        conversation_id=fields["conversation_id"],
        stream_id=fields["stream_id"],
    )


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], raw: bytes, what: str) -> _Model:
    try:
        return model.model_validate(json.loads(raw or b"null"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"invalid JSON: {exc.msg}", code="invalid_json") from exc
    except ValidationError as exc:
        raise InvalidInput(what, code="invalid_request", details=json.loads(exc.json(include_url=False))) from exc


async def _from_json(request: Request) -> Content:
    return _hash_content(_parse(HashScanIn, await request.body(), "invalid hash-scan request"))


def _hash_content(body: HashScanIn) -> Content:
    signals = tuple(Signal(s.type, s.value, s.quality, s.timestamp) for s in body.signals)
    return Content(
        kind=ContentKind.HASHES, signals=signals, context=body.context, **{f: getattr(body, f) for f in CONTEXT_FIELDS}
    )
