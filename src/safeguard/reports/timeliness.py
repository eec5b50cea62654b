"""Report "as soon as reasonably possible": per report, the time from the first match to confirmation and
from confirmation to submission; a ``report.overdue`` event and webhook when a confirmed case's report is
not finished ``SAFEGUARD_REPORTS_OVERDUE_HOURS`` after confirmation; counts and percentiles for /metrics.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import and_, func, select, text

from safeguard.actions.base import ActionContext
from safeguard.actions.webhook import enqueue
from safeguard.config import Settings
from safeguard.reports.service import record
from safeguard.store import Database
from safeguard.store.models import Event, Report, utcnow

OPEN = ("draft", "approved", "submitting", "submitted", "files_uploaded", "failed")
QUANTILES = (0.5, 0.9, 0.99)
OVERDUE_LOCK = 0x5347_524F  # pg_advisory_xact_lock key serialising the overdue check


def check_overdue(db: Database, settings: Settings, now: datetime | None = None) -> list[int]:
    """Flag (once each) the reports still not finished past the setting's hours after confirmation."""
    now = now or utcnow()
    cutoff = now - timedelta(hours=settings.reports_overdue_hours)
    flagged = select(Event.subject_id).where(Event.type == "report.overdue", Event.subject_kind == "report")
    out: list[int] = []
    with db.write() as s:
        if not db.is_sqlite:  # submitters in several processes flag each report once (SQLite writers serialise)
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": OVERDUE_LOCK})
        rows = list(
            s.execute(
                select(Report).where(
                    and_(Report.state.in_(OPEN), Report.confirmed_at.is_not(None), Report.confirmed_at < cutoff)
                )
            ).scalars()
        )
        already = set(s.execute(flagged).scalars())
        ctx = cast(ActionContext, SimpleNamespace(session=s, settings=settings))
        for r in rows:
            if str(r.id) in already:
                continue
            assert r.confirmed_at is not None
            hours = round((now - r.confirmed_at).total_seconds() / 3600, 2)
            payload = {"report_id": r.id, "case_id": r.case_id, "state": r.state, "hours_since_confirmation": hours}
            record(s, r, "report.overdue", "system:reports", hours_since_confirmation=hours)
            enqueue(ctx, "report.overdue", {"type": "report.overdue", "report": payload})
            out.append(r.id)
    return out


def _q(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def summary(db: Database) -> dict[str, Any]:
    """Counts by state, and percentiles (seconds) of match → confirmation and confirmation → submission."""
    with db.read() as s:
        counts = {state: n for state, n in s.execute(select(Report.state, func.count()).group_by(Report.state))}
        rows = s.execute(select(Report.matched_at, Report.confirmed_at, Report.submitted_at)).all()
    to_confirm = [(c - m).total_seconds() for m, c, _ in rows if m is not None and c is not None]
    to_submit = [(x - c).total_seconds() for _, c, x in rows if c is not None and x is not None]

    def pcts(xs: list[float]) -> dict[str, float]:
        return {str(q): _q(xs, q) for q in QUANTILES} if xs else {}

    return {
        "counts": {str(k): int(v) for k, v in counts.items()},
        "match_to_confirmation_seconds": pcts(to_confirm),
        "confirmation_to_submission_seconds": pcts(to_submit),
        "mean_confirmation_to_submission_seconds": statistics.fmean(to_submit) if to_submit else None,
    }
