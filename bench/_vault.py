"""A vault key for a benchmark's own service: ``safeguard serve`` never makes one (``safeguard vault init`` does)."""

from __future__ import annotations

from pathlib import Path


def vault_key(folder: str | Path) -> str:
    """A new master key in ``folder`` (mode 0600, as ``safeguard vault init`` writes it); its path."""
    from safeguard.evidence import MasterKey

    return MasterKey.generate().write_new(Path(folder) / "bench-vault.key").path
