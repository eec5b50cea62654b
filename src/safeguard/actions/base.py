"""The action protocol.

An action runs inside the decision's write transaction, so the decision, its case, its outbox rows
and its events commit together or not at all: a process killed mid-scan leaves either everything or
nothing. Anything slow or remote (webhooks, report submission) only *enqueues* work here, in the
durable outbox, and a worker does it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from safeguard.config import Settings
from safeguard.content import Action, Content, Decision
from safeguard.store import Database

__all__ = [
    "ActionContext",
    "ActionHandler",
]


@dataclass
class ActionContext:
    session: Session
    settings: Settings
    content: Content
    decision: Decision  # as decided; ``case_id`` is filled in after the case action
    actor: str
    results: dict[str, Any] = field(default_factory=dict)  # what earlier actions produced, by name
    prepared: dict[str, Any] = field(default_factory=dict)  # what each action's ``prepare`` returned, by name


class ActionHandler(ABC):
    """A policy action (``block``, ``case``, ``preserve``, ...): registered under the ``safeguard.actions``
    entry-point group, constructed once per engine without arguments, run for each decision whose fired
    rules name it."""

    name: ClassVar[str]
    #: "platform": the platform carries it out (the engine records and returns it);
    #: "engine": the engine does it (here, or by enqueueing work)
    performed_by: ClassVar[str] = "engine"
    #: True when ``run`` changes nothing but the database, through ``ctx.session``: no Python state, no
    #: I/O. The recorder may then run it again after rolling back a savepoint (several decisions share
    #: one savepoint; if that fails, each is rerun in its own). Leave False when unsure.
    rerunnable: ClassVar[bool] = False

    def start(self, settings: Settings, db: Database, shared: dict[str, Any]) -> None:
        """Called once by an engine whose policy uses this action, before it decides anything: check what
        the action needs (a key, a directory) and raise :class:`~safeguard.errors.ConfigError` to refuse
        to start. ``shared`` is the engine's dict of resources shared with the API and other parts."""
        return None

    def prepare(self, action: Action, content: Content, decision: Decision) -> Any:
        """Work done before the decision's write transaction, in the thread that scanned the content (local
        and slow-ish: encrypting and writing a file), so that it does not hold the write lock. What it
        returns (unless None) is ``ctx.prepared[action.name]`` in :meth:`run`. Paths that record a decision
        inside another transaction skip it: ``run`` must then do the work itself."""
        return None

    @abstractmethod
    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        """Do (or enqueue) the action; return what it produced, recorded in the action's event."""
