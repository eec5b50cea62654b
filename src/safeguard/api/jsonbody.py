"""Every JSON request body is parsed once, strictly, before any route sees it.

:class:`StrictJSONMiddleware` reads a request whose ``Content-Type`` is JSON (``application/json`` or
``application/*+json``), refuses it past ``SAFEGUARD_MAX_JSON_BYTES`` as it streams (413), and parses
it with :func:`safeguard.strictjson.loads` (UTF-8 only, no NaN/Infinity, 64-bit integers, no lone
surrogates, depth at most ``SAFEGUARD_MAX_JSON_DEPTH``). A body that fails gets the API's 4xx JSON
error at once; one that passes is handed on unchanged, its parsed value kept in the request scope for
:func:`json_body`, so routes that parse their body themselves do not parse it twice. FastAPI's own
body parsing then reads JSON already known to be sane.

Why a middleware and not a FastAPI route class: it covers every route, those added later included,
and a route cannot forget it. The hash-only scan (``api/scan.HashScanRoute``) answers in front of all
middleware and calls :func:`safeguard.strictjson.loads` itself, with the same limits.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safeguard import strictjson
from safeguard.api.limits import declared_over, refuse
from safeguard.errors import SafeguardError

#: where the parsed body is kept in the ASGI scope
SCOPE_KEY = "safeguard.json"


def is_json(content_type: bytes | str | None) -> bool:
    if not content_type:
        return False
    ct = content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type
    main = ct.split(";", 1)[0].strip().lower()
    return main == "application/json" or (main.startswith("application/") and main.endswith("+json"))


class StrictJSONMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_json(_header(scope, b"content-type")):
            await self.app(scope, receive, send)
            return
        if declared_over(scope, self.max_bytes):
            await refuse(send, self.max_bytes)
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await refuse(send, self.max_bytes)
                return
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                scope[SCOPE_KEY] = strictjson.loads(body, max_bytes=self.max_bytes, max_depth=self.max_depth)
            except SafeguardError as exc:
                await JSONResponse(exc.to_dict(), status_code=exc.status)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or ():
        if k == name:
            return bytes(v)
    return None


async def json_body(request: Request) -> Any:
    """The request's JSON body, parsed strictly (``None`` for an empty body): the middleware's result,
    or parsed here with the app's limits where the middleware did not run (a body sent with another
    content type)."""
    if SCOPE_KEY in request.scope:
        return request.scope[SCOPE_KEY]
    raw = await request.body()
    if not raw:
        return None
    return loads_for(request, raw)


def loads_for(request: Request, raw: bytes) -> Any:
    """:func:`safeguard.strictjson.loads` with the limits of the app serving ``request``."""
    settings = request.app.state.services.engine.settings
    return strictjson.loads(raw, max_bytes=settings.max_json_bytes, max_depth=settings.max_json_depth)


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined: self-contained, for a route that documents
    a body it parses itself (``openapi_extra``). A ``$ref`` to a component that FastAPI never
    registered would leave the document dangling, and fuzzers and client generators would skip it."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    out: dict[str, Any] = resolve(schema)
    return out
