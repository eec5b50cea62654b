"""Banks: named, versioned lists of signals with provenance, categories and opinions."""

from safeguard.banks.service import BankInfo, BankService, EntryInfo, ImportResult

__all__ = ["BankInfo", "BankService", "EntryInfo", "ImportResult"]
