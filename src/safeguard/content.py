"""The plain data types that flow through the engine.

content ─▶ signals ─▶ detectors ─▶ findings ─▶ policy ─▶ decision ─▶ actions ─▶ events

Everything here is pure: no IO, no globals. These types cross module boundaries (and, serialised as
JSON, process and database boundaries), so they are small frozen dataclasses with explicit
``to_dict`` forms rather than ORM rows or pickles.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Action",
    "ChatMessage",
    "Content",
    "ContentKind",
    "Decision",
    "Finding",
    "Signal",
    "Verdict",
]


class Verdict(StrEnum):
    """The answer to the platform. Ordered: a stricter verdict wins when rules disagree."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Verdict.ALLOW: 0, Verdict.REVIEW: 1, Verdict.BLOCK: 2}


class ContentKind(StrEnum):
    """What a piece of content is; policy rules and detectors choose by it."""

    IMAGE = "image"
    VIDEO = "video"
    MESSAGE = "message"
    STREAM = "stream"
    URL = "url"
    SEARCH = "search"
    TEXT = "text"
    HASHES = "hashes"  # only signals were sent (end-to-end-encrypted clients hash on the device)


@dataclass(frozen=True, slots=True)
class Signal:
    """A comparable form of content: ``type`` names a registered signal type; ``value`` is canonical."""

    type: str
    value: str
    quality: int | None = None  # PDQ quality 0-100; None where the type has no notion of quality
    timestamp: float | None = None  # seconds into a video or stream, for per-frame signals
    frame: int | None = None  # frame index in an animated or multi-frame image (media/animation.py)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "value": self.value}
        if self.quality is not None:
            d["quality"] = self.quality
        if self.timestamp is not None:
            d["timestamp"] = self.timestamp
        if self.frame is not None:
            d["frame"] = self.frame
        return d


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, as a ``message`` content carries it (in the order sent).

    The platform's message id is its idempotency key; age bands are ``child``, ``teen``, ``adult`` or
    ``unknown``; ``recipients`` are (id, age band) pairs. ``territory`` and ``user_info`` are the
    sender's (where they are, their account details), kept with a decision about them."""

    message_id: str
    sender_id: str
    text: str
    sent_at: float  # epoch seconds
    sender_band: str = "unknown"
    account_age_days: int | None = None
    recipients: tuple[tuple[str, str], ...] = ()
    prior_contact: bool = False
    territory: str | None = None
    user_info: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """What a platform asks about, with its own ids and context.

    ``data`` holds the raw bytes when the platform uploaded them; ``signals`` holds hashes the platform
    computed itself (hash-only scanning). Both may be present.
    """

    kind: ContentKind
    data: bytes | None = None
    signals: tuple[Signal, ...] = ()
    content_id: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    stream_id: str | None = None
    filename: str | None = None
    media_type: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    tenant: str = "default"  # the platform that asked (its API key's tenant); its decision is that tenant's
    user_info: dict[str, Any] | None = None  # the optional ``user`` details (safeguard.reported_user)
    # where the user is (ISO 3166-1 alpha-2 or "EU"; safeguard.dsa.territory): in the EU/EEA, a restrictive
    # decision gets a DSA statement of reasons in its transaction (safeguard.dsa.statements)
    territory: str | None = None
    # kind ``message``: the conversation's new messages, in order (one or a batch; ``conversation_id`` names it)
    messages: tuple[ChatMessage, ...] = ()

    def subject(self) -> tuple[str, str]:
        """The (kind, id) a case about this content is opened on."""
        if self.stream_id:
            return ("stream", self.stream_id)
        if self.conversation_id:
            return ("conversation", self.conversation_id)
        if self.user_id:
            return ("user", self.user_id)
        return ("content", self.content_id or "unknown")


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of evidence produced by a detector."""

    detector: str
    kind: str  # e.g. "hash_match"
    signal_type: str | None = None
    signal_value: str | None = None
    bank: str | None = None
    bank_kind: str | None = None  # e.g. "csam", "ncii", "terror", "other"
    entry_id: int | None = None
    distance: int | None = None
    score: float | None = None
    category: str | None = None
    confidence: str = "high"  # "high" or "low": low when past the block threshold, disputed, low quality
    explanation: str = ""
    time_range: tuple[float, float] | None = None  # for video and stream frames
    frames: tuple[int, ...] | None = None  # frame indexes that matched, in an animated or multi-frame image
    # items that explain the finding, e.g. grooming: {message_id, sender_id, indicators, snippet}
    evidence: tuple[dict[str, Any], ...] = ()
    suppressed_by: int | None = None  # the negative bank entry that suppressed this match (banks/negative.py)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "detector": self.detector,
            "kind": self.kind,
            "signal_type": self.signal_type,
            "signal_value": self.signal_value,
            "bank": self.bank,
            "bank_kind": self.bank_kind,
            "entry_id": self.entry_id,
            "distance": self.distance,
            "score": self.score,
            "category": self.category,
            "confidence": self.confidence,
            "explanation": self.explanation,
        }
        if self.time_range is not None:
            d["time_range"] = list(self.time_range)
        if self.frames is not None:
            d["frames"] = list(self.frames)
        if self.evidence:
            d["evidence"] = [dict(e) for e in self.evidence]
        if self.suppressed_by is not None:
            d["suppressed_by"] = self.suppressed_by
        return d


@dataclass(frozen=True, slots=True)
class Action:
    """Something the engine does, or asks the platform to do, because of a decision."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict plus the actions and reasons; returned to the platform and recorded."""

    id: str
    verdict: Verdict
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]
    reasons: tuple[str, ...]  # names of the policy rules that fired
    policy_version: str
    created_at: datetime
    content_kind: ContentKind
    content_id: str | None = None
    user_id: str | None = None
    signals: tuple[Signal, ...] = ()
    case_id: int | None = None

    @staticmethod
    def new_id() -> str:
        """``dec_`` and 32 hex digits: 48 bits of milliseconds since the epoch, then 80 random bits.

        Time-ordered like UUIDv7, so new decisions land at the right-hand end of the primary-key
        index instead of on a random page each: a group commit of allow decisions writes a few pages,
        not one per decision.
        """
        return f"dec_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "verdict": self.verdict.value,
            "findings": [f.to_dict() for f in self.findings],
            "actions": [a.to_dict() for a in self.actions],
            "reasons": list(self.reasons),
            "policy_version": self.policy_version,
            "created_at": self.created_at.isoformat(),
            "content_kind": self.content_kind.value,
            "content_id": self.content_id,
            "user_id": self.user_id,
            "signals": [s.to_dict() for s in self.signals],
            "case_id": self.case_id,
        }
