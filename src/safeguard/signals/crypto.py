"""Cryptographic hashes of the file bytes: exact matching only."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar, Literal

from safeguard.content import Signal
from safeguard.media import Media
from safeguard.signals.base import SignalType, noncanonical_hex, validate_hex


class _DigestSignal(SignalType):
    metric: ClassVar[Literal["exact", "hamming"]] = "exact"
    computes_from = frozenset({"bytes"})
    algorithm: ClassVar[str]
    nchars: ClassVar[int]

    def compute(self, media: Media) -> list[Signal]:
        return [Signal(self.name, hashlib.new(self.algorithm, media.data).hexdigest())]

    def validate(self, value: str) -> str:
        return validate_hex(value, name=self.name, nchars=self.nchars)

    def noncanonical(self, values: Sequence[str]) -> list[int]:
        return noncanonical_hex(values, self.nchars)


class SHA256Signal(_DigestSignal):
    name = "sha256"
    algorithm = "sha256"
    nchars = 64
    examples = ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)


class MD5Signal(_DigestSignal):
    name = "md5"
    algorithm = "md5"
    nchars = 32
    examples = ("d41d8cd98f00b204e9800998ecf8427e",)
