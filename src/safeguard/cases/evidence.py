"""The seam between cases and the evidence vault: what a case page lists as its preserved items.

The vault (``safeguard.evidence``) fills :func:`list_evidence` in; until it does, a case has no
items and says so (``evidence: []``). Keep the signature: the case service, the API and the console
call it inside their read transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class EvidenceItem:
    id: int
    sha256: str
    size: int
    media_type: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_evidence(session: Session, case_id: int) -> list[EvidenceItem]:
    """The case's preserved items, oldest first. No vault yet: none."""
    return []
