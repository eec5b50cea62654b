"""The hash-list protocol.

A hash list is read as a stream of :class:`Row` (an upsert, or a delete when ``delete`` is set) and
:class:`RowError` (a rejected line, with its line number), the way python-threatexchange's exchanges
stream upserts and deletes. Formats never raise on a bad row: they report it and go on, so an import
of a million rows with three broken lines imports the rest and names the three.

Remote exchanges (NCMEC, partner instances) will implement :class:`HashListSource`: the same rows,
fetched page by page from a checkpoint so that a sync can resume where it stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO

from safeguard.content import Signal
from safeguard.errors import SafeguardError
from safeguard.signals import get_signal_type

__all__ = [
    "FIELD_LIMITS",
    "Checkpoint",
    "HashListFormat",
    "HashListSource",
    "Row",
    "RowError",
    "make_row",
    "make_rows",
    "signal_rows",
]


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    signal_type: str
    value: str
    category: str | None = None
    source: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    delete: bool = False


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str
    code: str = "invalid_row"


#: the longest category and source a bank entry stores (the columns' sizes)
FIELD_LIMITS = {"category": 64, "source": 200}


def make_row(line: int, signal_type: str | None, value: str | None, **kw: Any) -> Row | RowError:
    """Validate and normalise one row; every format funnels through here."""
    if not signal_type:
        return RowError(line, "missing signal_type", "missing_field")
    if not value:
        return RowError(line, "missing value", "missing_field")
    for name, limit in FIELD_LIMITS.items():
        v = kw.get(name)
        if v is not None and len(v) > limit:
            return RowError(line, f"{name} longer than {limit} characters", "invalid_row")
    try:
        st = get_signal_type(signal_type.strip().lower())
        canonical = st.validate(value)
    except SafeguardError as exc:
        return RowError(line, exc.message, exc.code)
    return Row(line=line, signal_type=st.name, value=canonical, **kw)


def make_rows(line: int, signal_type: str | None, value: str | None, **kw: Any) -> list[Row | RowError]:
    """Like :func:`make_row`, but a value that stands for several entries (a signal type's
    ``list_entries``: a whole video's ``vpdq`` frames in one row) becomes one row per entry."""
    try:
        st = get_signal_type((signal_type or "").strip().lower()) if signal_type and value else None
        expanded = st.list_entries(value, video=(kw.get("provenance") or {}).get("video")) if st and value else None
    except SafeguardError as exc:
        if exc.code.startswith("unknown_"):
            return [make_row(line, signal_type, value, **kw)]  # make_row names the problem
        return [RowError(line, exc.message, exc.code)]
    if st is None or expanded is None:
        return [make_row(line, signal_type, value, **kw)]
    prov = dict(kw.pop("provenance", None) or {})
    return [Row(line=line, signal_type=st.name, value=v, provenance={**p, **prov}, **kw) for v, p in expanded]


def signal_rows(
    signals: Iterable[Signal],
    *,
    category: str | None = None,
    source: str | None = None,
    provenance: dict[str, Any] | None = None,
    first_line: int = 1,
) -> list[Row]:
    """Bank rows for the signals of one media file (``safeguard bank add``, ``POST .../entries``), as each
    signal type's ``file_entries`` says (a video's ``vpdq`` frames: one row per distinct frame hash,
    grouped under the file's SHA-256 as ``provenance.video``)."""
    signals = list(signals)
    prov = dict(provenance or {})
    key = next((g.value for g in signals if g.type == "sha256"), None)
    by_type: dict[str, list[Signal]] = {}
    for g in signals:
        by_type.setdefault(g.type, []).append(g)
    rows: list[Row] = []
    for name, group in by_type.items():
        for value, p in get_signal_type(name).file_entries(group, file_sha256=key):
            rows.append(Row(first_line + len(rows), name, value, category, source, prov | p))
    return rows


class HashListFormat(ABC):
    """A file format for hash lists: parse rows from text, and write them back."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    #: a small valid document, used by the contract test every format runs
    example: ClassVar[str]

    @abstractmethod
    def parse(self, fp: TextIO) -> Iterator[Row | RowError]:
        """Rows of a document, in order, streamed (bounded memory whatever the file size): a bad line is a
        :class:`RowError` with its line number, never an exception that loses the good rows."""

    @abstractmethod
    def write(self, rows: Iterable[dict[str, Any]], fp: TextIO) -> int:
        """Write export rows (dicts with signal_type, value, category, source, ...); return the count."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    value: str


class HashListSource(ABC):
    """A remote exchange: yields batches of rows and the checkpoint to resume from after each batch."""

    name: ClassVar[str]

    @abstractmethod
    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        """Batches of rows since ``checkpoint`` (everything when None), each with the checkpoint to store
        once the batch is applied; a crash between batches resumes from the last stored one."""
