"""Who is acting: an API key (a service) or a logged-in person. Both carry a role; the service layer
(cases, user reports, the console) checks roles on this, never on how the caller authenticated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Who:
    actor: str  # as events and assignees name it: ``key:<prefix>:<name>`` or ``user:<name>``
    role: str
    name: str
    kind: Literal["key", "user"] = "key"
    user_id: int | None = None

    @classmethod
    def user(cls, user_id: int, name: str, role: str) -> Who:
        return cls(actor=f"user:{name}", role=role, name=name, kind="user", user_id=user_id)
