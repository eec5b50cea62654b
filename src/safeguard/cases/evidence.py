"""The seam between cases and the evidence vault: what a case page lists as its preserved items.

The case service, the API and the console call :func:`list_evidence` inside their read transaction;
the items (metadata only: id, SHA-256, size, media type, whether bytes were kept and why not) come
from the vault's rows, so listing needs no key. Opening an item is the vault's job, audited there.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from safeguard.evidence.vault import EvidenceItem, case_items


def list_evidence(session: Session, case_id: int) -> list[EvidenceItem]:
    """The case's preserved items, oldest first."""
    return case_items(session, case_id)


__all__ = ["EvidenceItem", "list_evidence"]
