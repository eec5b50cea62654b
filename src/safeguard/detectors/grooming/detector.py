"""The grooming detector: chat messages in, the conversation's and senders' state folded, findings out.

Registered under ``safeguard.detectors`` like every detector, and *stateful* (``detectors/base.py``):

1. ``detect_many`` (outside any transaction) checks each content's messages (sizes, encodings, order,
   unique ids) and analyses all their texts at once (patterns + one matrix product for similarity),
   leaving the analyses in ``ctx.extra``; it finds nothing by itself;
2. ``detect_in`` runs inside the decision's write transaction (:meth:`Engine.scan_in`): it reads the
   conversation's and the senders' state (from this process's cache when it wrote them last, else one
   SELECT), folds the new messages in, inserts their ledger rows (the platform's message id is the key,
   so a message seen before is refused by the database), writes the state rows back only if their
   version is still the one read, and returns the findings. It narrows the content to the riskiest
   sender (the decision's user) and says whether the messages brought news (an indicator hit or
   stage-head evidence, or the threshold crossed): the engine records a decision only then.

Anything unusual in step 2 (a stale cached copy, another writer in between, a message id already in
the ledger, a message older than the conversation's last) raises :class:`Retry` or the database's
``IntegrityError``; the caller (:mod:`.service`) rolls the transaction back and runs it again on the
careful path (``ctx.extra[CAREFUL]``): the ledger is read first (same id and content: a replay; same
id, other content: 409; older than the last message: 409), and on PostgreSQL the state rows are
locked. So the common case costs a few statements and no reads, and the rare one is exactly as strict.
What ``detect_in`` wrote is handed back in ``ctx.extra[RESULT]`` (:class:`Folded`) and goes into the
cache only once the transaction has committed.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, literal, select, update
from sqlalchemy.orm import Session

from safeguard.content import Content, ContentKind, Finding
from safeguard.detectors.base import Detector, ScanContext
from safeguard.detectors.grooming.cache import CachedRow, StateCache
from safeguard.detectors.grooming.features import MINOR_BANDS, answering_report, sextortion_signal
from safeguard.detectors.grooming.indicators import STAGE_DESCRIPTIONS
from safeguard.detectors.grooming.scorer import AGE_BANDS, Analysis, Message, Scorer, Step, default_scorer
from safeguard.detectors.grooming.state import ConversationState, SenderState, UserState
from safeguard.detectors.grooming.store import GroomingConversationRow, GroomingMessageRow, GroomingUserRow
from safeguard.errors import Conflict, InvalidInput, PayloadTooLarge
from safeguard.resources import Resources

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


#: ``ctx.extra`` keys: the analyses (``detect_many``), the careful path (the caller), the result (``detect_in``)
ANALYSED = "grooming.analysed"
CAREFUL = "grooming.careful"
RESULT = "grooming.result"


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
    analyses: list[Analysis]


class Retry(Exception):
    """The fast path met something it does not settle alone: roll back and run the careful path."""


@dataclass
class Folded:
    """What one ``detect_in`` did, for the caller's answer and (after the commit) the cache."""

    conv: ConversationState
    steps: list[dict[str, Any]]
    new_steps: list[Step]
    sender_risks: dict[str, float]
    replay_id: str | None  # for a pure replay, the decision recorded the first time (if any)
    writes: dict[str, CachedRow]  # state rows written, for the cache once the transaction has committed


def conv_key(conversation_id: str) -> str:
    return "c:" + conversation_id


def user_key(user_id: str) -> str:
    return "u:" + user_id


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class GroomingDetector(Detector):
    """Grooming and sextortion risk in conversations (content kind ``message``), from per-conversation
    and per-sender state kept in the database (each a small JSON document, well under 4 KB)."""

    name = "grooming"
    stateful = True

    def __init__(self, resources: Resources) -> None:
        super().__init__(resources)
        settings = resources.settings
        self.ttl = timedelta(seconds=settings.grooming_state_ttl_seconds)
        self.max_text = settings.grooming_max_text_chars
        self.cache = StateCache(settings.grooming_state_cache_entries)
        self._scorer: Scorer | None = None
        self._lock = threading.Lock()

    @property
    def scorer(self) -> Scorer:
        """The packaged model, loaded on first use (an engine that never sees a message never loads it)."""
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = default_scorer()
        return self._scorer

    @scorer.setter
    def scorer(self, value: Scorer) -> None:
        self._scorer = value

    def applies(self, ctx: ScanContext) -> bool:
        c = ctx.content
        return c.kind is ContentKind.MESSAGE and c.conversation_id is not None and bool(c.messages)

    def detect(self, ctx: ScanContext) -> list[Finding]:
        return self.detect_many([ctx])[0]

    def detect_many(self, ctxs: list[ScanContext]) -> list[list[Finding]]:
        """Check every content's messages, then analyse all their texts at once (one matrix product);
        the analyses wait in ``ctx.extra`` for :meth:`detect_in`. No findings before the state is read."""
        batches = [list(ctx.content.messages) for ctx in ctxs]
        for msgs in batches:
            self._check(msgs)
        analyses = self.scorer.analyse([m.text for msgs in batches for m in msgs])
        at = 0
        for ctx, msgs in zip(ctxs, batches, strict=True):
            ctx.extra[ANALYSED] = _Checked(msgs, [message_digest(m) for m in msgs], analyses[at : at + len(msgs)])
            at += len(msgs)
        return [[] for _ in ctxs]

    def _check(self, messages: list[Message]) -> None:
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

    def detect_in(self, session: Session, ctx: ScanContext) -> list[Finding]:
        """Fold the analysed messages into the state, inside the decision's transaction.

        Fast path (no ``ctx.extra[CAREFUL]``): the state comes from the cache or one SELECT, the ledger
        is not read (its primary key refuses a message id seen before, which sends the caller to the
        careful path), and the state rows are written only if their version is still the one read.
        Careful path: the ledger is read first (replays and 409s are decided here), and the state rows
        are locked on PostgreSQL."""
        s = session
        checked = ctx.extra.get(ANALYSED)
        if not isinstance(checked, _Checked):  # detect_many did not run on this context
            self.detect_many([ctx])
            checked = ctx.extra[ANALYSED]
            assert isinstance(checked, _Checked)
        careful = bool(ctx.extra.get(CAREFUL))
        conversation_id = ctx.content.conversation_id
        assert conversation_id is not None and ctx.decision_id is not None
        messages, digests, analyses = checked.messages, checked.digests, checked.analyses
        now = datetime.now(UTC)
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
        ckey = conv_key(conversation_id)
        conv_row = rows.get(ckey)
        live = conv_row is not None and self._live(conv_row, now)
        conv = ConversationState.from_json(conv_row.state) if conv_row is not None and live else ConversationState()
        users: dict[str, UserState] = {}
        for uid in senders:
            urow = rows.get(user_key(uid))
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
                    raise Retry  # perhaps a retry of an earlier message: the careful path reads the ledger
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
                    "decision_id": ctx.decision_id,
                    "result": result,
                    "created_at": now,
                }
            )
        sender_risks = {uid: ust.risk() for uid, ust in users.items()}
        writes: dict[str, CachedRow] = {}
        if new_steps:
            conn = s.connection()
            conn.execute(_LEDGER_INSERT, ledger)  # a message id seen before: IntegrityError, careful path
            conv_values = {
                "state": conv.to_json(),
                "risk": max(st.risk for st in conv.senders.values()),
                "messages": conv.n,
            }
            writes[ckey] = _write(conn, _CONV_WRITE, conversation_id, conv_row, now, conv_values)
            for uid, ust in users.items():
                key = user_key(uid)
                writes[key] = _write(
                    conn, _USER_WRITE, uid, rows.get(key), now, {"state": ust.to_json(), "risk": ust.risk()}
                )
        ctx.extra[RESULT] = Folded(conv, steps, new_steps, sender_risks, replay_id, writes)
        crossed = conv.alerted_at is not None and conv.alerted_at > conv.n - len(new_steps)
        ctx.replay = not new_steps
        ctx.news = bool(new_steps) and (crossed or any(st.indicators or st.semantic for st in new_steps))
        ctx.content = self.about(ctx, conv, steps)
        return self.findings(conversation_id, conv)

    def about(self, ctx: ScanContext, conv: ConversationState, steps: list[dict[str, Any]]) -> Content:
        """The content narrowed to what the findings are about: the riskiest sender (the decision's user,
        with their territory and account details), the last message, and the minors they wrote to."""
        c = ctx.content
        focus_id, _ = focus(conv)
        mine = [m for m in c.messages if m.sender_id == focus_id]
        territory = next((m.territory for m in reversed(mine) if m.territory), None)
        user_info = next((m.user_info for m in reversed(mine) if m.user_info), None)
        minors = sorted({rid for m in mine for rid, band in m.recipients if band in MINOR_BANDS})
        return replace(
            c,
            content_id=steps[-1]["message_id"] if steps else None,
            user_id=focus_id,
            context={**c.context, "minors": minors},
            territory=territory,
            user_info=user_info,
        )

    def findings(self, conversation_id: str, conv: ConversationState) -> list[Finding]:
        focus_id, st = focus(conv)
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
        with self.resources.db.write() as s:
            stmts = [
                delete(GroomingConversationRow).where(GroomingConversationRow.updated_at < cutoff),
                delete(GroomingUserRow).where(GroomingUserRow.updated_at < cutoff),
                delete(GroomingMessageRow).where(GroomingMessageRow.created_at < cutoff),
            ]
            for stmt in stmts:
                n += int(getattr(s.execute(stmt), "rowcount", 0) or 0)
        return n

    def _live(self, row: CachedRow, now: datetime) -> bool:
        return row.updated_at + self.ttl > now

    def _ledger(self, s: Session, conversation_id: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = s.connection().execute(_LEDGER_LOOKUP, {"cid": conversation_id, "ids": ids})
        return {r.message_id: r._asdict() for r in rows}

    def _load(self, s: Session, conversation_id: str, senders: list[str], *, careful: bool) -> dict[str, CachedRow]:
        """The conversation's and the senders' state rows that exist: from the cache, else one SELECT."""
        out: dict[str, CachedRow] = {}
        ckey = conv_key(conversation_id)
        need_conv, need_users = True, list(senders)
        if not careful:
            hit = self.cache.get(ckey)
            if hit is not None:
                out[ckey], need_conv = hit, False
            need_users = []
            for uid in senders:
                hit = self.cache.get(user_key(uid))
                if hit is None:
                    need_users.append(uid)
                else:
                    out[user_key(uid)] = hit
        if careful and not self.resources.db.is_sqlite:
            # lock what exists, so that the versioned writes below cannot lose to another writer
            queries: list[Any] = [_CONV_LOCK_Q] + ([_USERS_LOCK_Q] if need_users else [])
        elif need_conv and need_users:
            queries = [_BOTH_Q]
        else:
            queries = ([_CONV_Q] if need_conv else []) + ([_USERS_Q] if need_users else [])
        conn = s.connection()
        for q in queries:
            for r in conn.execute(q, {"cid": conversation_id, "uids": need_users}):
                key = conv_key(r.id) if r.k == "c" else user_key(r.id)
                out[key] = CachedRow(int(r.version), _utc(r.updated_at), r.state)
        return out


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
            raise Retry
    return CachedRow(version, now, values["state"])


def focus(conv: ConversationState) -> tuple[str | None, SenderState | None]:
    if not conv.senders:
        return None, None
    k = max(conv.senders, key=lambda s: conv.senders[s].risk)
    return k, conv.senders[k]


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


__all__ = ["GroomingDetector", "message_digest"]
