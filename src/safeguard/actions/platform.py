"""Actions the platform carries out: the engine returns and records them, and does nothing else."""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext, ActionHandler
from safeguard.content import Action


class PlatformAction(ActionHandler):
    performed_by = "platform"
    rerunnable = True  # returns data only

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        return {"performed_by": "platform"}


class Block(PlatformAction):
    """Refuse the upload (or remove the content)."""

    name = "block"


class Blur(PlatformAction):
    """Show the content blurred until a person chooses to reveal it."""

    name = "blur"
