"""The index protocol and the snapshot format.

Snapshots are ``.npz`` files written with ``allow_pickle=False``: plain arrays only, nothing that
executes code on load.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from safeguard.signals.base import SignalType

__all__ = [
    "SignalIndex",
    "index_for",
]


class SignalIndex(ABC):
    """Entry ids keyed by signal value. Ids are the database's bank-entry ids."""

    #: what :meth:`save` writes at ``<dir>/<signal type><suffix>`` (a file, or a directory for MIH)
    snapshot_suffix = ".npz"

    @abstractmethod
    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        """Add or replace entries (an id already present takes the new value)."""

    @abstractmethod
    def remove(self, ids: Sequence[int]) -> None:
        """Remove entries; unknown ids are ignored."""

    @abstractmethod
    def query(self, value: str, max_distance: int) -> list[tuple[int, int]]:
        """Every (entry id, distance) with distance <= max_distance. Exact: never misses one."""

    def query_many(self, values: Sequence[str], max_distance: int) -> list[list[tuple[int, int]]]:
        return [self.query(v, max_distance) for v in values]

    def settle(self) -> None:
        """Fold changes buffered for cheap patching into the main structure (after a bulk load)."""
        return None

    def warm(self, max_distance: int) -> None:
        """Get ready for queries at ``max_distance`` before the first request (a worker's start):
        whatever the first query would otherwise pay for (such as cached probe sets)."""
        return None

    @abstractmethod
    def __len__(self) -> int:
        """How many values the index holds (removed ones not counted)."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The state as plain arrays, for a snapshot."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SignalIndex:
        """The index :meth:`arrays` described, rebuilt from a snapshot (no pickle); it answers queries
        exactly as the saved one did."""

    def save(self, path: Path, **meta: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        payload: dict[str, Any] = dict(self.arrays())
        payload.update({f"meta_{k}": np.asarray(v, dtype=np.int64) for k, v in meta.items()})
        np.savez(tmp, **payload)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[SignalIndex, dict[str, int]]:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if not k.startswith("meta_")}
            meta = {k[5:]: int(z[k]) for k in z.files if k.startswith("meta_")}
        return cls.from_arrays(arrays), meta


def index_for(signal_type: SignalType) -> SignalIndex:
    """A new index for a signal type: the one the type names (``SignalType.new_index``)."""
    return signal_type.new_index()
