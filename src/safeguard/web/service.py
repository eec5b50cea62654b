"""What the console needs beyond :class:`~safeguard.cases.CaseService`: the queue in the configured order,
a moderator's preferences and daily reveal count, the audit trail, and the quality sample for leads.

Everything here is read from (or appended to) the event log and the case table: no table of its own.
A preference is the latest ``console.preference`` event of the user; a lead's second look is a
``case.qa_reviewed`` event on the case; a reveal is the vault's ``evidence.read`` event.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError
from sqlalchemy import and_, func, select

from safeguard import events
from safeguard.accounts import Who
from safeguard.cases import CaseFilter, CaseService, CaseSummary
from safeguard.config import Settings
from safeguard.errors import ConfigError, Forbidden, InvalidInput, NotFound
from safeguard.store import Database
from safeguard.store.models import Case, Event, utcnow

QUEUE_ORDERS = ("priority_age", "reports", "risk")
AUDIT_LIMIT = 1000
PREVIEW_SIZE = 480
BLUR_RADIUS = 18
QA_WINDOW = 500  # decided cases looked at for the sample (newest first)


def check_queue_order(value: str) -> str:
    if value not in QUEUE_ORDERS:
        raise ConfigError(f"SAFEGUARD_QUEUE_ORDER must be one of {QUEUE_ORDERS}, not {value!r}", code="invalid_setting")
    return value


def check_share(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"SAFEGUARD_REVIEW_QA_SHARE must be within 0..1, not {value!r}", code="invalid_setting")
    return value


def qa_sampled(case_id: int, share: float) -> bool:
    """Whether a decided case is in the lead's sample: a stable hash of its id, so every process agrees."""
    if share <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(f"qa:{case_id}".encode()).digest()[:8], "big")
    return h < share * 2**64


def render_image(data: bytes, *, blurred: bool, greyscale: bool) -> bytes | None:
    """PNG bytes of an image item, or of a video item's poster frame (:func:`poster_frame`), rendered here
    (never the original bytes); None when it is neither."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            img = ImageOps.exif_transpose(im) or im
            img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        poster = poster_frame(data)
        if poster is None:
            return None
        img = poster
    img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    if greyscale or blurred:
        img = ImageOps.grayscale(img)
    if blurred:
        img = img.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


POSTER_MAX_PIXELS = 8_294_400  # a 4K frame: larger ones get no poster (the scan's own bounds apply to scans)
POSTER_MAX_FRAMES = 90  # frames looked at for one that is not blank (a fade-in, a black leader)


def poster_frame(data: bytes) -> Image.Image | None:
    """A video item's poster: its first frame that is not nearly blank (of the first few), scaled to the
    preview size in FFmpeg's scaler; None when the bytes are no video this can decode."""
    import av.error

    from safeguard.errors import MediaError
    from safeguard.media.video import open_container, read_header

    header = read_header(data)
    if header is None or not 0 < header.width * header.height <= POSTER_MAX_PIXELS:
        return None
    scale = min(1.0, PREVIEW_SIZE / max(header.width, header.height))
    size = (max(2, round(header.width * scale)), max(2, round(header.height * scale)))
    first: Image.Image | None = None
    try:
        with open_container(data) as c:
            stream = c.streams.video[0]
            for i, frame in enumerate(c.decode(stream)):
                img = frame.to_image(width=size[0], height=size[1])
                first = first or img
                lo, hi = cast(tuple[int, int], ImageOps.grayscale(img).getextrema())  # one band: (min, max)
                if hi - lo > 24 or i + 1 >= POSTER_MAX_FRAMES:  # some contrast: a picture, not a blank
                    return img.convert("RGB")
    except (MediaError, OSError, ValueError, av.error.FFmpegError):
        pass
    return first.convert("RGB") if first is not None else None


@dataclass(frozen=True)
class QueuePage:
    cases: list[CaseSummary]
    next_cursor: str | None
    order: str


@dataclass(frozen=True)
class AuditRow:
    seq: int
    created_at: datetime
    type: str
    actor: str
    subject: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Agreement:
    moderator: str
    looked_at: int
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.looked_at if self.looked_at else 0.0


def _start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class ConsoleService:
    def __init__(self, db: Database, settings: Settings, cases: CaseService) -> None:
        self.db = db
        self.settings = settings
        self.cases = cases
        self.order = check_queue_order(settings.queue_order)
        self.qa_share = check_share(settings.review_qa_share)
        if settings.console_break_minutes < 0:
            raise ConfigError("SAFEGUARD_CONSOLE_BREAK_MINUTES must be 0 (off) or more", code="invalid_setting")

    # -- the queue ---------------------------------------------------------------------------------
    def queue(self, who: Who, filt: CaseFilter, *, cursor: str | None = None, limit: int = 50) -> QueuePage:
        """The queue in the configured order. ``priority_age`` pages with the case service's keyset cursor;
        ``reports`` and ``risk`` sort on other columns and page by offset (the cursor is a number)."""
        if self.order == "priority_age":
            page = self.cases.list_cases(who, filt, cursor=cursor, limit=limit)
            return QueuePage(page.cases, page.next_cursor, self.order)
        if who.role not in ("moderator", "lead", "auditor", "admin"):
            raise Forbidden(f"role {who.role!r} may not read the queue", code="wrong_role")
        try:
            offset = int(cursor) if cursor else 0
        except ValueError as exc:
            raise InvalidInput("cursor is not one this page gave out", code="invalid_cursor") from exc
        if not 0 <= offset <= 10**7:
            raise InvalidInput("cursor is not one this page gave out", code="invalid_cursor")
        if not filt.statuses or "open" in filt.statuses:
            self.cases.expire_claims()
        q = select(Case)
        if filt.statuses:
            q = q.where(Case.status.in_(filt.statuses))
        if filt.queue:
            q = q.where(Case.queue == filt.queue)
        if filt.priority is not None:
            q = q.where(Case.priority == filt.priority)
        if filt.assignee == "none":
            q = q.where(Case.assignee.is_(None))
        elif filt.assignee:
            q = q.where(Case.assignee == (who.actor if filt.assignee == "me" else filt.assignee))
        if self.order == "reports":
            q = q.order_by(Case.report_count.desc(), Case.priority, Case.id)
        else:  # risk: what the engine blocked before what it sent for review, then priority and age
            q = q.order_by((Case.verdict != "block"), Case.priority, Case.id)
        with self.db.read() as s:
            rows = list(s.execute(q.offset(offset).limit(limit + 1)).scalars())
        more = len(rows) > limit
        return QueuePage([CaseSummary.of(c) for c in rows[:limit]], str(offset + limit) if more else None, self.order)

    # -- the moderator's own page --------------------------------------------------------------------
    def revealed_today(self, actor: str, now: datetime | None = None) -> int:
        since = _start_of_day(now or utcnow())
        with self.db.read() as s:
            q = select(func.count()).where(
                Event.type == "evidence.read", Event.actor == actor, Event.created_at >= since
            )
            return int(s.execute(q).scalar_one())

    def preferences(self, who: Who) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.execute(
                select(Event.payload)
                .where(Event.subject_kind == "user", Event.subject_id == who.name, Event.type == "console.preference")
                .order_by(Event.seq.desc())
                .limit(1)
            ).scalar_one_or_none()
        return {"greyscale_always": bool(row and row.get("greyscale_always"))}

    def set_preferences(self, who: Who, *, greyscale_always: bool) -> None:
        with self.db.write() as s:
            events.append(
                s,
                "console.preference",
                actor=who.actor,
                subject=("user", who.name),
                payload={"greyscale_always": greyscale_always},
            )

    # -- the audit trail -------------------------------------------------------------------------------
    def audit(
        self,
        who: Who,
        *,
        actor: str | None = None,
        type_: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = AUDIT_LIMIT,
    ) -> list[AuditRow]:
        """Who viewed or decided what, newest first. ``type_`` is an event type or a prefix ending in '.'."""
        if who.role not in ("auditor", "admin"):
            raise Forbidden(f"role {who.role!r} may not read the audit trail", code="wrong_role")
        conds = []
        if actor:
            conds.append(Event.actor == actor)
        if type_:
            conds.append(Event.type.startswith(type_, autoescape=True) if type_.endswith(".") else Event.type == type_)
        if since:
            conds.append(Event.created_at >= since)
        if until:
            conds.append(Event.created_at < until)
        q = select(Event).order_by(Event.seq.desc()).limit(max(1, min(limit, AUDIT_LIMIT * 100)))
        if conds:
            q = q.where(and_(*conds))
        with self.db.read() as s:
            return [
                AuditRow(
                    e.seq,
                    e.created_at,
                    e.type,
                    e.actor,
                    f"{e.subject_kind}:{e.subject_id}" if e.subject_kind else "",
                    e.payload,
                )
                for e in s.execute(q).scalars()
            ]

    # -- quality: a lead's second look ---------------------------------------------------------------
    def qa_queue(self, who: Who) -> list[CaseSummary]:
        """Sampled decided cases that no lead has looked at yet (newest decisions first)."""
        self._need_lead(who)
        with self.db.read() as s:
            rows = list(
                s.execute(
                    select(Case)
                    .where(Case.status.in_(("decided", "closed")), Case.decided_at.is_not(None))
                    .order_by(Case.decided_at.desc())
                    .limit(QA_WINDOW)
                ).scalars()
            )
            sampled = [c for c in rows if qa_sampled(c.id, self.qa_share)]
            if not sampled:
                return []
            done = set(
                s.execute(
                    select(Event.subject_id).where(
                        Event.type == "case.qa_reviewed",
                        Event.subject_kind == "case",
                        Event.subject_id.in_([str(c.id) for c in sampled]),
                    )
                ).scalars()
            )
        return [CaseSummary.of(c) for c in sampled if str(c.id) not in done]

    def qa_review(self, who: Who, case_id: int, *, agree: bool, notes: str = "") -> None:
        self._need_lead(who)
        if len(notes) > 4000:
            raise InvalidInput("notes are longer than 4000 characters", code="notes_too_long")
        with self.db.write() as s:
            c = s.get(Case, case_id)
            if c is None:
                raise NotFound(f"case {case_id} not found", code="case_not_found")
            if c.decided_by is None or c.outcome is None:
                raise InvalidInput(f"case {case_id} has no decision to look at", code="case_not_decided")
            events.append(
                s,
                "case.qa_reviewed",
                actor=who.actor,
                subject=("case", str(case_id)),
                payload={"moderator": c.decided_by, "outcome": c.outcome, "agree": agree, "notes": notes},
            )

    def agreement(self, who: Who, *, days: int = 90) -> list[Agreement]:
        """Per moderator: how many of their sampled decisions a lead looked at, and agreed with. Leads only."""
        self._need_lead(who)
        since = utcnow() - timedelta(days=days)
        counts: dict[str, list[int]] = {}
        with self.db.read() as s:
            for p in s.execute(
                select(Event.payload).where(Event.type == "case.qa_reviewed", Event.created_at >= since)
            ).scalars():
                m = str(p.get("moderator") or "?")
                c = counts.setdefault(m, [0, 0])
                c[0] += 1
                c[1] += 1 if p.get("agree") else 0
        return [Agreement(m, n, a) for m, (n, a) in sorted(counts.items())]

    @staticmethod
    def _need_lead(who: Who) -> None:
        if who.role not in ("lead", "admin"):
            raise Forbidden(f"role {who.role!r} may not see the quality sample; leads only", code="wrong_role")
