"""Plug-in registries, loaded from Python entry points.

Safeguard's own signal types, hash-list sources, detectors and actions register exactly as an outside
package would, under these entry-point groups::

    safeguard.signals     a SignalType class        (safeguard.signals.base.SignalType)
    safeguard.sources     a HashListFormat class    (safeguard.banks.sources.base.HashListFormat)
    safeguard.detectors   a Detector class          (safeguard.detectors.base.Detector)
    safeguard.actions     an ActionHandler class    (safeguard.actions.base.ActionHandler)

Each registry is a name → class mapping, loaded once per process. Tests may register extra classes
with :meth:`Registry.register`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:  # the plug-in protocols import this module to look their plug-ins up
    from safeguard.actions.base import ActionHandler
    from safeguard.banks.sources.base import HashListFormat
    from safeguard.detectors.base import Detector
    from safeguard.signals.base import SignalType

__all__ = ["Registry", "actions", "detectors", "signals", "sources"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Plug-in classes of one kind by name: an entry-point group, plus what tests register."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._items: dict[str, type[T]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, type[T]]:
        with self._lock:
            if self._items is None:
                items: dict[str, type[T]] = {}
                for ep in entry_points(group=self.group):
                    items[ep.name] = ep.load()
                self._items = items
            return self._items

    def register(self, name: str, cls: type[T]) -> None:
        """Add (or replace) a plug-in in this process, as an installed package's entry point would."""
        self._load()[name] = cls

    def unregister(self, name: str) -> None:
        self._load().pop(name, None)

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``, or ``InvalidInput`` (code ``unknown_<kind>``) naming the known ones."""
        items = self._load()
        if name not in items:
            from safeguard.errors import InvalidInput

            raise InvalidInput(
                f"unknown {self.group.split('.')[-1][:-1]} {name!r}; known: {sorted(items)}",
                code=f"unknown_{self.group.split('.')[-1][:-1]}",
            )
        return items[name]

    def names(self) -> list[str]:
        return sorted(self._load())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


signals: Registry[SignalType] = Registry("safeguard.signals")
sources: Registry[HashListFormat] = Registry("safeguard.sources")
detectors: Registry[Detector] = Registry("safeguard.detectors")
actions: Registry[ActionHandler] = Registry("safeguard.actions")
