"""Every figure of a transparency report, derived from the event log (and named tables where the log has
nothing), never from a counter kept for the purpose.

The report covers the events whose time falls in the period: the first and last of them by sequence
number (``event_range``) bound every query, so the same range on the same log gives the same figures
(``safeguard transparency verify`` recomputes them). Some figures need events from before the range
(when was a case decided in the period opened? which decisions does it hold?): those are read from the
log up to the range's last event, never past it.

Three figures have no event to count and come from tables, named in the report's ``sources``: live
streams watched and their frames (``streams``), chat messages received (``grooming_messages``, kept only
for the grooming retention period). Everything else is events:

=============================  ===========================================================================
``decision.created``           content scanned by kind, verdicts, matches (findings with a bank entry)
``action.case``                cases opened (``result.created``), and which decisions each case holds
``case.decided``               cases decided by outcome (stages ``final`` and ``override``), time to action
``action.safety_message``,     grooming interventions
``action.restrict_contact``
``action.terminate_stream``    streams terminated, time to terminate
``report.drafted`` /           law-enforcement reports, detection → report time
``report.submitted``
``report.nca_packaged``        NCA referrals (the signed package made), detection → referral time
``user_report.received``       user reports received; actioned when their case was confirmed by the end
=============================  ===========================================================================

A report may be scoped (:class:`~safeguard.transparency.period.Scope`) to the decisions on users in one
territory (the ``territory`` of their ``decision.created`` event) and/or made for one tenant (the
``decisions`` row's ``tenant``, which the event's ``row_digest`` binds): then every figure counts only those
decisions, the actions on them, the cases that hold one of them, and those cases' reports and user reports.
The figures from tables that carry no territory (or, for chat messages, no tenant) are ``None`` in a scoped
report, and the report says why in ``not_available``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safeguard.cases.model import QUEUES
from safeguard.detectors.grooming.store import GroomingMessageRow
from safeguard.events import EVENTS
from safeguard.store.db import connection_of
from safeguard.store.models import DecisionRow, Event, Report
from safeguard.transparency.period import Period, Scope, iso
from safeguard.workers.streams_store import StreamRow

__all__ = ["BUCKETS_MAX_DAYS", "CONTENT_KINDS", "HISTOGRAM_EDGES", "EventRange", "compute", "event_range"]

#: the kinds always listed (zero or not); other kinds appear when they occur
CONTENT_KINDS = ("image", "video", "hashes", "stream", "message")
#: daily buckets up to this many days, weekly beyond
BUCKETS_MAX_DAYS = 92
#: time-to-action histogram edges in seconds: <1 h, 1-4 h, 4-24 h, 1-3 d, 3-7 d, >=7 d
HISTOGRAM_EDGES = (0, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400)
HISTOGRAM_LABELS = ("< 1 h", "1-4 h", "4-24 h", "1-3 d", "3-7 d", ">= 7 d")
FINAL_STAGES = ("final", "override")
#: event types read in the range's single pass
_IN_RANGE = (
    "decision.created",
    "action.case",
    "action.safety_message",
    "action.restrict_contact",
    "action.terminate_stream",
    "case.decided",
    "report.drafted",
    "report.submitted",
    "report.nca_packaged",
    "user_report.received",
)
#: event types also read before the range (human-scale: one per case, report or user report)
#: event types whose subject is a decision (a scoped report keeps those of decisions in its scope)
_ON_DECISION = frozenset(
    {"decision.created", "action.case", "action.safety_message", "action.restrict_contact", "action.terminate_stream"}
)
_CONTEXT = ("action.case", "case.decided", "report.drafted", "report.nca_packaged", "user_report.received")
_BATCH = 2000


@dataclass(frozen=True)
class EventRange:
    first_seq: int | None
    last_seq: int | None
    first_hash: str | None
    last_hash: str | None
    prev_hash: str | None  # the hash the first event chains onto
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_seq": self.first_seq,
            "first_hash": self.first_hash,
            "prev_hash": self.prev_hash,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "events": self.events,
        }


def event_range(s: Session, period: Period) -> EventRange:
    """The first and last events (by ``seq``) whose time is in the period."""
    in_period = (Event.created_at >= period.start) & (Event.created_at < period.end)
    first, last = s.execute(select(func.min(Event.seq), func.max(Event.seq)).where(in_period)).one()
    if first is None:
        return EventRange(None, None, None, None, None, 0)
    lo = s.execute(select(Event.hash, Event.prev_hash).where(Event.seq == first)).one()
    hi = s.execute(select(Event.hash).where(Event.seq == last)).scalar_one()
    return EventRange(int(first), int(last), str(lo.hash), str(hi), str(lo.prev_hash), int(last) - int(first) + 1)


def quantile(xs: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def stats(xs: list[float]) -> dict[str, Any]:
    """``n``, median and 90th percentile (nearest rank) of durations in seconds."""
    if not xs:
        return {"n": 0, "median_seconds": None, "p90_seconds": None}
    return {"n": len(xs), "median_seconds": round(quantile(xs, 0.5), 3), "p90_seconds": round(quantile(xs, 0.9), 3)}


def histogram(xs: Iterable[float]) -> list[int]:
    counts = [0] * len(HISTOGRAM_EDGES)
    for x in xs:
        i = sum(1 for e in HISTOGRAM_EDGES[1:] if x >= e)
        counts[i] += 1
    return counts


def _seconds(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds(), 3)


def _result(payload: Any) -> dict[str, Any]:
    r = payload.get("result") if isinstance(payload, dict) else None
    return r if isinstance(r, dict) else {}


@dataclass
class _Row:
    seq: int
    created_at: datetime
    type: str
    subject_id: str | None
    payload: dict[str, Any]


def _events(s: Session, types: tuple[str, ...], lo: int | None, hi: int) -> Iterator[_Row]:
    """Events of ``types`` with ``lo <= seq <= hi`` (``lo`` None: from the start), in order."""
    for page in _pages(s, types, lo, hi):
        yield from page


def _pages(s: Session, types: tuple[str, ...], lo: int | None, hi: int) -> Iterator[list[_Row]]:
    """The same events, a page at a time."""
    after = (lo - 1) if lo is not None else 0
    while True:
        c = EVENTS.c  # Core columns: no ORM work per row (most of a large report's time was there)
        q = (
            select(c.seq, c.created_at, c.type, c.subject_id, c.payload)
            .where(c.seq > after, c.seq <= hi, c.type.in_(types))
            .order_by(c.seq)
            .limit(_BATCH)
        )
        rows = connection_of(s).execute(q).all()
        yield [
            _Row(int(r.seq), r.created_at, str(r.type), r.subject_id, r.payload if isinstance(r.payload, dict) else {})
            for r in rows
        ]
        if len(rows) < _BATCH:
            return
        after = int(rows[-1].seq)


@dataclass
class _Context:
    """What the log says up to the range's end about cases, reports and user reports."""

    case_opened: dict[int, datetime] = field(default_factory=dict)
    case_queue: dict[int, str] = field(default_factory=dict)
    case_decisions: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    case_outcome: dict[int, str] = field(default_factory=dict)  # the latest final outcome
    report_case: dict[str, int] = field(default_factory=dict)
    report_packaged: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # the first NCA package

    @classmethod
    def read(cls, s: Session, last: int) -> _Context:
        c = cls()
        for ev in _events(s, _CONTEXT, None, last):
            p = ev.payload
            if ev.type == "action.case":
                r = _result(p)
                if "case_id" not in r:
                    continue
                cid = int(r["case_id"])
                if ev.subject_id:
                    c.case_decisions[cid].append(ev.subject_id)
                if r.get("created"):
                    c.case_opened.setdefault(cid, ev.created_at)
                    c.case_queue.setdefault(cid, str(r.get("queue", "")))
            elif ev.type == "user_report.received":
                if p.get("case_created") and p.get("case_id") is not None:
                    c.case_opened.setdefault(int(p["case_id"]), ev.created_at)
                    c.case_queue.setdefault(int(p["case_id"]), "user_reports")
            elif ev.type == "case.decided":
                if p.get("stage") in FINAL_STAGES and ev.subject_id:
                    c.case_outcome[int(ev.subject_id)] = str(p.get("outcome"))
            elif ev.type == "report.drafted" and ev.subject_id and p.get("case_id") is not None:
                c.report_case[ev.subject_id] = int(p["case_id"])
            elif ev.type == "report.nca_packaged" and ev.subject_id:
                c.report_packaged.setdefault(ev.subject_id, (ev.seq, ev.created_at))
        return c


class _Members:
    """Which decisions are in the report's scope, looked up in batches and remembered: a decision's territory
    from its ``decision.created`` event (up to the range's end), its tenant from its ``decisions`` row."""

    def __init__(self, s: Session, scope: Scope, last: int) -> None:
        self.s, self.scope, self.last = s, scope, last
        self.known: dict[str, bool] = {}

    def prime(self, ids: Iterable[str], territories: dict[str, Any] | None = None) -> None:
        """Decide the decisions of ``ids`` not known yet; ``territories``: those read already (in the range)."""
        if self.scope.whole:
            return
        want = [d for d in dict.fromkeys(ids) if d not in self.known]
        seen = dict(territories or {})
        c = EVENTS.c
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            if self.scope.territory is not None and (missing := [d for d in chunk if d not in seen]):
                q = select(c.subject_id, c.payload).where(
                    c.type == "decision.created",
                    c.subject_kind == "decision",
                    c.subject_id.in_(missing),
                    c.seq <= self.last,
                )
                for did, payload in connection_of(self.s).execute(q):
                    seen[str(did)] = payload.get("territory") if isinstance(payload, dict) else None
            tenants: dict[str, str] = {}
            if self.scope.tenant is not None:
                q2 = select(DecisionRow.id, DecisionRow.tenant).where(DecisionRow.id.in_(chunk))
                tenants = {str(d): str(t) for d, t in self.s.execute(q2)}
            for d in chunk:
                ok = self.scope.territory is None or seen.get(d) == self.scope.territory
                self.known[d] = ok and (self.scope.tenant is None or tenants.get(d) == self.scope.tenant)

    def has(self, decision_id: str | None) -> bool:
        if self.scope.whole:
            return True
        if not decision_id:
            return False
        if decision_id not in self.known:
            self.prime([decision_id])
        return self.known[decision_id]

    def case(self, ctx: _Context, case_id: int | None) -> bool:
        """A case is in scope when it holds a decision in scope (a case with none, opened by a user report with
        nothing to scan, is in no territory's or tenant's report)."""
        if self.scope.whole:
            return True
        if case_id is None:
            return False
        ds = ctx.case_decisions.get(case_id, [])
        self.prime(ds)
        return any(self.known.get(d, False) for d in ds)


class _Buckets:
    def __init__(self, period: Period) -> None:
        self.start = period.start
        self.size = timedelta(days=1) if period.days <= BUCKETS_MAX_DAYS else timedelta(days=7)
        self.n = math.ceil((period.end - period.start) / self.size)
        self.labels = [iso(self.start + i * self.size)[:10] for i in range(self.n)]

    def index(self, t: datetime) -> int:
        return min(self.n - 1, max(0, int((t - self.start) / self.size)))


def _matches(findings: Any) -> Iterator[dict[str, Any]]:
    """The findings that are bank matches (they name a bank)."""
    for f in findings if isinstance(findings, list) else ():
        if isinstance(f, dict) and f.get("bank"):
            yield f


def _sorted(c: Counter[str]) -> dict[str, int]:
    return {k: c[k] for k in sorted(c)}


def compute(s: Session, period: Period, scope: Scope | None = None) -> tuple[EventRange, dict[str, Any]]:
    """The event range of the period and every figure (of the decisions in ``scope``), as JSON-ready data."""
    scope = scope or Scope()
    rng = event_range(s, period)
    buckets = _Buckets(period)
    kinds: Counter[str] = Counter({k: 0 for k in CONTENT_KINDS})
    verdicts: Counter[str] = Counter({"allow": 0, "review": 0, "block": 0})
    by_bank: Counter[str] = Counter()
    by_signal: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    decided: Counter[str] = Counter({"confirmed": 0, "not_violating": 0})
    overrides = 0
    grooming = {"safety_messages": 0, "contact_restrictions": 0, "cases_opened": 0}
    reports = {"drafted": 0, "submitted": 0}
    user_reports: Counter[str] = Counter()
    received = 0
    terminations: list[tuple[datetime, str]] = []
    submitted: dict[str, datetime] = {}
    packages = 0  # NCA packages made in the range (a report packaged again counts again here)
    final_in_range: dict[int, tuple[datetime, str]] = {}  # case → (time, outcome) of its last final decision
    user_report_cases: list[int | None] = []
    series = {k: [0] * buckets.n for k in ("scanned", "matches", "blocked", "cases_decided")}

    ctx = _Context.read(s, rng.last_seq) if rng.last_seq is not None else _Context()
    members = _Members(s, scope, rng.last_seq or 0)
    if rng.first_seq is not None and rng.last_seq is not None:
        for page in _pages(s, _IN_RANGE, rng.first_seq, rng.last_seq):
            if not scope.whole:  # one look-up per page for the decisions it names
                members.prime(
                    [str(e.subject_id) for e in page if e.subject_id and e.type in _ON_DECISION]
                    + [str(e.payload["decision_id"]) for e in page if e.payload.get("decision_id")],
                    {str(e.subject_id): e.payload.get("territory") for e in page if e.type == "decision.created"},
                )
            for ev in page:
                p = ev.payload
                b = buckets.index(ev.created_at)
                if ev.type in _ON_DECISION and not members.has(ev.subject_id):
                    continue
                if ev.type == "decision.created":
                    kinds[str(p.get("content_kind"))] += 1
                    verdicts[str(p.get("verdict"))] += 1
                    series["scanned"][b] += 1
                    if p.get("verdict") == "block":
                        series["blocked"][b] += 1
                    for f in _matches(p.get("findings")):
                        by_bank[str(f["bank"])] += 1
                        by_signal[str(f.get("signal_type") or "unknown")] += 1
                        by_category[str(f.get("category") or "uncategorised")] += 1
                        series["matches"][b] += 1
                elif ev.type == "action.case":
                    r = _result(p)
                    if r.get("created"):
                        opened[str(r.get("queue", ""))] += 1
                        if r.get("queue") == "grooming":
                            grooming["cases_opened"] += 1
                elif ev.type == "action.safety_message":
                    grooming["safety_messages"] += 1
                elif ev.type == "action.restrict_contact":
                    grooming["contact_restrictions"] += 1
                elif ev.type == "action.terminate_stream":
                    r = _result(p)
                    if r.get("stream_id") and "skipped" not in r:
                        terminations.append((ev.created_at, str(r["stream_id"])))
                elif ev.type == "case.decided" and p.get("stage") in FINAL_STAGES and ev.subject_id:
                    if members.case(ctx, int(ev.subject_id)):
                        final_in_range[int(ev.subject_id)] = (ev.created_at, str(p.get("outcome")))
                        overrides += 1 if p.get("stage") == "override" else 0
                elif ev.type == "report.drafted":
                    if members.case(ctx, int(p["case_id"]) if p.get("case_id") is not None else None):
                        reports["drafted"] += 1
                elif ev.type == "report.submitted" and ev.subject_id:
                    if members.case(ctx, ctx.report_case.get(ev.subject_id)):
                        submitted.setdefault(ev.subject_id, ev.created_at)
                elif ev.type == "report.nca_packaged" and ev.subject_id:
                    packages += 1 if members.case(ctx, ctx.report_case.get(ev.subject_id)) else 0
                elif ev.type == "user_report.received":
                    case_id = int(p["case_id"]) if p.get("case_id") is not None else None
                    if not (members.has(p.get("decision_id")) or members.case(ctx, case_id)):
                        continue
                    received += 1
                    user_reports[str(p.get("reason"))] += 1
                    user_report_cases.append(case_id)
                    if p.get("case_created"):  # a report with nothing to scan opens its case itself
                        opened["user_reports"] += 1
    opened.update({k: 0 for k in QUEUES if k not in opened})
    for t, outcome in final_in_range.values():  # each case once, at its last final decision
        decided[outcome] += 1
        series["cases_decided"][buckets.index(t)] += 1

    # time to action: case opening → its last final decision in the period
    to_action = [
        _seconds(ctx.case_opened[cid], t) for cid, (t, _) in sorted(final_in_range.items()) if cid in ctx.case_opened
    ]
    by_queue: dict[str, list[float]] = {q: [] for q in QUEUES}
    for cid, (t, _) in sorted(final_in_range.items()):
        if cid in ctx.case_opened:
            by_queue.setdefault(ctx.case_queue.get(cid) or "unknown", []).append(_seconds(ctx.case_opened[cid], t))
    quality = _list_quality(s, ctx, final_in_range, rng.last_seq)
    reports["submitted"] = len(submitted)
    to_report = []
    for rid, t in sorted(submitted.items()):
        report_case = ctx.report_case.get(rid)
        if report_case is not None and report_case in ctx.case_opened:
            to_report.append(_seconds(ctx.case_opened[report_case], t))
    # NCA referrals: the reports whose first package was made in the range, timed from their case's opening
    referred, to_referral = 0, []
    for rid, (seq, t) in sorted(ctx.report_packaged.items()):
        report_case = ctx.report_case.get(rid)
        if rng.first_seq is None or seq < rng.first_seq or not members.case(ctx, report_case):
            continue
        referred += 1
        if report_case is not None and report_case in ctx.case_opened:
            to_referral.append(_seconds(ctx.case_opened[report_case], t))
    ids = sorted(int(r) for r in submitted)
    transports: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        q = select(Report.id, Report.transport).where(Report.id.in_(ids[i : i + 500]))
        transports.update((int(rid), str(t)) for rid, t in s.execute(q))
    by_transport = Counter(str(transports.get(int(r), "unknown")) for r in submitted)
    actioned = sum(1 for cid in user_report_cases if cid is not None and ctx.case_outcome.get(cid) == "confirmed")
    streams = _streams(s, period, terminations, scope)
    figures: dict[str, Any] = {
        "content_scanned": {
            "decisions_by_kind": _sorted(kinds),
            "decisions_total": sum(kinds.values()),
            "stream_frames_sampled": streams.pop("frames_sampled"),
            "chat_messages_received": _chat_messages(s, period) if scope.whole else None,
        },
        "verdicts": _sorted(verdicts),
        "matches": {
            "total": sum(by_bank.values()),
            "by_bank": _sorted(by_bank),
            "by_signal_type": _sorted(by_signal),
            "by_category": _sorted(by_category),
        },
        "cases": {
            "opened_by_queue": _sorted(opened),
            "opened_total": sum(opened.values()),
            "decided_by_outcome": _sorted(decided),
            "decided_total": sum(decided.values()),
            "decided_by_override": int(overrides),
        },
        "list_quality": quality,
        "law_enforcement_reports": {
            "drafted": reports["drafted"],
            "submitted": reports["submitted"],
            "submitted_by_transport": _sorted(by_transport),
            "detection_to_submission": stats(to_report),
            "detection_to_submission_histogram": histogram(to_report),
            "nca_referrals": {
                "packages_made": packages,
                "referred": referred,
                "detection_to_referral": stats(to_referral),
                "detection_to_referral_histogram": histogram(to_referral),
            },
        },
        "grooming_interventions": grooming,
        "live_streams": streams,
        "user_reports": {
            "received": received,
            "by_reason": _sorted(user_reports),
            "actioned": actioned,
        },
        "time_to_action": stats(to_action),
        "time_to_action_by_queue": {q: stats(xs) for q, xs in sorted(by_queue.items())},
        "time_to_action_histogram": histogram(to_action),
        "over_time": {"bucket_days": buckets.size.days, "buckets": buckets.labels, **series},
    }
    return rng, figures


def _list_quality(
    s: Session, ctx: _Context, final_in_range: dict[int, tuple[datetime, str]], last: int | None
) -> dict[str, dict[str, Any]]:
    """Per bank: the matches in cases decided in the period, and the share a moderator found not violating."""
    decisions = {cid: ctx.case_decisions.get(cid, []) for cid in final_in_range}
    wanted = sorted({d for ds in decisions.values() for d in ds})
    findings: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(wanted), 500):
        q = select(Event.subject_id, Event.payload).where(
            Event.type == "decision.created",
            Event.subject_kind == "decision",
            Event.subject_id.in_(wanted[i : i + 500]),
            Event.seq <= (last or 0),
        )
        for did, payload in s.execute(q):
            findings[str(did)] = list(_matches(payload.get("findings") if isinstance(payload, dict) else None))
    reviewed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for cid, (_, outcome) in final_in_range.items():
        for did in decisions[cid]:
            for f in findings.get(did, []):
                reviewed[str(f["bank"])] += 1
                rejected[str(f["bank"])] += 1 if outcome == "not_violating" else 0
    return {
        bank: {
            "reviewed": reviewed[bank],
            "not_violating": rejected[bank],
            "share_not_violating": round(rejected[bank] / reviewed[bank], 4),
        }
        for bank in sorted(reviewed)
    }


def _streams(s: Session, period: Period, terminations: list[tuple[datetime, str]], scope: Scope) -> dict[str, Any]:
    """Streams registered in the period (the ``streams`` table) and those terminated (the log), with the time
    from the stream's registration to the termination request. A stream has a tenant but no territory: in a
    report scoped to a territory, streams watched and frames sampled are ``None``."""
    in_period = (StreamRow.created_at >= period.start) & (StreamRow.created_at < period.end)
    if scope.tenant is not None:
        in_period = in_period & (StreamRow.tenant == scope.tenant)
    watched: int | None
    frames: int | None
    watched, frames = s.execute(
        select(func.count(), func.coalesce(func.sum(StreamRow.frames_sampled), 0)).where(in_period)
    ).one()
    if scope.territory is not None:
        watched = frames = None
    waits = []
    for t, stream_id in terminations:
        registered = s.execute(
            select(func.max(StreamRow.created_at)).where(
                StreamRow.platform_stream_id == stream_id, StreamRow.created_at <= t
            )
        ).scalar()
        if registered is not None:
            waits.append(_seconds(registered, t))
    return {
        "watched": None if watched is None else int(watched),
        "frames_sampled": None if frames is None else int(frames),
        "terminated": len(terminations),
        "time_to_terminate": stats(waits),
    }


def _chat_messages(s: Session, period: Period) -> int:
    q = select(func.count()).where(
        GroomingMessageRow.created_at >= period.start, GroomingMessageRow.created_at < period.end
    )
    return int(s.execute(q).scalar_one())


SOURCES = {
    "/figures/content_scanned/stream_frames_sampled": "table streams (frames_sampled of streams registered in the period)",
    "/figures/content_scanned/chat_messages_received": "table grooming_messages (kept for the grooming retention only)",
    "/figures/live_streams/watched": "table streams (registered in the period)",
    "/figures/live_streams/time_to_terminate": "event action.terminate_stream and the stream's registration (table streams)",
    "/figures/law_enforcement_reports/submitted_by_transport": "event report.submitted and the transport (table reports)",
}
