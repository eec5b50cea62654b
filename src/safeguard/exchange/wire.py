"""The feed's wire format: one signed page of bank changes as JSON Lines, read and written in a stream.

A page is::

    {"type": "page", "version": 1, "bank": "shared", "cursor": "<the cursor asked for>", "key_id": "...", ...}
    {"type": "entry", "op": "upsert", "signal_type": "pdq", "value": "...", "category": ..., "source": ...,
     "provenance": {...}, "opinion": "none", "added_at": "..."}
    {"type": "entry", "op": "remove", ...}
    ...
    {"type": "end", "count": 2, "next_cursor": "...", "more": false, "sha256": "<hex>", "signature": "<b64>"}

Why it is shaped like this:

- **Streamed both ways.** A page of tens of thousands of entries is written as the database yields it
  and read line by line, so neither side holds more than a line plus the rows it will apply. A line
  longer than :data:`MAX_LINE`, or more entries than were asked for, stops the reader at once.
- **Signed once, at the end.** Ed25519 signs a whole message, not a stream, so the writer keeps a
  running SHA-256 of every byte before the ``end`` line and signs a short summary of the digest, the
  count and the next cursor (:func:`summary`). Nothing in a page is trusted until the ``end`` line
  verifies: a truncated page has no ``end`` line and is refused; a changed byte changes the digest.
- **Bound to the request.** The header names the bank and the cursor the page starts from, inside the
  digest, so a page recorded earlier (a replay) or served for another bank does not verify as the
  answer to this request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from safeguard.banks.sources.base import FIELD_LIMITS, Row
from safeguard.errors import SafeguardError
from safeguard.signals import get_signal_type

__all__ = [
    "MAX_LINE",
    "VERSION",
    "EntryLines",
    "ExchangeError",
    "Page",
    "PageReader",
    "entry_line",
    "summary",
]

VERSION = 1
#: the longest line a reader accepts (an entry is a few hundred bytes; a vPDQ frame value is 64 hex digits)
MAX_LINE = 64 * 1024
#: domain separation: the instance key also signs the event log's checkpoints
DOMAIN = b"safeguard-exchange-page-v1\n"
OPS = ("upsert", "remove")


class ExchangeError(SafeguardError):
    """A partner's feed that cannot be used: the message says why; the checkpoint did not move."""

    code = "exchange_error"
    status = 502


def summary(digest_hex: str, count: int, next_cursor: str, more: bool) -> bytes:
    """The bytes the ``end`` line's signature covers."""
    body = {"count": count, "more": more, "next_cursor": next_cursor, "sha256": digest_hex}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode
#: a str as a JSON string, as ``_dumps`` writes it (the C function it calls for a str)
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def entry_line(
    op: str,
    signal_type: str,
    value: str,
    category: str | None,
    source: str,
    provenance_json: str,
    opinion: str,
    added_at: str,
) -> bytes:
    """One ``entry`` line; ``provenance_json`` is the stored JSON text, embedded as is (no re-encoding)."""
    return (
        f'{{"type":"entry","op":"{op}","signal_type":{_dumps(signal_type)},"value":{_dumps(value)},'
        f'"category":{_dumps(category)},"source":{_dumps(source)},"provenance":{provenance_json or "{}"},'
        f'"opinion":{_dumps(opinion)},"added_at":{_dumps(added_at)}}}\n'
    ).encode()


class EntryLines:
    """:func:`entry_line` for a stream of rows, byte for byte, at a fraction of its cost.

    A feed page repeats most of each line: the op and signal type, the category and source, the
    opinion and the time (entries banked together share one). Those three runs of text are encoded
    once and kept (a few thousand at most, then forgotten); per entry only the value is escaped, and
    the provenance is embedded as stored. A chunk of lines is built as one string, encoded once.
    """

    #: the most runs kept before the memo is emptied (bounded memory whatever the page holds)
    MEMO = 4096

    def __init__(self, iso: Callable[[Any], str]) -> None:
        self.iso = iso
        self._heads: dict[tuple[bool, str], str] = {}
        self._mids: dict[tuple[str | None, str], str] = {}
        self._tails: dict[tuple[str, Any], str] = {}

    def chunk(self, rows: Iterable[Sequence[Any]]) -> bytes:
        """The lines of rows ``(id, signal_type, value, category, source, provenance_json, opinion,
        added_at, enabled)`` as bytes; ``added_at`` goes through ``iso`` (once per distinct value)."""
        heads, mids, tails = self._heads, self._mids, self._tails
        if len(heads) + len(mids) + len(tails) > self.MEMO:
            heads.clear()
            mids.clear()
            tails.clear()
        q = _quote
        out: list[str] = []
        add = out.append
        for _id, st, value, cat, src, prov, op, at, en in rows:
            en = bool(en)
            head = heads.get((en, st))
            if head is None:
                head = heads[(en, st)] = (
                    f'{{"type":"entry","op":"{"upsert" if en else "remove"}","signal_type":{_dumps(st)},"value":'
                )
            src = src or ""
            mid = mids.get((cat, src))
            if mid is None:
                mid = mids[(cat, src)] = f',"category":{_dumps(cat)},"source":{_dumps(src)},"provenance":'
            op = op or "none"
            tail = tails.get((op, at))
            if tail is None:
                tail = tails[(op, at)] = f',"opinion":{_dumps(op)},"added_at":{_dumps(self.iso(at))}}}\n'
            add(head)
            add(q(value) if type(value) is str else _dumps(value))
            add(mid)
            add(prov or "{}")
            add(tail)
        return "".join(out).encode()


@dataclass
class Page:
    bank: str
    cursor: str
    next_cursor: str
    more: bool
    rows: list[Row] = field(default_factory=list)
    #: the partner's own fields for each row, by position (source, opinion, added_at)
    remote: list[dict[str, Any]] = field(default_factory=list)


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into lines (with their ``\\n``), none longer than :data:`MAX_LINE`."""
    buf = b""
    for chunk in chunks:
        buf = buf + chunk if buf else chunk
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if nl + 1 - start > MAX_LINE:
                raise ExchangeError(f"a feed line is longer than {MAX_LINE} bytes", code="exchange_page_malformed")
            yield buf[start : nl + 1]
            start = nl + 1
        buf = buf[start:]
        if len(buf) > MAX_LINE:
            raise ExchangeError(f"a feed line is longer than {MAX_LINE} bytes", code="exchange_page_malformed")
    if buf:
        yield buf  # the last line without its newline: the reader decides (an end line may lack one)


_ENTRY_PREFIX = b'{"type":"entry",'
#: entry lines parsed and validated together (one ``json.loads`` of an array, one check per signal type)
BATCH = 2000


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_loads = json.JSONDecoder(parse_constant=_refuse_constant).decode


class PageReader:
    """Reads and verifies one page; nothing it returns was unverified.

    ``bank`` and ``cursor`` are what was asked for; ``max_entries`` the page size asked for (a page
    with more is refused as soon as the first extra line arrives). With ``source``, each row's source
    is set to it and the partner's own fields go into ``provenance["exchange"]`` (with ``partner``).
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        *,
        bank: str,
        cursor: str,
        max_entries: int,
        source: str | None = None,
        partner: str | None = None,
    ) -> None:
        self.public_key = public_key
        self.bank = bank
        self.cursor = cursor
        self.max_entries = max_entries
        self.source = source
        self.partner = partner

    @staticmethod
    def _bad(message: str, code: str = "exchange_page_malformed") -> ExchangeError:
        return ExchangeError(message, code=code)

    def _one(self, lineno: int, line: bytes) -> Any:
        try:
            return _loads(line.decode())
        except (ValueError, UnicodeDecodeError):
            if not line.endswith(b"\n"):
                raise self._bad("the page ends in the middle of a line", "exchange_page_truncated") from None
            raise self._bad(f"line {lineno} is not JSON") from None

    def read(self, chunks: Iterable[bytes]) -> Page:
        h = hashlib.sha256()
        page: Page | None = None
        end: dict[str, Any] | None = None
        pending: list[bytes] = []  # entry lines not parsed yet
        first_pending = 0
        entries = 0
        for lineno, line in enumerate(_lines(chunks), start=1):
            if end is not None:
                raise self._bad(f"line {lineno}: data after the page's end line")
            if page is None:
                obj = self._one(lineno, line)
                if not isinstance(obj, dict):
                    raise self._bad(f"line {lineno} is not a JSON object")
                page = self._header(obj)
                h.update(line)
                continue
            if line.startswith(_ENTRY_PREFIX) and line.endswith(b"\n"):  # the usual entry line: parsed in a batch
                entries += 1
                if entries > self.max_entries:
                    raise self._bad(
                        f"the page holds more than the {self.max_entries} entries asked for", "exchange_page_too_large"
                    )
                h.update(line)
                if not pending:
                    first_pending = lineno
                pending.append(line)
                if len(pending) >= BATCH:
                    self._entries(page, first_pending, pending)
                    pending = []
                continue
            if pending:
                self._entries(page, first_pending, pending)
                pending = []
            obj = self._one(lineno, line)
            if not isinstance(obj, dict):
                raise self._bad(f"line {lineno} is not a JSON object")
            kind = obj.get("type")
            if kind == "end":
                end = obj
                continue
            h.update(line)
            if kind != "entry":
                raise self._bad(f"line {lineno}: unknown line type {kind!r}")
            entries += 1
            if entries > self.max_entries:
                raise self._bad(
                    f"the page holds more than the {self.max_entries} entries asked for", "exchange_page_too_large"
                )
            self._entries(page, lineno, [], [obj])
        if pending and page is not None:
            self._entries(page, first_pending, pending)
        if page is None:
            raise self._bad("the feed answered an empty page", "exchange_page_truncated")
        if end is None:
            raise self._bad("the page ends before its signed end line", "exchange_page_truncated")
        self._verify(page, end, h.hexdigest())
        return page

    def _header(self, obj: dict[str, Any]) -> Page:
        if obj.get("type") != "page" or obj.get("version") != VERSION:
            raise self._bad(f"not a version {VERSION} feed page (no page header)")
        bank, cursor = obj.get("bank"), obj.get("cursor")
        if not isinstance(bank, str) or not isinstance(cursor, str):
            raise self._bad("the page header has no bank or cursor")
        if bank != self.bank or cursor != self.cursor:
            raise ExchangeError(
                f"the page answers bank {bank!r} from cursor {cursor!r}, not the {self.bank!r} from "
                f"{self.cursor!r} asked for (a replayed or misdirected page)",
                code="exchange_page_replayed",
            )
        return Page(bank=bank, cursor=cursor, next_cursor=cursor, more=False)

    def _entries(self, page: Page, first: int, lines: list[bytes], objs: list[Any] | None = None) -> None:
        """Parse (one JSON array for the batch), check and validate a run of entry lines starting at ``first``."""
        if objs is None:
            try:
                objs = _loads("[" + b",".join(lines).decode() + "]")
            except (ValueError, UnicodeDecodeError):
                for k, line in enumerate(lines):  # find the line to name
                    self._one(first + k, line)
                raise self._bad(f"lines {first}-{first + len(lines) - 1} are not JSON") from None
        by_type: dict[str, list[int]] = {}
        values: list[str] = []
        for k, obj in enumerate(objs):
            lineno = first + k
            if not isinstance(obj, dict) or obj.get("type") != "entry":
                raise self._bad(f"line {lineno} is not an entry")
            st, value, op = obj.get("signal_type"), obj.get("value"), obj.get("op")
            if not isinstance(st, str) or not isinstance(value, str) or op not in OPS:
                raise self._bad(f"line {lineno}: an entry needs signal_type, value and op ({'/'.join(OPS)})")
            by_type.setdefault(st, []).append(k)
            values.append(value)
        for name, ks in by_type.items():
            try:
                stype = get_signal_type(name)
            except SafeguardError as exc:
                raise self._bad(f"line {first + ks[0]}: {exc.message}") from None
            vals = [values[k] for k in ks]
            for j in stype.noncanonical(vals):  # the rare value not in stored form: validated one by one
                try:
                    values[ks[j]] = stype.validate(vals[j])
                except SafeguardError as exc:
                    raise self._bad(f"line {first + ks[j]}: {exc.message}") from None
        rows, remote = page.rows, page.remote
        src, partner = self.source, self.partner
        for k, obj in enumerate(objs):
            lineno = first + k
            prov, cat = obj.get("provenance"), obj.get("category")
            osrc, opinion, added = obj.get("source"), obj.get("opinion"), obj.get("added_at")
            if (
                type(prov) is not dict
                or not (cat is None or (type(cat) is str and len(cat) <= FIELD_LIMITS["category"]))
                or type(osrc) is not str
                or type(opinion) is not str
                or type(added) is not str
            ):
                raise self._bad(f"line {lineno}: category, source, opinion, added_at or provenance is not valid")
            theirs = {"source": osrc[:200], "opinion": opinion[:16], "added_at": added[:40]}
            if src is not None:
                prov = {**prov, "exchange": {"partner": partner, **theirs}}
            rows.append(
                Row(
                    line=lineno,
                    signal_type=obj["signal_type"],
                    value=values[k],
                    category=cat,
                    source=src,
                    provenance=prov,
                    delete=obj["op"] == "remove",
                )
            )
            remote.append(theirs)

    def _verify(self, page: Page, end: dict[str, Any], digest: str) -> None:
        count, nxt, more = end.get("count"), end.get("next_cursor"), end.get("more")
        sig, claimed = end.get("signature"), end.get("sha256")
        if not (
            isinstance(count, int)
            and isinstance(nxt, str)
            and isinstance(more, bool)
            and isinstance(sig, str)
            and isinstance(claimed, str)
        ):
            raise self._bad("the page's end line lacks count, next_cursor, more, sha256 or signature")
        if claimed != digest:
            raise ExchangeError("the page's content does not match its signed digest", code="exchange_bad_signature")
        try:
            self.public_key.verify(base64.b64decode(sig, validate=True), summary(digest, count, nxt, more))
        except (InvalidSignature, ValueError, binascii.Error):
            raise ExchangeError(
                "the page's signature does not verify with the partner's public key", code="exchange_bad_signature"
            ) from None
        if count != len(page.rows):
            raise self._bad(f"the end line counts {count} entries; the page held {len(page.rows)}")
        page.next_cursor = nxt
        page.more = more
