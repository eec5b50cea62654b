"""Exact-match index for cryptographic hashes: a dict from value to entry ids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from safeguard.index.base import SignalIndex


class ExactIndex(SignalIndex):
    def __init__(self) -> None:
        self._by_value: dict[str, set[int]] = {}
        self._by_id: dict[int, str] = {}

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        for i, v in zip(ids, values, strict=True):
            i = int(i)
            old = self._by_id.get(i)
            if old is not None:
                self._discard(i, old)
            self._by_id[i] = v
            self._by_value.setdefault(v, set()).add(i)

    def _discard(self, i: int, value: str) -> None:
        ids = self._by_value.get(value)
        if ids is not None:
            ids.discard(i)
            if not ids:
                del self._by_value[value]

    def remove(self, ids: Sequence[int]) -> None:
        for i in ids:
            old = self._by_id.pop(int(i), None)
            if old is not None:
                self._discard(int(i), old)

    def query(self, value: str, max_distance: int) -> list[tuple[int, int]]:
        return [(i, 0) for i in sorted(self._by_value.get(value, ()))]

    def __len__(self) -> int:
        return len(self._by_id)

    def arrays(self) -> dict[str, np.ndarray]:
        ids = np.fromiter(self._by_id.keys(), dtype=np.int64, count=len(self._by_id))
        values = np.array(list(self._by_id.values()), dtype=np.str_)
        return {"ids": ids, "values": values}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ExactIndex:
        idx = cls()
        idx.add(arrays["ids"].tolist(), arrays["values"].tolist())
        return idx
