"""What detectors and actions share, below the engine that builds it (so plug-ins never import the engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safeguard.config import Settings
from safeguard.index.manager import BankMeta, IndexSet
from safeguard.store import Database

__all__ = ["Resources"]


@dataclass
class Resources:
    """What detectors and actions share: handed to each explicitly, never global."""

    settings: Settings
    db: Database
    indexes: IndexSet
    extra: dict[str, Any] = field(default_factory=dict)

    def bank_cache(self) -> dict[int, BankMeta]:
        return self.indexes.banks
