"""The optional ``user`` details a platform may send about the account behind content (``/v1/scan``,
``/v1/user-reports``, conversation messages): what a law-enforcement report names about the reported
person. Validated here, once, and stored with the decision (its ``body["user"]``), never sent anywhere
until a person approves a report (docs/reporting.md)."""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from safeguard.errors import InvalidInput


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: str | None = Field(None, max_length=45, description="the IP address the content came from (v4 or v6)")
    port: int | None = Field(None, ge=1, le=65535, description="its source port")
    screen_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    account_created_at: datetime | None = Field(None, description="when the account was created (ISO 8601)")

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(ipaddress.ip_address(v.strip()))
        except ValueError as exc:
            raise ValueError("not an IP address") from exc

    @field_validator("screen_name", "email", "display_name")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        if v is not None and "\x00" in v:
            raise ValueError("contains NUL characters")
        return v

    def stored(self) -> dict[str, Any] | None:
        """The JSON kept with the decision (only the fields given), or ``None`` when nothing was."""
        d = self.model_dump(mode="json", exclude_none=True)
        return d or None


def user_from_form(raw: str | None) -> dict[str, Any] | None:
    """A multipart ``user`` field: a JSON object of the fields above."""
    if not raw:
        return None
    try:
        return UserIn.model_validate(json.loads(raw)).stored()
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(
            "user must be a JSON object of ip, port, screen_name, email, display_name, account_created_at",
            code="invalid_user",
        ) from exc
