"""ReportService: the report rows — listing, reading, approving, retracting, drafting from a case.

Every rule (roles, who may approve, the state machine) is checked here, once; every change is an event in
the same transaction as the change. Sending is the submitter's (:mod:`safeguard.reports.submitter`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.accounts.who import Who
from safeguard.config import Settings
from safeguard.errors import Conflict, Forbidden, InvalidInput, NotFound
from safeguard.reports.drafts import draft_for_case
from safeguard.reports.gather import gather, missing
from safeguard.reports.model import READER_ROLES, REPORT_ROLES, STATES, check_move
from safeguard.reports.ncmec.xml import report_xml, validate
from safeguard.store import Database, pagination
from safeguard.store.models import Case, Event, Report, utcnow
from safeguard.store.rowview import from_row, iso_dict

STEP_LIMIT = 500


@dataclass(frozen=True)
class ReportView:
    id: int
    case_id: int
    reported_user: str
    state: str
    step: str
    category: str
    transport: str
    decision_ids: list[str]
    item_ids: list[str]
    ncmec_report_id: str | None
    files: dict[str, Any]
    validation: list[str]
    error: str | None
    error_step: str | None
    confirmed_by: str | None
    approved_by: str | None
    matched_at: datetime | None
    confirmed_at: datetime | None
    approved_at: datetime | None
    submitted_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, r: Report) -> ReportView:
        return from_row(
            cls,
            r,
            decision_ids=list(r.decision_ids or []),
            item_ids=list(r.item_ids or []),
            files=dict(r.files or {}),
            validation=list(r.validation or []),
        )

    def to_dict(self) -> dict[str, Any]:
        return iso_dict(self)


def _need(who: Who, roles: frozenset[str]) -> None:
    if who.role not in roles:
        raise Forbidden(f"role {who.role!r} may not do this; needs one of {sorted(roles)}", code="wrong_role")


def record(s: Session, r: Report, type_: str, actor: str, **payload: Any) -> None:
    events.append(s, type_, actor=actor, subject=("report", str(r.id)), payload=dict(payload, state=r.state))


class ReportService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    # -- reading ---------------------------------------------------------------------------------
    def list_reports(
        self, who: Who, *, state: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[ReportView], str | None]:
        _need(who, READER_ROLES)
        limit = pagination.clamp(limit)
        q = select(Report)
        if state:
            states = tuple(dict.fromkeys(x.strip() for x in state.split(",")))
            if any(x not in STATES for x in states):
                raise InvalidInput(f"state must be among {STATES}", code="invalid_state")
            q = q.where(Report.state.in_(states))
        if cursor:
            q = q.where(Report.id > pagination.id_after(cursor, "r"))
        with self.db.read() as s:
            rows = list(s.execute(q.order_by(Report.id).limit(limit + 1)).scalars())
        page, nxt = pagination.cut(rows, limit, lambda r: ("r", r.id))
        return [ReportView.of(r) for r in page], nxt

    def get(self, who: Who, report_id: int) -> ReportView:
        _need(who, READER_ROLES)
        with self.db.read() as s:
            return ReportView.of(self._report(s, report_id))

    def steps(self, who: Who, report_id: int) -> list[dict[str, Any]]:
        """The report's events, oldest first: every step it took."""
        _need(who, READER_ROLES)
        with self.db.read() as s:
            self._report(s, report_id)
            rows = s.execute(
                select(Event)
                .where(and_(Event.subject_kind == "report", Event.subject_id == str(report_id)))
                .order_by(Event.seq)
                .limit(STEP_LIMIT)
            ).scalars()
            return [
                {"seq": e.seq, "at": e.created_at.isoformat(), "type": e.type, "actor": e.actor, "payload": e.payload}
                for e in rows
            ]

    def preview(self, who: Who, report_id: int) -> dict[str, Any]:
        """Exactly what would be sent: the report XML, its validation against NCMEC's schema, what is
        missing, and the files (a file's details XML is built when NCMEC has given its file id)."""
        _need(who, READER_ROLES)
        with self.db.read() as s:
            r = self._report(s, report_id)
            data, files = gather(s, r, self.settings)
        doc = report_xml(data)
        return {
            "report_id": report_id,
            "xml": doc.decode(),
            "validation": validate(doc),
            "missing": missing(data, files),
            "files": [
                {
                    "key": f.key,
                    "file_name": f.file_name,
                    "hashes": f.hashes,
                    "uploaded_at": f.uploaded_at.isoformat() if f.uploaded_at else None,
                    "sent": f.has_bytes,
                }
                for f in files
            ],
            "transcript": data.transcript,
        }

    # -- changes ---------------------------------------------------------------------------------
    def draft(self, who: Who, case_id: int) -> list[int]:
        """Draft (again) the reports of a confirmed case: a lead's way when auto-drafting is off."""
        _need(who, REPORT_ROLES)
        with self.db.write() as s:
            c = s.get(Case, case_id, with_for_update=True)
            if c is None:
                raise NotFound(f"case {case_id} not found", code="case_not_found")
            if c.outcome != "confirmed":
                raise Conflict(f"case {case_id} is not confirmed", code="case_not_confirmed")
            if not c.category:
                raise InvalidInput(f"case {case_id} has no category", code="category_required")
            return draft_for_case(s, c, actor=who.actor)

    def approve(self, who: Who, report_id: int) -> ReportView:
        """A lead approves a draft (or a failed report, to retry it); not the reviewer who confirmed the case,
        unless ``SAFEGUARD_REPORTS_SELF_APPROVE``."""
        _need(who, REPORT_ROLES)
        with self.db.write() as s:
            r = self._report(s, report_id, lock=True)
            check_move(r.id, r.state, "approved")
            if r.confirmed_by == who.actor and not self.settings.reports_self_approve:
                raise Forbidden(
                    f"{who.actor} confirmed case {r.case_id}; a second lead approves its report",
                    code="second_approver_required",
                )
            retry = r.state == "failed"
            # a retried report NCMEC already has an id for resumes at its files (each step idempotent), never
            # a second /submit
            resume = "submitted" if retry and r.ncmec_report_id else "approved"
            r.state, r.approved_by, r.approved_at, r.updated_at = resume, who.actor, utcnow(), utcnow()
            r.error = r.error_step = None
            record(s, r, "report.approved", who.actor, retry=retry, step=r.step)
            return ReportView.of(r)

    def retract(self, who: Who, report_id: int, *, reason: str = "") -> ReportView:
        """Withdraw a report before it is finished. One NCMEC has an id for is retracted at NCMEC by the
        submitter (``retract_pending``); a second retraction is a 409 ``report_state``."""
        _need(who, REPORT_ROLES)
        if "\x00" in reason or len(reason) > 2000:
            raise InvalidInput("reason must be at most 2000 characters, without NUL", code="invalid_reason")
        with self.db.write() as s:
            r = self._report(s, report_id, lock=True)
            check_move(r.id, r.state, "retracted")
            at_ncmec = r.ncmec_report_id is not None
            r.state, r.updated_at = "retracted", utcnow()
            r.step = "retract_pending" if at_ncmec else r.step
            record(s, r, "report.retracted", who.actor, reason=reason, ncmec_report_id=r.ncmec_report_id)
            return ReportView.of(r)

    @staticmethod
    def _report(s: Session, report_id: int, *, lock: bool = False) -> Report:
        r = s.get(Report, report_id, with_for_update=lock or None)
        if r is None:
            raise NotFound(f"report {report_id} not found", code="report_not_found")
        return r
