"""GroomingService: messages in, state updated, findings out, and the engine's decision.

The service is the only place grooming touches IO. For a batch of messages it:

1. checks the batch (sizes, encodings, order, unique ids) before touching anything;
2. analyses all texts at once (patterns + one matrix product for similarity), outside any transaction;
3. in one write transaction: looks the message ids up in the ledger (same id and content → replay;
   same id, other content → 409), refuses messages older than the conversation's last one (409),
   folds the new messages into conversation and sender state, writes the ledger rows and the state;
4. turns the state into findings and evaluates the policy; when a rule fires it calls
   :meth:`Engine.decide`, so policy, cases, webhooks and events are exactly those of uploads. When no
   rule fires (ordinary chat) the "allow" answer is returned without recording a decision, so chat
   does not write a decision and an event per message (``record_all=True`` records every one). The decision id is chosen before step 3 and kept in the
   ledger, so a retry after a crash between 3 and 4 re-creates the same decision instead of losing it.

Bad input raises before step 3 commits, so it changes no state.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from safeguard.actions.safety_message import render_safety_message
from safeguard.content import Content, ContentKind, Decision, Finding
from safeguard.detectors.grooming.features import MINOR_BANDS, stage_scores
from safeguard.detectors.grooming.indicators import STAGE_DESCRIPTIONS
from safeguard.detectors.grooming.scorer import AGE_BANDS, Analysis, Message, Scorer, Step, default_scorer
from safeguard.detectors.grooming.state import ConversationState, SenderState, UserState
from safeguard.detectors.grooming.store import GroomingConversationRow, GroomingMessageRow, GroomingUserRow
from safeguard.engine import Engine
from safeguard.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from safeguard.policy import evaluate

MAX_BATCH = 500
PURGE_EVERY = 500


def message_digest(m: Message) -> str:
    """What makes two posts of the same message id "the same message"."""
    body = json.dumps(
        [m.sender_id, m.text, m.sent_at, m.sender_band, m.account_age_days, list(m.recipients), m.prior_contact],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class _Checked:
    messages: list[Message]
    digests: list[str]


class GroomingService:
    def __init__(self, engine: Engine, scorer: Scorer | None = None, *, record_all: bool = False) -> None:
        self.engine = engine
        self.record_all = record_all
        self.scorer = scorer or default_scorer()
        self.ttl = timedelta(seconds=engine.settings.grooming_state_ttl_seconds)
        self.max_text = engine.settings.grooming_max_text_chars
        self._posts = itertools.count(1)

    # -- validation (pure) ---------------------------------------------------------------------
    def check(self, messages: list[Message]) -> _Checked:
        if not messages:
            raise InvalidInput("send at least one message", code="no_messages")
        if len(messages) > MAX_BATCH:
            raise PayloadTooLarge(f"at most {MAX_BATCH} messages per request", code="batch_too_large")
        seen: set[str] = set()
        last = -math.inf
        for m in messages:
            if m.message_id in seen:
                raise Conflict(f"message id {m.message_id!r} appears twice in the batch", code="duplicate_message_id")
            seen.add(m.message_id)
            if len(m.text) > self.max_text:
                raise PayloadTooLarge(
                    f"message {m.message_id!r} is longer than {self.max_text} characters",
                    code="text_too_long",
                    details={"max_chars": self.max_text},
                )
            try:
                m.text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidInput(
                    f"message {m.message_id!r} is not valid Unicode text", code="invalid_encoding"
                ) from exc
            if "\x00" in m.text:
                raise InvalidInput(f"message {m.message_id!r} contains NUL characters", code="invalid_encoding")
            if not math.isfinite(m.sent_at):
                raise InvalidInput(f"message {m.message_id!r}: sent_at is not a time", code="invalid_time")
            if m.sent_at < last:
                raise Conflict(
                    f"message {m.message_id!r} is earlier than the message before it in the batch",
                    code="out_of_order",
                )
            last = m.sent_at
            for band in [m.sender_band, *(b for _, b in m.recipients)]:
                if band not in AGE_BANDS:
                    raise InvalidInput(f"unknown age band {band!r}; use one of {AGE_BANDS}", code="invalid_age_band")
        return _Checked(messages, [message_digest(m) for m in messages])

    # -- the pipeline --------------------------------------------------------------------------
    def post(
        self, conversation_id: str, messages: list[Message], *, actor: str = "system", locale: str = "en"
    ) -> dict[str, Any]:
        checked = self.check(messages)
        analyses = self.scorer.analyse([m.text for m in messages])
        for attempt in range(3):
            try:
                conv, steps, new_steps, sender_risks, decision_id = self._commit(
                    conversation_id, messages, analyses, checked.digests
                )
                break
            except IntegrityError:
                # Another process created this conversation's or sender's first row at the same
                # moment; our transaction rolled back whole, so try again on top of theirs.
                if attempt == 2:
                    raise
        if not new_steps:  # a pure replay: answer as before (re-deciding only if the decision was lost)
            news = any(st["indicators"] for st in steps)
            return self._answer(
                conversation_id, messages, conv, steps, sender_risks, decision_id, actor, locale, replay=True, news=news
            )
        if next(self._posts) % PURGE_EVERY == 0:
            self.purge_expired()
        crossed = conv.alerted_at is not None and conv.alerted_at > conv.n - len(new_steps)
        news = crossed or any(st.indicators for st in new_steps)
        return self._answer(
            conversation_id,
            messages,
            conv,
            steps,
            sender_risks,
            decision_id,
            actor,
            locale,
            replay=False,
            news=news,
        )

    def _commit(
        self, conversation_id: str, messages: list[Message], analyses: list[Analysis], digests: list[str]
    ) -> tuple[ConversationState, list[dict[str, Any]], list[Step], dict[str, float], str]:
        """Step 3: ledger check, order check, state update and writes, in one transaction."""
        decision_id = Decision.new_id()  # for the new messages' decision
        replay_id: str | None = None  # a pure replay answers with the earlier decision
        now = datetime.now(UTC)
        steps: list[dict[str, Any]] = []
        new_steps: list[Step] = []
        with self.engine.db.write() as s:
            ids = [m.message_id for m in messages]
            known = {
                r.message_id: r
                for r in s.execute(
                    select(GroomingMessageRow).where(
                        GroomingMessageRow.conversation_id == conversation_id, GroomingMessageRow.message_id.in_(ids)
                    )
                ).scalars()
            }
            for m, d in zip(messages, digests, strict=True):
                row = known.get(m.message_id)
                if row is not None and row.digest != d:
                    raise Conflict(
                        f"message id {m.message_id!r} was already posted with different content",
                        code="duplicate_message_id",
                    )
            conv_row = s.get(GroomingConversationRow, conversation_id, with_for_update=True)
            conv = (
                ConversationState.from_json(conv_row.state)
                if conv_row is not None and conv_row.updated_at + self.ttl > now
                else ConversationState()
            )
            users: dict[str, tuple[GroomingUserRow | None, UserState]] = {}
            for m, a, d in zip(messages, analyses, digests, strict=True):
                old = known.get(m.message_id)
                if old is not None:
                    steps.append(dict(old.result, message_id=m.message_id, replayed=True))
                    replay_id = old.decision_id or replay_id
                    continue
                if conv.last_at is not None and m.sent_at < conv.last_at:
                    raise Conflict(
                        f"message {m.message_id!r} (sent_at {m.sent_at}) is earlier than the conversation's last "
                        f"message {conv.last_id!r} (sent_at {conv.last_at}); send messages in order",
                        code="out_of_order",
                    )
                if m.sender_id not in users:
                    urow = s.get(GroomingUserRow, m.sender_id, with_for_update=True)
                    live = urow is not None and urow.updated_at + self.ttl > now
                    users[m.sender_id] = (urow, UserState.from_json(urow.state) if live and urow else UserState())
                step = self.scorer.apply(conv, users[m.sender_id][1], conversation_id, m, a)
                new_steps.append(step)
                result = _step_dict(step)
                steps.append(dict(result, replayed=False))
                s.add(
                    GroomingMessageRow(
                        conversation_id=conversation_id,
                        message_id=m.message_id,
                        digest=d,
                        sent_at=m.sent_at,
                        decision_id=decision_id,
                        result=result,
                        created_at=now,
                    )
                )
            if new_steps:
                conv_risk = max(st.risk for st in conv.senders.values())
                if conv_row is None:
                    conv_row = GroomingConversationRow(conversation_id=conversation_id, state="")
                    s.add(conv_row)
                conv_row.state = conv.to_json()
                conv_row.risk = conv_risk
                conv_row.messages = conv.n
                conv_row.updated_at = now
                for uid, (urow, ust) in users.items():
                    if urow is None:
                        urow = GroomingUserRow(user_id=uid, state="")
                        s.add(urow)
                    urow.state = ust.to_json()
                    urow.risk = ust.risk()
                    urow.updated_at = now
            sender_risks = {uid: ust.risk() for uid, (_, ust) in users.items()}
        return conv, steps, new_steps, sender_risks, (decision_id if new_steps else replay_id or decision_id)

    def _answer(
        self,
        conversation_id: str,
        messages: list[Message],
        conv: ConversationState,
        steps: list[dict[str, Any]],
        sender_risks: dict[str, float],
        decision_id: str,
        actor: str,
        locale: str,
        *,
        replay: bool,
        news: bool = True,
    ) -> dict[str, Any]:
        """Findings → policy → decision. ``news``: these messages hit an indicator or crossed the threshold."""
        focus_id, focus = _focus(conv)
        decision: dict[str, Any] | None = None
        if replay:
            try:
                decision = dict(self.engine.get_decision(decision_id), recorded=True)
            except NotFound:
                decision = None
        if decision is None:
            findings = self.findings(conversation_id, conv)
            outcome = evaluate(self.engine.policy, findings, ContentKind.MESSAGE)
            if (outcome.reasons and news) or self.record_all:
                content = Content(
                    kind=ContentKind.MESSAGE,
                    content_id=steps[-1]["message_id"] if steps else None,
                    user_id=focus_id,
                    conversation_id=conversation_id,
                    context={"locale": locale, "minors": _minor_recipients(messages, focus_id)},
                )
                decision = self.engine.decide(content, findings, actor=actor, decision_id=decision_id).to_dict()
                decision["recorded"] = True
            else:
                # Not recorded: either no rule fired (ordinary chat: "allow", no decision and event per
                # message), or rules fired but these messages add no evidence to what an earlier recorded
                # decision already acted on (no second case item, webhook or safety message per message).
                # Set record_all=True to record every one.
                decision = {
                    "id": None,
                    "verdict": outcome.verdict.value,
                    "findings": [f.to_dict() for f in findings],
                    "actions": [],
                    "reasons": list(outcome.reasons),
                    "policy_version": self.engine.policy.version,
                    "recorded": False,
                }
                if outcome.reasons:
                    decision["note"] = "no new evidence since the last recorded decision; actions not repeated"
        safety = None
        if any(a["name"] == "safety_message" for a in decision["actions"]):
            params = next(a["params"] for a in decision["actions"] if a["name"] == "safety_message")
            safety = render_safety_message(str(params.get("locale", locale)), params)
        return {
            "conversation_id": conversation_id,
            "conversation_risk": round(max((st.risk for st in conv.senders.values()), default=0.0), 4),
            "focus_sender": focus_id,
            "sender_risk": {k: round(v, 4) for k, v in sender_risks.items()},
            "stages": stage_scores(focus) if focus else {},
            "evidence": [e for e in conv.evidence if focus_id is None or e.get("sender_id") == focus_id],
            "messages": steps,
            "threshold": self.scorer.model.threshold,
            "replayed": replay,
            "decision": decision,
            "safety_message": safety,
        }

    def findings(self, conversation_id: str, conv: ConversationState) -> list[Finding]:
        focus_id, st = _focus(conv)
        if st is None or focus_id is None:
            return []
        thr = self.scorer.model.threshold
        evidence = tuple(e for e in conv.evidence if e.get("sender_id") == focus_id)
        stages_hit: dict[str, list[str]] = {}
        for e in evidence:
            for ind in e["indicators"]:
                stages_hit.setdefault(ind.split(".", 1)[0], []).append(e["message_id"])
        top = max(stages_hit, key=lambda k: len(stages_hit[k])) if stages_hit else None
        parts = [f"{STAGE_DESCRIPTIONS[k]} ({', '.join(dict.fromkeys(v))})" for k, v in stages_hit.items()]
        context = _context_words(st)
        explanation = (
            f"risk {st.risk:.2f} (alert at {thr:.2f}) for sender {focus_id}"
            + (": " + "; ".join(parts) if parts else ": no indicator hits yet")
            + (f". Context: {context}" if context else "")
        )
        out = [
            Finding(
                detector="grooming",
                kind="grooming_risk",
                score=round(st.risk, 4),
                category=top,
                confidence="high" if st.risk >= thr else "low",
                explanation=explanation,
                evidence=evidence,
            )
        ]
        threats = tuple(e for e in evidence if any(i == "pressure.threat_to_share" for i in e["indicators"]))
        if threats and (st.to_minor or st.risk >= thr):
            out.append(
                Finding(
                    detector="grooming",
                    kind="sextortion",
                    score=round(st.risk, 4),
                    category="pressure",
                    confidence="high",
                    explanation=f"threat to share images or information, messages "
                    f"{', '.join(e['message_id'] for e in threats)}",
                    evidence=threats,
                )
            )
        return out

    def purge_expired(self) -> int:
        """Delete state and ledger rows idle past the TTL; returns the number of rows removed."""
        cutoff = datetime.now(UTC) - self.ttl
        n = 0
        with self.engine.db.write() as s:
            stmts = [
                delete(GroomingConversationRow).where(GroomingConversationRow.updated_at < cutoff),
                delete(GroomingUserRow).where(GroomingUserRow.updated_at < cutoff),
                delete(GroomingMessageRow).where(GroomingMessageRow.created_at < cutoff),
            ]
            for stmt in stmts:
                n += int(getattr(s.execute(stmt), "rowcount", 0) or 0)
        return n

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        with self.engine.db.read() as s:
            row = s.get(GroomingConversationRow, conversation_id)
            if row is None or row.updated_at + self.ttl <= datetime.now(UTC):
                raise NotFound(f"no grooming state for conversation {conversation_id!r}", code="conversation_not_found")
            return {
                "conversation_id": conversation_id,
                "risk": row.risk,
                "messages": row.messages,
                "state": json.loads(row.state),
            }


def _focus(conv: ConversationState) -> tuple[str | None, SenderState | None]:
    if not conv.senders:
        return None, None
    k = max(conv.senders, key=lambda s: conv.senders[s].risk)
    return k, conv.senders[k]


def _minor_recipients(messages: list[Message], focus_id: str | None) -> list[str]:
    """Minors the focus sender wrote to in this batch: whom the safety message is for."""
    return sorted(
        {rid for m in messages if m.sender_id == focus_id for rid, band in m.recipients if band in MINOR_BANDS}
    )


def _context_words(st: SenderState) -> str:
    words = []
    if st.to_minor and st.band == "adult":
        words.append("an adult messaging a minor")
    elif st.to_minor and st.band == "unknown":
        words.append("a sender of unknown age messaging a minor")
    if not st.prior:
        words.append("no prior contact")
    if st.acct is not None and st.acct < 30:
        words.append(f"account {st.acct} days old")
    return ", ".join(words)


def _step_dict(step: Step) -> dict[str, Any]:
    return {
        "message_id": step.message_id,
        "sender_id": step.sender_id,
        "indicators": list(step.indicators),
        "conversation_risk": round(step.conversation_risk, 4),
        "sender_conversation_risk": round(step.sender_conversation_risk, 4),
        "sender_risk": round(step.sender_risk, 4),
        "top_stage": step.top_stage,
    }


__all__ = ["GroomingService", "message_digest"]
