"""User reports: what a platform's users report, scanned, filed in the ``user_reports`` queue, and answered.

A report names what it is about (a reported user, a content id, a conversation; the bytes or hashes
when the platform has them) and why. Safeguard scans what it is given with the same engine as uploads
(hash matches: the decision is recorded with the report, in one transaction) and, for a conversation,
reads the grooming state kept for it. The report opens or joins the active ``user_reports`` case of
its subject (the reported user, else the content, else the conversation): duplicate reports of the
same content therefore join one case, whose ``report_count`` counts them. Sextortion and
self-generated images of a minor go in at priority 0.

The answer carries a report id, a status the platform can show the reporter, and advice in the
reporter's language (advice.py).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from safeguard import events
from safeguard.accounts.who import Who
from safeguard.cases.model import no_nul
from safeguard.cases.store import add_item, open_or_join
from safeguard.content import Content, ContentKind, Finding, Signal
from safeguard.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from safeguard.store.db import connection_of
from safeguard.store.models import Case, UserReport, utcnow
from safeguard.user_reports.advice import AdviceItem, advice, locale_of, status_text

if TYPE_CHECKING:
    from safeguard.detectors.grooming.service import GroomingService
    from safeguard.engine import Engine

REASONS = ("csam", "grooming", "sextortion", "self_generated_minor", "other")
PRIORITY = {"sextortion": 0, "self_generated_minor": 0, "csam": 1, "grooming": 1, "other": 2}
ROLES = frozenset({"platform", "admin"})
MAX_ID = 200


@dataclass(frozen=True)
class ReportInput:
    reporter_id: str
    reason: str
    locale: str = "en"
    country: str | None = None
    reported_user_id: str | None = None
    content_id: str | None = None
    conversation_id: str | None = None
    text: str = ""
    signals: tuple[Signal, ...] = ()
    data: bytes | None = None
    media_type: str | None = None
    filename: str | None = None
    user_info: dict[str, Any] | None = None  # the reported account's details (safeguard.reported_user)


@dataclass(frozen=True)
class ReportResult:
    id: str
    status: str
    status_text: str
    locale: str
    case_id: int | None
    matched: bool
    verdict: str | None
    created_at: datetime
    advice: list[AdviceItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "status_text": self.status_text,
            "locale": self.locale,
            "case_id": self.case_id,
            "matched": self.matched,
            "verdict": self.verdict,
            "created_at": self.created_at.isoformat(),
            "advice": [a.to_dict() for a in self.advice],
        }


def reporter_status(case_status: str | None) -> str:
    """The status a reporter sees, from the case's."""
    return {"claimed": "in_review", "decided": "action_taken", "closed": "reviewed"}.get(case_status or "", "received")


class UserReportService:
    def __init__(self, engine: Engine, grooming: Callable[[], GroomingService] | None = None) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.grooming = grooming

    def submit(self, who: Who, r: ReportInput) -> ReportResult:
        if who.role not in ROLES:
            raise Forbidden(f"role {who.role!r} may not file user reports", code="wrong_role")
        self._check(r)
        rid = "ur_" + secrets.token_hex(12)
        locale = locale_of(r.locale)
        content = self._content(r, rid)
        signals: list[Signal] = []
        findings: list[Finding] = []
        if content is not None:
            signals, findings = self.engine.detect(content)
        grooming = self._grooming(r.conversation_id)
        if grooming:
            findings = findings + grooming[1]
        subject = self._subject(r, content)
        now = utcnow()
        with self.engine.db.write() as s:
            decision = None
            if content is not None:
                decision = self.engine.decide_in(
                    s, content, [f for f in findings if f.detector != "grooming"], actor=who.actor
                )
            matched = any(f.kind == "hash_match" or f.entry_id is not None for f in findings)
            verdict = decision.verdict.value if decision is not None else "review"
            conn = connection_of(s)
            joined = open_or_join(
                conn,
                subject=subject,
                queue="user_reports",
                priority=PRIORITY[r.reason],
                verdict=verdict,
                reason=f"user report: {r.reason}",
                now=now,
                sla=self.settings.review_sla,
                reports=1,
            )
            summary: dict[str, Any] = {
                "user_report": rid,
                "reason": r.reason,
                "verdict": verdict,
                "content_id": content.content_id if content is not None else r.content_id,
                "scan_decision_id": decision.id if decision is not None else None,
                "findings": [f.to_dict() for f in findings],
            }
            if grooming:
                summary["grooming"] = grooming[0]
            add_item(conn, joined.case_id, rid, summary, now)
            s.add(
                UserReport(
                    id=rid,
                    created_at=now,
                    reporter_id=r.reporter_id,
                    reported_user_id=r.reported_user_id,
                    content_id=content.content_id if content is not None else r.content_id,
                    conversation_id=r.conversation_id,
                    reason=r.reason,
                    locale=locale,
                    text=r.text,
                    signals=[x.to_dict() for x in signals],
                    matched=matched,
                    case_id=joined.case_id,
                    decision_id=decision.id if decision is not None else None,
                    reported_by=who.actor,
                )
            )
            events.append(
                s,
                "user_report.received",
                actor=who.actor,
                subject=("user_report", rid),
                payload={
                    "reason": r.reason,
                    "case_id": joined.case_id,
                    "case_created": joined.created,
                    "matched": matched,
                    "decision_id": decision.id if decision is not None else None,
                },
            )
        return ReportResult(
            id=rid,
            status="received",
            status_text=status_text("received", locale),
            locale=locale,
            case_id=joined.case_id,
            matched=matched,
            verdict=verdict,
            created_at=now,
            advice=advice(r.reason, locale, r.country),
        )

    def get(self, who: Who, report_id: str, *, country: str | None = None) -> ReportResult:
        if who.role not in ROLES:
            raise Forbidden(f"role {who.role!r} may not read user reports", code="wrong_role")
        with self.engine.db.read() as s:
            row = s.get(UserReport, report_id)
            if row is None:
                raise NotFound(f"user report {report_id!r} not found", code="user_report_not_found")
            case_status = None
            if row.case_id is not None:
                case_status = s.execute(select(Case.status).where(Case.id == row.case_id)).scalar()
        status = reporter_status(case_status)
        decision = None
        if row.decision_id:
            decision = self.engine.get_decision(row.decision_id).get("verdict")
        return ReportResult(
            id=row.id,
            status=status,
            status_text=status_text(status, row.locale),
            locale=row.locale,
            case_id=row.case_id,
            matched=row.matched,
            verdict=decision,
            created_at=row.created_at,
            advice=advice(row.reason, row.locale, country),
        )

    # -- helpers ---------------------------------------------------------------------------------
    def _check(self, r: ReportInput) -> None:
        no_nul(
            reporter_id=r.reporter_id,
            reported_user_id=r.reported_user_id,
            content_id=r.content_id,
            conversation_id=r.conversation_id,
            text=r.text,
            locale=r.locale,
            country=r.country,
            filename=r.filename,
        )
        if r.reason not in REASONS:
            raise InvalidInput(f"reason must be one of {REASONS}", code="invalid_reason")
        if not r.reporter_id or len(r.reporter_id) > MAX_ID:
            raise InvalidInput(f"reporter_id is required (at most {MAX_ID} characters)", code="invalid_field")
        for name in ("reported_user_id", "content_id", "conversation_id"):
            v = getattr(r, name)
            if v is not None and (not v or len(v) > MAX_ID):
                raise InvalidInput(f"{name} must have 1 to {MAX_ID} characters", code="invalid_field")
        if r.country is not None and (len(r.country) != 2 or not r.country.isalpha()):
            raise InvalidInput("country is a two-letter ISO 3166 code", code="invalid_field")
        limit = self.settings.user_report_max_text_chars
        if len(r.text) > limit:
            raise PayloadTooLarge(
                f"text over the limit of {limit} characters", code="text_too_long", details={"max_chars": limit}
            )
        if not (r.reported_user_id or r.content_id or r.conversation_id or r.data or r.signals):
            raise InvalidInput(
                "say what is reported: reported_user_id, content_id, conversation_id, the file or its hashes",
                code="nothing_reported",
            )
        if len(r.signals) > 100:
            raise InvalidInput("at most 100 hashes per report", code="invalid_field")

    def _content(self, r: ReportInput, rid: str) -> Content | None:
        """What is scanned: the bytes and/or hashes, with the reported user and content ids."""
        if r.data is None and not r.signals:
            return None
        content_id = r.content_id
        kind = ContentKind.HASHES
        media_type = r.media_type
        if r.data is not None:
            media = self.engine.media_for(r.data, r.media_type)
            kind = ContentKind.VIDEO if media.is_video else ContentKind.IMAGE
            media_type = media.media_type
            content_id = content_id or "sha256:" + hashlib.sha256(r.data).hexdigest()
        elif content_id is None:
            first = self.engine.validate_signals(list(r.signals))[0]
            content_id = f"{first.type}:{first.value}"
        return Content(
            kind=kind,
            data=r.data,
            signals=r.signals,
            content_id=content_id,
            user_id=r.reported_user_id,
            filename=r.filename,
            media_type=media_type,
            context={"user_report": rid},
            user_info=r.user_info,
        )

    @staticmethod
    def _subject(r: ReportInput, content: Content | None) -> tuple[str, str]:
        if content is not None:
            return content.subject()  # the reported user, else the content: as the case action sees it
        if r.reported_user_id:
            return ("user", r.reported_user_id)
        if r.content_id:
            return ("content", r.content_id)
        assert r.conversation_id
        return ("conversation", r.conversation_id)

    def _grooming(self, conversation_id: str | None) -> tuple[dict[str, Any], list[Finding]] | None:
        """The grooming state kept for the conversation (risk, message count) and its findings, if any."""
        if not conversation_id or self.grooming is None:
            return None
        from safeguard.detectors.grooming.state import ConversationState
        from safeguard.detectors.grooming.store import GroomingConversationRow

        with self.engine.db.read() as s:
            row = s.get(GroomingConversationRow, conversation_id)
        ttl = timedelta(seconds=self.settings.grooming_state_ttl_seconds)
        if row is None or row.updated_at + ttl <= datetime.now(UTC):
            return ({"conversation_id": conversation_id, "state": "none"}, [])
        g = self.grooming()
        found = g.findings(conversation_id, ConversationState.from_json(row.state))
        snapshot = {"conversation_id": conversation_id, "risk": row.risk, "messages": row.messages}
        return (json.loads(json.dumps(snapshot, default=str)), found)
