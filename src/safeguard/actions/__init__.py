"""Actions: one module per action, registered under ``safeguard.actions``."""

from safeguard.actions.base import ActionContext, ActionHandler

__all__ = ["ActionContext", "ActionHandler"]
