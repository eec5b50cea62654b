"""GroomingService: the conversations API's thin layer over the engine's one path.

A batch of chat messages becomes one ``message`` :class:`~safeguard.content.Content` (the conversation
id, each message's sender, age bands, recipients and ``sent_at``). :meth:`Engine.findings` runs the
registered detectors on it outside any transaction (the grooming detector checks and analyses the
texts), then :meth:`Engine.scan_in`, in one write transaction through the engine's group-commit
recorder, lets the grooming detector fold the messages into its state (:mod:`.detector`), applies the
policy and records the decision: state and decision are durable together or not at all. Ordinary chat
(no rule fires) gets its "allow" answer without a decision row and an event per message
(``record_all=True`` records every one).

This layer adds what is the API's, not the detector's: the retry on the careful path when the fast
path met something unusual (a stale cached copy, another writer, a replayed id), the cache update once
the transaction has committed, the answer for a replay (the decision recorded the first time), the
response body, and the conversation's state for ``GET``. Bad input raises before anything commits.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safeguard.actions.safety_message import render_safety_message
from safeguard.content import Content, ContentKind, Finding
from safeguard.detectors.base import ScanContext
from safeguard.detectors.grooming.cache import StateCache
from safeguard.detectors.grooming.detector import (
    CAREFUL,
    MAX_ATTEMPTS,
    MAX_BATCH,
    PURGE_EVERY,
    RESULT,
    Folded,
    GroomingDetector,
    Retry,
    conv_key,
    focus,
    message_digest,
    user_key,
)
from safeguard.detectors.grooming.features import stage_scores
from safeguard.detectors.grooming.scorer import Message, Scorer
from safeguard.detectors.grooming.state import ConversationState
from safeguard.detectors.grooming.store import GroomingConversationRow
from safeguard.engine import Engine, ScanResult
from safeguard.errors import InvalidInput, NotFound, PayloadTooLarge


class GroomingService:
    """Posts messages through the engine; ``scorer``, if given, replaces the engine's grooming
    detector's model (tests and benchmarks)."""

    def __init__(
        self,
        engine: Engine,
        scorer: Scorer | None = None,
        *,
        record_all: bool = False,
        group_commit: bool = True,
    ) -> None:
        self.engine = engine
        self.record_all = record_all
        self.group_commit = group_commit
        found = [d for d in engine.detectors if isinstance(d, GroomingDetector)]
        if not found:
            # an installation without the package's entry points (pip install -e . again)
            raise RuntimeError("the grooming detector is not registered (entry point safeguard.detectors: grooming)")
        self.detector = found[0]
        if scorer is not None:
            self.detector.scorer = scorer
        self._posts = itertools.count(1)

    @property
    def scorer(self) -> Scorer:
        return self.detector.scorer

    @property
    def cache(self) -> StateCache:
        """The detector's cache of state rows (one per engine, as one per process)."""
        return self.detector.cache

    @property
    def ttl(self) -> timedelta:
        return self.detector.ttl

    def post(
        self,
        conversation_id: str,
        messages: list[Message],
        *,
        actor: str = "system",
        locale: str = "en",
        tenant: str = "default",
        territories: dict[str, str] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Score ``messages``; a decision it records is ``tenant``'s (the platform key's). ``territories``: where
        senders are (safeguard.dsa), for the statement of reasons of a restriction on one of them. ``accounts``
        holds the senders' optional account details (:mod:`safeguard.reported_user`), by sender id: a decision
        keeps its focus sender's (``body["user"]``), for a law-enforcement report to name."""
        if not messages:
            raise InvalidInput("send at least one message", code="no_messages")
        if len(messages) > MAX_BATCH:
            raise PayloadTooLarge(f"at most {MAX_BATCH} messages per request", code="batch_too_large")
        territories = territories or {}
        accounts = accounts or {}
        content = Content(
            kind=ContentKind.MESSAGE,
            conversation_id=conversation_id,
            messages=tuple(
                replace(m, territory=territories.get(m.sender_id), user_info=accounts.get(m.sender_id))
                for m in messages
            ),
            context={"locale": locale},
            tenant=tenant,
        )
        first = ScanContext(content=content, signals=[])
        found = self.engine.findings([first])[0]  # checks and analyses, outside any transaction
        careful = False
        keys = [conv_key(conversation_id), *(user_key(u) for u in dict.fromkeys(m.sender_id for m in messages))]
        for attempt in range(MAX_ATTEMPTS):
            ctx = ScanContext(content=content, signals=[], extra=dict(first.extra, **{CAREFUL: careful}))
            try:
                result = self._transact(
                    functools.partial(self._scan, ctx=ctx, findings=found, actor=actor, record_all=self.record_all)
                )
                break
            except (Retry, IntegrityError) as exc:
                # A stale cached copy, another writer in between, a row created by someone else at the same
                # moment, or a message id already in the ledger: our transaction (or savepoint) rolled back
                # whole, so go again, reading everything (and locking it on PostgreSQL).
                self.detector.cache.drop(*keys)
                careful = True
                if attempt == MAX_ATTEMPTS - 1:
                    if isinstance(exc, Retry):
                        raise RuntimeError("grooming state kept changing under this request") from exc
                    raise
        folded = ctx.extra[RESULT]
        assert isinstance(folded, Folded)
        for key, row in folded.writes.items():
            self.detector.cache.put(key, row)
        if folded.new_steps and next(self._posts) % PURGE_EVERY == 0:
            self.detector.purge_expired()
        return self._answer(conversation_id, ctx, folded, result, actor, locale)

    def _scan(
        self, s: Session, *, ctx: ScanContext, findings: list[Finding], actor: str, record_all: bool
    ) -> ScanResult:
        return self.engine.scan_in(s, ctx, findings, actor=actor, record_all=record_all)

    def _transact(self, work: Any) -> ScanResult:
        """One write transaction, through the engine's group-commit recorder: with many requests in
        flight their transactions share one commit, and a caller returns only once its own is durable."""
        if self.group_commit:
            result: ScanResult = self.engine.recorder.submit(work)
            return result
        with self.engine.db.write() as s:
            out: ScanResult = work(s)
            return out

    def _unrecorded(self, result: ScanResult) -> dict[str, Any]:
        """Not recorded: either no rule fired (ordinary chat: "allow", no decision and event per message),
        or rules fired but these messages add no evidence to what an earlier recorded decision already
        acted on (no second case item, webhook or safety message per message). ``record_all`` records all."""
        decision: dict[str, Any] = {
            "id": None,
            "verdict": result.verdict.value,
            "findings": [f.to_dict() for f in result.findings],
            "actions": [],
            "reasons": list(result.reasons),
            "policy_version": self.engine.policy.version,
            "recorded": False,
        }
        if result.reasons:
            decision["note"] = "no new evidence since the last recorded decision; actions not repeated"
        return decision

    def _answer(
        self, conversation_id: str, ctx: ScanContext, folded: Folded, result: ScanResult, actor: str, locale: str
    ) -> dict[str, Any]:
        """The response. New messages bring their decision from the transaction; a pure replay answers
        with the decision recorded the first time, re-deciding only if that one is missing."""
        conv, steps = folded.conv, folded.steps
        focus_id, st = focus(conv)
        replay = not folded.new_steps
        if result.decision is not None:
            decision = dict(result.decision.to_dict(), recorded=True)
        elif not replay:
            decision = self._unrecorded(result)
        else:
            earlier = folded.replay_id or ctx.decision_id
            assert earlier is not None
            try:
                decision = dict(self.engine.get_decision(earlier), recorded=True)
            except NotFound:  # recorded with the state, so only lost with it: decide again, same id
                news = any(step["indicators"] for step in steps)
                if (result.reasons and news) or self.record_all:
                    again = self.engine.decide(ctx.content, result.findings, actor=actor, decision_id=earlier)
                    decision = dict(again.to_dict(), recorded=True)
                else:
                    decision = self._unrecorded(result)
        safety = None
        if any(a["name"] == "safety_message" for a in decision["actions"]):
            params = next(a["params"] for a in decision["actions"] if a["name"] == "safety_message")
            safety = render_safety_message(str(params.get("locale", locale)), params)
        return {
            "conversation_id": conversation_id,
            "conversation_risk": round(max((s.risk for s in conv.senders.values()), default=0.0), 4),
            "focus_sender": focus_id,
            "sender_risk": {k: round(v, 4) for k, v in folded.sender_risks.items()},
            "stages": stage_scores(st) if st else {},
            "evidence": [e for e in conv.evidence if focus_id is None or e.get("sender_id") == focus_id],
            "messages": steps,
            "threshold": self.scorer.model.threshold,
            "replayed": replay,
            "decision": decision,
            "safety_message": safety,
        }

    def findings(self, conversation_id: str, conv: ConversationState) -> list[Finding]:
        """The findings a conversation's state gives (user reports show them for a reported conversation)."""
        return self.detector.findings(conversation_id, conv)

    def purge_expired(self) -> int:
        """Delete state and ledger rows idle past the TTL; returns the number of rows removed."""
        return self.detector.purge_expired()

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        with self.engine.db.read() as s:
            row = s.get(GroomingConversationRow, conversation_id)
            if row is None or row.updated_at + self.detector.ttl <= datetime.now(UTC):
                raise NotFound(f"no grooming state for conversation {conversation_id!r}", code="conversation_not_found")
            return {
                "conversation_id": conversation_id,
                "risk": row.risk,
                "messages": row.messages,
                "state": json.loads(row.state),
            }


__all__ = ["GroomingService", "message_digest"]
