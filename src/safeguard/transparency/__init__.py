"""Transparency reports computed from the event log (docs/transparency.md).

:func:`generate` builds a report for a period and renders it as JSON (the auditor's record, exact
figures), HTML (one self-contained page to publish) or CSV (the EU harmonised template's fields);
:func:`verify_file` recomputes a JSON report from the database and lists every difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeguard.config import Settings
from safeguard.store import Database
from safeguard.transparency.period import FORMATS, Period, Scope, check_format, parse_period, parse_scope
from safeguard.transparency.render import to_csv, to_html, to_json
from safeguard.transparency.report import FORMAT, Verification, build, load, verify

__all__ = [
    "FORMAT",
    "FORMATS",
    "MEDIA_TYPES",
    "Period",
    "Scope",
    "Verification",
    "build",
    "generate",
    "parse_period",
    "parse_scope",
    "render",
    "verify_file",
]

MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8"}


def render(report: dict[str, Any], fmt: str) -> str:
    check_format(fmt)
    if fmt == "html":
        return to_html(report)
    if fmt == "csv":
        return to_csv(report)
    return to_json(report)


def generate(db: Database, settings: Settings, period: Period, fmt: str, scope: Scope | None = None) -> str:
    """The report of ``period`` (of ``scope``, default the whole instance) in ``fmt`` (``invalid_format`` if it
    is none of :data:`FORMATS`)."""
    check_format(fmt)
    with db.read() as s:
        report = build(s, period, settings.transparency_min_count, scope)
    return render(report, fmt)


def verify_file(db: Database, path: Path) -> Verification:
    report = load(path)
    with db.read() as s:
        return verify(s, report)
