"""The words of case work, and the pure rules over them (no IO).

A case sits in one *queue* (``csam``, ``grooming``, ``streams``, ``user_reports``) at a *priority*
(0 first), and moves ``open`` → ``claimed`` (a moderator holds a lease on it) → ``decided`` (confirmed:
ready to report) or ``closed`` (not violating). An ``escalated`` decision sends the case back to
``open`` for a lead; with a second opinion required, a first decision sends it back to ``open`` until
a different reviewer agrees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from safeguard.content import Content, ContentKind, Finding
from safeguard.errors import ConfigError, InvalidInput

QUEUES = ("csam", "grooming", "streams", "user_reports")
STATUSES = ("open", "claimed", "decided", "closed")
#: statuses in which a case still takes new items (a claimed case is being worked: join it)
ACTIVE = ("open", "claimed")
OUTCOMES = ("confirmed", "not_violating", "escalated")
#: the industry classification (A/B: prepubescent/pubescent; 1/2: sex act/lascivious exhibition), and the
#: categories of the other queues' harms
CATEGORIES = ("A1", "A2", "B1", "B2", "grooming", "sextortion", "self_generated", "other")
SECOND_OPINION = ("off", "not_violating", "all")
#: roles that may work cases; ``lead`` and ``admin`` may also reassign and override
WORKER_ROLES = frozenset({"moderator", "lead", "admin"})
LEAD_ROLES = frozenset({"lead", "admin"})
READER_ROLES = frozenset({"moderator", "lead", "admin", "auditor"})


def no_nul(**fields: str | None) -> None:
    """Refuse text with NUL characters (PostgreSQL cannot store them): 422 ``invalid_encoding``."""
    for name, value in fields.items():
        if value is not None and "\x00" in value:
            raise InvalidInput(f"{name} contains NUL characters", code="invalid_encoding")


def queue_for(content: Content, findings: Iterable[Finding]) -> str:
    """The queue a detection's case goes to: live streams, grooming, else hash matches (csam)."""
    if content.kind is ContentKind.STREAM or content.stream_id:
        return "streams"
    if any(f.detector == "grooming" for f in findings):
        return "grooming"
    return "csam"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_sla(text: str) -> dict[str, tuple[timedelta, ...]]:
    """``csam=1h/4h/24h,grooming=...`` → {queue: (P0, P1, P2, ...)}; every queue must be given."""
    out: dict[str, tuple[timedelta, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        queue, sep, spec = part.partition("=")
        queue = queue.strip()
        if not sep or queue not in QUEUES:
            raise ConfigError(f"SAFEGUARD_REVIEW_SLA: {part!r} is not queue=durations", code="invalid_setting")
        times = []
        for d in spec.split("/"):
            m = _DURATION.match(d)
            if m is None:
                raise ConfigError(f"SAFEGUARD_REVIEW_SLA: {d!r} is not a duration", code="invalid_setting")
            times.append(timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)]))
        out[queue] = tuple(times)
    missing = [q for q in QUEUES if q not in out]
    if missing:
        raise ConfigError(f"SAFEGUARD_REVIEW_SLA names no time for {missing}", code="invalid_setting")
    return out


def sla_for(sla: dict[str, tuple[timedelta, ...]], queue: str, priority: int) -> timedelta:
    times = sla[queue]
    return times[min(max(priority, 0), len(times) - 1)]


def check_second_opinion(value: str) -> str:
    if value not in SECOND_OPINION:
        raise ConfigError(
            f"SAFEGUARD_REVIEW_SECOND_OPINION must be one of {SECOND_OPINION}, not {value!r}", code="invalid_setting"
        )
    return value


def needs_second_opinion(mode: str, outcome: str) -> bool:
    """Whether a first (non-lead) decision with ``outcome`` waits for a second reviewer."""
    if outcome == "escalated" or mode == "off":
        return False
    return mode == "all" or outcome == mode
