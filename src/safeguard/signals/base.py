"""The signal-type protocol and helpers.

A signal type knows how to compute itself from media, how to validate and normalise a value that
arrives from outside (hash lists, hash-only scans), and how to compare two values. ``metric`` tells
the index layer which structure fits: ``exact`` (a dict) or ``hamming`` (bit strings of ``bits``
bits, compared by Hamming distance). ``examples`` feed the contract test every signal type runs.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from safeguard import registry
from safeguard.content import Signal
from safeguard.errors import InvalidInput, SafeguardError
from safeguard.media import Media

__all__ = [
    "SignalType",
    "compute_signals",
    "hamming_hex",
    "noncanonical_hex",
    "signal_types",
    "validate_hex",
]

if TYPE_CHECKING:
    from safeguard.index.base import SignalIndex


class SignalType(ABC):
    """A kind of hash (``sha256``, ``md5``, ``pdq``, ``vpdq``): how to compute it from media, check an
    outside value, measure distance (exact or Hamming) and index it. Registered under ``safeguard.signals``."""

    name: ClassVar[str]
    metric: ClassVar[Literal["exact", "hamming"]]
    bits: ClassVar[int] = 0
    #: distance at or under which a match is a confident match (hamming types); 0 for exact types
    default_threshold: ClassVar[int] = 0
    #: media kinds the type computes from: "bytes" (any file), "image", "video"
    computes_from: ClassVar[frozenset[str]] = frozenset()
    examples: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def compute(self, media: Media) -> list[Signal]:
        """Signals of this type for the media (empty when the type does not apply)."""

    @abstractmethod
    def validate(self, value: str) -> str:
        """Return the canonical form of an outside value, or raise InvalidInput."""

    def noncanonical(self, values: Sequence[str]) -> list[int]:
        """Positions of stored values that are not in canonical form (what :meth:`validate` returns).

        The index calls this on every row it loads: such a row (written by an older version, or
        straight into the database) is quarantined instead of crashing the index. Override with a
        faster check where one exists; it must agree with :meth:`validate`.
        """
        bad = []
        for k, v in enumerate(values):
            try:
                if self.validate(v) != v:
                    bad.append(k)
            except SafeguardError:
                bad.append(k)
        return bad

    def new_index(self) -> SignalIndex:
        """A new, empty index for this type's values (as pytx's ``get_index_cls``): the type names its
        own structure, so the index layer never branches on a type's properties. The default fits the
        metric: a dict for exact types, brute force over bit strings for hamming types; PDQ and vPDQ
        use multi-index hashing."""
        if self.metric == "exact":
            from safeguard.index.exact import ExactIndex

            return ExactIndex()
        from safeguard.index.hamming import HammingIndex

        return HammingIndex(bits=self.bits)

    def list_entries(self, value: str, *, video: str | None = None) -> list[tuple[str, dict[str, Any]]] | None:
        """A hash list's value that stands for several bank entries (a whole video's frames in one row),
        as (canonical value, provenance) pairs; ``None`` when the value is one entry (the default).
        May raise InvalidInput."""
        return None

    def file_entries(self, signals: list[Signal], *, file_sha256: str | None) -> list[tuple[str, dict[str, Any]]]:
        """The bank entries for this type's signals of one media file (``safeguard bank add``), as
        (value, provenance) pairs: by default one per signal, with its quality."""
        return [(g.value, {"quality": g.quality} if g.quality is not None else {}) for g in signals]

    def distance(self, a: str, b: str) -> int:
        if self.metric == "exact":
            return 0 if a == b else 1
        return hamming_hex(a, b)

    def applies_to(self, media: Media) -> bool:
        if "bytes" in self.computes_from:
            return True
        if "image" in self.computes_from and media.is_image:
            return True
        return "video" in self.computes_from and media.is_video


def hamming_hex(a: str, b: str) -> int:
    """Bits that differ between two hex strings of the same length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


_HEX = re.compile(r"[0-9a-f]*")
#: what may surround an outside value (a CSV cell, a pasted hash): ASCII whitespace only
_ASCII_SPACE = " \t\r\n"


def validate_hex(value: str, *, name: str, nchars: int) -> str:
    """The canonical form of a hex value: exactly ``nchars`` ASCII hex digits, lowercased.

    Strict on purpose: ``int(v, 16)`` also accepts other scripts' digits (Arabic-Indic, fullwidth...),
    ``0x``, signs and ``_``, none of which ``bytes.fromhex`` (the index) or a partner's list reader
    accepts; a value that passed here once and failed in the index took matching down.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string of {nchars} hex characters", code="invalid_signal")
    v = value.strip(_ASCII_SPACE)
    if len(v) != nchars:
        raise InvalidInput(f"{name} must be {nchars} hex characters, got {len(v)}", code="invalid_signal")
    if not v.isascii() or _HEX.fullmatch(v := v.lower()) is None:
        raise InvalidInput(f"{name} must be ASCII hexadecimal (0-9, a-f)", code="invalid_signal")
    return v


def noncanonical_hex(values: Sequence[str], nchars: int) -> list[int]:
    """Positions of the values that are not exactly ``nchars`` lowercase ASCII hex digits (the form
    :func:`validate_hex` stores). One regex over the joined values when all are good (the usual case)."""
    if all(type(v) is str and len(v) == nchars for v in values) and _HEX.fullmatch("".join(values)):
        return []
    return [k for k, v in enumerate(values) if not (type(v) is str and len(v) == nchars and _HEX.fullmatch(v))]


@cache
def get_signal_type(name: str) -> SignalType:
    cls = registry.signals.get(name)
    inst = cls()
    assert isinstance(inst, SignalType)
    return inst


def signal_types() -> list[SignalType]:
    """An instance of every registered signal type, by name."""
    return [get_signal_type(n) for n in registry.signals.names()]


def compute_signals(media: Media, only: set[str] | None = None) -> list[Signal]:
    """Every registered signal type that applies to this media, computed once each."""
    out: list[Signal] = []
    for st in signal_types():
        if only is not None and st.name not in only:
            continue
        if st.applies_to(media):
            out.extend(st.compute(media))
    return out
