"""The signal-type protocol and helpers.

A signal type knows how to compute itself from media, how to validate and normalise a value that
arrives from outside (hash lists, hash-only scans), and how to compare two values. ``metric`` tells
the index layer which structure fits: ``exact`` (a dict) or ``hamming`` (bit strings of ``bits``
bits, compared by Hamming distance). ``examples`` feed the contract test every signal type runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from typing import ClassVar, Literal

from safeguard import registry
from safeguard.content import Signal
from safeguard.errors import InvalidInput
from safeguard.media import Media


class SignalType(ABC):
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
    return (int(a, 16) ^ int(b, 16)).bit_count()


def validate_hex(value: str, *, name: str, nchars: int) -> str:
    v = value.strip().lower()
    if len(v) != nchars:
        raise InvalidInput(f"{name} must be {nchars} hex characters, got {len(v)}", code="invalid_signal")
    try:
        int(v, 16)
    except ValueError:
        raise InvalidInput(f"{name} must be hexadecimal", code="invalid_signal") from None
    return v


@cache
def get_signal_type(name: str) -> SignalType:
    cls = registry.signals.get(name)
    inst = cls()
    assert isinstance(inst, SignalType)
    return inst


def signal_types() -> list[SignalType]:
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
