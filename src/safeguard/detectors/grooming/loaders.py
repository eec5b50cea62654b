"""Readers for the conversation formats Safeguard trains and evaluates on.

- ``jsonl``: Safeguard's own format. Either one conversation per line
  (``{"id", "label", "messages": [...]}``) or one message per line in the API's shape
  (``{"conversation_id", "message_id", "sender": {...}, "text", "sent_at", ...}``).
- ``pan2012``: the PAN 2012 Sexual Predator Identification corpus: one XML file of
  ``<conversation id><message line><author/><time/><text/></message>...``, plus a text file with one
  predator author id per line. Labels are per author (the official protocol scores author ids).
- ``authors``: the independently written corpora in ``datasets/grooming/`` (one conversation per line:
  ``{"id", "author", "language", "label", "kind", "platform", "messages": [{"sender", "age_band",
  "text", "stage", "explicit"?}]}``); a directory is read file by file (``*.jsonl``). Stage tags and
  the first explicit request are kept for training the stage classifier and for in-time alerts.
- ``vtpan``: the conversation-level splits derived from PAN 2012 for early detection (VTPAN/PANC,
  Vogt et al. 2021). These ship as JSON "datapacks"; this reader accepts a JSON object with a
  ``chats`` (or ``conversations``) list whose items carry an id (``chatName``/``id``), a label
  (``className``: ``predator``/``non-predator``, or ``label``: 0/1) and the messages
  (``content``/``messages``: ``{author, time, body|text|letters}``). Field names are matched
  loosely because the published packs differ in details; anything unrecognised is a clear error.

Each reader yields :class:`LoadedConversation` with messages in order. Times in PAN are clock times
without dates, so ``sent_at`` is the message's position (monotonic), which is all the scorer needs.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from safeguard.detectors.grooming.scorer import Message
from safeguard.errors import InvalidInput


@dataclass
class LoadedMessage:
    message_id: str
    sender_id: str
    text: str
    sent_at: float
    sender_band: str = "unknown"
    account_age_days: int | None = None
    recipients: list[tuple[str, str]] = field(default_factory=list)
    prior_contact: bool = False
    stage: str | None = None  # the author's stage tag (``authors`` format), for training and agreement

    def to_message(self) -> Message:
        """The scorer's form of this message."""
        return Message(
            self.message_id,
            self.sender_id,
            self.text,
            self.sent_at,
            self.sender_band,
            self.account_age_days,
            tuple(self.recipients),
            self.prior_contact,
        )


@dataclass
class LoadedConversation:
    id: str
    messages: list[LoadedMessage]
    label: int | None = None  # conversation-level, when the format has one
    focus: str | None = None  # the author the label is about, when known
    minors_before: int = 0
    author: str | None = None  # who wrote the conversation (``authors`` format): the unit of the folds
    language: str | None = None
    kind: str | None = None
    explicit_at: int | None = None  # 1-based index of the first explicit request, when tagged


def _fill_recipients(conv: LoadedConversation) -> None:
    authors = list(dict.fromkeys(m.sender_id for m in conv.messages))
    bands = {m.sender_id: m.sender_band for m in conv.messages}
    for m in conv.messages:
        if not m.recipients:
            m.recipients = [(a, bands.get(a, "unknown")) for a in authors if a != m.sender_id]


def parse_sent_at(value: Any) -> float:
    """Epoch seconds, or an ISO 8601 time with a time zone (as the API takes it), as epoch seconds."""
    if isinstance(value, bool):
        raise ValueError("sent_at must be epoch seconds or an ISO 8601 time")
    if isinstance(value, int | float):
        t = float(value)
    elif isinstance(value, str):
        try:
            t = float(value)
        except ValueError:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError(f"sent_at {value!r} has no time zone (e.g. 2026-11-23T10:00:00Z)") from None
            t = when.timestamp()
    else:
        raise ValueError("sent_at must be epoch seconds or an ISO 8601 time")
    if not math.isfinite(t):
        raise ValueError(f"sent_at {value!r} is not a time")
    return t


def _message_from_api(d: dict[str, Any], i: int) -> LoadedMessage:
    if not isinstance(d, dict):
        raise ValueError("a message must be a JSON object")
    sender = d.get("sender") or {}
    return LoadedMessage(
        message_id=str(d.get("message_id", i)),
        sender_id=str(sender.get("id", d.get("author", "unknown"))),
        text=str(d.get("text", "")),
        sent_at=parse_sent_at(d.get("sent_at", i)),
        sender_band=str(sender.get("age_band", "unknown")),
        account_age_days=sender.get("account_age_days"),
        recipients=[(str(r["id"]), str(r.get("age_band", "unknown"))) for r in d.get("recipients", [])],
        prior_contact=bool(d.get("prior_contact", False)),
    )


def load_jsonl(path: str | Path) -> list[LoadedConversation]:
    convs: dict[str, LoadedConversation] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{n}: not JSON: {exc}", code="invalid_conversation_file") from exc
            try:
                _add_line(convs, d, n)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InvalidInput(f"{path}:{n}: {exc}", code="invalid_conversation_file") from exc
    out = list(convs.values())
    for c in out:
        _fill_recipients(c)
    return out


def _add_line(convs: dict[str, LoadedConversation], d: Any, n: int) -> None:
    """One JSONL line: a whole conversation (with ``messages``) or one message of one."""
    if not isinstance(d, dict):
        raise ValueError("each line must be a JSON object")
    if "messages" in d:
        c = LoadedConversation(
            id=str(d.get("id", n)),
            messages=[_message_from_api(m, i) for i, m in enumerate(d["messages"])],
            label=d.get("label"),
            focus=d.get("focus"),
            minors_before=int(d.get("minors_before", 0)),
        )
        convs[c.id] = c
    else:
        cid = str(d.get("conversation_id", "conversation"))
        c = convs.setdefault(cid, LoadedConversation(cid, []))
        c.messages.append(_message_from_api(d, len(c.messages)))
        if "label" in d:
            c.label = int(d["label"])


def load_pan2012(xml_path: str | Path) -> Iterator[LoadedConversation]:
    """Stream conversations from a PAN 2012 XML file (the full corpus is ~150k conversations)."""
    try:
        for _event, el in ET.iterparse(str(xml_path), events=("end",)):
            if el.tag != "conversation":
                continue
            cid = el.get("id") or ""
            msgs = []
            for i, m in enumerate(el.findall("message")):
                author = (m.findtext("author") or "").strip()
                text = m.findtext("text") or ""
                line = m.get("line")
                msgs.append(LoadedMessage(f"{cid}:{line or i + 1}", author, text, float(i)))
            conv = LoadedConversation(cid, msgs)
            _fill_recipients(conv)
            yield conv
            el.clear()
    except ET.ParseError as exc:
        raise InvalidInput(f"{xml_path}: not valid PAN 2012 XML: {exc}", code="invalid_conversation_file") from exc


def load_predator_ids(path: str | Path) -> set[str]:
    return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def load_vtpan(path: str | Path) -> list[LoadedConversation]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not a JSON datapack: {exc}", code="invalid_conversation_file") from exc
    chats = raw if isinstance(raw, list) else _first(raw, "chats", "conversations")
    if not isinstance(chats, list):
        raise InvalidInput(f"{path}: expected a 'chats' list", code="invalid_conversation_file")
    out = []
    for ci, chat in enumerate(chats):
        cid = str(_first(chat, "chatName", "id", "name") or ci)
        cls = _first(chat, "className", "label", "class")
        if cls is None:
            raise InvalidInput(f"{path}: chat {cid} has no className/label", code="invalid_conversation_file")
        label = int(cls in ("predator", 1, "1", True, "positive"))
        content = _first(chat, "content", "messages") or []
        msgs = []
        for i, m in enumerate(content):
            text = _first(m, "body", "text", "letters") or ""
            msgs.append(LoadedMessage(f"{cid}:{i + 1}", str(m.get("author", "")), str(text), float(i)))
        conv = LoadedConversation(cid, msgs, label=label)
        _fill_recipients(conv)
        out.append(conv)
    return out


AUTHOR_BANDS = ("adult", "teen", "child", "unknown")


def _authors_conversation(d: Any) -> LoadedConversation:
    from safeguard.detectors.grooming.indicators import STAGES

    if not isinstance(d, dict):
        raise ValueError("each line must be a JSON object")
    cid = str(d["id"])
    label = d["label"]
    if label not in (0, 1) or isinstance(label, bool):
        raise ValueError(f"conversation {cid}: label must be 0 or 1")
    raw = d["messages"]
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"conversation {cid}: messages must be a non-empty list")
    msgs: list[LoadedMessage] = []
    explicit_at = None
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ValueError(f"conversation {cid}: message {i + 1} must be a JSON object")
        band = str(m.get("age_band", "unknown"))
        if band not in AUTHOR_BANDS:
            raise ValueError(f"conversation {cid}: message {i + 1}: unknown age_band {band!r}")
        stage = m.get("stage")
        if stage is not None and stage not in STAGES:
            raise ValueError(f"conversation {cid}: message {i + 1}: unknown stage {stage!r}")
        if m.get("explicit") and explicit_at is None:
            explicit_at = i + 1
        msgs.append(
            LoadedMessage(
                message_id=f"{cid}:{i + 1}",
                sender_id=f"{cid}/{m['sender']}",  # sender letters are per conversation
                text=str(m["text"]),
                sent_at=float(i),
                sender_band=band,
                stage=stage,
            )
        )
    focus = None
    if label == 1:
        # the groomer: who makes the first explicit request, else whoever (not a child) shows most stages
        if explicit_at is not None:
            focus = msgs[explicit_at - 1].sender_id
        else:
            counts: dict[str, int] = {}
            for lm in msgs:
                if lm.stage and lm.sender_band != "child":
                    counts[lm.sender_id] = counts.get(lm.sender_id, 0) + 1
            focus = max(counts, key=lambda k: counts[k]) if counts else None
    conv = LoadedConversation(
        cid,
        msgs,
        label=int(label),
        focus=focus,
        author=str(d.get("author") or cid.split("-", 1)[0]),
        language=str(d.get("language", "unknown")),
        kind=str(d.get("kind", "")) or None,
        explicit_at=explicit_at,
    )
    _fill_recipients(conv)
    return conv


def load_authors(path: str | Path) -> list[LoadedConversation]:
    """The ``authors`` format: one file, or every ``*.jsonl`` file of a directory (sorted)."""
    p = Path(path)
    files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    if not files:
        raise InvalidInput(f"{path}: no .jsonl files", code="invalid_conversation_file")
    out: list[LoadedConversation] = []
    seen: set[str] = set()
    for f in files:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{f}: cannot read: {exc}", code="invalid_conversation_file") from exc
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                conv = _authors_conversation(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{f}:{n}: not JSON: {exc}", code="invalid_conversation_file") from exc
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(f"{f}:{n}: {exc}", code="invalid_conversation_file") from exc
            if conv.id in seen:
                raise InvalidInput(f"{f}:{n}: duplicate conversation id {conv.id}", code="invalid_conversation_file")
            seen.add(conv.id)
            out.append(conv)
    return out
