"""A transparency report as data: its inputs, the event range it covers, its figures, and which figures are
too small to publish; and its verification against the database.

The JSON form is the auditor's record: it keeps every figure exact, so that ``safeguard transparency
verify`` can recompute and compare each one, and lists in ``suppressed`` the JSON pointers of those the
published forms (HTML, CSV) show as "fewer than N": counts from 1 to N-1, the median and 90th
percentile of fewer than N durations, and a share computed from fewer than N matches. Zero is shown as
zero (nothing happened is not a small count that could single anybody out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.errors import InvalidInput
from safeguard.store.db import connection_of
from safeguard.store.models import utcnow
from safeguard.transparency.figures import SOURCES, compute
from safeguard.transparency.period import Period, Scope, iso, parse_period, parse_scope

__all__ = ["FORMAT", "NOT_AVAILABLE", "Verification", "build", "load", "pointer_key", "suppressed_paths", "verify"]

FORMAT = "safeguard-transparency-report/1"
#: figures the issue asks for that the records cannot give yet, stated in every report
NOT_AVAILABLE = {
    "chat_messages_before_retention": "chat messages are counted from grooming_messages, pruned after the grooming "
    "retention period: older periods count only what is left",
    "nca_referrals_handed_over": "an NCA referral is counted when its signed package is made (event "
    "report.nca_packaged); handing the package to the NCA is a person's act Safeguard does not record",
}
#: what a scoped report cannot give, by the scope's part that takes it away
NOT_IN_SCOPE = {
    "territory": {
        "stream_frames_and_streams_watched": "streams carry no territory: frames sampled and streams watched are "
        "not given in a report scoped to a territory",
    },
    "any": {
        "chat_messages_received": "grooming_messages carry neither territory nor tenant: chat messages received are "
        "not given in a scoped report",
        "user_report_cases_without_decision": "a case opened by a user report with nothing to scan holds no "
        "decision, so it is in no territory's or tenant's report",
    },
}


def not_available(scope: Scope) -> dict[str, str]:
    out = dict(NOT_AVAILABLE)
    if not scope.whole:
        out.update(NOT_IN_SCOPE["any"])
    if scope.territory is not None:
        out.update(NOT_IN_SCOPE["territory"])
    return out


#: figures added after the first reports were published: a report made before them (it has no ``scope``)
#: is verified without them, rather than failing on figures it could not have had
ADDED_WITH_SCOPE = ("/figures/law_enforcement_reports/nca_referrals/",)


def suppressed_paths(figures: dict[str, Any], min_count: int, prefix: str = "/figures") -> list[str]:
    """The JSON pointers of the figures a published report shows as "fewer than ``min_count``"."""
    out: list[str] = []

    def small(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v < min_count

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "median_seconds" in node and small(node.get("n")):  # too few durations: all three
                out.extend(f"{path}/{k}" for k in ("n", "median_seconds", "p90_seconds"))
                return
            if "share_not_violating" in node and small(node.get("reviewed")):
                out.append(f"{path}/share_not_violating")
            for k, v in node.items():
                if k in ("bucket_days",):
                    continue
                walk(v, f"{path}/{pointer_key(str(k))}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")
        elif small(node):
            out.append(path)

    walk(figures, prefix)
    return sorted(set(out))


def pointer_key(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def build(s: Session, period: Period, min_count: int, scope: Scope | None = None) -> dict[str, Any]:
    """The report of ``period`` (of the decisions in ``scope``): every figure computed now from the log."""
    scope = scope or Scope()
    rng, figures = compute(s, period, scope)
    return {
        "format": FORMAT,
        "generated_at": iso(utcnow()),
        "inputs": {**period.to_dict(), **scope.to_dict(), "min_count": min_count, "to_exclusive": True},
        "scope": scope.describe(),
        "event_range": rng.to_dict(),
        "figures": figures,
        "suppressed": suppressed_paths(figures, min_count),
        "sources": {"default": "the hash-chained event log, seq first_seq..last_seq", **SOURCES},
        "not_available": not_available(scope),
    }


def load(path: Path) -> dict[str, Any]:
    """A report written by ``safeguard transparency report --format json``; ``invalid_report`` if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read a report: {exc}", code="invalid_report") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f"{path}: not a {FORMAT} document", code="invalid_report")
    for key in ("inputs", "event_range", "figures"):
        if not isinstance(data.get(key), dict):
            raise InvalidInput(f"{path}: {key} is missing", code="invalid_report")
    return data


@dataclass
class Verification:
    differences: list[str] = field(default_factory=list)
    figures_checked: int = 0
    events_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{path}/{pointer_key(str(k))}"))
        return out
    if isinstance(node, list):
        out = {}
        for i, v in enumerate(node):
            out.update(_leaves(v, f"{path}/{i}"))
        return out
    return {path: node}


def _check_chain(s: Session, rng: dict[str, Any], v: Verification) -> None:
    """The range's events still chain from ``prev_hash`` to ``last_hash``: none changed, added or removed."""
    first, last = rng.get("first_seq"), rng.get("last_seq")
    if first is None or last is None:
        return
    prev, expected = rng.get("prev_hash"), int(first)
    c = events.EVENTS.c
    q = select(c.seq, c.created_at, c.type, c.actor, c.subject_kind, c.subject_id, c.payload, c.prev_hash, c.hash)
    q = q.where(c.seq >= int(first), c.seq <= int(last)).order_by(c.seq)
    for ev in connection_of(s).execute(q.execution_options(yield_per=2000)):
        h = events.event_hash(
            str(prev), ev.seq, ev.created_at, ev.type, ev.actor, ev.subject_kind, ev.subject_id, ev.payload
        )
        if ev.seq != expected or ev.prev_hash != prev or h != ev.hash:
            v.differences.append(f"event seq {ev.seq}: the chain over the report's range is broken here")
            return
        prev, expected = ev.hash, expected + 1
        v.events_checked += 1
    if expected != int(last) + 1 or prev != rng.get("last_hash"):
        v.differences.append(f"event range: the chain ends at seq {expected - 1} with another hash than the report's")


def verify(s: Session, report: dict[str, Any]) -> Verification:
    """Recompute the report from its inputs and compare everything: the event range, each figure, the
    suppressed list. Every difference is listed (``path: report says X, the log gives Y``)."""
    inputs = report["inputs"]
    min_count = inputs.get("min_count")
    if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
        raise InvalidInput("inputs.min_count must be a positive integer", code="invalid_report")
    try:
        period = parse_period(str(inputs.get("from", "")), str(inputs.get("to", "")))
    except InvalidInput as exc:
        raise InvalidInput(f"inputs: {exc}", code="invalid_report") from exc
    if not inputs.get("to_exclusive"):
        raise InvalidInput("inputs.to_exclusive must be true", code="invalid_report")
    territory, tenant = inputs.get("territory"), inputs.get("tenant")
    if not all(x is None or isinstance(x, str) for x in (territory, tenant)):
        raise InvalidInput("inputs.territory and inputs.tenant must be strings or null", code="invalid_report")
    try:
        scope = parse_scope(territory, tenant)
    except InvalidInput as exc:
        raise InvalidInput(f"inputs: {exc}", code="invalid_report") from exc
    fresh = build(s, period, min_count, scope)
    older = "scope" not in report and scope.whole  # made before scopes and NCA referrals existed
    if older:
        fresh["scope"] = None
        fresh["figures"]["law_enforcement_reports"].pop("nca_referrals", None)
        fresh["suppressed"] = [p for p in fresh["suppressed"] if not p.startswith(ADDED_WITH_SCOPE)]
    v = Verification()
    _check_chain(s, report["event_range"], v)
    for key in ("event_range", "figures"):
        said, got = _leaves(report[key], f"/{key}"), _leaves(fresh[key], f"/{key}")
        for path in sorted(set(said) | set(got)):
            if path.startswith("/figures"):
                v.figures_checked += 1
            if path not in got:
                v.differences.append(f"{path}: the report says {said[path]!r}; the log has no such figure")
            elif path not in said:
                v.differences.append(f"{path}: missing from the report; the log gives {got[path]!r}")
            elif said[path] != got[path] or type(said[path]) is not type(got[path]):
                v.differences.append(f"{path}: the report says {said[path]!r}; the log gives {got[path]!r}")
    if report.get("scope") != fresh["scope"]:
        v.differences.append(f"/scope: the report says {report.get('scope')!r}; its inputs give {fresh['scope']!r}")
    if sorted(report.get("suppressed") or []) != fresh["suppressed"]:
        v.differences.append(
            f"/suppressed: the report lists {report.get('suppressed')!r}; expected {fresh['suppressed']!r}"
        )
    return v
