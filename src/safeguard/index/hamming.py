"""Hamming-distance index for bit-string hashes (PDQ): exact brute force over packed uint64 words.

Correct first: every query compares against every live entry with XOR and popcount, vectorised in
numpy (``np.bitwise_count``), so recall is 1.0 by construction. Removals are tombstones, compacted when
they pass a quarter of the rows; additions append to a growable buffer, so bank changes patch the
index in place instead of rebuilding it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from safeguard.index.base import SignalIndex


def hex_to_words(values: Sequence[str], words: int) -> np.ndarray:
    """Pack hex strings into a (n, words) uint64 array, most significant word first."""
    if not values:
        return np.zeros((0, words), dtype=np.uint64)
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(values), words)


class HammingIndex(SignalIndex):
    def __init__(self, bits: int = 256) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self.bits = bits
        self.words = bits // 64
        self._hashes = np.zeros((1024, self.words), dtype=np.uint64)
        self._ids = np.zeros(1024, dtype=np.int64)
        self._live = np.zeros(1024, dtype=bool)
        self._n = 0
        self._row_of: dict[int, int] = {}
        self._dead = 0

    def _grow(self, need: int) -> None:
        cap = len(self._ids)
        if self._n + need <= cap:
            return
        new_cap = max(cap * 2, self._n + need)
        self._hashes = np.resize(self._hashes, (new_cap, self.words))
        self._ids = np.resize(self._ids, new_cap)
        live = np.zeros(new_cap, dtype=bool)
        live[: self._n] = self._live[: self._n]
        self._live = live

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        if len(ids) != len(values):
            raise ValueError("ids and values differ in length")
        self.remove([i for i in ids if int(i) in self._row_of])
        words = hex_to_words(list(values), self.words)
        n = len(ids)
        self._grow(n)
        start = self._n
        self._hashes[start : start + n] = words
        self._ids[start : start + n] = np.asarray(ids, dtype=np.int64)
        self._live[start : start + n] = True
        for k, i in enumerate(ids):
            self._row_of[int(i)] = start + k
        self._n += n

    def remove(self, ids: Sequence[int]) -> None:
        for i in ids:
            row = self._row_of.pop(int(i), None)
            if row is not None:
                self._live[row] = False
                self._dead += 1
        if self._dead > 1024 and self._dead * 4 > self._n:
            self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self._live[: self._n])
        self._hashes = self._hashes[keep].copy()
        self._ids = self._ids[keep].copy()
        self._n = len(keep)
        self._live = np.ones(self._n, dtype=bool)
        self._row_of = {int(i): r for r, i in enumerate(self._ids)}
        self._dead = 0

    def distances(self, value: str) -> np.ndarray:
        q = hex_to_words([value], self.words)[0]
        x = np.bitwise_xor(self._hashes[: self._n], q)
        return np.bitwise_count(x).sum(axis=1, dtype=np.int32)

    def query(self, value: str, max_distance: int) -> list[tuple[int, int]]:
        if self._n == 0:
            return []
        d = self.distances(value)
        rows = np.flatnonzero((d <= max_distance) & self._live[: self._n])
        return [(int(self._ids[r]), int(d[r])) for r in rows]

    def __len__(self) -> int:
        return len(self._row_of)

    def arrays(self) -> dict[str, np.ndarray]:
        live = np.flatnonzero(self._live[: self._n])
        return {
            "ids": self._ids[live].copy(),
            "hashes": self._hashes[live].copy(),
            "bits": np.asarray(self.bits, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HammingIndex:
        idx = cls(bits=int(arrays["bits"]))
        ids = arrays["ids"]
        n = len(ids)
        idx._hashes = np.ascontiguousarray(arrays["hashes"], dtype=np.uint64).reshape(n, idx.words).copy()
        idx._ids = ids.astype(np.int64).copy()
        idx._live = np.ones(n, dtype=bool)
        idx._n = n
        idx._row_of = {int(i): r for r, i in enumerate(idx._ids)}
        if n == 0:
            idx._hashes = np.zeros((1024, idx.words), dtype=np.uint64)
            idx._ids = np.zeros(1024, dtype=np.int64)
            idx._live = np.zeros(1024, dtype=bool)
        return idx
