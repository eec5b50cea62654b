"""CaseService: the queue, claims, decisions and timelines of human review.

The API routers (api/cases.py) and the console call these methods with a :class:`~safeguard.accounts.who.Who`
and get typed results; every rule (roles, claims, second opinions) is checked here, once, and every
change is an event in the same transaction as the change.

Claims are leases: ``claimed`` with ``assignee`` and ``claim_expires_at``. An expired lease is as good
as none: anyone may claim the case, and listing open cases first puts expired claims back to ``open``
(with a ``case.claim_expired`` event each).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.accounts.who import Who
from safeguard.banks.service import BankService
from safeguard.banks.sources.base import Row
from safeguard.cases.evidence import list_evidence
from safeguard.cases.model import (
    CATEGORIES,
    LEAD_ROLES,
    OUTCOMES,
    QUEUES,
    READER_ROLES,
    STATUSES,
    WORKER_ROLES,
    check_second_opinion,
    needs_second_opinion,
    no_nul,
    parse_sla,
)
from safeguard.config import Settings
from safeguard.errors import Conflict, Forbidden, InvalidInput, NotFound
from safeguard.reports.drafts import draft_for_case
from safeguard.signals import get_signal_type
from safeguard.store import Database, pagination
from safeguard.store.models import Bank, BankEntry, Case, CaseDecision, CaseItem, DecisionRow, Event, UserReport, utcnow
from safeguard.store.rowview import from_row

MAX_NOTES = 4000
TIMELINE_LIMIT = 1000


# -- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseSummary:
    id: int
    queue: str
    status: str
    priority: int
    subject_kind: str
    subject_id: str
    verdict: str
    reason: str
    opened_at: datetime
    updated_at: datetime
    due_at: datetime | None
    assignee: str | None
    claim_expires_at: datetime | None
    report_count: int
    escalated: bool
    awaiting_second_review: bool
    outcome: str | None
    category: str | None
    decided_by: str | None
    decided_at: datetime | None
    report_status: str

    @classmethod
    def of(cls, c: Case) -> CaseSummary:
        return from_row(cls, c, awaiting_second_review=c.pending_outcome is not None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["subject"] = {"kind": d.pop("subject_kind"), "id": d.pop("subject_id")}
        return _iso(d)


@dataclass(frozen=True)
class CaseItemView:
    decision_id: str
    created_at: datetime
    verdict: str | None
    content_id: str | None
    findings: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return _iso(asdict(self))


@dataclass(frozen=True)
class ReviewDecision:
    id: int
    reviewer: str
    role: str
    outcome: str
    category: str | None
    notes: str
    stage: str
    created_at: datetime

    @classmethod
    def of(cls, d: CaseDecision) -> ReviewDecision:
        return cls(d.id, d.reviewer, d.role, d.outcome, d.category, d.notes, d.stage, d.created_at)

    def to_dict(self) -> dict[str, Any]:
        return _iso(asdict(self))


@dataclass(frozen=True)
class CaseDetail:
    case: CaseSummary
    items: list[CaseItemView]
    findings: list[dict[str, Any]]
    decisions: list[ReviewDecision]
    evidence: list[dict[str, Any]]
    user_reports: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        d = self.case.to_dict()
        d["items"] = [i.to_dict() for i in self.items]
        d["findings"] = self.findings
        d["decisions"] = [x.to_dict() for x in self.decisions]
        d["evidence"] = self.evidence
        d["user_reports"] = self.user_reports
        return d


@dataclass(frozen=True)
class CasePage:
    cases: list[CaseSummary]
    next_cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"cases": [c.to_dict() for c in self.cases], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    created_at: datetime
    type: str
    actor: str
    subject_kind: str | None
    subject_id: str | None
    payload: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["subject"] = {"kind": d.pop("subject_kind"), "id": d.pop("subject_id")}
        return _iso(d)


@dataclass(frozen=True)
class DecisionResult:
    case: CaseSummary
    stage: str  # final / first (waiting for a second reviewer) / disagreed (to a lead) / escalated / override
    bank_entries: list[int] = field(default_factory=list)  # review-bank entries added or confirmed
    opinions: list[int] = field(default_factory=list)  # matched entries that got the opinion

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.to_dict(),
            "stage": self.stage,
            "bank_entries": self.bank_entries,
            "opinions": self.opinions,
        }


@dataclass(frozen=True)
class CaseFilter:
    queue: str | None = None
    statuses: tuple[str, ...] = ("open",)
    priority: int | None = None
    assignee: str | None = None  # an actor, "me" or "none"

    @classmethod
    def parse(cls, *, queue: str | None, status: str | None, priority: int | None, assignee: str | None) -> CaseFilter:
        if queue is not None and queue not in QUEUES:
            raise InvalidInput(f"queue must be one of {QUEUES}", code="invalid_queue")
        if status in (None, ""):
            statuses: tuple[str, ...] = ("open",)
        elif status == "all":
            statuses = ()
        else:
            statuses = tuple(dict.fromkeys(x.strip() for x in status.split(",")))
            bad = [x for x in statuses if x not in STATUSES]
            if bad:
                raise InvalidInput(f"status must be 'all' or among {STATUSES}", code="invalid_status")
        no_nul(assignee=assignee)
        if priority is not None and not 0 <= priority <= 9:
            raise InvalidInput("priority must be 0..9", code="invalid_priority")
        return cls(queue=queue, statuses=statuses, priority=priority, assignee=assignee or None)


def _iso(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


def encode_cursor(priority: int, case_id: int) -> str:
    return pagination.encode_cursor(priority, case_id)


def decode_cursor(cursor: str) -> tuple[int, int]:
    def parse(fields: list[str]) -> tuple[int, int]:
        p, i = (int(x) for x in fields)
        if not (0 <= p <= 9 and 0 <= i < pagination.MAX_ID):
            raise ValueError(fields)
        return p, i

    return pagination.decode_cursor(cursor, parse)


def _need(who: Who, roles: frozenset[str]) -> None:
    if who.role not in roles:
        raise Forbidden(f"role {who.role!r} may not do this; needs one of {sorted(roles)}", code="wrong_role")


class CaseService:
    def __init__(self, db: Database, settings: Settings, banks: BankService | None = None) -> None:
        self.db = db
        self.settings = settings
        self.banks = banks or BankService(db)
        self.lease = timedelta(seconds=settings.review_claim_seconds)
        self.second_opinion = check_second_opinion(settings.review_second_opinion)
        parse_sla(settings.review_sla)  # a bad setting stops the start, not the first matching scan

    # -- reading ---------------------------------------------------------------------------------
    def list_cases(self, who: Who, filt: CaseFilter, *, cursor: str | None = None, limit: int = 50) -> CasePage:
        _need(who, READER_ROLES)
        limit = pagination.clamp(limit)
        if not filt.statuses or "open" in filt.statuses:
            self.expire_claims()
        q = select(Case)
        if filt.statuses:
            q = q.where(Case.status == filt.statuses[0] if len(filt.statuses) == 1 else Case.status.in_(filt.statuses))
        if filt.queue:
            q = q.where(Case.queue == filt.queue)
        if filt.priority is not None:
            q = q.where(Case.priority == filt.priority)
        if filt.assignee == "none":
            q = q.where(Case.assignee.is_(None))
        elif filt.assignee:
            q = q.where(Case.assignee == (who.actor if filt.assignee == "me" else filt.assignee))
        order = (Case.priority, Case.id)
        with self.db.read() as s:
            if cursor:
                # two pure index ranges, not one OR (which both databases read as "priority >= p" and then
                # filter, scanning the cursor's whole priority): the rest of this priority, then the next ones
                p, i = decode_cursor(cursor)
                rows = list(
                    s.execute(q.where(Case.priority == p, Case.id > i).order_by(*order).limit(limit + 1)).scalars()
                )
                if len(rows) <= limit and filt.priority is None:
                    more_q = q.where(Case.priority > p).order_by(*order).limit(limit + 1 - len(rows))
                    rows += list(s.execute(more_q).scalars())
            else:
                rows = list(s.execute(q.order_by(*order).limit(limit + 1)).scalars())
        page, nxt = pagination.cut(rows, limit, lambda c: (c.priority, c.id))
        return CasePage([CaseSummary.of(c) for c in page], nxt)

    def get(self, who: Who, case_id: int) -> CaseDetail:
        """The case with its items, findings, review decisions, evidence and user reports; the view is an event."""
        _need(who, READER_ROLES)
        with self.db.write() as s:
            c = self._case(s, case_id)
            items = list(s.execute(select(CaseItem).where(CaseItem.case_id == c.id).order_by(CaseItem.id)).scalars())
            views = [
                CaseItemView(
                    decision_id=i.decision_id,
                    created_at=i.created_at,
                    verdict=i.summary.get("verdict"),
                    content_id=i.summary.get("content_id"),
                    findings=list(i.summary.get("findings") or []),
                )
                for i in items
            ]
            seen: set[str] = set()
            findings: list[dict[str, Any]] = []
            for v in views:
                for f in v.findings:
                    key = repr(sorted((k, str(x)) for k, x in f.items() if k != "evidence"))
                    if key not in seen:
                        seen.add(key)
                        findings.append(dict(f, decision_id=v.decision_id))
            decisions = [
                ReviewDecision.of(d)
                for d in s.execute(
                    select(CaseDecision).where(CaseDecision.case_id == c.id).order_by(CaseDecision.id)
                ).scalars()
            ]
            reports = [
                {"id": r.id, "reason": r.reason, "created_at": r.created_at.isoformat(), "matched": r.matched}
                for r in s.execute(
                    select(UserReport).where(UserReport.case_id == c.id).order_by(UserReport.created_at).limit(100)
                ).scalars()
            ]
            evidence = [e.to_dict() for e in list_evidence(s, c.id)]
            events.append(s, "case.viewed", actor=who.actor, subject=("case", str(c.id)), payload={})
            return CaseDetail(CaseSummary.of(c), views, findings, decisions, evidence, reports)

    def timeline(self, who: Who, case_id: int) -> list[TimelineEntry]:
        """The case's events (claims, views, decisions), its decisions' and its user reports' events, in order."""
        _need(who, READER_ROLES)
        with self.db.read() as s:
            c = self._case(s, case_id)
            decision_ids = list(s.execute(select(CaseItem.decision_id).where(CaseItem.case_id == c.id)).scalars())
            report_ids = list(s.execute(select(UserReport.id).where(UserReport.case_id == c.id)).scalars())
            conds = [and_(Event.subject_kind == "case", Event.subject_id == str(c.id))]
            if decision_ids:
                conds.append(and_(Event.subject_kind == "decision", Event.subject_id.in_(decision_ids)))
            if report_ids:
                conds.append(and_(Event.subject_kind == "user_report", Event.subject_id.in_(report_ids)))
            rows = s.execute(select(Event).where(or_(*conds)).order_by(Event.seq).limit(TIMELINE_LIMIT)).scalars()
            return [
                TimelineEntry(e.seq, e.created_at, e.type, e.actor, e.subject_kind, e.subject_id, e.payload)
                for e in rows
            ]

    # -- claims ----------------------------------------------------------------------------------
    def expire_claims(self) -> int:
        """Put cases whose claim lease has run out back to ``open``; returns how many."""
        now = utcnow()
        expired = and_(Case.status == "claimed", Case.claim_expires_at < now)
        with self.db.read() as s:
            if s.execute(select(Case.id).where(expired).limit(1)).first() is None:
                return 0
        with self.db.write() as s:
            rows = list(s.execute(select(Case).where(expired).with_for_update()).scalars())
            for c in rows:
                events.append(
                    s,
                    "case.claim_expired",
                    actor="system",
                    subject=("case", str(c.id)),
                    payload={"assignee": c.assignee},
                )
                c.status, c.assignee, c.claim_expires_at, c.updated_at = "open", None, None, now
            return len(rows)

    def claim(self, who: Who, case_id: int, *, force: bool = False) -> CaseSummary:
        """Take (or renew) the lease on a case. Someone else's live claim is a 409, unless a lead forces it."""
        _need(who, WORKER_ROLES)
        if force:
            _need(who, LEAD_ROLES)
        with self.db.write() as s:
            c = self._case(s, case_id, lock=True)
            self._claim(s, who, c, force=force)
            return CaseSummary.of(c)

    def claim_next(self, who: Who, *, queue: str | None = None) -> CaseSummary | None:
        """Claim the first open case (priority, then age) that this person may work; ``None`` if none."""
        _need(who, WORKER_ROLES)
        if queue is not None and queue not in QUEUES:
            raise InvalidInput(f"queue must be one of {QUEUES}", code="invalid_queue")
        self.expire_claims()
        for _ in range(5):  # another moderator may take the same case between the read and the claim
            with self.db.write() as s:
                q = select(Case).where(Case.status == "open")
                if queue:
                    q = q.where(Case.queue == queue)
                if who.role not in LEAD_ROLES:
                    q = q.where(Case.escalated.is_(False))
                q = q.where(or_(Case.pending_by.is_(None), Case.pending_by != who.actor))
                c = s.execute(q.order_by(Case.priority, Case.id).limit(1).with_for_update(skip_locked=True)).scalar()
                if c is None:
                    return None
                try:
                    self._claim(s, who, c, force=False)
                except Conflict:
                    continue
                return CaseSummary.of(c)
        return None

    def _claim(self, s: Session, who: Who, c: Case, *, force: bool) -> None:
        now = utcnow()
        if c.status == "closed":
            raise Conflict(f"case {c.id} is closed", code="case_closed")
        if c.status == "decided" and who.role not in LEAD_ROLES:
            raise Conflict(f"case {c.id} is decided; only a lead may reopen it", code="case_decided")
        if c.escalated and who.role not in LEAD_ROLES:
            raise Forbidden(f"case {c.id} is escalated to a lead", code="lead_required")
        if c.pending_by == who.actor:
            raise Conflict(f"case {c.id} waits for a second, different reviewer", code="second_reviewer_required")
        held = c.status == "claimed" and c.claim_expires_at is not None and c.claim_expires_at > now
        if held and c.assignee != who.actor and not force:
            raise Conflict(
                f"case {c.id} is claimed by {c.assignee} until {c.claim_expires_at.isoformat()}",  # type: ignore[union-attr]
                code="case_claimed",
                details={"assignee": c.assignee, "claim_expires_at": c.claim_expires_at.isoformat()},  # type: ignore[union-attr]
            )
        previous = c.assignee if held else None
        renewed = previous == who.actor
        if c.status != "decided":
            c.status = "claimed"
        c.assignee = who.actor
        c.claim_expires_at = now + self.lease
        c.updated_at = now
        events.append(
            s,
            "case.claim_renewed" if renewed else "case.claimed",
            actor=who.actor,
            subject=("case", str(c.id)),
            payload={"expires_at": c.claim_expires_at.isoformat(), "taken_from": previous if not renewed else None},
        )

    def release(self, who: Who, case_id: int) -> CaseSummary:
        """Give a claim back (the holder, or a lead)."""
        _need(who, WORKER_ROLES)
        with self.db.write() as s:
            c = self._case(s, case_id, lock=True)
            if c.status != "claimed":
                raise Conflict(f"case {c.id} is not claimed", code="not_claimed")
            if c.assignee != who.actor and who.role not in LEAD_ROLES:
                raise Conflict(f"case {c.id} is claimed by {c.assignee}", code="case_claimed")
            events.append(
                s, "case.released", actor=who.actor, subject=("case", str(c.id)), payload={"assignee": c.assignee}
            )
            c.status, c.assignee, c.claim_expires_at, c.updated_at = "open", None, None, utcnow()
            return CaseSummary.of(c)

    def assign(self, who: Who, case_id: int, assignee: str | None) -> CaseSummary:
        """A lead hands the case to someone (a claim in their name) or back to the queue (``None``)."""
        _need(who, LEAD_ROLES)
        no_nul(assignee=assignee)
        with self.db.write() as s:
            c = self._case(s, case_id, lock=True)
            if c.status in ("closed", "decided"):
                raise Conflict(f"case {c.id} is {c.status}", code=f"case_{c.status}")
            now = utcnow()
            events.append(
                s,
                "case.assigned",
                actor=who.actor,
                subject=("case", str(c.id)),
                payload={"from": c.assignee, "to": assignee},
            )
            if assignee:
                c.status, c.assignee, c.claim_expires_at = "claimed", assignee, now + self.lease
            else:
                c.status, c.assignee, c.claim_expires_at = "open", None, None
            c.updated_at = now
            return CaseSummary.of(c)

    # -- decisions -------------------------------------------------------------------------------
    def decide(
        self,
        who: Who,
        case_id: int,
        *,
        outcome: str,
        category: str | None = None,
        notes: str = "",
        override: bool = False,
    ) -> DecisionResult:
        """Record a review decision. Only the holder of a live claim may decide, or a lead with
        ``override``; a closed case takes no decision (409)."""
        _need(who, WORKER_ROLES)
        if override:
            _need(who, LEAD_ROLES)
        if outcome not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {OUTCOMES}", code="invalid_outcome")
        if category is not None and category not in CATEGORIES:
            raise InvalidInput(f"category must be one of {CATEGORIES}", code="invalid_category")
        if outcome == "confirmed" and category is None:
            raise InvalidInput("a confirmed decision needs a category", code="category_required")
        no_nul(notes=notes)
        if len(notes) > MAX_NOTES:
            raise InvalidInput(f"notes are limited to {MAX_NOTES} characters", code="notes_too_long")
        if outcome == "confirmed":
            self._ensure_review_bank(who)
        with self.db.write() as s:
            c = self._case(s, case_id, lock=True)
            return self._decide(s, who, c, outcome, category, notes, override)

    def _decide(
        self, s: Session, who: Who, c: Case, outcome: str, category: str | None, notes: str, override: bool
    ) -> DecisionResult:
        now = utcnow()
        lead = who.role in LEAD_ROLES
        if c.status == "closed":
            raise Conflict(f"case {c.id} is closed", code="case_closed")
        holds = (
            c.status == "claimed"
            and c.assignee == who.actor
            and c.claim_expires_at is not None
            and c.claim_expires_at > now
        )
        if c.status == "decided" and not override:
            raise Conflict(f"case {c.id} is already decided; a lead may override", code="case_decided")
        if not holds and not override:
            raise Conflict(f"claim case {c.id} before deciding it", code="claim_required")
        if c.escalated and not lead:
            raise Forbidden(f"case {c.id} is escalated to a lead", code="lead_required")

        def clear_claim() -> None:
            c.assignee, c.claim_expires_at = None, None

        if outcome == "escalated":
            stage = "escalated"
            c.status, c.escalated = "open", True
            c.pending_outcome = c.pending_category = c.pending_by = None
            clear_claim()
        elif override or (lead and c.escalated):
            stage = "override" if override else "final"
        elif c.pending_outcome is not None:
            if c.pending_by == who.actor:
                raise Conflict(f"case {c.id} needs a second, different reviewer", code="second_reviewer_required")
            if outcome == c.pending_outcome:
                stage = "final"
            else:
                stage = "disagreed"
                c.status, c.escalated = "open", True
                c.pending_outcome = c.pending_category = c.pending_by = None
                clear_claim()
        elif needs_second_opinion(self.second_opinion, outcome):
            stage = "first"
            c.status = "open"
            c.pending_outcome, c.pending_category, c.pending_by = outcome, category, who.actor
            clear_claim()
        else:
            stage = "final"
        row = CaseDecision(
            case_id=c.id,
            reviewer=who.actor,
            role=who.role,
            outcome=outcome,
            category=category,
            notes=notes,
            stage=stage,
            created_at=now,
        )
        s.add(row)
        c.updated_at = now
        entries: list[int] = []
        opinions: list[int] = []
        if stage in ("final", "override"):
            overturned = c.status == "decided" and c.outcome == "confirmed" and outcome == "not_violating"
            c.outcome, c.category, c.decided_by, c.decided_at = outcome, category, who.actor, now
            c.escalated = False
            c.pending_outcome = c.pending_category = c.pending_by = None
            clear_claim()
            matched = self._matched_entries(s, c.id)
            if overturned:  # a lead overturns a confirmation: the hashes it banked are disputed too
                matched += [e for e in self._review_entries(s, c.id) if e not in matched]
            if outcome == "confirmed":
                c.status, c.report_status = "decided", "ready"
                entries = self._bank_hashes(s, who, c, category)
                opinion = "confirmed"
                if self.settings.reports_auto_draft:
                    s.flush()
                    draft_for_case(s, c, actor=who.actor)
            else:
                c.status, c.report_status = "closed", "none"
                opinion = "disputed"
            note = f"case {c.id}: {outcome}"
            for entry_id in matched:
                self.banks.opinion_in(s, entry_id, opinion, actor=who.actor, note=note)
                opinions.append(entry_id)
        s.flush()
        events.append(
            s,
            "case.decided",
            actor=who.actor,
            subject=("case", str(c.id)),
            payload={
                "decision_id": row.id,
                "outcome": outcome,
                "category": category,
                "notes": notes,
                "stage": stage,
                "status": c.status,
                "review_bank_entries": entries,
                "opinions": opinions,
            },
        )
        return DecisionResult(CaseSummary.of(c), stage, entries, opinions)

    def _matched_entries(self, s: Session, case_id: int) -> list[int]:
        out: dict[int, None] = {}
        for summary in s.execute(select(CaseItem.summary).where(CaseItem.case_id == case_id)).scalars():
            for f in summary.get("findings") or []:
                if f.get("entry_id") is not None:
                    out[int(f["entry_id"])] = None
        return list(out)

    def _case_signals(self, s: Session, case_id: int) -> list[tuple[str, str]]:
        """Every bankable signal of the case's decisions (and its user reports): (type, value), once each."""
        bodies = s.execute(
            select(DecisionRow.body)
            .join(CaseItem, CaseItem.decision_id == DecisionRow.id)
            .where(CaseItem.case_id == case_id)
        ).scalars()
        sigs: list[dict[str, Any]] = [sig for b in bodies for sig in (b.get("signals") or [])]
        for extra in s.execute(select(UserReport.signals).where(UserReport.case_id == case_id)).scalars():
            sigs.extend(extra or [])
        out: dict[tuple[str, str], None] = {}
        for sig in sigs:
            if sig.get("timestamp") is not None:  # per-frame signals belong to their video
                continue
            try:
                st = get_signal_type(str(sig["type"]))
                value = st.validate(str(sig["value"]))
            except Exception:  # an unknown or malformed signal is simply not banked
                continue
            if len(value) <= 512:
                out[(st.name, value)] = None
        return list(out)

    def _review_entries(self, s: Session, case_id: int) -> list[int]:
        """The review bank's entries for this case's hashes."""
        bank = s.execute(select(Bank.id).where(Bank.name == self.settings.review_bank)).scalar()
        signals = self._case_signals(s, case_id)
        if bank is None or not signals:
            return []
        q = select(BankEntry.id).where(
            BankEntry.bank_id == bank, tuple_(BankEntry.signal_type, BankEntry.value).in_(signals)
        )
        return sorted(int(i) for i in s.execute(q).scalars())

    def _ensure_review_bank(self, who: Who) -> None:
        with self.db.read() as s:
            if s.execute(select(Bank.id).where(Bank.name == self.settings.review_bank)).first():
                return
        with contextlib.suppress(Conflict, IntegrityError):  # created meanwhile by another decision
            self.banks.create(
                self.settings.review_bank,
                actor=who.actor,
                kind="csam",
                description="Hashes confirmed by this instance's moderators (SAFEGUARD_REVIEW_BANK).",
            )

    def _bank_hashes(self, s: Session, who: Who, c: Case, category: str | None) -> list[int]:
        signals = self._case_signals(s, c.id)
        if not signals:
            return []
        bank = BankService.get(s, self.settings.review_bank)
        provenance = {"case_id": c.id, "reviewer": who.actor, "queue": c.queue}
        rows = [
            Row(line=i + 1, signal_type=t, value=v, category=category, source="review", provenance=provenance)
            for i, (t, v) in enumerate(signals)
        ]
        return self.banks.upsert_in(s, bank.id, rows, actor=who.actor, source="review")

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _case(s: Session, case_id: int, *, lock: bool = False) -> Case:
        c = s.get(Case, case_id, with_for_update=lock or None)
        if c is None:
            raise NotFound(f"case {case_id} not found", code="case_not_found")
        return c
