"""The detector protocol.

A detector is constructed once per engine with the engine's shared resources (database, indexes,
settings) and then called for every piece of content it applies to. It returns findings and never
decides: the policy does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from safeguard.content import Content, Finding, Signal
from safeguard.media import Media

__all__ = [
    "Detector",
    "ScanContext",
]

if TYPE_CHECKING:
    from safeguard.policy.model import Rule
    from safeguard.resources import Resources


@dataclass
class ScanContext:
    content: Content
    signals: list[Signal]
    media: Media | None = None
    extra: dict[str, object] = field(default_factory=dict)


class Detector(ABC):
    """Turns content and its signals into findings (registered under ``safeguard.detectors``).

    Constructed once per engine with its :class:`~safeguard.resources.Resources`; ``detect`` is called
    from several threads at once, so per-call state stays local. A detector never decides a verdict."""

    name: ClassVar[str]
    #: True when ``detect`` on a few hashes is quick and local (an index lookup, a short database read),
    #: so the API may run it on its event loop; anything slower or remote keeps the default, a thread.
    quick: ClassVar[bool] = False

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    @abstractmethod
    def applies(self, ctx: ScanContext) -> bool:
        """Whether this detector has anything to say about the content (cheap: no decoding, no I/O)."""

    @abstractmethod
    def detect(self, ctx: ScanContext) -> list[Finding]:
        """The findings for one content (empty when nothing is found); raise a
        :class:`~safeguard.errors.SafeguardError` for content it cannot read, never return a partial list."""

    def default_rules(self) -> list[Rule]:
        """Policy rules this detector's findings need whatever the policy file says (e.g. ``unhashable``,
        from a setting): added to the engine's policy unless it has a rule of the same name."""
        return []

    def detect_many(self, ctxs: list[ScanContext]) -> list[list[Finding]]:
        """Findings for several contents at once (``POST /v1/scan/batch``); override to share work."""
        return [self.detect(ctx) for ctx in ctxs]
