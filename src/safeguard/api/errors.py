"""Every error is JSON: ``{"error": {"code", "message", "details"?}}`` with a stable code.

That holds for the unexpected too: an exception no handler knows is logged with its traceback and
answered ``500 internal_error`` in JSON (never Starlette's plain-text page, never the exception's
text). The target is that none happen: the fuzz tests (``tests/fuzz/``) assert no 5xx at all.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from safeguard.errors import SafeguardError

log = logging.getLogger(__name__)

INTERNAL_ERROR: dict[str, Any] = {
    "error": {"code": "internal_error", "message": "the server failed to answer this request; it has been logged"}
}


def install(app: FastAPI) -> None:
    @app.exception_handler(SafeguardError)
    async def _safeguard(_: Request, exc: SafeguardError) -> JSONResponse:
        # an error may carry response headers (``Retry-After`` on 503 decode_busy)
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": "request failed validation", "details": details}},
            status_code=422,
        )

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        # a route that validates a model itself (``Model.model_validate``) and lets the error through
        details = json.loads(exc.json(include_url=False, include_input=False))
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": "request failed validation", "details": details}},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware calls this, sends the answer, then re-raises for the server's log
        log.error("unexpected error in %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse(INTERNAL_ERROR, status_code=500)
