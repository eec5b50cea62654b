"""Banks: named, versioned lists of signals with provenance, categories and opinions."""

from safeguard.banks.service import BankService, ImportResult

__all__ = ["BankService", "ImportResult"]
