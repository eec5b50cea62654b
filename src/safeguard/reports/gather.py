"""What a report carries, read from the database: the case, its decisions (and the ``user`` details the
platform sent with them), its vault items, and the reporter settings. Pure reading: no key, no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safeguard.config import Settings
from safeguard.reports.model import CHAT_CATEGORIES
from safeguard.reports.ncmec.xml import IpEvent, LinkedAccount, ReportData, ReportedUser, Reporter
from safeguard.store.models import Case, DecisionRow, EvidenceItem, Report

MAX_TRANSCRIPT_LINES = 500


@dataclass(frozen=True)
class FilePlan:
    """One file a report uploads: a preserved vault item (``item_id``) or the chat transcript."""

    key: str  # the item id, or "transcript"
    file_name: str
    uploaded_at: datetime | None
    hashes: dict[str, str]
    has_bytes: bool
    ip: IpEvent | None = None


def _time(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str) and v:
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return None
    return None


def reporter_of(settings: Settings) -> Reporter:
    return Reporter(
        settings.reporter_organisation, settings.reporter_contact, settings.reporter_email, settings.reporter_phone
    )


def user_of(user_id: str, bodies: list[dict[str, Any]]) -> ReportedUser:
    """The reported account: the last non-empty value of each ``user`` field, every IP (with port and the
    decision's time) and every linked account the platform sent."""
    fields: dict[str, Any] = {}
    ips: dict[tuple[str, int | None], IpEvent] = {}
    linked: dict[tuple[str | None, str], LinkedAccount] = {}
    for b in bodies:
        u = b.get("user") or {}
        for la in u.get("linked_accounts") or []:
            if isinstance(la, dict) and la.get("user_id"):
                acc = LinkedAccount(str(la["user_id"]), la.get("platform"), la.get("screen_name"))
                linked[(acc.platform, acc.user_id)] = acc
        for k in ("screen_name", "display_name", "email", "account_created_at"):
            if u.get(k):
                fields[k] = u[k]
        if u.get("ip"):
            port = u.get("port")
            ev = IpEvent(str(u["ip"]), int(port) if isinstance(port, int) else None, _time(b.get("created_at")))
            ips.setdefault((ev.ip, ev.port), ev)
    return ReportedUser(
        user_id=user_id,
        screen_name=fields.get("screen_name"),
        display_name=fields.get("display_name"),
        email=fields.get("email"),
        account_created_at=_time(fields.get("account_created_at")),
        ips=tuple(ips.values()),
        linked=tuple(linked.values()),
    )


def transcript_of(bodies: list[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """The evidence messages of a conversation's decisions as a plain-text transcript, and the annotations."""
    lines: list[str] = []
    seen: set[str] = set()
    annotations: set[str] = set()
    for b in bodies:
        for f in b.get("findings") or []:
            if f.get("kind") == "sextortion":
                annotations.add("sextortion")
            if f.get("detector") == "grooming":
                annotations.add("csamSolicitation")
            for e in f.get("evidence") or []:
                mid = str(e.get("message_id") or "")
                if not mid or mid in seen or len(lines) >= MAX_TRANSCRIPT_LINES:
                    continue
                seen.add(mid)
                tags = ",".join(str(i) for i in e.get("indicators") or [])
                lines.append(f"[{mid}] {e.get('sender_id') or '?'}: {e.get('snippet') or ''}  ({tags})")
    return "\n".join(lines) + ("\n" if lines else ""), tuple(sorted(annotations))


def gather(s: Session, r: Report, settings: Settings) -> tuple[ReportData, list[FilePlan]]:
    c = s.get(Case, r.case_id)
    rows = (
        list(s.execute(select(DecisionRow).where(DecisionRow.id.in_(r.decision_ids))).scalars())
        if r.decision_ids
        else []
    )
    bodies = [dict(row.body, created_at=row.created_at) for row in sorted(rows, key=lambda x: x.created_at)]
    chat = r.category in CHAT_CATEGORIES or (c is not None and c.queue == "grooming")
    transcript, annotations = transcript_of(bodies) if chat else ("", ())
    if r.category == "sextortion":
        annotations = tuple(sorted({*annotations, "sextortion"}))
    user = user_of(r.reported_user, bodies)
    files: list[FilePlan] = []
    if not chat:
        items = (
            list(s.execute(select(EvidenceItem).where(EvidenceItem.id.in_(r.item_ids))).scalars()) if r.item_ids else []
        )
        sigs_of = {row.id: row.body.get("signals") or [] for row in rows}
        for it in sorted(items, key=lambda i: (i.preserved_at, i.id)):
            hashes = {"sha256": it.sha256} if it.sha256 else {}
            for sig in sigs_of.get(it.decision_id, []):
                if sig.get("timestamp") is None and sig.get("type") in ("md5", "sha256", "pdq"):
                    hashes.setdefault(str(sig["type"]), str(sig["value"]))
            files.append(
                FilePlan(
                    key=it.id,
                    file_name=it.file_name or f"{it.id}.bin",
                    uploaded_at=it.preserved_at,
                    hashes=hashes,
                    has_bytes=it.status == "preserved",
                    ip=user.ips[0] if user.ips else None,
                )
            )
    elif transcript:
        files.append(FilePlan("transcript", "transcript.txt", None, {}, True))
    conversation = c.subject_id if c is not None and c.subject_kind == "conversation" else None
    incident_at = r.matched_at or (c.opened_at if c is not None else r.created_at)
    data = ReportData(
        report_id=r.id,
        case_id=r.case_id,
        category=r.category,
        incident_at=incident_at,
        reporter=reporter_of(settings),
        user=user,
        chat=chat,
        conversation_id=conversation,
        transcript=transcript,
        annotations=annotations,
        item_count=len(files),
    )
    return data, files


def missing(data: ReportData, files: list[FilePlan]) -> list[str]:
    """What a person must fix before the report can be sent (besides schema errors)."""
    out = data.reporter.missing()
    if not any(f.has_bytes for f in files):
        out.append("nothing to send: no preserved file and no conversation excerpt")
    return out
