"""Per-conversation and per-user state: small, JSON-serialisable, updated in O(1) per message.

What is kept is counts and maxima per stage and per sender, the contact context, and a short, bounded
list of evidence (message id, indicators, a snippet of at most ``SNIPPET_CHARS``) for messages that
hit an indicator. No other message text is kept. A conversation with two participants serialises to
well under 4 KB (the benchmark measures it); the bounds below keep the worst case bounded too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from safeguard.detectors.grooming.indicators import STAGES

MAX_SENDERS = 6
MAX_EVIDENCE = 12
SNIPPET_CHARS = 100
#: the evidence list's JSON size (UTF-8 bytes): with six senders' counters (about 1.5 KB) the state stays
#: under 4 KB whatever the snippets hold (a hundred characters can be 400 bytes; a long group chat of
#: stage-heavy lines reached 4,101 bytes under model v6 with twelve items)
EVIDENCE_BYTES = 2300
MAX_USER_CONVERSATIONS = 32
MAX_USER_MINORS = 64
NS = len(STAGES)


def short_hash(value: str) -> str:
    """A short stable digest used where only identity matters (recipients seen by a sender)."""
    return hashlib.blake2b(value.encode(), digest_size=6).hexdigest()


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass
class SenderState:
    hits: list[int] = field(default_factory=lambda: [0] * NS)
    sim: list[float] = field(default_factory=lambda: [0.0] * NS)
    first: list[int] = field(default_factory=lambda: [-1] * NS)  # sender's message index at first sign
    n: int = 0
    band: str = "unknown"
    acct: int | None = None
    to_minor: bool = False
    prior: bool = False
    risk: float = 0.0
    q: float = 0.0  # quoting: sum of (quote probability x stage strength) over the sender's messages
    qw: float = 0.0  # ... and the sum of stage strengths (quoting = q / qw)
    g: float = 0.0  # the line head's highest probability over the sender's messages
    gs: float = 0.0  # ... and its sum
    t: float = 0.0  # the threat head's highest probability (sextortion evidence)


@dataclass
class ConversationState:
    n: int = 0
    last_at: float | None = None
    last_id: str | None = None
    senders: dict[str, SenderState] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    alerted_at: int | None = None  # message count at the first alert (for latency)

    def sender(self, sender_id: str) -> SenderState:
        st = self.senders.get(sender_id)
        if st is None:
            if len(self.senders) >= MAX_SENDERS:  # keep the riskiest senders of a large group chat
                drop = min(self.senders, key=lambda k: self.senders[k].risk)
                del self.senders[drop]
            st = self.senders[sender_id] = SenderState()
        return st

    def add_evidence(self, item: dict[str, Any]) -> None:
        item = dict(item, snippet=str(item.get("snippet", ""))[:SNIPPET_CHARS])
        self.evidence.append(item)
        if len(self.evidence) > MAX_EVIDENCE:
            self._drop_one()
        while len(self.evidence) > 1 and _json_bytes(self.evidence) > EVIDENCE_BYTES:
            self._drop_one()

    def _drop_one(self) -> None:
        """Drop the oldest item that is not pressure/sextortion evidence (else the oldest)."""
        for i, e in enumerate(self.evidence):
            if not any(ind.startswith("pressure.") for ind in e.get("indicators", [])):
                del self.evidence[i]
                return
        del self.evidence[0]

    def to_json(self) -> str:
        # Written out rather than dataclasses.asdict, which deep-copies every list: this runs for every
        # message the service stores, and asdict was most of its CPU time.
        d = {
            "n": self.n,
            "last_at": self.last_at,
            "last_id": self.last_id,
            "senders": {
                k: {
                    "hits": s.hits,
                    "sim": [round(x, 3) for x in s.sim],
                    "first": s.first,
                    "n": s.n,
                    "band": s.band,
                    "acct": s.acct,
                    "to_minor": s.to_minor,
                    "prior": s.prior,
                    "risk": round(s.risk, 4),
                    "q": round(s.q, 3),
                    "qw": round(s.qw, 3),
                    "g": round(s.g, 3),
                    "gs": round(s.gs, 3),
                    "t": round(s.t, 3),
                }
                for k, s in self.senders.items()
            },
            "evidence": self.evidence,
            "alerted_at": self.alerted_at,
        }
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> ConversationState:
        if not text:
            return cls()
        d = json.loads(text)
        senders = {k: SenderState(**v) for k, v in d.pop("senders", {}).items()}
        return cls(senders=senders, **d)


@dataclass
class UserState:
    convs: dict[str, float] = field(default_factory=dict)  # conversation id -> this sender's risk there
    minors: list[str] = field(default_factory=list)  # short hashes of minors contacted

    def note_minor(self, recipient_id: str) -> None:
        h = short_hash(recipient_id)
        if h not in self.minors:
            self.minors.append(h)
            if len(self.minors) > MAX_USER_MINORS:
                del self.minors[0]

    def set_risk(self, conversation_id: str, risk: float) -> None:
        self.convs[conversation_id] = round(risk, 4)
        if len(self.convs) > MAX_USER_CONVERSATIONS:
            drop = min(self.convs, key=lambda k: self.convs[k])
            del self.convs[drop]

    def risk(self) -> float:
        """Noisy-or of the sender's three riskiest conversations: one bad one counts, several count more."""
        top = sorted(self.convs.values(), reverse=True)[:3]
        p = 1.0
        for r in top:
            p *= 1.0 - r
        return 1.0 - p

    def to_json(self) -> str:
        return json.dumps({"convs": self.convs, "minors": self.minors}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> UserState:
        return cls(**json.loads(text)) if text else cls()
