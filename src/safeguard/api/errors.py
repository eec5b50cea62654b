"""Every error is JSON: ``{"error": {"code", "message", "details"?}}`` with a stable code."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from safeguard.errors import SafeguardError


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

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)
