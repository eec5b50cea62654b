"""The detector protocol.

A detector is constructed once per engine with the engine's shared resources (database, indexes,
settings) and then called for every piece of content it applies to. It returns findings and never
decides: the policy does.

A *stateful* detector (``stateful = True``; grooming is one) keeps state in the database that its
findings depend on (per conversation, per sender). Its ``detect``/``detect_many`` run outside any
transaction and do the costly, stateless part (parsing, model inference), leaving what they computed
in ``ctx.extra``; its :meth:`Detector.detect_in` then runs inside the decision's write transaction
(:meth:`safeguard.engine.Engine.scan_in`), reads and writes its state through that session only, and
returns the findings. The state commits with the decision or not at all.
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
    from sqlalchemy.orm import Session

    from safeguard.policy.model import Rule
    from safeguard.resources import Resources


@dataclass
class ScanContext:
    """One content on its way through the detectors, with what was computed for it so far.

    ``extra`` holds per-call values a detector hands from one of its steps to the next (a stateful
    detector's analysis, from ``detect_many`` to ``detect_in``) or to its caller; keys start with the
    detector's name. The last four fields serve stateful detectors (:meth:`Detector.detect_in`)."""

    content: Content
    signals: list[Signal]
    media: Media | None = None
    extra: dict[str, object] = field(default_factory=dict)
    #: the id the decision gets if it is recorded, set by the engine before ``detect_in`` (a stateful
    #: detector's rows may name it)
    decision_id: str | None = None
    #: False when a stateful detector's findings add nothing to what an earlier decision on the same
    #: subject already acted on: the engine then records no decision and runs no actions
    news: bool = True
    #: True when a stateful detector saw this very content before (a retried request): the engine
    #: records nothing, even when asked to record every decision; the caller answers as the first time
    replay: bool = False


class Detector(ABC):
    """Turns content and its signals into findings (registered under ``safeguard.detectors``).

    Constructed once per engine with its :class:`~safeguard.resources.Resources`; ``detect`` is called
    from several threads at once, so per-call state stays local. A detector never decides a verdict."""

    name: ClassVar[str]
    #: True when ``detect`` on a few hashes is quick and local (an index lookup, a short database read),
    #: so the API may run it on its event loop; anything slower or remote keeps the default, a thread.
    quick: ClassVar[bool] = False
    #: True for a detector whose findings depend on state it keeps in the database: the engine calls
    #: its :meth:`detect_in` inside the decision's transaction (:meth:`~safeguard.engine.Engine.scan_in`)
    stateful: ClassVar[bool] = False

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

    def detect_in(self, session: Session, ctx: ScanContext) -> list[Finding]:
        """A stateful detector's findings for ``ctx``, inside the decision's write transaction, after
        ``detect`` (or ``detect_many``) ran on the same ``ctx`` outside it.

        Read and write the detector's state through ``session`` only (no other connection, nothing kept
        in Python until the transaction has committed), so a rolled-back decision leaves the state as it
        was. It may narrow ``ctx.content`` to what the findings are about (the decision is recorded about
        ``ctx.content``) and clear ``ctx.news``. Raise a :class:`~safeguard.errors.SafeguardError` to refuse
        the content: the transaction rolls back. Only called when ``stateful`` is True."""
        raise NotImplementedError(f"{self.name} is not a stateful detector")
