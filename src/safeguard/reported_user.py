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

MAX_LINKED = 50


def _no_nul_text(v: str | None) -> str | None:
    if v is not None and "\x00" in v:
        raise ValueError("contains NUL characters")
    return v


class LinkedAccountIn(BaseModel):
    """Another account the platform links to the reported one (same person, same device, a payment...)."""

    model_config = ConfigDict(extra="forbid")
    platform: str | None = Field(
        None, min_length=1, max_length=200, description="the service it is on (default: this one)"
    )
    user_id: str = Field(min_length=1, max_length=200, description="its id on that service")
    screen_name: str | None = Field(None, max_length=200)

    @field_validator("platform", "user_id", "screen_name")
    @classmethod
    def _no_nul(cls, v: str | None) -> str | None:
        return _no_nul_text(v)


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ip: str | None = Field(None, max_length=45, description="the IP address the content came from (v4 or v6)")
    port: int | None = Field(None, ge=1, le=65535, description="its source port")
    screen_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    account_created_at: datetime | None = Field(None, description="when the account was created (ISO 8601)")
    linked_accounts: list[LinkedAccountIn] | None = Field(
        None, max_length=MAX_LINKED, description=f"other accounts the platform links to this one (at most {MAX_LINKED})"
    )

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
        return _no_nul_text(v)

    @field_validator("account_created_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2025-01-31T10:00:00Z)")
        return v

    def stored(self) -> dict[str, Any] | None:
        """The JSON kept with the decision (only the fields given), or ``None`` when nothing was."""
        d = self.model_dump(mode="json", exclude_none=True)
        if not d.get("linked_accounts"):
            d.pop("linked_accounts", None)
        return d or None


def user_from_form(raw: str | None) -> dict[str, Any] | None:
    """A multipart ``user`` field: a JSON object of the fields above."""
    if not raw:
        return None
    try:
        return UserIn.model_validate(json.loads(raw)).stored()
    except (ValueError, ValidationError) as exc:
        raise InvalidInput(
            "user must be a JSON object of ip, port, screen_name, email, display_name, account_created_at, "
            "linked_accounts",
            code="invalid_user",
        ) from exc
