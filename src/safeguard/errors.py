"""Errors with a stable, machine-readable code.

Every error the engine raises on bad input is a :class:`SafeguardError`; the API turns it into
``{"error": {"code": ..., "message": ..., "details": ...}}`` with ``status``, and the CLI prints it.
Codes are part of the public contract: add new ones, never rename.
"""

from __future__ import annotations

from typing import Any


class SafeguardError(Exception):
    code = "error"
    status = 400

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class InvalidInput(SafeguardError):
    code = "invalid_input"
    status = 422


class MediaError(SafeguardError):
    """Media that cannot be decoded: empty, truncated, corrupt, unsupported, too many pixels."""

    code = "invalid_media"
    status = 422


class UnsupportedMedia(MediaError):
    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(SafeguardError):
    code = "payload_too_large"
    status = 413


class NotFound(SafeguardError):
    code = "not_found"
    status = 404


class Conflict(SafeguardError):
    code = "conflict"
    status = 409


class Unauthorized(SafeguardError):
    code = "unauthorized"
    status = 401


class Forbidden(SafeguardError):
    code = "forbidden"
    status = 403


class ConfigError(SafeguardError):
    code = "config_error"
    status = 500
