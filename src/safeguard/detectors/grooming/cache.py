"""An in-process copy of recently written grooming state rows, checked against the database on write.

A chat message mostly lands in a conversation this process saw a moment ago. Keeping the state row
it last wrote (its JSON, version and time) lets the next message skip the read entirely: the write is
``UPDATE ... WHERE version = <cached version>``, and when another process (or another service in
this one) wrote in between, that update changes no row, the caller drops the entry and reloads. So
the cache can be stale but never wrong, and nothing here needs invalidating across processes.

Entries are the JSON text, not live objects: each request parses its own copy, so two threads never
mutate one state and a rolled-back transaction leaves nothing half-applied behind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CachedRow:
    version: int
    updated_at: datetime
    state: str


class StateCache:
    """A bounded LRU of ``key -> CachedRow``; ``size`` 0 keeps nothing. Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._rows: OrderedDict[str, CachedRow] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedRow | None:
        if not self.size:
            return None
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self.misses += 1
                return None
            self._rows.move_to_end(key)
            self.hits += 1
            return row

    def put(self, key: str, row: CachedRow) -> None:
        if not self.size:
            return
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def drop(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._rows.pop(k, None)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)
