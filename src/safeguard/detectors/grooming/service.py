"""GroomingService: messages in, state updated, findings out, and the engine's decision.

The service is the only place grooming touches IO. For a batch of messages it:

1. checks the batch (sizes, encodings, order, unique ids) before touching anything;
2. analyses all texts at once (patterns + one matrix product for similarity), outside any transaction;
3. in one write transaction, run by the engine's group-commit recorder: reads the conversation's and
   the senders' state (from this process's cache when it wrote them last, else one SELECT), folds
   the new messages in, inserts their ledger rows (the platform's message id is the key, so a message
   seen before is refused by the database), and writes the state rows back only if their version is
   still the one read;
4. in the same transaction, when a policy rule fires on news (an indicator hit or stage-head
   evidence, or the threshold crossed), records the decision through :meth:`Engine.decide_in`, so policy, cases, webhooks and
   events are exactly those of uploads, and state and decision are durable together or not at all.
   Ordinary chat (no rule fires) gets its "allow" answer without a decision row and an event per
   message (``record_all=True`` records every one).

Anything unusual in step 3 (a stale cached copy, another writer in between, a message id already in
the ledger, a message older than the conversation's last) rolls the transaction back and runs it
again on the careful path: the ledger is read first (same id and content: a replay, answered with the
decision recorded the first time; same id, other content: 409; older than the last message: 409),
and on PostgreSQL the state rows are locked. So the common case costs a few statements and no reads,
and the rare one is exactly as strict as before. Bad input raises before anything commits, so it
changes no state; nothing is answered before its transaction has committed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safeguard.actions.safety_message import render_safety_message
from safeguard.content import Content, ContentKind, Decision, Finding
from safeguard.detectors.grooming.cache import CachedRow, StateCache
from safeguard.detectors.grooming.features import MINOR_BANDS, answering_report, sextortion_signal, stage_scores
from safeguard.detectors.grooming.indicators import STAGE_DESCRIPTIONS
from safeguard.detectors.grooming.scorer import AGE_BANDS, Analysis, Message, Scorer, Step, default_scorer
from safeguard.detectors.grooming.state import ConversationState, SenderState, UserState
from safeguard.detectors.grooming.store import GroomingConversationRow, GroomingMessageRow, GroomingUserRow
from safeguard.engine import Engine
from safeguard.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from safeguard.policy import evaluate

MAX_BATCH = 500
PURGE_EVERY = 500
MAX_ATTEMPTS = 5
CONV: Table = GroomingConversationRow.__table__  # type: ignore[assignment]
USERS: Table = GroomingUserRow.__table__  # type: ignore[assignment]
LEDGER: Table = GroomingMessageRow.__table__  # type: ignore[assignment]

# Statements built once, with bound parameters, and run on the session's Connection: building Core
# statements per request and sending them through the ORM session cost more than the SQL itself.
_LEDGER_INSERT = insert(LEDGER)
_LEDGER_LOOKUP = select(LEDGER.c.message_id, LEDGER.c.digest, LEDGER.c.decision_id, LEDGER.c.result).where(
    LEDGER.c.conversation_id == bindparam("cid"), LEDGER.c.message_id.in_(bindparam("ids", expanding=True))
)
_CONV_Q = select(
    literal("c").label("k"), CONV.c.conversation_id.label("id"), CONV.c.state, CONV.c.updated_at, CONV.c.version
).where(CONV.c.conversation_id == bindparam("cid"))
_USERS_Q = select(
    literal("u").label("k"), USERS.c.user_id.label("id"), USERS.c.state, USERS.c.updated_at, USERS.c.version
).where(USERS.c.user_id.in_(bindparam("uids", expanding=True)))
_BOTH_Q = _CONV_Q.union_all(_USERS_Q)
_CONV_LOCK_Q = _CONV_Q.with_for_update()
_USERS_LOCK_Q = _USERS_Q.with_for_update()


def _versioned_update(table: Table, key_col: Any, columns: tuple[str, ...]) -> Any:
    return (
        update(table)
        .where(key_col == bindparam("key"), table.c.version == bindparam("old_version"))
        .values({c: bindparam("new_" + c) for c in (*columns, "updated_at", "version")})
    )


_CONV_COLUMNS = ("state", "risk", "messages")
_USER_COLUMNS = ("state", "risk")
_CONV_WRITE = (insert(CONV), _versioned_update(CONV, CONV.c.conversation_id, _CONV_COLUMNS), "conversation_id")
_USER_WRITE = (insert(USERS), _versioned_update(USERS, USERS.c.user_id, _USER_COLUMNS), "user_id")


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


class _Retry(Exception):
    """The fast path met something it does not settle alone: roll back and run the careful path."""


@dataclass
class _Txn:
    """What one write transaction produced."""

    conv: ConversationState
    steps: list[dict[str, Any]]
    new_steps: list[Step]
    sender_risks: dict[str, float]
    decision_id: str  # the new messages' decision, or for a pure replay the one recorded the first time
    decision: dict[str, Any] | None  # None for a pure replay (looked up after the transaction)
    writes: dict[str, CachedRow]  # state rows written, for the cache once the transaction has committed


def _conv_key(conversation_id: str) -> str:
    return "c:" + conversation_id


def _user_key(user_id: str) -> str:
    return "u:" + user_id


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class GroomingService:
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
        self.scorer = scorer or default_scorer()
        self.ttl = timedelta(seconds=engine.settings.grooming_state_ttl_seconds)
        self.max_text = engine.settings.grooming_max_text_chars
        self.cache = StateCache(engine.settings.grooming_state_cache_entries)
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
        territories = territories or {}
        accounts = accounts or {}
        checked = self.check(messages)
        analyses = self.scorer.analyse([m.text for m in messages])
        careful = False
        keys = [_conv_key(conversation_id), *(_user_key(u) for u in dict.fromkeys(m.sender_id for m in messages))]
        for attempt in range(MAX_ATTEMPTS):
            try:
                txn = self._transact(
                    functools.partial(
                        self._work,
                        conversation_id=conversation_id,
                        messages=messages,
                        analyses=analyses,
                        digests=checked.digests,
                        actor=actor,
                        locale=locale,
                        tenant=tenant,
                        territories=territories,
                        careful=careful,
                        accounts=accounts,
                    )
                )
                break
            except (_Retry, IntegrityError) as exc:
                # A stale cached copy, another writer in between, a row created by someone else at the same
                # moment, or a message id already in the ledger: our transaction (or savepoint) rolled back
                # whole, so go again, reading everything (and locking it on PostgreSQL).
                self.cache.drop(*keys)
                careful = True
                if attempt == MAX_ATTEMPTS - 1:
                    if isinstance(exc, _Retry):
                        raise RuntimeError("grooming state kept changing under this request") from exc
                    raise
        for key, row in txn.writes.items():
            self.cache.put(key, row)
        if txn.new_steps and next(self._posts) % PURGE_EVERY == 0:
            self.purge_expired()
        return self._answer(conversation_id, messages, txn, actor, locale, tenant, territories, accounts)

    def _transact(self, work: Callable[[Session], _Txn]) -> _Txn:
        """One write transaction, through the engine's group-commit recorder: with many requests in
        flight their transactions share one commit, and a caller returns only once its own is durable."""
        if self.group_commit:
            return self.engine.recorder.submit(work)
        with self.engine.db.write() as s:
            return work(s)

    def _work(
        self,
        s: Session,
        conversation_id: str,
        messages: list[Message],
        analyses: list[Analysis],
        digests: list[str],
        actor: str,
        locale: str,
        *,
        careful: bool,
        tenant: str = "default",
        territories: dict[str, str] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> _Txn:
        """Step 3 (and 4 for new messages), inside the write transaction.

        Fast path (``careful=False``): the state comes from the cache or one SELECT, the ledger is not
        read (its primary key refuses a message id seen before, which sends us to the careful path), and
        the state rows are written only if their version is still the one read. Careful path: the ledger
        is read first (replays and 409s are decided here), and the state rows are locked on PostgreSQL.
        """
        now = datetime.now(UTC)
        decision_id = Decision.new_id()  # for the new messages' decision
        replay_id: str | None = None  # a pure replay answers with the earlier decision
        known = self._ledger(s, conversation_id, [m.message_id for m in messages]) if careful else {}
        for m, d in zip(messages, digests, strict=True):
            old = known.get(m.message_id)
            if old is not None and old["digest"] != d:
                raise Conflict(
                    f"message id {m.message_id!r} was already posted with different content",
                    code="duplicate_message_id",
                )
        senders = list(dict.fromkeys(m.sender_id for m in messages if m.message_id not in known))
        rows = self._load(s, conversation_id, senders, careful=careful)
        ckey = _conv_key(conversation_id)
        conv_row = rows.get(ckey)
        live = conv_row is not None and self._live(conv_row, now)
        conv = ConversationState.from_json(conv_row.state) if conv_row is not None and live else ConversationState()
        users: dict[str, UserState] = {}
        for uid in senders:
            urow = rows.get(_user_key(uid))
            users[uid] = UserState.from_json(urow.state) if urow is not None and self._live(urow, now) else UserState()
        steps: list[dict[str, Any]] = []
        new_steps: list[Step] = []
        ledger: list[dict[str, Any]] = []
        for m, a, d in zip(messages, analyses, digests, strict=True):
            old = known.get(m.message_id)
            if old is not None:
                steps.append(dict(old["result"], message_id=m.message_id, replayed=True))
                replay_id = old["decision_id"] or replay_id
                continue
            if conv.last_at is not None and m.sent_at < conv.last_at:
                if not careful:
                    raise _Retry  # perhaps a retry of an earlier message: the careful path reads the ledger
                raise Conflict(
                    f"message {m.message_id!r} (sent_at {m.sent_at}) is earlier than the conversation's last "
                    f"message {conv.last_id!r} (sent_at {conv.last_at}); send messages in order",
                    code="out_of_order",
                )
            step = self.scorer.apply(conv, users[m.sender_id], conversation_id, m, a)
            new_steps.append(step)
            result = _step_dict(step)
            steps.append(dict(result, replayed=False))
            ledger.append(
                {
                    "conversation_id": conversation_id,
                    "message_id": m.message_id,
                    "digest": d,
                    "sent_at": m.sent_at,
                    "decision_id": decision_id,
                    "result": result,
                    "created_at": now,
                }
            )
        sender_risks = {uid: ust.risk() for uid, ust in users.items()}
        if not new_steps:
            return _Txn(conv, steps, [], sender_risks, replay_id or decision_id, None, {})
        conn = s.connection()
        conn.execute(_LEDGER_INSERT, ledger)  # a message id seen before: IntegrityError, careful path
        conv_values = {
            "state": conv.to_json(),
            "risk": max(st.risk for st in conv.senders.values()),
            "messages": conv.n,
        }
        writes = {ckey: _write(conn, _CONV_WRITE, conversation_id, conv_row, now, conv_values)}
        for uid, ust in users.items():
            key = _user_key(uid)
            writes[key] = _write(
                conn, _USER_WRITE, uid, rows.get(key), now, {"state": ust.to_json(), "risk": ust.risk()}
            )
        # Step 4 in the same transaction: the decision, its case, outbox rows and events commit with the
        # state, or none of it does.
        crossed = conv.alerted_at is not None and conv.alerted_at > conv.n - len(new_steps)
        news = crossed or any(st.indicators or st.semantic for st in new_steps)
        findings = self.findings(conversation_id, conv)
        outcome = evaluate(self.engine.policy, findings, ContentKind.MESSAGE)
        if (outcome.reasons and news) or self.record_all:
            content = self._content(conversation_id, messages, conv, steps, locale, tenant, territories, accounts)
            with s.no_autoflush:  # one flush at the end instead of one before each of the actions' queries
                recorded = self.engine.decide_in(s, content, findings, actor=actor, decision_id=decision_id)
            decision = dict(recorded.to_dict(), recorded=True)
        else:
            decision = self._unrecorded(findings, outcome)
        return _Txn(conv, steps, new_steps, sender_risks, decision_id, decision, writes)

    def _live(self, row: CachedRow, now: datetime) -> bool:
        return row.updated_at + self.ttl > now

    def _ledger(self, s: Session, conversation_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = s.connection().execute(_LEDGER_LOOKUP, {"cid": conversation_id, "ids": ids})
        return {r.message_id: r._asdict() for r in rows}

    def _load(self, s: Session, conversation_id: str, senders: list[str], *, careful: bool) -> dict[str, CachedRow]:
        """The conversation's and the senders' state rows that exist: from the cache, else one SELECT."""
        out: dict[str, CachedRow] = {}
        ckey = _conv_key(conversation_id)
        need_conv, need_users = True, list(senders)
        if not careful:
            hit = self.cache.get(ckey)
            if hit is not None:
                out[ckey], need_conv = hit, False
            need_users = []
            for uid in senders:
                hit = self.cache.get(_user_key(uid))
                if hit is None:
                    need_users.append(uid)
                else:
                    out[_user_key(uid)] = hit
        if careful and not self.engine.db.is_sqlite:
            # lock what exists, so that the versioned writes below cannot lose to another writer
            queries: list[Any] = [_CONV_LOCK_Q] + ([_USERS_LOCK_Q] if need_users else [])
        elif need_conv and need_users:
            queries = [_BOTH_Q]
        else:
            queries = ([_CONV_Q] if need_conv else []) + ([_USERS_Q] if need_users else [])
        conn = s.connection()
        for q in queries:
            for r in conn.execute(q, {"cid": conversation_id, "uids": need_users}):
                key = _conv_key(r.id) if r.k == "c" else _user_key(r.id)
                out[key] = CachedRow(int(r.version), _utc(r.updated_at), r.state)
        return out

    def _content(
        self,
        conversation_id: str,
        messages: list[Message],
        conv: ConversationState,
        steps: list[dict[str, Any]],
        locale: str,
        tenant: str,
        territories: dict[str, str] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> Content:
        focus_id, _ = _focus(conv)
        return Content(
            kind=ContentKind.MESSAGE,
            content_id=steps[-1]["message_id"] if steps else None,
            user_id=focus_id,
            conversation_id=conversation_id,
            context={"locale": locale, "minors": _minor_recipients(messages, focus_id)},
            tenant=tenant,
            territory=(territories or {}).get(focus_id) if focus_id else None,
            user_info=(accounts or {}).get(focus_id) if focus_id is not None else None,
        )

    def _unrecorded(self, findings: list[Finding], outcome: Any) -> dict[str, Any]:
        """Not recorded: either no rule fired (ordinary chat: "allow", no decision and event per message),
        or rules fired but these messages add no evidence to what an earlier recorded decision already
        acted on (no second case item, webhook or safety message per message). ``record_all`` records all."""
        decision: dict[str, Any] = {
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
        return decision

    def _answer(
        self,
        conversation_id: str,
        messages: list[Message],
        txn: _Txn,
        actor: str,
        locale: str,
        tenant: str,
        territories: dict[str, str] | None = None,
        accounts: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The response. New messages bring their decision from the transaction; a pure replay answers
        with the decision recorded the first time, re-deciding only if that one is missing."""
        conv, steps = txn.conv, txn.steps
        focus_id, focus = _focus(conv)
        replay = not txn.new_steps
        decision = txn.decision
        if decision is None:  # a pure replay
            try:
                decision = dict(self.engine.get_decision(txn.decision_id), recorded=True)
            except NotFound:
                findings = self.findings(conversation_id, conv)
                outcome = evaluate(self.engine.policy, findings, ContentKind.MESSAGE)
                news = any(st["indicators"] for st in steps)
                if (outcome.reasons and news) or self.record_all:
                    content = self._content(
                        conversation_id, messages, conv, steps, locale, tenant, territories, accounts
                    )
                    decision = self.engine.decide(content, findings, actor=actor, decision_id=txn.decision_id).to_dict()
                    decision["recorded"] = True
                else:
                    decision = self._unrecorded(findings, outcome)
        safety = None
        if any(a["name"] == "safety_message" for a in decision["actions"]):
            params = next(a["params"] for a in decision["actions"] if a["name"] == "safety_message")
            safety = render_safety_message(str(params.get("locale", locale)), params)
        return {
            "conversation_id": conversation_id,
            "conversation_risk": round(max((st.risk for st in conv.senders.values()), default=0.0), 4),
            "focus_sender": focus_id,
            "sender_risk": {k: round(v, 4) for k, v in txn.sender_risks.items()},
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
        threats = tuple(e for e in evidence if any(i.startswith("pressure.") for i in e["indicators"]))
        threat_ind = any(i == "pressure.threat_to_share" for e in threats for i in e["indicators"])
        if threats and sextortion_signal(st, threat_ind, answering_report(conv.senders, focus_id)):
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


def _write(
    conn: Connection,
    stmts: tuple[Any, Any, str],
    key: str,
    row: CachedRow | None,
    now: datetime,
    values: dict[str, Any],
) -> CachedRow:
    """INSERT a new state row, or UPDATE it if its version is still the one read (else retry)."""
    insert_stmt, update_stmt, key_name = stmts
    if row is None:
        version = secrets.randbits(62) or 1
        conn.execute(insert_stmt, {key_name: key, "updated_at": now, "version": version, **values})
    else:
        version = row.version + 1
        params = {"new_" + k: v for k, v in values.items()}
        res = conn.execute(
            update_stmt,
            {"key": key, "old_version": row.version, "new_updated_at": now, "new_version": version, **params},
        )
        if res.rowcount != 1:
            raise _Retry
    return CachedRow(version, now, values["state"])


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
