"""The evidence vault: preserved uploads, encrypted at rest, sealed into the event log, retained and purged.

See ``docs/vault.md`` for the threat model and the key procedures.
"""

from typing import Any

from safeguard.evidence.keys import EvidenceKeyError, EvidenceTampered, MasterKey
from safeguard.evidence.storage import BlobMissing, BlobStore, FileBlobStore
from safeguard.evidence.vault import EvidenceGone, EvidenceItem, EvidenceVault, Sealed, VerifyReport, require_key

__all__ = [
    "BlobMissing",
    "BlobStore",
    "EvidenceGone",
    "EvidenceItem",
    "EvidenceKeyError",
    "EvidenceTampered",
    "EvidenceVault",
    "FileBlobStore",
    "MasterKey",
    "Sealed",
    "VerifyReport",
    "require_key",
    "vault_of",
]


def vault_of(engine: Any) -> EvidenceVault:
    """The engine's vault: the ``preserve`` action's when the policy uses it, else one made on first use
    (listing and reading need no key until an item is opened)."""
    shared: dict[str, Any] = engine.resources.extra
    vault: EvidenceVault | None = shared.get("evidence_vault")
    if vault is None:
        vault = shared["evidence_vault"] = EvidenceVault(engine.settings, engine.db)
    return vault
