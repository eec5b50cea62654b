"""The one pipeline: content → signals → detectors → findings → policy → decision → actions → events.

Every entry point (HTTP API, CLI, workers, stream monitors) calls :meth:`Engine.scan` (content in,
decision out) or, when a detector already ran elsewhere, :meth:`Engine.decide` (findings in).
:meth:`Engine.findings` is the one place detectors run. Content that a *stateful* detector applies to
(chat messages: the conversation's and the senders' state) goes through :meth:`Engine.findings`
outside any transaction, then :meth:`Engine.scan_in` inside the caller's write transaction, where the
stateful detectors read and write their state, the policy decides and the decision is recorded: the
state advances with the decision or not at all. Signal types, detectors and actions come from the
plug-in registries; nothing here names a particular one, so adding one never edits this file.

The decision, its actions' database writes (case, outbox rows) and their events commit in one
transaction: a process killed mid-scan leaves all of it or none of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from safeguard import events, registry
from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.banks import negative
from safeguard.banks.quality import QualityRecorder
from safeguard.banks.service import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Decision, Finding, Signal, Verdict
from safeguard.detectors.base import Detector, ScanContext
from safeguard.dsa.statements import statement_for
from safeguard.errors import InvalidInput, SafeguardError
from safeguard.index.manager import IndexSet
from safeguard.ledger import decision_digest
from safeguard.media import Media
from safeguard.media.budget import DecodeBudget
from safeguard.policy import Policy, evaluate, load_policy
from safeguard.policy.model import with_default_rules
from safeguard.resources import Resources
from safeguard.signals import compute_signals, get_signal_type
from safeguard.signals.vpdq import MAX_TIMESTAMP
from safeguard.store import Database, driver
from safeguard.store.db import connection_of
from safeguard.store.models import DecisionRow, Statement
from safeguard.store.recorder import AfterCommit, Bulk, Once, Recorder, Rerunnable, Work, collecting

log = logging.getLogger(__name__)
# Hash-only scans with at most this many signals may be matched on the API's event loop (each index
# lookup takes well under a millisecond); see Engine.scan_async.
INLINE_SIGNALS = 8


@dataclass(frozen=True)
class ScanResult:
    """What :meth:`Engine.scan_in` answers: the findings, the policy's verdict and reasons, and the
    decision if one was recorded (``None`` when nothing fired, or nothing new did)."""

    findings: list[Finding]
    verdict: Verdict
    reasons: tuple[str, ...]
    decision: Decision | None


@dataclass
class ScanTimings:
    hash_ms: float = 0.0
    match_ms: float = 0.0
    record_ms: float = 0.0


class Engine:
    def __init__(
        self,
        settings: Settings,
        db: Database | None = None,
        policy: Policy | None = None,
        *,
        migrate: bool = True,
        load_indexes: bool = True,
        start_actions: bool = True,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.resolved_database_url, synchronous=settings.sqlite_synchronous)
        if migrate:
            self.db.migrate(settings)
        self.policy = policy or load_policy(settings.policy_file or None)
        snapshot_dir = Path(settings.data_dir) / "index" if settings.data_dir else None
        # a bank row the index cannot load is quarantined: disabled, with an event (index/manager.py)
        quarantine = BankService(self.db).quarantine_entries
        self.indexes = IndexSet(self.db, snapshot_dir, settings.index_refresh_seconds, on_quarantine=quarantine)
        if load_indexes:
            self.indexes.load()
        self.resources = Resources(settings, self.db, self.indexes)
        self.detectors: list[Detector] = [registry.detectors.get(n)(self.resources) for n in registry.detectors.names()]
        self.policy = with_default_rules(self.policy, [r for d in self.detectors for r in d.default_rules()])
        self.action_handlers: dict[str, ActionHandler] = {
            n: registry.actions.get(n)() for n in registry.actions.names()
        }
        # each action the policy uses checks what it needs (the vault its key); ``start_actions=False`` for
        # commands that only read or administer records and decide nothing
        for name in sorted({spec.name for rule in self.policy.rules for spec in rule.actions} if start_actions else ()):
            self.action_handlers[name].start(settings, self.db, self.resources.extra)
        self.last_timings = ScanTimings()
        self.recorder = Recorder(self.db)
        #: per-entry match figures and the surge quarantine, written off the match path (banks/quality.py)
        self.quality = QualityRecorder(self.db, settings)
        #: what concurrent decodes in this process may hold together (see safeguard.media.budget)
        self.decode_budget = DecodeBudget(settings.decode_memory_bytes, settings.decode_wait_seconds)

    # -- signals -------------------------------------------------------------------------------
    def media_for(self, data: bytes, declared_type: str | None = None, *, reference: bool = False) -> Media:
        """Media for hashing. Scans decode as ``SAFEGUARD_PDQ_DECODE`` says; ``reference=True`` (files
        added to a bank) always decodes in full, so bank entries are the reference hashes wherever they
        come from: lists are shared with tools that hash the reference way."""
        return Media.from_bytes(
            data,
            max_pixels=self.settings.max_image_pixels,
            declared_type=declared_type,
            hash_draft=0 if reference else self.settings.hash_draft,
            budget=self.decode_budget,
            max_frames=self.settings.animation_max_frames,
            max_animation_pixels=self.settings.animation_max_pixels,
        )

    @staticmethod
    def validate_signals(signals: list[Signal] | tuple[Signal, ...]) -> list[Signal]:
        out = []
        for sig in signals:
            st = get_signal_type(sig.type)
            if sig.quality is not None and not 0 <= sig.quality <= 100:
                raise InvalidInput("quality must be between 0 and 100", code="invalid_signal")
            if sig.timestamp is not None and not 0 <= sig.timestamp <= MAX_TIMESTAMP:  # False for NaN too
                raise InvalidInput(
                    f"timestamp must be between 0 and {MAX_TIMESTAMP:.0f} seconds", code="invalid_signal"
                )
            out.append(replace(sig, type=st.name, value=st.validate(sig.value)))
        return out

    # -- the pipeline --------------------------------------------------------------------------
    def scan(
        self, content: Content, *, actor: str = "system", media: Media | None = None, decision_id: str | None = None
    ) -> Decision:
        work = self.prepare(content, actor=actor, media=media, decision_id=decision_id)
        t = time.perf_counter()
        decision: Decision = self.recorder.submit(work)
        self.last_timings.record_ms = (time.perf_counter() - t) * 1000
        return decision

    async def scan_async(self, content: Content, *, actor: str = "system") -> Decision:
        """:meth:`scan` for the event loop. A few hashes for quick detectors only (the usual hash-only
        request) are matched inline; anything else (bytes, many signals, a slow or remote detector) in
        a thread. Either way the loop serves other requests while the decision commits. A due index
        refresh (which may apply a large bank change) runs in a thread first."""
        if self.indexes.refresh_due():
            await asyncio.to_thread(self.indexes.maybe_refresh)
        if self.inline_ok(content):
            work = self.prepare(content, actor=actor)
        else:
            work = await asyncio.to_thread(self.prepare, content, actor=actor)
        decision: Decision = await self.recorder.submit_async(work)
        return decision

    def inline_ok(self, content: Content) -> bool:
        if content.data is not None or len(content.signals) > INLINE_SIGNALS:
            return False
        ctx = ScanContext(content=content, signals=list(content.signals))
        return all(det.quick or not det.applies(ctx) for det in self.detectors)

    def prepare(
        self, content: Content, *, actor: str = "system", media: Media | None = None, decision_id: str | None = None
    ) -> Work:
        """Signals, detectors and policy: everything but the write. Give the result to the recorder
        (``recorder.submit`` or ``submit_async``), which returns the recorded :class:`Decision`."""
        t0 = time.perf_counter()
        signals = self.validate_signals(content.signals)
        if content.data is not None:
            media = media or self.media_for(content.data, content.media_type)
        # decoding and hashing (and dihedral hashes in the detectors) hold the media's estimated cost
        # in the process's decode budget: 413 or 503 rather than running out of memory
        with media.budgeted() if media is not None else nullcontext():
            if content.data is not None and media is not None:
                signals = compute_signals(media) + signals
            if (
                media is None
                and not signals
                and content.kind in (ContentKind.IMAGE, ContentKind.VIDEO, ContentKind.HASHES)
            ):
                raise InvalidInput("send the media bytes or at least one signal", code="nothing_to_scan")
            t1 = time.perf_counter()
            ctx = ScanContext(content=content, signals=signals, media=media)
            findings = self.findings([ctx])[0]
            self._refuse_stateful(ctx)
            t2 = time.perf_counter()
        self.last_timings = ScanTimings((t1 - t0) * 1000, (t2 - t1) * 1000)
        return self.decision_work(content, findings, signals=signals, actor=actor, decision_id=decision_id)

    def detect(self, content: Content, *, media: Media | None = None) -> tuple[list[Signal], list[Finding]]:
        """Signals and findings only, nothing recorded: for a caller that records the decision in its own
        transaction (:meth:`decide_in`), as user reports do."""
        signals = self.validate_signals(content.signals)
        if content.data is not None:
            media = media or self.media_for(content.data, content.media_type)
            signals = compute_signals(media) + signals
        return signals, self.findings([ScanContext(content=content, signals=signals, media=media)])[0]

    def prepare_many(self, contents: list[Content], *, actor: str = "system") -> list[Work]:
        """:meth:`prepare` for several hash-only contents (``POST /v1/scan/batch``), one decision each.

        Every item's signals are validated before any detector runs, so a bad item fails the whole
        request with its position and nothing is written. Detectors see the items together
        (:meth:`Detector.detect_many`: one index call per signal type, one candidate read)."""
        ctxs = []
        for i, content in enumerate(contents):
            if content.data is not None:
                raise InvalidInput(f"item {i}: a batch carries hashes only", code="invalid_request")
            try:
                signals = self.validate_signals(content.signals)
            except SafeguardError as exc:
                raise type(exc)(
                    f"item {i}: {exc.message}",
                    code=exc.code,
                    status=exc.status,
                    details={"item": i, "error": exc.details},
                ) from exc
            if not signals:
                raise InvalidInput(f"item {i}: send at least one signal", code="nothing_to_scan", details={"item": i})
            ctxs.append(ScanContext(content=content, signals=signals))
        findings = self.findings(ctxs)
        for ctx in ctxs:
            self._refuse_stateful(ctx)
        return [
            self.decision_work(ctx.content, found, signals=ctx.signals, actor=actor)
            for ctx, found in zip(ctxs, findings, strict=True)
        ]

    async def scan_many_async(self, contents: list[Content], *, actor: str = "system") -> list[Decision]:
        """:meth:`prepare_many` in a thread, then every item's write handed to the recorder together (they
        share group commits); returns the recorded decisions in the items' order."""
        if self.indexes.refresh_due():
            await asyncio.to_thread(self.indexes.maybe_refresh)
        works = await asyncio.to_thread(self.prepare_many, contents, actor=actor)
        return list(await asyncio.gather(*(self.recorder.submit_async(w) for w in works)))

    def _refuse_stateful(self, ctx: ScanContext) -> None:
        """A stateful detector's findings need its state (:meth:`scan_in`): never a silent allow without it."""
        if ctx.content.messages and any(d.stateful and d.applies(ctx) for d in self.detectors):
            raise InvalidInput(
                "this content is scanned with its detectors' state (Engine.scan_in), not Engine.scan",
                code="invalid_request",
            )

    def findings(self, ctxs: list[ScanContext]) -> list[list[Finding]]:
        """Every applicable detector's findings for each context, in detector order: the one place the
        registry's detectors are run (scans, batches, user reports and each live-stream frame)."""
        out: list[list[Finding]] = [[] for _ in ctxs]
        for det in self.detectors:
            chosen = [i for i, ctx in enumerate(ctxs) if det.applies(ctx)]
            if chosen:
                for i, found in zip(chosen, det.detect_many([ctxs[i] for i in chosen]), strict=True):
                    out[i].extend(found)
        return [negative.suppress(found) for found in out]

    def scan_in(
        self,
        session: Session,
        ctx: ScanContext,
        findings: list[Finding],
        *,
        actor: str = "system",
        record_all: bool = False,
    ) -> ScanResult:
        """The rest of a scan inside the caller's write transaction, for content a stateful detector
        applies to (:attr:`Detector.stateful`): ``findings`` are what :meth:`findings` gave for ``ctx``
        outside the transaction. Each applicable stateful detector's ``detect_in`` reads and writes its
        state through ``session``; the policy decides about ``ctx.content`` (as the detectors narrowed
        it); and the decision, its actions and events are recorded in the same transaction.

        A decision is recorded when a rule fires and a detector brought news (``ctx.news``), or always
        with ``record_all``; never for a replay (``ctx.replay``). So ordinary chat gets its answer without
        a decision row and an event each, and repeated evidence does not repeat a case item, webhook or
        safety message."""
        if ctx.decision_id is None:
            ctx.decision_id = Decision.new_id()
        found = list(findings)
        for det in self.detectors:
            if det.stateful and det.applies(ctx):
                found.extend(det.detect_in(session, ctx))
        found = negative.suppress(found)
        outcome = evaluate(self.policy, negative.active(found), ctx.content.kind)
        if ctx.replay or not (record_all or (outcome.reasons and ctx.news)):
            return ScanResult(found, outcome.verdict, tuple(outcome.reasons), None)
        with session.no_autoflush:  # one flush at the end instead of one before each action's queries
            decision = self.decide_in(session, ctx.content, found, actor=actor, decision_id=ctx.decision_id)
        return ScanResult(found, decision.verdict, decision.reasons, decision)

    def decide(
        self,
        content: Content,
        findings: list[Finding],
        *,
        signals: list[Signal] | None = None,
        actor: str = "system",
        decision_id: str | None = None,
    ) -> Decision:
        """Apply the policy to findings, run the actions and record everything in one transaction."""
        work = self.decision_work(content, findings, signals=signals, actor=actor, decision_id=decision_id)
        decision: Decision = self.recorder.submit(work)
        return decision

    def decide_in(
        self,
        session: Session,
        content: Content,
        findings: list[Finding],
        *,
        actor: str = "system",
        decision_id: str | None = None,
    ) -> Decision:
        """:meth:`decide` inside the caller's write transaction, for a caller whose own rows (a stateful
        detector's, through :meth:`scan_in`; a user report) must commit together with the decision: one
        transaction instead of two, and no window in which one is durable without the other.
        ``decision_id`` must be new (no pending row to complete)."""
        decision = self._new_decision(content, findings, None, decision_id)
        return self._record(session, content, decision, findings, actor)

    def decision_work(
        self,
        content: Content,
        findings: list[Finding],
        *,
        signals: list[Signal] | None = None,
        actor: str = "system",
        decision_id: str | None = None,
    ) -> Work:
        """Apply the policy; return the write that records the decision (and runs its actions)."""
        decision = self._new_decision(content, findings, signals, decision_id)
        pending = decision_id is not None
        if not decision.actions and not pending:
            # nothing to run (most scans: allow): the row and its event as data, written in bulk
            row = _decision_row(content, decision)
            bulk = Bulk(
                rows=[(DECISIONS, row)],
                events=[_decision_event(content, decision, findings, actor, row)],
                result=decision,
            )
            self._add_statement(bulk, content, decision, actor)  # a bare block verdict restricts too
            return bulk

        # local work an action does before the write (evidence: encrypt and store the bytes); what runs on
        # beside the write (``AfterCommit``) is waited for before the recorder's submit returns
        prepared = {}
        after: list[AfterCommit] = []
        for a in decision.actions:
            got = self.action_handlers[a.name].prepare(a, content, decision)
            if got is not None:
                prepared[a.name] = got
                hook = getattr(got, "after", None)
                if isinstance(hook, AfterCommit):
                    after.append(hook)

        def record(s: Session) -> Decision:
            return self._record(s, content, decision, findings, actor, pending, prepared)

        # the built-in actions only write through the session: a batch of such decisions may share
        # one savepoint (store/recorder.py); a pending row's ORM merge keeps its own
        if not pending and all(self.action_handlers[a.name].rerunnable for a in decision.actions):
            return Rerunnable(record, tuple(after))
        return Once(record, tuple(after)) if after else record

    def _new_decision(
        self, content: Content, findings: list[Finding], signals: list[Signal] | None, decision_id: str | None
    ) -> Decision:
        # a negative bank's match and those it suppressed are recorded, not acted on (banks/negative.py)
        active = negative.active(findings)
        outcome = evaluate(self.policy, active, content.kind)
        reasons = outcome.reasons if len(active) == len(findings) else (*outcome.reasons, negative.REASON)
        self.quality.observe(content, signals if signals is not None else content.signals, findings)
        return Decision(
            id=decision_id or Decision.new_id(),
            verdict=outcome.verdict,
            findings=tuple(findings),
            actions=outcome.actions,
            reasons=reasons,
            policy_version=self.policy.version,
            created_at=Decision.now(),
            content_kind=content.kind,
            content_id=content.content_id,
            user_id=content.user_id,
            signals=tuple(signals or ()),
        )

    def _record(
        self,
        s: Session,
        content: Content,
        decision: Decision,
        findings: list[Finding],
        actor: str,
        complete_pending: bool = False,
        prepared: dict[str, Any] | None = None,
    ) -> Decision:
        """Write the decision, run its actions and append their events, inside the caller's transaction."""
        subject = ("decision", decision.id)
        action_drafts: list[events.EventDraft] = []
        ctx = ActionContext(
            session=s, settings=self.settings, content=content, decision=decision, actor=actor, prepared=prepared or {}
        )
        for action in decision.actions:
            handler = self.action_handlers[action.name]
            result = handler.run(action, ctx)
            ctx.results[action.name] = result
            if "case_id" in result:  # an action that opened or joined a case names it (actions/case.py)
                decision = replace(decision, case_id=int(result["case_id"]))
                ctx.decision = decision
            action_drafts.append(
                events.EventDraft(f"action.{action.name}", actor, subject, {"params": action.params, "result": result})
            )
        row = _decision_row(content, decision)  # after the actions: the case action sets case_id
        drafts = [_decision_event(content, decision, findings, actor, row), *action_drafts]
        # a DSA statement of reasons for a restriction on a user in the EU/EEA: in the same transaction
        stmt = Bulk()
        self._add_statement(stmt, content, decision, actor)
        drafts.extend(stmt.events)
        later = None if complete_pending else collecting(s)
        if later is not None:  # a batch of matches: its rows and events are written together
            later.events.extend(drafts)
            later.rows.append((DECISIONS, row))
            later.rows.extend(stmt.rows)
            return decision
        events.append_many(s, drafts)  # one INSERT for the decision's and its actions' events
        if stmt.rows:
            driver.inserter(STATEMENTS).executemany(connection_of(s), [r for _, r in stmt.rows])
        # an asynchronous scan (workers/video_jobs.py) completes the pending row it wrote earlier
        if complete_pending:
            s.merge(DecisionRow(**row))
            s.flush()
        else:
            driver.inserter(DECISIONS).executemany(connection_of(s), [row])
        return decision

    def _add_statement(self, bulk: Bulk, content: Content, decision: Decision, actor: str) -> None:
        """Add the decision's DSA statement of reasons (row and ``statement.created`` event) to ``bulk``, if it
        needs one (safeguard/dsa/statements.py)."""
        built = statement_for(content, decision, self.settings)
        if built is None:
            return
        body = built.body
        bulk.rows.append((STATEMENTS, built.row))
        bulk.events.append(
            events.EventDraft(
                "statement.created",
                actor,
                ("statement", built.row["puid"]),
                {
                    "decision_id": decision.id,
                    "territory": content.territory,
                    "decision_ground": body["decision_ground"],
                    "decision_visibility": body.get("decision_visibility", []),
                    "decision_provision": body.get("decision_provision"),
                },
            )
        )

    def get_decision(self, decision_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """The recorded decision; with ``tenant``, only if it is that tenant's (else ``NotFound``, as if
        there were none: another tenant's ids are not confirmed to exist)."""
        from safeguard.errors import NotFound

        with self.db.read() as s:
            row = s.get(DecisionRow, decision_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFound(f"decision {decision_id!r} not found", code="decision_not_found")
            return dict(row.body, status=row.status)

    def close(self) -> None:
        self.recorder.close()
        self.quality.close()
        self.db.dispose()


DECISIONS = cast(Table, DecisionRow.__table__)
STATEMENTS = cast(Table, Statement.__table__)


def _decision_row(content: Content, decision: Decision) -> dict[str, Any]:
    """The ``decisions`` row of a finished decision (both recording paths write exactly this)."""
    return {
        "id": decision.id,
        "status": "done",
        "created_at": decision.created_at,
        "verdict": decision.verdict.value,
        "content_kind": content.kind.value,
        "content_id": content.content_id,
        "user_id": content.user_id,
        "policy_version": decision.policy_version,
        "case_id": decision.case_id,
        "body": decision.to_dict()
        | ({"user": content.user_info} if content.user_info else {})
        | ({"territory": content.territory} if content.territory else {}),
        "tenant": content.tenant,
    }


def _decision_event(
    content: Content, decision: Decision, findings: list[Finding], actor: str, row: dict[str, Any]
) -> events.EventDraft:
    """The ``decision.created`` event; ``row_digest`` binds the decisions row to it (safeguard/ledger.py)."""
    return events.EventDraft(
        "decision.created",
        actor,
        ("decision", decision.id),
        {
            "verdict": decision.verdict.value,
            "reasons": list(decision.reasons),
            "content_kind": content.kind.value,
            "content_id": content.content_id,
            "user_id": content.user_id,
            "findings": [f.to_dict() for f in findings],
            "policy_version": decision.policy_version,
            "row_digest": decision_digest(row),
        }
        | ({"territory": content.territory} if content.territory else {}),
    )
