"""``POST /v1/scan``: bytes (multipart) or hashes only (JSON) in, a decision out, synchronously."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from safeguard import strictjson
from safeguard.api import auth, metrics
from safeguard.api.deps import Services, allowed_roles, authenticate, check_role, require, services
from safeguard.api.errors import INTERNAL_ERROR
from safeguard.api.jsonbody import inline_schema, json_body
from safeguard.api.limits import declared_over, refuse
from safeguard.api.multipart import read_upload
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Decision, Signal
from safeguard.dsa.territory import parse_territory
from safeguard.errors import InvalidInput, SafeguardError, UnsupportedMedia
from safeguard.keys import Principal
from safeguard.reported_user import UserIn, user_from_form
from safeguard.signals.vpdq import MAX_TIMESTAMP

router = APIRouter(prefix="/v1", tags=["scan"])
log = logging.getLogger(__name__)

CONTEXT_FIELDS = ("content_id", "user_id", "conversation_id", "stream_id")


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    type: str = Field(max_length=32, description="signal type: sha256, md5, pdq, ...")
    value: str = Field(max_length=512)
    quality: int | None = Field(default=None, ge=0, le=100)
    timestamp: float | None = Field(default=None, ge=0, le=MAX_TIMESTAMP, description="seconds into a video")


class HashScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signals: list[SignalIn] = Field(min_length=1, max_length=1000)
    content_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)
    conversation_id: str | None = Field(default=None, max_length=200)
    stream_id: str | None = Field(default=None, max_length=200)
    context: dict[str, Any] = Field(default_factory=dict)
    user: UserIn | None = Field(default=None, description="details of the account (docs/reporting.md)")
    territory: str | None = Field(
        default=None,
        max_length=16,
        description="where the user is: ISO 3166-1 alpha-2 (DE, FR, ...) or EU; EU/EEA gets DSA statements (docs/dsa.md)",
    )


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
                        "territory": {"type": "string", "description": "ISO 3166-1 alpha-2 or EU (docs/dsa.md)"},
                        "user": {"type": "string", "description": "JSON: ip, port, screen_name, email, ..."},
                    },
                }
            },
            "application/json": {"schema": inline_schema(HashScanIn)},
        },
    }
}


@router.post("/scan", openapi_extra=SCAN_OPENAPI, summary="Scan an upload (bytes or hashes) and get a decision")
async def scan(
    request: Request, svc: Services = Depends(services), who: Principal = Depends(require("platform"))
) -> Any:
    t0 = time.perf_counter()
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):  # usually answered by HashScanRoute before it gets here
        return JSONResponse(await scan_json(svc, who, await json_body(request), t0))
    if ctype.startswith("multipart/form-data"):
        content = await _from_form(request, svc, who.tenant)
    else:
        raise UnsupportedMedia(
            "send multipart/form-data with a 'file' field, or application/json with 'signals'",
            code="unsupported_content_type",
        )
    if content.kind == ContentKind.VIDEO and _defer(request, content, svc.engine.settings):
        jobs = svc.video_jobs()
        decision_id = await run_in_threadpool(jobs.submit, content, actor=who.actor)
        return JSONResponse(
            {"id": decision_id, "status": "pending", "href": f"/v1/decisions/{decision_id}"}, status_code=202
        )
    engine = svc.engine
    # decoding and hashing run in a thread; the wait for the commit does not hold one
    work = await run_in_threadpool(engine.prepare, content, actor=who.actor)
    decision = await engine.recorder.submit_async(work)
    return JSONResponse(_answer(decision, content, t0))  # plain JSON types: skip FastAPI's jsonable_encoder


async def scan_json(svc: Services, who: Principal, body: Any, t0: float) -> dict[str, Any]:
    """The hash-only scan (a JSON body, parsed): validate, match, record; returns the response body."""
    content = _hash_content(_parse(HashScanIn, body, "invalid hash-scan request"), who.tenant)
    # a few hashes are matched on the loop, no thread hop (see Engine.scan_async)
    decision = await svc.engine.scan_async(content, actor=who.actor)
    return _answer(decision, content, t0)


def _answer(decision: Decision, content: Content, t0: float) -> dict[str, Any]:
    elapsed = time.perf_counter() - t0
    metrics.observe_scan(decision.verdict.value, content.kind.value, elapsed)
    body = decision.to_dict()
    body["timing_ms"] = round(elapsed * 1000, 3)
    return body


_PLATFORM = allowed_roles("platform")


class HashScanRoute:
    """ASGI middleware that answers ``POST /v1/scan`` with a JSON body itself: the hot path of a
    platform that hashes on its side. Same authentication, role check, parsing, decision, errors,
    body limit and response as the FastAPI route, which still serves every other request, documents
    this one in OpenAPI, and answers it where this middleware is not installed.

    Why: FastAPI's routing, dependency resolution and middleware layers cost about as much CPU as the
    scan itself (a hash lookup and its recorded decision); see docs/performance.md. The app puts it in
    front of its whole stack (:class:`safeguard.api.app.SafeguardAPI`): an unexpected error here
    is logged and answered ``500 internal_error`` in JSON, as the app's own handler does.
    """

    def __init__(self, app: ASGIApp, svc: Services, path: str = "/v1/scan", max_bytes: int | None = None) -> None:
        self.app = app
        self.svc = svc
        self.path = path
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        ctype = authorization = x_api_key = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                ctype = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                x_api_key = value.decode("latin-1")
        if ctype is None or not ctype.startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:  # the key, its role and its rate limit before a byte of the body is read
            who = check_role(await self._admit(scope, authorization, x_api_key), _PLATFORM)
        except SafeguardError as exc:
            await auth.refuse(scope, send, exc)
            return
        limit = self.max_bytes
        if limit is not None and declared_over(scope, limit):
            await refuse(send, limit)
            return
        chunks = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if limit is not None and seen > limit:
                await refuse(send, limit)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        try:
            settings = self.svc.engine.settings
            raw = b"".join(chunks)
            body = strictjson.loads(raw, max_bytes=limit, max_depth=settings.max_json_depth) if raw else None
            response = JSONResponse(await scan_json(self.svc, who, body, t0))
        except SafeguardError as exc:
            response = JSONResponse(exc.to_dict(), status_code=exc.status, headers=getattr(exc, "headers", None))
        except Exception:
            log.exception("unexpected error in the hash-only scan")
            response = JSONResponse(INTERNAL_ERROR, status_code=500)
        await response(scope, receive, send)

    async def _admit(self, scope: Scope, authorization: str | None, x_api_key: str | None) -> Principal:
        if self.svc.gate is None:
            return await authenticate(self.svc, authorization, x_api_key)
        client = scope.get("client")
        return await self.svc.gate.admit(authorization, x_api_key, client[0] if client else "")


@router.post(
    "/scan/batch",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": inline_schema(HashBatchIn)}}}
    },
    summary="Scan up to 1,000 hash-only items in one request: one recorded decision each",
)
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
    body = _parse(HashBatchIn, await json_body(request), "invalid hash-batch request")
    contents = [_hash_content(item, who.tenant, index=i) for i, item in enumerate(body.items)]
    decisions = await svc.engine.scan_many_async(contents, actor=who.actor)
    elapsed = time.perf_counter() - t0
    for d in decisions:
        metrics.observe_scan(d.verdict.value, ContentKind.HASHES.value, elapsed / len(decisions))
    return JSONResponse({"decisions": [d.to_dict() for d in decisions], "timing_ms": round(elapsed * 1000, 3)})


def _defer(request: Request, content: Content, settings: Settings) -> bool:
    """Large, long or high-resolution videos (or any, with ``?async=true``) are scanned in the
    background: 202 now, webhook later."""
    from safeguard.workers.video_jobs import should_defer

    requested = request.query_params.get("async", "").lower() in ("1", "true", "yes")
    return should_defer(content.data or b"", settings, requested=requested)


async def _from_form(request: Request, svc: Services, tenant: str) -> Content:
    upload = await read_upload(
        request,
        limit=svc.engine.settings.max_upload_bytes,
        require_file="multipart body needs a 'file' field with the media",
    )
    data = upload.data or b""
    fields = {f: upload.text(f, 200) for f in CONTEXT_FIELDS}
    territory = parse_territory(upload.text("territory"))
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
        tenant=tenant,
        user_info=user_from_form(upload.text("user")),
        territory=territory,
    )


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(model: type[_Model], body: Any, what: str) -> _Model:
    """Validate a strictly parsed JSON body (see ``safeguard.strictjson``) against ``model``."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(what, code="invalid_request", details=json.loads(exc.json(include_url=False))) from exc


def _hash_content(body: HashScanIn, tenant: str, *, index: int | None = None) -> Content:
    signals = tuple(Signal(s.type, s.value, s.quality, s.timestamp) for s in body.signals)
    try:
        territory = parse_territory(body.territory)
    except InvalidInput as exc:
        if index is None:
            raise
        raise InvalidInput(f"item {index}: {exc.message}", code=exc.code, details={"item": index}) from exc
    return Content(
        kind=ContentKind.HASHES,
        signals=signals,
        context=body.context,
        tenant=tenant,
        user_info=body.user.stored() if body.user else None,
        territory=territory,
        **{f: getattr(body, f) for f in CONTEXT_FIELDS},
    )
