"""Ask the platform to restrict a user's contact with minors (the platform performs it).

The engine cannot block anyone on the platform; it records the request (in the decision and its
events) and returns it, naming the user and the scope, so the platform can, for example, stop the
adult from starting new chats with users it knows are under 18 until a moderator has reviewed the case.
"""

from __future__ import annotations

from typing import Any

from safeguard.actions.base import ActionContext
from safeguard.actions.platform import PlatformAction
from safeguard.content import Action


class RestrictContact(PlatformAction):
    name = "restrict_contact"

    def run(self, action: Action, ctx: ActionContext) -> dict[str, Any]:
        return {
            "performed_by": "platform",
            "user_id": ctx.content.user_id,
            "scope": str(action.params.get("scope", "minors")),
            "until": str(action.params.get("until", "review")),
            "conversation_id": ctx.content.conversation_id,
        }
