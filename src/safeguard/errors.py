"""Errors with a stable, machine-readable code.

Every error the engine raises on bad input is a :class:`SafeguardError`; the API turns it into
``{"error": {"code": ..., "message": ..., "details": ...}}`` with ``status``, and the CLI prints it.
Codes are part of the public contract: add new ones, never rename.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "MediaError",
    "NotFound",
    "PayloadTooLarge",
    "SafeguardError",
    "Unauthorized",
    "UnsupportedMedia",
]


class SafeguardError(Exception):
    """An error a caller can act on: a stable ``code`` (a public contract: added, never renamed),
    the HTTP ``status`` the API answers with, a human ``message`` and optional ``details``; the API and
    the CLI render it as ``{"error": {"code", "message", "details"?}}``."""

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
    """The request or file is malformed or out of bounds (422)."""

    code = "invalid_input"
    status = 422


class MediaError(SafeguardError):
    """Media that cannot be decoded: empty, truncated, corrupt, unsupported, too many pixels."""

    code = "invalid_media"
    status = 422


class UnsupportedMedia(MediaError):
    """Bytes of a media type Safeguard does not decode (415)."""

    code = "unsupported_media_type"
    status = 415


class PayloadTooLarge(SafeguardError):
    """Over a size, pixel, frame or memory limit (413)."""

    code = "payload_too_large"
    status = 413


class NotFound(SafeguardError):
    """No such id, or one the caller may not know exists (another tenant's) (404)."""

    code = "not_found"
    status = 404


class Conflict(SafeguardError):
    """The state forbids it now: a claim held by another, a closed case, a report already sent (409)."""

    code = "conflict"
    status = 409


class Unauthorized(SafeguardError):
    """No valid API key or session (401)."""

    code = "unauthorized"
    status = 401


class Forbidden(SafeguardError):
    """Authenticated, but the role or scope may not do this (403)."""

    code = "forbidden"
    status = 403


class ConfigError(SafeguardError):
    """A setting, key file or policy that stops the service from starting or acting (500)."""

    code = "config_error"
    status = 500
