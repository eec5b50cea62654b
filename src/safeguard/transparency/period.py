"""The period a transparency report covers, parsed strictly from what a person types.

``--from 2026-07-01 --to 2026-12-31`` covers both whole days: a date alone as ``to`` means the end of
that day. A full ISO 8601 time (with an offset, or UTC when it has none) is taken as given, and ``to`` is
exclusive. The resolved half-open interval ``[start, end)`` in UTC is what the report records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from safeguard.dsa.territory import parse_territory
from safeguard.errors import InvalidInput
from safeguard.keys import check_tenant

__all__ = ["FORMATS", "Period", "Scope", "check_format", "parse_period", "parse_scope"]

FORMATS = ("html", "json", "csv")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: the longest period one report may cover (its figures are held in memory per bucket)
MAX_DAYS = 3660


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # exclusive

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def to_dict(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(name: str, text: str, *, end: bool) -> datetime:
    text = text.strip()
    try:
        if _DATE.match(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        t = datetime.fromisoformat(text)
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or one at the calendar's edge (9999-12-31 as an end)
        raise InvalidInput(
            f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time, not {text!r}", code="invalid_date"
        ) from None


def parse_period(start: str | None, end: str | None) -> Period:
    """``[start, end)`` from the two strings; ``invalid_date`` or ``invalid_period`` (422) on bad input."""
    if not start or not end:
        raise InvalidInput("both from and to are required", code="invalid_period")
    p = Period(_parse("from", start, end=False), _parse("to", end, end=True))
    if p.end <= p.start:
        raise InvalidInput(f"from ({iso(p.start)}) must be before to ({iso(p.end)})", code="invalid_period")
    if p.days > MAX_DAYS:
        raise InvalidInput(f"a report covers at most {MAX_DAYS} days", code="invalid_period")
    return p


@dataclass(frozen=True)
class Scope:
    """Which decisions a report counts: those whose subject had ``territory`` (the ``territory`` of the scan
    and message APIs, as the DSA statements use it) and that were made for ``tenant``; ``None`` is any."""

    territory: str | None = None
    tenant: str | None = None

    @property
    def whole(self) -> bool:
        return self.territory is None and self.tenant is None

    def to_dict(self) -> dict[str, str | None]:
        return {"territory": self.territory, "tenant": self.tenant}

    def describe(self) -> str:
        if self.whole:
            return "the whole instance: every tenant, every territory"
        parts = []
        if self.territory is not None:
            parts.append(f"decisions on users in territory {self.territory}")
        if self.tenant is not None:
            parts.append(f"decisions made for tenant {self.tenant}")
        return " and ".join(parts) + ", and the cases, reports and actions that hold them"


def parse_scope(territory: str | None, tenant: str | None) -> Scope:
    """The scope from what a person typed: ``invalid_territory`` or ``invalid_tenant`` (422) on bad input."""
    return Scope(territory=parse_territory(territory), tenant=check_tenant(tenant) if tenant is not None else None)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {list(FORMATS)}, not {fmt!r}", code="invalid_format")
    return fmt
